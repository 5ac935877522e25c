/*
 * pbx-authctl tenant add|set|show|list|enable|disable: the tenants table.
 */
#include "autoconfig.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl/ctl.h"
#include "valid.h"

#define MAX_PREFIXES 32

/* The tenant $1 (by domain) as JSON for the audit trail, locked. */
#define TENANT_SNAPSHOT_SQL \
    "SELECT to_jsonb(t) FROM tenants t WHERE lower(t.domain) = lower($1) FOR UPDATE"

enum kind { K_NAME, K_WEBSITE, K_URL, K_BOOL, K_PREFIXES };

/*
 * Settable columns, each with its one UPDATE ($1 = domain, $2 = value).  The
 * Microsoft 365 settings belong to `pbx-authctl ms365 set` (ctl/ms365.c),
 * which keeps them complete.
 */
/* What a new tenant's audit row shows. */
static const char *const audit_keys[] = { "name", "website", "avatar_url", "callback_prefixes" };

static const ctl_field_t fields[] = {
	{ "name", K_NAME, "UPDATE tenants SET name = $2, updated_at = now()"
	    " WHERE lower(domain) = lower($1)" },
	{ "website", K_WEBSITE, "UPDATE tenants SET website = $2, updated_at = now()"
	    " WHERE lower(domain) = lower($1)" },
	{ "avatar_url", K_URL, "UPDATE tenants SET avatar_url = $2, updated_at = now()"
	    " WHERE lower(domain) = lower($1)" },
	{ "enabled", K_BOOL, "UPDATE tenants SET enabled = $2::boolean, updated_at = now()"
	    " WHERE lower(domain) = lower($1)" },
	{ "callback_prefixes", K_PREFIXES, "UPDATE tenants SET callback_prefixes ="
	    " coalesce(string_to_array($2, ','), '{}'), updated_at = now()"
	    " WHERE lower(domain) = lower($1)" },
};

#define F_ENABLED (&fields[3])

static bool audited(ctl_t *c, const char *event, const char *domain, const char *before,
    const char *const *keys, size_t nkeys, const char *note);

static void
usage(FILE *f)
{
	fprintf(f, "usage: pbx-authctl tenant add DOMAIN --name NAME [--website URL]"
	    " [--avatar-url URL] [--callback-prefix URL]…\n"
	    "       pbx-authctl tenant set DOMAIN KEY=VALUE…\n"
	    "       pbx-authctl tenant show DOMAIN\n"
	    "       pbx-authctl tenant list\n"
	    "       pbx-authctl tenant enable|disable DOMAIN\n"
	    "       pbx-authctl tenant delete DOMAIN [--cascade [--yes]]\n"
	    "  set keys: name, website, avatar_url, enabled, callback_prefixes (comma separated)\n"
	    "  An empty VALUE clears website, avatar_url, callback_prefixes.\n"
	    "  Microsoft 365 sign-in: pbx-authctl ms365 set|show.\n"
	    "  delete is refused while the tenant has users; --cascade deletes them too\n"
	    "  (with their sessions and flows) after the domain is typed again on standard\n"
	    "  input, unless --yes.  Every change writes an audit row naming the operator.\n");
}

/* Each comma-separated prefix must be an allowed callback URL. */
static const char *
check_prefixes(const char *v)
{
	char buf[8192];
	int n = 0;

	if (strlen(v) >= sizeof(buf))
		return "too long";
	strcpy(buf, v);
	for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		const char *why = pa_valid_url(p);

		if (why != NULL)
			return why;
		if (++n > MAX_PREFIXES)
			return "too many prefixes";
	}
	if (v[0] == ',' || (*v && v[strlen(v) - 1] == ',') || strstr(v, ",,") != NULL)
		return "has an empty prefix";
	return NULL;
}

/* Returns NULL, or what is wrong with v; *out is what to store (NULL: SQL NULL). */
static const char *
check(int kind, const char *v, const char **out)
{
	*out = v;
	if (*v == '\0') {
		*out = NULL;
		return kind == K_NAME ? "must not be empty" :
		    kind == K_BOOL ? "expected true or false" : NULL;
	}
	switch (kind) {
	case K_NAME:
		return pa_valid_text(v, 1024) ? NULL :
		    "must be 1-1024 characters without control characters";
	case K_WEBSITE:
		return pa_valid_text(v, 255) ? NULL :
		    "must be at most 255 characters without control characters";
	case K_URL:
		return pa_valid_text(v, 2048) && strpbrk(v, " \\") == NULL ? NULL :
		    "must be a URL or path without spaces or control characters";
	case K_BOOL:
		return (*out = ctl_bool(v)) ? NULL : "expected true or false";
	case K_PREFIXES:
		return check_prefixes(v);
	}
	return NULL;
}

