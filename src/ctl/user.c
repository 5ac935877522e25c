/*
 * pbx-authctl user add|passwd|set|list|show: tenant users and system-level
 * accounts (the users table), and reading a new password from standard
 * input or, on a terminal, from two prompts without echo.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "crypto.h"
#include "ctl/ctl.h"
#include "ms365.h"
#include "valid.h"

/* The most bytes of password input read, its newline included. */
#define PW_INPUT_MAX 4096

enum kind { K_EMAIL, K_ROLE, K_BOOL };

/* Settable columns, each with its one UPDATE ($1 = user id, $2 = value). */
static const ctl_field_t fields[] = {
	{ "email", K_EMAIL, "UPDATE users SET email = $2, updated_at = now() WHERE id = $1" },
	{ "role", K_ROLE, "UPDATE users SET role = $2, updated_at = now() WHERE id = $1" },
	{ "enabled", K_BOOL, "UPDATE users SET enabled = $2::boolean, updated_at = now()"
	    " WHERE id = $1" },
	{ "two_factor", K_BOOL, "UPDATE users SET two_factor = $2::boolean, updated_at = now()"
	    " WHERE id = $1" },
	{ "password_force_reset", K_BOOL, "UPDATE users SET password_force_reset = $2::boolean,"
	    " updated_at = now() WHERE id = $1" },
};
#define F_ROLE (&fields[1])
/* What a new user's audit row shows. */
static const char *const audit_keys[] = { "role", "email", "two_factor" };
#define F_ENABLED (&fields[2])

/*
 * One row: the tenant's id (NULL when there is none or domain $1 is NULL)
 * and the id of the user named $2 in it, or among the system-level accounts
 * when $1 is NULL (NULL when there is none).
 */
static const char lookup_sql[] =
    "SELECT t.id, u.id FROM (SELECT $1::text AS d) q"
    " LEFT JOIN tenants t ON lower(t.domain) = lower(q.d)"
    " LEFT JOIN users u ON lower(u.username) = lower($2::text)"
    " AND (u.tenant_id = t.id OR (q.d IS NULL AND u.tenant_id IS NULL))";

/* The user $1 as JSON for the audit trail, without the password hash, locked. */
#define USER_SNAPSHOT_SQL \
    "SELECT to_jsonb(u) - 'password_hash' || jsonb_build_object('domain', t.domain)" \
    " FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1::bigint" \
    " FOR UPDATE OF u"

/* An audit row about user $1 (names copied from the user and tenant), detail $2. */
#define AUDIT_PASSWORD_SET_SQL \
    "INSERT INTO audit_log (tenant_domain, username, user_id, event, outcome, detail)" \
    " SELECT t.domain, u.username, u.id, 'password_set', 'success', $2 FROM users u" \
    " LEFT JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1"

static void
usage(FILE *f)
{
	fprintf(f, "usage: pbx-authctl user add [--domain D] USERNAME [--email E] [--role R]"
	    " [--two-factor]\n"
	    "       pbx-authctl user passwd [--domain D] USERNAME\n"
	    "       pbx-authctl user set [--domain D] USERNAME KEY=VALUE…\n"
	    "       pbx-authctl user list [--domain D]\n"
	    "       pbx-authctl user show [--domain D] USERNAME\n"
	    "       pbx-authctl user bind-ms365 --domain D USERNAME OID|UPN\n"
	    "       pbx-authctl user unbind-ms365 --domain D USERNAME\n"
	    "       pbx-authctl user delete [--domain D] USERNAME\n"
	    "  Without --domain: a system-level account (roles SystemAdmin, Dealer); with it,\n"
	    "  a user of that tenant (roles Admin, StandardUser, StandardInternationalUser,\n"
	    "  QueueManager).  The default role is SystemAdmin or StandardUser.\n"
	    "  add and passwd read the password from standard input (one line), or prompt\n"
	    "  for it twice on a terminal; passwd revokes the user's sessions.\n"
	    "  set keys: email (empty clears), role, enabled, two_factor, password_force_reset;\n"
	    "  enabled=false revokes the user's sessions.\n"
	    "  bind-ms365 lets a Microsoft 365 account of the tenant's directory sign in as the\n"
	    "  tenant user: by its object id (a GUID), or by a user principal name (name@domain)\n"
	    "  whose object id is recorded at its first sign-in.  It replaces an earlier\n"
	    "  binding; unbind-ms365 removes it.\n"
	    "  delete removes the user with its sessions, flows, binding, queued mail and\n"
	    "  sign-in throttle count; the audit trail keeps the name.\n"
	    "  Every change writes an audit row naming the operator.\n");
}

