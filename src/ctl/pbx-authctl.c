/*
 * pbx-authctl: the operator's command line.  It reads the daemon's
 * configuration for the database and dispatches to the command modules.
 */
#include "autoconfig.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "log.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: pbx-authctl [-c CONFIG] COMMAND [ARGS…]\n"
	    "\n"
	    "  -c CONFIG   configuration file (default %s)\n"
	    "\n"
	    "commands:\n"
	    "  migrate [--status] [--dir DIR]      apply pending schema migrations\n"
	    "  system show | set KEY=VALUE…        system metadata\n"
	    "  tenant add|set|show|list|enable|disable …   tenants\n"
	    "  user add|passwd|set|list|show …     users and system-level accounts\n"
	    "  session list|revoke …               signed-in sessions\n"
	    "  client add|list|remove …            introspection clients (RFC 7662)\n"
	    "  ms365 set|show …                    a tenant's Microsoft 365 sign-in\n"
	    "  audit [--domain D] [--since WHEN]   the audit trail\n"
	    "\n"
	    "Each command takes --help.\n", pa_config_default_path());
}

void
ctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("pbx-authctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

bool
ctl_wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	return false;
}

const char *
ctl_bool(const char *v)
{
	static const char *const t[] = { "true", "yes", "on", "1" };
	static const char *const f[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, t[i]) == 0)
			return "true";
		if (strcasecmp(v, f[i]) == 0)
			return "false";
	}
	return NULL;
}

int
ctl_assignments(int argc, char **argv, const ctl_field_t *fields, size_t nfields,
    ctl_check_fn *check, const ctl_field_t **todo, const char **vals, size_t *n)
{
	*n = 0;
	for (int i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '='), *why;
		size_t klen = eq ? (size_t)(eq - argv[i]) : 0;
		const ctl_field_t *f = NULL;

		if (eq == NULL) {
			ctl_err("expected KEY=VALUE, got '%s'", argv[i]);
			return CTL_USAGE;
		}
		for (size_t k = 0; k < nfields; k++)
			if (strlen(fields[k].key) == klen && strncmp(fields[k].key, argv[i], klen) == 0)
				f = &fields[k];
		if (f == NULL) {
			ctl_err("unknown key '%.*s'", (int)klen, argv[i]);
			return CTL_USAGE;
		}
		for (size_t k = 0; k < *n; k++)
			if (todo[k] == f) {
				ctl_err("key '%s' given twice", f->key);
				return CTL_USAGE;
			}
		if ((why = check(f->kind, eq + 1, &vals[*n])) != NULL) {
			ctl_err("%s: %s", f->key, why);
			return CTL_FAIL;
		}
		todo[(*n)++] = f;
	}
	return CTL_OK;
}

bool
ctl_exec(ctl_t *c, const char *sql)
{
	/* pa_db_* logs the server's message. */
	return pa_db_query(c->db, sql, 0, NULL, NULL) == PA_OK;
}

const char *
ctl_db_reason(ctl_t *c)
{
	static const char *const cut[] = { " DETAIL:", " HINT:", " CONTEXT:" };
	static char buf[512];
	const char *msg = pa_db_error(c->db);
	size_t n;

	if (strncmp(msg, "ERROR:", 6) == 0)
		msg += 6 + strspn(msg + 6, " ");
	snprintf(buf, sizeof(buf), "%s", msg);
	for (size_t i = 0; i < PA_NELEM(cut); i++) {
		char *p = strstr(buf, cut[i]);

		if (p != NULL)
			*p = '\0';
	}
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == ' ')
		buf[--n] = '\0';
	return buf;
}

enum pa_err
ctl_query_quiet(ctl_t *c, const char *sql, int nparams, const char *const *params,
    pa_db_res_t **out)
{
	enum pa_log_level level = pa_log_get_level();
	enum pa_err rv;

	if (out != NULL)
		*out = NULL;
	if ((rv = pa_db_connect(c->db)) != PA_OK)
		return rv;
	pa_log_set_level(PA_LOG__MAX);
	rv = pa_db_query(c->db, sql, nparams, params, out);
	pa_log_set_level(level);
	return rv;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = pa_config_default_path();
	ctl_t c = { NULL, NULL };
	char err[512];
	int ch, rv = CTL_FAIL;

	pa_log_init("pbx-authctl");
	pa_log_set_level(PA_LOG_WARN);
	/* "+": stop at the command so that its options are its own. */
	while ((ch = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'h': usage(stdout); return CTL_OK;
		default: usage(stderr); return CTL_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return CTL_USAGE;
	}
	if (strcmp(argv[0], "help") == 0) {
		usage(stdout);
		return CTL_OK;
	}
	if ((c.cfg = pa_config_new()) == NULL) {
		ctl_err("out of memory");
		return CTL_FAIL;
	}
	/* --help works without a configuration. */
	if (!ctl_wants_help(argc, argv) && pa_config_load(c.cfg, path, err, sizeof(err)) != PA_OK) {
		ctl_err("%s", err);
		goto out;
	}
	if ((c.db = pa_db_new(c.cfg->database ? c.cfg->database : "", "pbx-authctl", 0)) == NULL) {
		ctl_err("out of memory");
		goto out;
	}
	optind = 0;	/* (GNU: re-initialise) commands parse their own options with getopt */
	if (strcmp(argv[0], "migrate") == 0) {
		rv = ctl_migrate(&c, argc, argv);
	} else if (strcmp(argv[0], "system") == 0) {
		rv = ctl_system(&c, argc, argv);
	} else if (strcmp(argv[0], "tenant") == 0) {
		rv = ctl_tenant(&c, argc, argv);
	} else if (strcmp(argv[0], "user") == 0) {
		rv = ctl_user(&c, argc, argv);
	} else if (strcmp(argv[0], "session") == 0) {
		rv = ctl_session(&c, argc, argv);
	} else if (strcmp(argv[0], "audit") == 0) {
		rv = ctl_audit(&c, argc, argv);
	} else if (strcmp(argv[0], "ms365") == 0) {
		rv = ctl_ms365(&c, argc, argv);
	} else if (strcmp(argv[0], "client") == 0) {
		rv = ctl_client(&c, argc, argv);
	} else {
		ctl_err("unknown command '%s'", argv[0]);
		usage(stderr);
		rv = CTL_USAGE;
	}
out:
	pa_db_free(c.db);
	pa_config_free(c.cfg);
	return rv;
}