static bool
check_domain(const char *d)
{
	if (pa_valid_domain(d))
		return true;
	ctl_err("'%s' is not a valid domain (1-280 characters of an FQDN or IP address)", d);
	return false;
}

static int
add(ctl_t *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "website", required_argument, NULL, 'w' },
		{ "avatar-url", required_argument, NULL, 'a' },
		{ "callback-prefix", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *website = NULL, *avatar = NULL, *why, *stored;
	char prefixes[8192] = "";
	const char *params[5];
	enum pa_err rv;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': name = optarg; break;
		case 'w': website = optarg; break;
		case 'a': avatar = optarg; break;
		case 'p':
			if (strchr(optarg, ',') != NULL || strlen(prefixes) + strlen(optarg) + 2 >
			    sizeof(prefixes)) {
				ctl_err("--callback-prefix '%s': one URL without commas", optarg);
				return CTL_USAGE;
			}
			if (prefixes[0] != '\0')
				strcat(prefixes, ",");
			strcat(prefixes, optarg);
			break;
		default: usage(stderr); return CTL_USAGE;
		}
	}
	if (optind + 1 != argc || name == NULL) {
		ctl_err(name == NULL ? "tenant add needs --name" : "tenant add needs one DOMAIN");
		usage(stderr);
		return CTL_USAGE;
	}
	if (!check_domain(argv[optind]))
		return CTL_FAIL;
	if ((why = check(K_NAME, name, &stored)) || (why = website ? check(K_WEBSITE, website,
	    &stored) : NULL) || (why = avatar ? check(K_URL, avatar, &stored) : NULL) ||
	    (why = prefixes[0] ? check_prefixes(prefixes) : NULL)) {
		ctl_err("%s", why);
		return CTL_FAIL;
	}
	params[0] = argv[optind];
	params[1] = name;
	params[2] = website && *website ? website : NULL;
	params[3] = avatar && *avatar ? avatar : NULL;
	params[4] = prefixes[0] ? prefixes : NULL;
	if (!ctl_exec(c, "BEGIN"))
		return CTL_FAIL;
	rv = pa_db_query(c->db, "INSERT INTO tenants (domain, name, website, avatar_url,"
	    " callback_prefixes) VALUES ($1, $2, $3, $4, coalesce(string_to_array($5, ','), '{}'))",
	    5, params, NULL);
	if (rv == PA_ECONFLICT)
		ctl_err("tenant '%s' already exists", argv[optind]);
	if (rv != PA_OK || !audited(c, "tenant_add", argv[optind], NULL, audit_keys,
	    PA_NELEM(audit_keys), NULL)) {
		(void)ctl_exec(c, "ROLLBACK");
		return CTL_FAIL;
	}
	printf("added tenant %s\n", argv[optind]);
	return CTL_OK;
}

/*
 * Ends the transaction of a change of the tenant of domain that began with
 * snapshot before (NULL: added): writes the audit row of event for keys,
 * commits, and prints what changed.  Rolls back on failure.
 */
static bool
audited(ctl_t *c, const char *event, const char *domain, const char *before,
    const char *const *keys, size_t nkeys, const char *note)
{
	char *detail = NULL;
	bool ok;

	ok = ctl_commit_change(c, TENANT_SNAPSHOT_SQL, domain, event, NULL, before, keys, nkeys,
	    note, &detail);
	if (ok && before != NULL)
		printf("tenant %s: %s\n", domain, detail ? detail : "nothing changed");
	free(detail);
	return ok;
}

/* Runs the UPDATEs of todo[0..n) and their audit row in one transaction. */
static int
update(ctl_t *c, const char *domain, const ctl_field_t **todo, const char **vals, size_t n)
{
	const char *keys[PA_NELEM(fields)];
	char *before = NULL;
	int rv = CTL_FAIL;

	if (!ctl_exec(c, "BEGIN"))
		return CTL_FAIL;
	if (!ctl_snapshot(c, TENANT_SNAPSHOT_SQL, domain, &before))
		goto rollback;
	if (before == NULL) {
		ctl_err("no such tenant '%s'", domain);
		goto rollback;
	}
	for (size_t i = 0; i < n; i++) {
		const char *params[2] = { domain, vals[i] };

		keys[i] = todo[i]->key;
		if (pa_db_query(c->db, todo[i]->sql, 2, params, NULL) != PA_OK)
			goto rollback;
	}
	if (!audited(c, n == 1 && todo[0] == F_ENABLED ? (strcmp(vals[0], "true") == 0 ?
	    "tenant_enable" : "tenant_disable") : "tenant_set", domain, before, keys, n, NULL))
		goto rollback;
	rv = CTL_OK;
	goto out;
rollback:
	(void)ctl_exec(c, "ROLLBACK");
out:
	free(before);
	return rv;
}