static bool
check_domain(const char *d)
{
	if (d == NULL || pa_valid_domain(d))
		return true;
	ctl_err("'%s' is not a valid domain (1-280 characters of an FQDN or IP address)", d);
	return false;
}

static bool
check_username(const char *u)
{
	if (pa_valid_username(u, strlen(u)))
		return true;
	ctl_err("'%s' is not a valid username: 1-%d characters of letters, digits, _ - ' and .,"
	    " not starting or ending with '.'", u, PA_USERNAME_MAX);
	return false;
}

/*
 * The role's scope and the reserved names: a system role needs a
 * system-level account, a tenant role a tenant, and a reserved name the
 * system-level SystemAdmin.  Returns false with the message printed.
 */
static bool
check_role(const char *domain, const char *username, const char *role)
{
	bool system_level;

	if (!pa_valid_role(role, &system_level)) {
		ctl_err("unknown role '%s' (SystemAdmin, Dealer, Admin, StandardUser,"
		    " StandardInternationalUser, QueueManager)", role);
		return false;
	}
	if (domain != NULL && system_level) {
		ctl_err("role %s is for system-level accounts (without --domain)", role);
		return false;
	}
	if (domain == NULL && !system_level) {
		ctl_err("role %s is for tenant users (with --domain)", role);
		return false;
	}
	if (pa_username_reserved(username) && (domain != NULL || strcmp(role, "SystemAdmin") != 0)) {
		ctl_err("'%s' is a reserved name: only a system-level SystemAdmin account"
		    " (without --domain) may have it", username);
		return false;
	}
	return true;
}

/* Explains a failed quiet query: the CHECK constraint of the schema that refused it, or why. */
static void
report_db(ctl_t *c, const char *what)
{
	static const char check_text[] = "violates check constraint \"";
	const char *msg = ctl_db_reason(c), *p = strstr(msg, check_text), *end;

	if (p != NULL && (end = strchr(p + strlen(check_text), '"')) != NULL) {
		p += strlen(check_text);
		ctl_err("%s: refused by the database's rule %.*s", what, (int)(end - p), p);
	} else {
		ctl_err("%s: %s", what, msg);
	}
}

/* Runs the lookup; tid and uid get the ids, "" for none.  false on a database failure. */
static bool
lookup(ctl_t *c, const char *domain, const char *username, char tid[CTL_ID_LEN],
    char uid[CTL_ID_LEN])
{
	const char *params[2] = { domain, username };
	const char *v;
	pa_db_res_t *r;

	if (pa_db_query(c->db, lookup_sql, 2, params, &r) != PA_OK)
		return false;
	v = pa_db_value(r, 0, 0);
	snprintf(tid, CTL_ID_LEN, "%s", v ? v : "");
	v = pa_db_value(r, 0, 1);
	snprintf(uid, CTL_ID_LEN, "%s", v ? v : "");
	pa_db_res_free(r);
	return true;
}

int
ctl_tenant_find(ctl_t *c, const char *domain, char id[CTL_ID_LEN])
{
	char uid[CTL_ID_LEN];

	id[0] = '\0';
	if (domain == NULL)
		return CTL_OK;
	if (!check_domain(domain) || !lookup(c, domain, NULL, id, uid))
		return CTL_FAIL;
	if (id[0] == '\0') {
		ctl_err("no such tenant '%s'", domain);
		return CTL_FAIL;
	}
	return CTL_OK;
}

int
ctl_user_find(ctl_t *c, const char *domain, const char *username, char id[CTL_ID_LEN])
{
	char tid[CTL_ID_LEN];

	if (!check_domain(domain) || !check_username(username) ||
	    !lookup(c, domain, username, tid, id))
		return CTL_FAIL;
	if (domain != NULL && tid[0] == '\0') {
		ctl_err("no such tenant '%s'", domain);
		return CTL_FAIL;
	}
	if (id[0] == '\0') {
		if (domain != NULL)
			ctl_err("no such user '%s' in tenant '%s'", username, domain);
		else
			ctl_err("no such system-level user '%s' (tenant users need --domain)",
			    username);
		return CTL_FAIL;
	}
	return CTL_OK;
}

