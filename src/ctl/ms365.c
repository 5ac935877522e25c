/*
 * pbx-authctl ms365 set|show: a tenant's Microsoft 365 sign-in settings.  The
 * credential stays in files readable by pbx-authd only; the database holds
 * their absolute paths, and nothing here ever prints a file's contents.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "ms365.h"
#include "valid.h"

/* The most of a credential file read to check its shape. */
#define FILE_PEEK_MAX 65536

enum file_kind { F_SECRET, F_CERT, F_KEY, F__MAX };

static const char *const file_opt[F__MAX] = {
	"--client-secret-file", "--certificate", "--private-key"
};

/* What the audit row of ms365 set compares: paths, never the files' contents. */
#define SNAPSHOT_SQL \
    "SELECT to_jsonb(t) FROM tenants t WHERE lower(t.domain) = lower($1) FOR UPDATE"
static const char *const audit_keys[] = { "ms365_enabled", "ms365_directory_id",
	"ms365_application_id", "ms365_client_secret_file", "ms365_certificate_file",
	"ms365_private_key_file", "ms365_national_cloud" };

static void
usage(FILE *f)
{
	fprintf(f, "usage: pbx-authctl ms365 set DOMAIN [--directory-id ID] [--application-id ID]\n"
	    "           [--client-secret-file FILE | --certificate FILE --private-key FILE]\n"
	    "           [--national-cloud GLOBAL|CHINA] [--enable | --disable]\n"
	    "       pbx-authctl ms365 show DOMAIN\n"
	    "  The directory id is the tenant's directory GUID or one of its domain names\n"
	    "  (contoso.onmicrosoft.com); the application id is the registered application's\n"
	    "  GUID.  The credential is a client secret, or a certificate and its private key\n"
	    "  (PEM), each in a file that pbx-authd's user can read and nobody else should:\n"
	    "  their absolute paths are stored, never their contents.  The first set gives\n"
	    "  directory, application and credential; later ones change what they name.  The\n"
	    "  settings must stay complete, except that --disable alone always works.\n"
	    "  show prints the settings and whether each file is readable, never a secret.\n");
}

/* Whether s holds a control character (CR, LF, NUL cannot reach here). */
static bool
has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/*
 * Checks the credential file path for kind: it exists, is a regular file,
 * can be opened and has the shape of its kind; warns when a secret is
 * readable by group or others.  Writes its absolute path (the directory
 * resolved, the last component kept, so a rotated symbolic link is
 * followed later) to abs.  Returns false with the message printed.
 */
static bool
check_file(const char *path, enum file_kind kind, char abs[PATH_MAX])
{
	char dirbuf[PATH_MAX], basebuf[PATH_MAX], dir[PATH_MAX];
	char *buf = NULL;
	struct stat st;
	ssize_t n = 0;
	bool ok = false;
	int fd = -1;

	if (*path == '\0' || strlen(path) >= PATH_MAX || has_control(path)) {
		ctl_err("%s: expected a file name without control characters", file_opt[kind]);
		return false;
	}
	if (stat(path, &st) != 0) {
		ctl_err("%s %s: %s", file_opt[kind], path, strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		ctl_err("%s %s: not a regular file", file_opt[kind], path);
		return false;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
		ctl_err("%s %s: cannot read it: %s", file_opt[kind], path, strerror(errno));
		return false;
	}
	if ((buf = malloc(FILE_PEEK_MAX + 1)) == NULL) {
		ctl_err("out of memory");
		goto out;
	}
	while ((size_t)n < FILE_PEEK_MAX) {
		ssize_t k = read(fd, buf + n, (size_t)(FILE_PEEK_MAX - n));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			ctl_err("%s %s: cannot read it: %s", file_opt[kind], path, strerror(errno));
			goto out;
		}
		if (k == 0)
			break;
		n += k;
	}
	buf[n] = '\0';
	switch (kind) {
	case F_SECRET:
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			n--;
		if (n == 0 || memchr(buf, '\0', (size_t)n) != NULL || (size_t)n > 4096 ||
		    memchr(buf, '\n', (size_t)n) != NULL) {
			ctl_err("%s %s: expected one line holding the client secret",
			    file_opt[kind], path);
			goto out;
		}
		break;
	case F_CERT:
		if (strstr(buf, "-----BEGIN CERTIFICATE-----") == NULL) {
			ctl_err("%s %s: expected a PEM certificate (-----BEGIN CERTIFICATE-----)",
			    file_opt[kind], path);
			goto out;
		}
		break;
	case F_KEY:
		if (strstr(buf, "-----BEGIN ") == NULL || strstr(buf, "PRIVATE KEY-----") == NULL) {
			ctl_err("%s %s: expected a PEM private key (-----BEGIN … PRIVATE KEY-----)",
			    file_opt[kind], path);
			goto out;
		}
		break;
	default:
		break;
	}
	if (kind != F_CERT && (st.st_mode & (S_IRGRP | S_IROTH)) != 0)
		ctl_err("warning: %s %s is readable by %s (mode %04o): only pbx-authd's user"
		    " should read it", file_opt[kind], path,
		    (st.st_mode & S_IROTH) ? "everyone" : "its group",
		    (unsigned)(st.st_mode & 07777));
	/* dirname and basename may modify their argument: give each a copy. */
	snprintf(dirbuf, sizeof(dirbuf), "%s", path);
	snprintf(basebuf, sizeof(basebuf), "%s", path);
	if (realpath(dirname(dirbuf), dir) == NULL) {
		ctl_err("%s %s: %s", file_opt[kind], path, strerror(errno));
		goto out;
	}
	if ((size_t)snprintf(abs, PATH_MAX, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir,
	    basename(basebuf)) >= PATH_MAX) {
		ctl_err("%s %s: the absolute path is too long", file_opt[kind], path);
		goto out;
	}
	ok = true;
out:
	if (buf != NULL) {
		explicit_bzero(buf, FILE_PEEK_MAX + 1);
		free(buf);
	}
	(void)close(fd);
	return ok;
}