/*
 * Asks for the domain to be typed again on standard input (one line).
 * Returns true when it matches (case-insensitively).
 */
static bool
confirm(const char *domain)
{
	char line[512];
	size_t n;
	bool same;

	fprintf(stderr, "This deletes tenant %s with all its users and their sessions.\n"
	    "Type the domain again to confirm: ", domain);
	fflush(stderr);
	if (fgets(line, sizeof(line), stdin) == NULL) {
		fputc('\n', stderr);
		ctl_err("not confirmed: nothing deleted");
		return false;
	}
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	same = strcasecmp(line, domain) == 0;
	explicit_bzero(line, sizeof(line));
	if (!same) {
		/* (not echoed: the harness, like a careful operator, treats stdin as private) */
		ctl_err("that is not '%s': nothing deleted", domain);
		return false;
	}
	return true;
}

/*
 * Deletes the tenant: refused while it has users unless cascade.  Users,
 * their sessions and flows, and the tenant's OIDC flows go with it (ON
 * DELETE CASCADE); queued mail to its users and their throttle counts are
 * deleted here; the audit trail keeps the names.
 */
static int
delete_tenant(ctl_t *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cascade", no_argument, NULL, 'c' },
		{ "yes", no_argument, NULL, 'y' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const keys[] = { "name" };
	/* $1 domain, $2 whether users go too.  -> users deleted; no row: refused or gone. */
	static const char delete_sql[] =
	    "WITH t AS (SELECT id, lower(domain) AS d FROM tenants WHERE lower(domain) = lower($1)"
	    "  AND ($2::boolean OR NOT EXISTS (SELECT 1 FROM users u"
	    "  WHERE u.tenant_id = tenants.id))),"
	    " u AS (SELECT u.id, 'account ' || t.d || ' ' || lower(u.username) AS key"
	    "  FROM users u JOIN t ON u.tenant_id = t.id),"
	    " m AS (DELETE FROM mail_outbox WHERE status = 'queued' AND user_id IN"
	    "  (SELECT id FROM u)),"
	    " th AS (DELETE FROM throttle WHERE key IN (SELECT key FROM u)),"
	    " d AS (DELETE FROM tenants WHERE id IN (SELECT id FROM t) RETURNING id)"
	    " SELECT (SELECT count(*) FROM u) FROM d";
	const char *domain, *params[2];
	bool cascade = false, yes = false;
	char *before = NULL, *detail = NULL, note[64];
	pa_db_res_t *r = NULL;
	long users;
	int ch, rv = CTL_FAIL;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': cascade = true; break;
		case 'y': yes = true; break;
		default: usage(stderr); return CTL_USAGE;
		}
	}
	if (optind + 1 != argc) {
		ctl_err("tenant delete needs one DOMAIN");
		usage(stderr);
		return CTL_USAGE;
	}
	domain = argv[optind];
	if (!check_domain(domain))
		return CTL_FAIL;
	params[0] = domain;
	params[1] = cascade ? "true" : "false";
	if (pa_db_query(c->db, "SELECT (SELECT count(*) FROM users WHERE tenant_id = t.id)"
	    " FROM tenants t WHERE lower(t.domain) = lower($1)", 1, params, &r) != PA_OK)
		return CTL_FAIL;
	users = pa_db_rows(r) > 0 ? strtol(pa_db_value(r, 0, 0), NULL, 10) : -1;
	pa_db_res_free(r);
	r = NULL;
	if (users < 0) {
		ctl_err("no such tenant '%s'", domain);
		return CTL_FAIL;
	}
	if (users > 0 && !cascade) {
		ctl_err("tenant '%s' has %ld user%s: delete them first, or give --cascade", domain,
		    users, users == 1 ? "" : "s");
		return CTL_FAIL;
	}
	/* Asked before the transaction: a person's answer must not hold row locks. */
	if (users > 0 && !yes && !confirm(domain))
		return CTL_FAIL;
	if (!ctl_exec(c, "BEGIN") || !ctl_snapshot(c, TENANT_SNAPSHOT_SQL, domain, &before))
		goto rollback;
	if (before == NULL) {
		ctl_err("tenant '%s' was deleted meanwhile", domain);
		goto rollback;
	}
	if (pa_db_query(c->db, delete_sql, 2, params, &r) != PA_OK)
		goto rollback;
	if (pa_db_rows(r) == 0) {
		ctl_err("tenant '%s' has users now: delete them first, or give --cascade", domain);
		goto rollback;
	}
	users = strtol(pa_db_value(r, 0, 0), NULL, 10);
	snprintf(note, sizeof(note), "deleted with %ld user%s", users, users == 1 ? "" : "s");
	if (!ctl_audit_change(c, "tenant_delete", NULL, before, NULL, keys, PA_NELEM(keys), note,
	    &detail) || !ctl_exec(c, "COMMIT"))
		goto rollback;
	printf("deleted tenant %s (%s)\n", domain, note);
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