/*
 * Reads one line from the terminal fd into buf (PW_INPUT_MAX + 1 bytes) with
 * echo off, after writing prompt.  Echo is restored before returning.
 * Returns the length, or -1 with the message printed.
 */
static ssize_t
tty_line(int fd, const char *prompt, char *buf)
{
	struct termios old, quiet;
	ssize_t n = 0, rv = -1;
	char ch;

	if (tcgetattr(fd, &old) != 0) {
		ctl_err("cannot read the terminal's settings: %s", strerror(errno));
		return -1;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0) {
		ctl_err("cannot turn the terminal's echo off: %s", strerror(errno));
		return -1;
	}
	if (write(fd, prompt, strlen(prompt)) < 0) {
		ctl_err("cannot write to the terminal: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t k = read(fd, &ch, 1);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			ctl_err("cannot read from the terminal: %s", strerror(errno));
			goto out;
		}
		if (k == 0) {
			ctl_err("no password given");
			goto out;
		}
		if (ch == '\n')
			break;
		if (n == PW_INPUT_MAX) {
			ctl_err("the password is longer than %d bytes", PW_INPUT_MAX);
			goto out;
		}
		buf[n++] = ch;
	}
	buf[n] = '\0';
	rv = n;
out:
	ch = '\0';
	(void)tcsetattr(fd, TCSAFLUSH, &old);
	if (rv < 0)
		explicit_bzero(buf, PW_INPUT_MAX + 1);
	return rv;
}

/* Prompts twice on /dev/tty.  Returns the length, or -1 with the message printed. */
static ssize_t
read_password_tty(char *buf)
{
	char again[PW_INPUT_MAX + 1];
	ssize_t n, m = -1;
	int fd;

	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC)) < 0) {
		ctl_err("cannot open /dev/tty: %s", strerror(errno));
		return -1;
	}
	if ((n = tty_line(fd, "Password: ", buf)) >= 0 &&
	    (m = tty_line(fd, "Again: ", again)) >= 0 &&
	    (n != m || memcmp(buf, again, (size_t)n) != 0)) {
		ctl_err("the passwords do not match");
		m = -1;
	}
	explicit_bzero(again, sizeof(again));
	(void)close(fd);
	if (m < 0) {
		explicit_bzero(buf, PW_INPUT_MAX + 1);
		return -1;
	}
	return n;
}

/*
 * Reads all of standard input (at most PW_INPUT_MAX bytes): one line, its
 * "\n" or "\r\n" stripped.  Returns the length, or -1 with the message printed.
 */