/* Lower-cases s in place (GUIDs and domain names compare case-insensitively). */
static const char *
lower(char *s)
{
	for (char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}

static int
set(ctl_t *c, int argc, char **argv)
{
	enum { O_DIR = 'd', O_APP = 'a', O_SECRET = 's', O_CERT = 'c', O_KEY = 'k',
		O_CLOUD = 'n', O_ENABLE = 'e', O_DISABLE = 'x' };
	static const struct option opts[] = {
		{ "directory-id", required_argument, NULL, O_DIR },
		{ "application-id", required_argument, NULL, O_APP },
		{ "client-secret-file", required_argument, NULL, O_SECRET },
		{ "certificate", required_argument, NULL, O_CERT },
		{ "private-key", required_argument, NULL, O_KEY },
		{ "national-cloud", required_argument, NULL, O_CLOUD },
		{ "enable", no_argument, NULL, O_ENABLE },
		{ "disable", no_argument, NULL, O_DISABLE },
		{ NULL, 0, NULL, 0 },
	};
	static const char update_sql[] =
	    "UPDATE tenants SET"
	    " ms365_directory_id = coalesce($2, ms365_directory_id),"
	    " ms365_application_id = coalesce($3, ms365_application_id),"
	    " ms365_client_secret_file = CASE WHEN $4::text IS NOT NULL THEN $4"
	    "  WHEN $5::text IS NOT NULL THEN NULL ELSE ms365_client_secret_file END,"
	    " ms365_certificate_file = CASE WHEN $5::text IS NOT NULL THEN $5"
	    "  WHEN $4::text IS NOT NULL THEN NULL ELSE ms365_certificate_file END,"
	    " ms365_private_key_file = CASE WHEN $6::text IS NOT NULL THEN $6"
	    "  WHEN $4::text IS NOT NULL THEN NULL ELSE ms365_private_key_file END,"
	    " ms365_national_cloud = coalesce($7, ms365_national_cloud),"
	    " ms365_enabled = coalesce($8::boolean, ms365_enabled), updated_at = now()"
	    " WHERE lower(domain) = lower($1)"
	    " RETURNING domain, ms365_enabled, coalesce(ms365_directory_id, '') <> '',"
	    " coalesce(ms365_application_id, '') <> '',"
	    " coalesce(ms365_client_secret_file, '') <> '' OR (coalesce(ms365_certificate_file, '')"
	    " <> '' AND coalesce(ms365_private_key_file, '') <> '')";
	char *file[F__MAX] = { NULL, NULL, NULL };
	char abs[F__MAX][PATH_MAX];
	char *dir = NULL, *app = NULL, *cloud = NULL;
	const char *enable = NULL, *domain, *params[8];
	char missing[128] = "", *before = NULL, *detail = NULL;
	pa_db_res_t *r = NULL;
	bool on, only_disable;
	int ch, li, given = 0, rv = CTL_FAIL;

	while ((ch = getopt_long(argc, argv, "", opts, &li)) != -1) {
		char **slot = ch == O_DIR ? &dir : ch == O_APP ? &app : ch == O_CLOUD ? &cloud :
		    ch == O_SECRET ? &file[F_SECRET] : ch == O_CERT ? &file[F_CERT] :
		    ch == O_KEY ? &file[F_KEY] : NULL;

		if (ch == O_ENABLE || ch == O_DISABLE) {
			const char *v = ch == O_ENABLE ? "true" : "false";

			if (enable != NULL && strcmp(enable, v) != 0) {
				ctl_err("--enable and --disable exclude each other");
				return CTL_USAGE;
			}
			enable = v;
		} else if (slot != NULL) {
			if (*slot != NULL) {
				ctl_err("--%s given twice", opts[li].name);
				return CTL_USAGE;
			}
			*slot = optarg;
			given++;
		} else {
			usage(stderr);
			return CTL_USAGE;
		}
	}
	if (optind + 1 != argc) {
		ctl_err("ms365 set needs one DOMAIN");
		usage(stderr);
		return CTL_USAGE;
	}
	domain = argv[optind];
	if (given == 0 && enable == NULL) {
		ctl_err("ms365 set needs something to set");
		usage(stderr);
		return CTL_USAGE;
	}
	if (file[F_SECRET] != NULL && (file[F_CERT] != NULL || file[F_KEY] != NULL)) {
		ctl_err("the credential is a client secret or a certificate, not both");
		return CTL_USAGE;
	}
	if ((file[F_CERT] == NULL) != (file[F_KEY] == NULL)) {
		ctl_err("--certificate and --private-key go together");
		return CTL_USAGE;
	}
	only_disable = given == 0 && strcmp(enable, "false") == 0;

	if (!pa_valid_domain(domain)) {
		ctl_err("'%s' is not a valid domain (1-280 characters of an FQDN or IP address)",
		    domain);
		return CTL_FAIL;
	}
	if (dir != NULL && !pa_ms365_directory(dir)) {
		ctl_err("--directory-id: expected the directory's GUID or one of its domain names,"
		    " got '%s'", dir);
		return CTL_FAIL;
	}
	if (app != NULL && !pa_ms365_guid(app)) {
		ctl_err("--application-id: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx),"
		    " got '%s'", app);
		return CTL_FAIL;
	}
	if (cloud != NULL && strcmp(cloud, "GLOBAL") != 0 && strcmp(cloud, "CHINA") != 0) {
		ctl_err("--national-cloud: expected GLOBAL or CHINA, got '%s'", cloud);
		return CTL_FAIL;
	}
	for (int k = 0; k < F__MAX; k++)
		if (file[k] != NULL && !check_file(file[k], (enum file_kind)k, abs[k]))
			return CTL_FAIL;

	params[0] = domain;
	params[1] = dir ? lower(dir) : NULL;
	params[2] = app ? lower(app) : NULL;
	params[3] = file[F_SECRET] ? abs[F_SECRET] : NULL;
	params[4] = file[F_CERT] ? abs[F_CERT] : NULL;
	params[5] = file[F_KEY] ? abs[F_KEY] : NULL;
	params[6] = cloud;
	params[7] = enable;
	if (!ctl_exec(c, "BEGIN"))
		return CTL_FAIL;
	if (!ctl_snapshot(c, SNAPSHOT_SQL, domain, &before))
		goto rollback;
	if (pa_db_query(c->db, update_sql, 8, params, &r) != PA_OK)
		goto rollback;
	if (pa_db_rows(r) == 0) {
		ctl_err("no such tenant '%s'", domain);
		goto rollback;
	}
	on = pa_db_bool(r, 0, 1);
	if (!pa_db_bool(r, 0, 2))
		strcat(missing, ", --directory-id");
	if (!pa_db_bool(r, 0, 3))
		strcat(missing, ", --application-id");
	if (!pa_db_bool(r, 0, 4))
		strcat(missing, ", --client-secret-file or --certificate and --private-key");
	if (missing[0] != '\0' && !only_disable) {
		ctl_err("the Microsoft 365 settings of '%s' would be incomplete: give%s",
		    domain, missing + 1);
		goto rollback;
	}
	if (!ctl_commit_change(c, SNAPSHOT_SQL, domain, "ms365_set", NULL, before, audit_keys,
	    PA_NELEM(audit_keys), NULL, &detail))
		goto rollback;
	printf("Microsoft 365 sign-in for %s: %s\n", pa_db_value(r, 0, 0),
	    on ? "enabled" : "disabled (--enable switches it on)");
	printf("changed: %s\n", detail ? detail : "nothing");
	rv = CTL_OK;
	goto out;
rollback:
	(void)ctl_exec(c, "ROLLBACK");
out:
	pa_db_res_free(r);
	free(before);
	free(detail);
	return rv;
}

/* "true" when path names a regular file this process can open, else "false"; "" if unset. */
static const char *
readable(const char *path)
{
	struct stat st;
	int fd;

	if (path == NULL)
		return "";
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
		return "false";
	(void)close(fd);
	return "true";
}

static int
show(ctl_t *c, const char *domain)
{
	enum { S_DOMAIN, S_ENABLED, S_READY, S_DIR, S_APP, S_CLOUD, S_SECRET, S_CERT, S_KEY,
		S_TENANT_ENABLED };
	const char *params[1] = { domain };
	static const char *const keys[] = { "domain", "enabled", "active", "directory_id",
		"application_id", "national_cloud", "credential", "client_secret_file",
		"client_secret_file_readable", "certificate_file", "certificate_file_readable",
		"private_key_file", "private_key_file_readable", "authorization_endpoint" };
	const char *secret, *cert, *key, *dir, *cloud, *vals[PA_NELEM(keys)];
	pa_buf_t url = PA_BUF_INIT;
	pa_db_res_t *r;
	bool ready;

	if (!pa_valid_domain(domain)) {
		ctl_err("'%s' is not a valid domain (1-280 characters of an FQDN or IP address)",
		    domain);
		return CTL_FAIL;
	}
	if (pa_db_query(c->db, "SELECT t.domain, t.ms365_enabled, " PA_DB_MS365_READY("t") ","
	    " t.ms365_directory_id, t.ms365_application_id, t.ms365_national_cloud,"
	    " t.ms365_client_secret_file, t.ms365_certificate_file, t.ms365_private_key_file,"
	    " t.enabled FROM tenants t WHERE lower(t.domain) = lower($1)", 1, params,
	    &r) != PA_OK)
		return CTL_FAIL;
	if (pa_db_rows(r) == 0) {
		ctl_err("no such tenant '%s'", domain);
		pa_db_res_free(r);
		return CTL_FAIL;
	}
	ready = pa_db_bool(r, 0, S_READY);
	dir = pa_db_value(r, 0, S_DIR);
	cloud = pa_db_value(r, 0, S_CLOUD);
	secret = pa_db_value(r, 0, S_SECRET);
	cert = pa_db_value(r, 0, S_CERT);
	key = pa_db_value(r, 0, S_KEY);
	if (ready && dir != NULL)
		pa_ms365_authorize_endpoint(&url, c->cfg, cloud, dir);
	vals[0] = pa_db_value(r, 0, S_DOMAIN);
	vals[1] = pa_db_bool(r, 0, S_ENABLED) ? "true" : "false";
	/* in effect: switched on, complete, and the tenant enabled */
	vals[2] = ready && pa_db_bool(r, 0, S_TENANT_ENABLED) ? "true" : "false";
	vals[3] = dir;
	vals[4] = pa_db_value(r, 0, S_APP);
	vals[5] = cloud;
	vals[6] = secret != NULL ? "client_secret" : cert != NULL && key != NULL ? "certificate" :
	    "none";
	vals[7] = secret;
	vals[8] = readable(secret);
	vals[9] = cert;
	vals[10] = readable(cert);
	vals[11] = key;
	vals[12] = readable(key);
	vals[13] = ready && dir != NULL && !pa_buf_failed(&url) ? url.p : NULL;
	ctl_print_record(keys, vals, PA_NELEM(keys));
	pa_buf_free(&url);
	pa_db_res_free(r);
	return CTL_OK;
}

int
ctl_ms365(ctl_t *c, int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "";

	if (ctl_wants_help(argc, argv)) {
		usage(stdout);
		return CTL_OK;
	}
	/* set parses argv + 1 with getopt: its name stands in for a program name. */
	if (strcmp(sub, "set") == 0)
		return set(c, argc - 1, argv + 1);
	if (strcmp(sub, "show") == 0 && argc == 3)
		return show(c, argv[2]);
	if (strcmp(sub, "show") != 0)
		return ctl_unknown("ms365", argc, argv);
	usage(stderr);
	return CTL_USAGE;
}