static int
set(ctl_t *c, int argc, char **argv)
{
	const ctl_field_t *todo[PA_NELEM(fields)];
	const char *vals[PA_NELEM(fields)];
	size_t n;
	int rv;

	if (argc < 2) {
		usage(stderr);
		return CTL_USAGE;
	}
	if (!check_domain(argv[0]))
		return CTL_FAIL;
	if ((rv = ctl_assignments(argc - 1, argv + 1, fields, PA_NELEM(fields), check, todo, vals,
	    &n)) != CTL_OK)
		return rv;
	return update(c, argv[0], todo, vals, n);
}

static int
show(ctl_t *c, const char *domain)
{
	static const char *const keys[] = { "domain", "name", "website", "avatar_url", "enabled",
		"callback_prefixes", "ms365_enabled", "ms365_directory_id", "ms365_national_cloud" };
	const char *params[1] = { domain }, *vals[PA_NELEM(keys)];
	pa_db_res_t *r;

	if (pa_db_query(c->db, "SELECT domain, name, website, avatar_url, enabled,"
	    " array_to_string(callback_prefixes, ','), ms365_enabled, ms365_directory_id,"
	    " ms365_national_cloud FROM tenants WHERE lower(domain) = lower($1)", 1, params,
	    &r) != PA_OK)
		return CTL_FAIL;
	if (pa_db_rows(r) == 0) {
		ctl_err("no such tenant '%s'", domain);
		pa_db_res_free(r);
		return CTL_FAIL;
	}
	for (size_t i = 0; i < PA_NELEM(keys); i++) {
		vals[i] = pa_db_value(r, 0, (int)i);
		if (i == 4 || i == 6)
			vals[i] = pa_db_bool(r, 0, (int)i) ? "true" : "false";
	}
	ctl_print_record(keys, vals, PA_NELEM(keys));
	pa_db_res_free(r);
	return CTL_OK;
}

static int
list(ctl_t *c)
{
	static const char *const keys[] = { "domain", "status", "name", "users" };
	pa_db_res_t *r;

	if (pa_db_query(c->db, "SELECT domain, CASE WHEN enabled THEN 'enabled' ELSE 'disabled'"
	    " END, name, (SELECT count(*) FROM users u WHERE u.tenant_id = t.id) FROM tenants t"
	    " ORDER BY lower(domain)", 0, NULL, &r) != PA_OK)
		return CTL_FAIL;
	ctl_print_rows(r, keys, (int)PA_NELEM(keys));
	pa_db_res_free(r);
	return CTL_OK;
}

int
ctl_tenant(ctl_t *c, int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "";

	if (ctl_wants_help(argc, argv)) {
		usage(stdout);
		return CTL_OK;
	}
	if (strcmp(sub, "add") == 0)
		return add(c, argc - 1, argv + 1);
	if (strcmp(sub, "set") == 0)
		return set(c, argc - 2, argv + 2);
	if (strcmp(sub, "show") == 0 && argc == 3)
		return check_domain(argv[2]) ? show(c, argv[2]) : CTL_FAIL;
	if (strcmp(sub, "list") == 0 && argc == 2)
		return list(c);
	if ((strcmp(sub, "enable") == 0 || strcmp(sub, "disable") == 0) && argc == 3) {
		const ctl_field_t *f = F_ENABLED;
		const char *v = sub[0] == 'e' ? "true" : "false";

		if (!check_domain(argv[2]))
			return CTL_FAIL;
		return update(c, argv[2], &f, &v, 1);
	}
	if (strcmp(sub, "delete") == 0)
		return delete_tenant(c, argc - 1, argv + 1);
	if (strcmp(sub, "add") != 0 && strcmp(sub, "set") != 0 && strcmp(sub, "show") != 0 &&
	    strcmp(sub, "list") != 0 && strcmp(sub, "enable") != 0 && strcmp(sub, "disable") != 0)
		return ctl_unknown("tenant", argc, argv);
	usage(stderr);
	return CTL_USAGE;
}