static ssize_t
read_password_stdin(char *buf)
{
	size_t n = 0;
	char *nl;

	while (n <= PW_INPUT_MAX) {
		ssize_t k = read(STDIN_FILENO, buf + n, PW_INPUT_MAX + 1 - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			ctl_err("cannot read standard input: %s", strerror(errno));
			goto fail;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	if (n > PW_INPUT_MAX) {
		ctl_err("the password on standard input is longer than %d bytes", PW_INPUT_MAX);
		goto fail;
	}
	if (n == 0) {
		ctl_err("no password on standard input");
		goto fail;
	}
	if (memchr(buf, '\0', n) != NULL) {
		ctl_err("the password on standard input contains a NUL byte");
		goto fail;
	}
	if ((nl = memchr(buf, '\n', n)) != NULL) {
		if ((size_t)(nl - buf) != n - 1) {
			ctl_err("standard input holds more than one line");
			goto fail;
		}
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	buf[n] = '\0';
	return (ssize_t)n;
fail:
	explicit_bzero(buf, PW_INPUT_MAX + 2);
	return -1;
}

/*
 * Reads a new password, checks the policy and hashes it into hash.
 * Returns CTL_OK, or CTL_FAIL with the message printed.
 */
static int
new_password_hash(ctl_t *c, char hash[PA_HASH_MAX])
{
	char buf[PW_INPUT_MAX + 2], why[128];
	pa_passwd_t *pw = NULL;
	const char *rule;
	ssize_t n;
	int rv = CTL_FAIL;

	n = isatty(STDIN_FILENO) ? read_password_tty(buf) : read_password_stdin(buf);
	if (n < 0)
		goto out;
	if ((rule = pa_valid_new_password(buf, (size_t)n, c->cfg->password_min_length,
	    c->cfg->password_max_length, why, sizeof(why))) != NULL) {
		ctl_err("password: %s", rule);
		goto out;
	}
	if ((pw = pa_passwd_new((unsigned long)c->cfg->password_hash_cost)) == NULL ||
	    pa_passwd_hash(pw, buf, hash) != PA_OK) {
		ctl_err("cannot hash the password");
		goto out;
	}
	rv = CTL_OK;
out:
	explicit_bzero(buf, sizeof(buf));
	pa_passwd_free(pw);
	return rv;
}

/* Parses [--domain D] and the other options of opts; returns the option letter or -1. */
static int
next_opt(int argc, char **argv, const struct option *opts, const char **domain)
{
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) == 'd')
		*domain = optarg;
	return ch;
}

static int
add(ctl_t *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "domain", required_argument, NULL, 'd' },
		{ "email", required_argument, NULL, 'e' },
		{ "role", required_argument, NULL, 'r' },
		{ "two-factor", no_argument, NULL, '2' },
		{ NULL, 0, NULL, 0 },
	};
	const char *domain = NULL, *email = NULL, *role = NULL, *username;
	const char *params[6];
	char tid[CTL_ID_LEN], uid[CTL_ID_LEN], hash[PA_HASH_MAX];
	char *detail = NULL;
	bool two_factor = false;
	pa_db_res_t *r;
	enum pa_err err;
	int ch, rv = CTL_FAIL;

	while ((ch = next_opt(argc, argv, opts, &domain)) != -1) {
		switch (ch) {
		case 'e': email = optarg; break;
		case 'r': role = optarg; break;
		case '2': two_factor = true; break;
		default: usage(stderr); return CTL_USAGE;
		}
	}
	if (optind + 1 != argc) {
		ctl_err("user add needs one USERNAME (the password is read from standard input)");
		usage(stderr);
		return CTL_USAGE;
	}
	username = argv[optind];
	if (role == NULL)
		role = domain != NULL ? "StandardUser" : "SystemAdmin";
	if (email != NULL && *email == '\0')
		email = NULL;
	if (!check_domain(domain) || !check_username(username) ||
	    !check_role(domain, username, role))
		return CTL_FAIL;
	if (email != NULL && !pa_valid_email(email)) {
		ctl_err("'%s' is not a valid email address", email);
		return CTL_FAIL;
	}
	if (!lookup(c, domain, username, tid, uid))
		return CTL_FAIL;
	if (domain != NULL && tid[0] == '\0') {
		ctl_err("no such tenant '%s'", domain);
		return CTL_FAIL;
	}
	if (uid[0] != '\0')
		goto exists;
	if (new_password_hash(c, hash) != CTL_OK)
		goto out;
	params[0] = tid[0] ? tid : NULL;
	params[1] = username;
	params[2] = email;
	params[3] = hash;
	params[4] = role;
	params[5] = two_factor ? "true" : "false";
	/* The user and its audit row, or neither. */
	if (!ctl_exec(c, "BEGIN"))
		goto out;
	err = ctl_query_quiet(c, "INSERT INTO users (tenant_id, username, email, password_hash,"
	    " role, two_factor) VALUES ($1::bigint, $2, $3, $4, $5, $6::boolean) RETURNING id",
	    6, params, &r);
	if (err == PA_ECONFLICT) {
		(void)ctl_exec(c, "ROLLBACK");
		goto exists;
	}
	if (err != PA_OK) {
		report_db(c, "user add");
		goto rollback;
	}
	snprintf(uid, sizeof(uid), "%s", pa_db_value(r, 0, 0));
	pa_db_res_free(r);
	if (!ctl_commit_change(c, USER_SNAPSHOT_SQL, uid, "user_add", uid, NULL, audit_keys,
	    PA_NELEM(audit_keys), "password set", &detail))
		goto rollback;
	if (domain != NULL)
		printf("added user %s in tenant %s\n", username, domain);
	else
		printf("added system-level user %s\n", username);
	rv = CTL_OK;
	goto out;
rollback:
	(void)ctl_exec(c, "ROLLBACK");
	goto out;
exists:
	if (domain != NULL)
		ctl_err("user '%s' already exists in tenant '%s' (usernames are compared"
		    " case-insensitively)", username, domain);
	else
		ctl_err("system-level user '%s' already exists (usernames are compared"
		    " case-insensitively)", username);
out:
	explicit_bzero(hash, sizeof(hash));
	free(detail);
	return rv;
}

/* Parses [--domain D] USERNAME and the rest: *rest and *nrest are the arguments after USERNAME. */
static int
user_args(int argc, char **argv, const char **domain, const char **username, int min_rest,
    int max_rest, char ***rest, int *nrest)
{
	static const struct option opts[] = {
		{ "domain", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};

	*domain = NULL;
	if (next_opt(argc, argv, opts, domain) != -1 || optind >= argc ||
	    argc - optind - 1 < min_rest || argc - optind - 1 > max_rest) {
		usage(stderr);
		return CTL_USAGE;
	}
	*username = argv[optind];
	*rest = argv + optind + 1;
	*nrest = argc - optind - 1;
	return CTL_OK;
}

static int
passwd(ctl_t *c, int argc, char **argv)
{
	const char *domain, *username, *params[2];
	char id[CTL_ID_LEN], hash[PA_HASH_MAX];
	pa_db_res_t *r;
	char **rest;
	long touched, n;
	int nrest, rv;

	if ((rv = user_args(argc, argv, &domain, &username, 0, 0, &rest, &nrest)) != CTL_OK)
		return rv;
	if (ctl_user_find(c, domain, username, id) != CTL_OK)
		return CTL_FAIL;
	if (new_password_hash(c, hash) != CTL_OK)
		return CTL_FAIL;
	rv = CTL_FAIL;
	if (!ctl_exec(c, "BEGIN"))
		goto out;
	params[0] = id;
	params[1] = hash;
	if (pa_db_query(c->db, "UPDATE users SET password_hash = $2, password_verified = false,"
	    " updated_at = now() WHERE id = $1", 2, params, &r) != PA_OK)
		goto rollback;
	touched = pa_db_affected(r);
	pa_db_res_free(r);
	if (touched == 0) {
		ctl_err("user '%s' was deleted meanwhile", username);
		goto rollback;
	}
	params[1] = "pbx-authctl user passwd";
	if (pa_db_query(c->db, AUDIT_PASSWORD_SET_SQL, 2, params, NULL) != PA_OK ||
	    !ctl_revoke_user_sessions(c, id, "password changed", &n))
		goto rollback;
	if (!ctl_exec(c, "COMMIT"))
		goto out;
	printf("password set for %s; %ld session%s revoked\n", username, n, n == 1 ? "" : "s");
	rv = CTL_OK;
	goto out;
rollback:
	(void)ctl_exec(c, "ROLLBACK");
out:
	explicit_bzero(hash, sizeof(hash));
	return rv;
}

/* Returns NULL, or what is wrong with v; *out is what to store (NULL: SQL NULL). */
static const char *
check(int kind, const char *v, const char **out)
{
	bool system_level;

	*out = v;
	switch (kind) {
	case K_EMAIL:
		if (*v == '\0') {
			*out = NULL;
			return NULL;
		}
		return pa_valid_email(v) ? NULL : "not a valid email address";
	case K_ROLE:
		return pa_valid_role(v, &system_level) ? NULL : "unknown role (SystemAdmin, Dealer,"
		    " Admin, StandardUser, StandardInternationalUser, QueueManager)";
	case K_BOOL:
		return (*out = ctl_bool(v)) ? NULL : "expected true or false";
	}
	return NULL;
}

static int
set(ctl_t *c, int argc, char **argv)
{
	const ctl_field_t *todo[PA_NELEM(fields)];
	const char *vals[PA_NELEM(fields)], *keys[PA_NELEM(fields)];
	const char *domain, *username;
	char id[CTL_ID_LEN], *before = NULL, *detail = NULL;
	bool disable = false;
	char **rest;
	long revoked = 0;
	size_t n;
	int nrest, rv;

	if ((rv = user_args(argc, argv, &domain, &username, 1, argc, &rest, &nrest)) != CTL_OK)
		return rv;
	if (!check_domain(domain) || !check_username(username))
		return CTL_FAIL;
	if ((rv = ctl_assignments(nrest, rest, fields, PA_NELEM(fields), check, todo, vals,
	    &n)) != CTL_OK)
		return rv;
	for (size_t i = 0; i < n; i++) {
		if (todo[i] == F_ROLE && !check_role(domain, username, vals[i]))
			return CTL_FAIL;
		if (todo[i] == F_ENABLED && strcmp(vals[i], "false") == 0)
			disable = true;
		keys[i] = todo[i]->key;
	}
	if (ctl_user_find(c, domain, username, id) != CTL_OK)
		return CTL_FAIL;
	rv = CTL_FAIL;
	if (!ctl_exec(c, "BEGIN"))
		return CTL_FAIL;
	if (!ctl_snapshot(c, USER_SNAPSHOT_SQL, id, &before))
		goto rollback;
	if (before == NULL) {
		ctl_err("user '%s' was deleted meanwhile", username);
		goto rollback;
	}
	for (size_t i = 0; i < n; i++) {
		const char *params[2] = { id, vals[i] };

		if (ctl_query_quiet(c, todo[i]->sql, 2, params, NULL) != PA_OK) {
			report_db(c, todo[i]->key);
			goto rollback;
		}
	}
	if (disable && !ctl_revoke_user_sessions(c, id, "user disabled", &revoked))
		goto rollback;
	if (!ctl_commit_change(c, USER_SNAPSHOT_SQL, id, "user_set", id, before, keys, n, NULL,
	    &detail))
		goto rollback;
	printf("user %s%s%s: %s\n", username, domain ? " in tenant " : "", domain ? domain : "",
	    detail ? detail : "nothing changed");
	if (revoked > 0)
		printf("%ld session%s revoked\n", revoked, revoked == 1 ? "" : "s");
	rv = CTL_OK;
	goto out;
rollback:
	(void)ctl_exec(c, "ROLLBACK");
out:
	free(before);
	free(detail);
	return rv;
}

static int
list(ctl_t *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "domain", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const keys[] = { "username", "role", "status", "email", "flags" };
	const char *domain = NULL, *params[1];
	char tid[CTL_ID_LEN];
	pa_db_res_t *r;

	if (next_opt(argc, argv, opts, &domain) != -1 || optind != argc) {
		usage(stderr);
		return CTL_USAGE;
	}
	if (ctl_tenant_find(c, domain, tid) != CTL_OK)
		return CTL_FAIL;
	params[0] = tid[0] ? tid : NULL;
	if (pa_db_query(c->db, "SELECT username, role,"
	    " CASE WHEN enabled THEN 'enabled' ELSE 'disabled' END, email,"
	    " nullif(concat_ws(',', CASE WHEN two_factor THEN 'two_factor' END,"
	    " CASE WHEN password_force_reset THEN 'force_reset' END), '')"
	    " FROM users WHERE tenant_id = $1::bigint"
	    " OR ($1::bigint IS NULL AND tenant_id IS NULL) ORDER BY lower(username), username",
	    1, params, &r) != PA_OK)
		return CTL_FAIL;
	ctl_print_rows(r, keys, (int)PA_NELEM(keys));
	pa_db_res_free(r);
	return CTL_OK;
}

static int
show(ctl_t *c, int argc, char **argv)
{
	static const char *const keys[] = { "domain", "username", "role", "email", "enabled",
		"two_factor", "password_force_reset", "password_verified", "password_set",
		"last_sign_in_at", "created_at", "updated_at", "active_sessions", "ms365_oid",
		"ms365_upn" };
	const char *domain, *username, *params[1], *vals[PA_NELEM(keys)];
	char id[CTL_ID_LEN];
	pa_db_res_t *r;
	char **rest;
	int nrest, rv;

	if ((rv = user_args(argc, argv, &domain, &username, 0, 0, &rest, &nrest)) != CTL_OK)
		return rv;
	if (ctl_user_find(c, domain, username, id) != CTL_OK)
		return CTL_FAIL;
	params[0] = id;
	if (pa_db_query(c->db, "SELECT t.domain, u.username, u.role, u.email, u.enabled,"
	    " u.two_factor, u.password_force_reset, u.password_verified,"
	    " u.password_hash IS NOT NULL, " CTL_SQL_RFC3339("u.last_sign_in_at") ", "
	    CTL_SQL_RFC3339("u.created_at") ", " CTL_SQL_RFC3339("u.updated_at") ","
	    " (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL"
	    " AND s.refresh_expires_at > now()), u.ms365_oid, u.ms365_upn"
	    " FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1",
	    1, params, &r) != PA_OK)
		return CTL_FAIL;
	if (pa_db_rows(r) == 0) {
		ctl_err("user '%s' was deleted meanwhile", username);
		pa_db_res_free(r);
		return CTL_FAIL;
	}
	for (size_t i = 0; i < PA_NELEM(keys); i++) {
		vals[i] = pa_db_value(r, 0, (int)i);
		if (i >= 4 && i <= 8)
			vals[i] = pa_db_bool(r, 0, (int)i) ? "true" : "false";
	}
	ctl_print_record(keys, vals, PA_NELEM(keys));
	pa_db_res_free(r);
	return CTL_OK;
}

/*
 * Deletes the user: its sessions (and their spent refresh tokens), flows
 * and Microsoft 365 binding go with the row (ON DELETE CASCADE); queued
 * mail to it and its throttle count are deleted here.  Audit rows keep the
 * names they copied; the user_delete row is written in the same
 * transaction.
 */
static int
delete_user(ctl_t *c, int argc, char **argv)
{
	static const char *const keys[] = { "role", "email" };
	const char *domain, *username, *params[1];
	char id[CTL_ID_LEN], note[96], *before = NULL, *detail = NULL;
	pa_db_res_t *r = NULL;
	char **rest;
	int nrest, rv;

	if ((rv = user_args(argc, argv, &domain, &username, 0, 0, &rest, &nrest)) != CTL_OK)
		return rv;
	if (ctl_user_find(c, domain, username, id) != CTL_OK)
		return CTL_FAIL;
	rv = CTL_FAIL;
	if (!ctl_exec(c, "BEGIN") || !ctl_snapshot(c, USER_SNAPSHOT_SQL, id, &before))
		goto rollback;
	if (before == NULL) {
		ctl_err("user '%s' was deleted meanwhile", username);
		goto rollback;
	}
	params[0] = id;
	if (pa_db_query(c->db, "WITH u AS (SELECT u.id, 'account ' || lower(coalesce(t.domain, ''))"
	    " || ' ' || lower(u.username) AS key FROM users u LEFT JOIN tenants t"
	    " ON t.id = u.tenant_id WHERE u.id = $1::bigint),"
	    " m AS (DELETE FROM mail_outbox WHERE user_id = $1::bigint AND status = 'queued'),"
	    " th AS (DELETE FROM throttle WHERE key IN (SELECT key FROM u)),"
	    " s AS (SELECT count(*) AS n FROM sessions WHERE user_id = $1::bigint"
	    "  AND revoked_at IS NULL AND refresh_expires_at > now()),"
	    " d AS (DELETE FROM users WHERE id = $1::bigint RETURNING id)"
	    " SELECT (SELECT n FROM s), (SELECT count(*) FROM d)", 1, params, &r) != PA_OK)
		goto rollback;
	snprintf(note, sizeof(note), "deleted with %s active session%s", pa_db_value(r, 0, 0),
	    strcmp(pa_db_value(r, 0, 0), "1") == 0 ? "" : "s");
	if (!ctl_audit_change(c, "user_delete", id, before, NULL, keys, PA_NELEM(keys), note,
	    &detail) || !ctl_exec(c, "COMMIT"))
		goto rollback;
	printf("deleted user %s%s%s (%s)\n", username, domain ? " of tenant " : "",
	    domain ? domain : "", note);
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

/*
 * bind-ms365 (value: an oid or a UPN) and unbind-ms365 (value NULL): one
 * statement sets or clears both columns and writes the audit row.  A
 * Microsoft account bound to another user of the tenant is refused (the
 * unique indexes say so).
 */
static int
bind_ms365(ctl_t *c, int argc, char **argv, bool bind)
{
	const char *domain, *username, *params[5];
	char id[CTL_ID_LEN], detail[64], *value = NULL;
	bool is_oid = false;
	pa_db_res_t *r;
	enum pa_err err;
	char **rest;
	int nrest, rows, rv;

	if ((rv = user_args(argc, argv, &domain, &username, bind ? 1 : 0, bind ? 1 : 0, &rest,
	    &nrest)) != CTL_OK)
		return rv;
	if (domain == NULL) {
		ctl_err("a Microsoft 365 account binds to a tenant user: give --domain");
		return CTL_FAIL;
	}
	if (bind) {
		value = rest[0];
		if (pa_ms365_guid(value)) {
			is_oid = true;
			for (char *p = value; *p; p++)	/* GUIDs compare case-insensitively */
				if (*p >= 'A' && *p <= 'F')
					*p = (char)(*p - 'A' + 'a');
		} else if (!pa_ms365_upn(value)) {
			ctl_err("'%s' is neither an object id (a GUID) nor a user principal name"
			    " (name@domain, 3-254 characters without spaces)", value);
			return CTL_FAIL;
		}
	}
	if (ctl_user_find(c, domain, username, id) != CTL_OK)
		return CTL_FAIL;
	snprintf(detail, sizeof(detail), "pbx-authctl user %s%s", bind ? "bind-ms365 " :
	    "unbind-ms365", bind ? (is_oid ? "oid" : "upn") : "");
	params[0] = id;
	params[1] = is_oid ? value : NULL;
	params[2] = bind && !is_oid ? value : NULL;
	params[3] = bind ? "ms365_bind" : "ms365_unbind";
	params[4] = detail;
	err = ctl_query_quiet(c, "WITH u AS (UPDATE users SET ms365_oid = $2, ms365_upn = $3,"
	    " updated_at = now() WHERE id = $1::bigint RETURNING id, tenant_id, username),"
	    " a AS (INSERT INTO audit_log (tenant_domain, username, user_id, event, outcome, detail)"
	    " SELECT (SELECT domain FROM tenants WHERE id = u.tenant_id), u.username, u.id,"
	    " $4, 'success', $5 || coalesce(' ' || $2, ' ' || $3, '') FROM u)"
	    " SELECT id FROM u", 5, params, &r);
	if (err == PA_ECONFLICT) {
		const char *q[3] = { id, params[1], params[2] };
		pa_db_res_t *who = NULL;

		if (pa_db_query(c->db, "SELECT username FROM users WHERE tenant_id ="
		    " (SELECT tenant_id FROM users WHERE id = $1::bigint) AND id <> $1::bigint"
		    " AND (lower(ms365_oid) = lower($2) OR lower(ms365_upn) = lower($3))",
		    3, q, &who) == PA_OK && pa_db_rows(who) > 0)
			ctl_err("the Microsoft 365 account '%s' is already bound to user '%s' in"
			    " tenant '%s'", value, pa_db_value(who, 0, 0), domain);
		else
			ctl_err("the Microsoft 365 account '%s' is already bound to another user"
			    " in tenant '%s'", value, domain);
		pa_db_res_free(who);
		return CTL_FAIL;
	}
	if (err != PA_OK) {
		report_db(c, bind ? "bind-ms365" : "unbind-ms365");
		return CTL_FAIL;
	}
	rows = pa_db_rows(r);
	pa_db_res_free(r);
	if (rows == 0) {
		ctl_err("user '%s' was deleted meanwhile", username);
		return CTL_FAIL;
	}
	if (bind)
		printf("Microsoft 365 %s %s bound to %s in tenant %s\n",
		    is_oid ? "object id" : "user principal name", value, username, domain);
	else
		printf("Microsoft 365 account unbound from %s in tenant %s\n", username, domain);
	return CTL_OK;
}

int
ctl_user(ctl_t *c, int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "";

	if (ctl_wants_help(argc, argv)) {
		usage(stdout);
		return CTL_OK;
	}
	/* Each subcommand parses argv + 1 with getopt: its name stands in for a program name. */
	if (strcmp(sub, "add") == 0)
		return add(c, argc - 1, argv + 1);
	if (strcmp(sub, "passwd") == 0)
		return passwd(c, argc - 1, argv + 1);
	if (strcmp(sub, "set") == 0)
		return set(c, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return list(c, argc - 1, argv + 1);
	if (strcmp(sub, "show") == 0)
		return show(c, argc - 1, argv + 1);
	if (strcmp(sub, "bind-ms365") == 0 || strcmp(sub, "unbind-ms365") == 0)
		return bind_ms365(c, argc - 1, argv + 1, sub[0] == 'b');
	if (strcmp(sub, "delete") == 0)
		return delete_user(c, argc - 1, argv + 1);
	return ctl_unknown("user", argc, argv);
}
