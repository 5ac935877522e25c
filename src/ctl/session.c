/*
 * pbx-authctl session list|revoke: the signed-in sessions, and revoking them
 * with a session_revoke audit row each.
 */
#include "autoconfig.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

#define MAX_IDS 1000

/* An audit row per revoked session of the CTE r (id, user_id): names copied from the user. */
#define AUDIT_REVOKED_SQL \
    " a AS (INSERT INTO audit_log (tenant_domain, username, user_id, event, outcome, detail)" \
    " SELECT t.domain, u.username, u.id, 'session_revoke', 'success', 'session ' || r.id" \
    " FROM r JOIN users u ON u.id = r.user_id LEFT JOIN tenants t ON t.id = u.tenant_id)"

static void
usage(FILE *f)
{
	fprintf(f, "usage: pbx-authctl session list [--domain D] [USERNAME]\n"
	    "       pbx-authctl session revoke ID…\n"
	    "       pbx-authctl session revoke [--domain D] --user USERNAME\n"
	    "  list prints the active sessions (not revoked, not expired), one per line:\n"
	    "  id, domain (- for system level), username, flavour, client address,\n"
	    "  created, refreshed (or -) and expiry times (UTC).  Without --domain and\n"
	    "  USERNAME: every session; USERNAME without --domain: a system-level account.\n"
	    "  revoke ID… revokes all the sessions given or, when one of them is unknown or\n"
	    "  already revoked, none; --user revokes all of the user's sessions.\n");
}

bool
ctl_revoke_user_sessions(ctl_t *c, const char *user_id, const char *reason, long *n)
{
	const char *params[2] = { user_id, reason };
	pa_db_res_t *r;

	*n = 0;
	if (pa_db_query(c->db, "WITH r AS (UPDATE sessions SET revoked_at = now(),"
	    " revoke_reason = $2 WHERE user_id = $1 AND revoked_at IS NULL"
	    " AND (refresh_expires_at > now() OR access_expires_at > now()) RETURNING id, user_id),"
	    AUDIT_REVOKED_SQL " SELECT count(*) FROM r", 2, params, &r) != PA_OK)
		return false;
	*n = strtol(pa_db_value(r, 0, 0), NULL, 10);
	pa_db_res_free(r);
	return true;
}

static int
list(ctl_t *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "domain", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const keys[] = { "id", "domain", "username", "flavour",
		"client_addr", "created_at", "refreshed_at", "expires_at" };
	const char *domain = NULL, *params[2];
	char tid[CTL_ID_LEN], uid[CTL_ID_LEN] = "";
	pa_db_res_t *r;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'd') {
			usage(stderr);
			return CTL_USAGE;
		}
		domain = optarg;
	}
	if (argc - optind > 1) {
		usage(stderr);
		return CTL_USAGE;
	}
	if (ctl_tenant_find(c, domain, tid) != CTL_OK ||
	    (optind < argc && ctl_user_find(c, domain, argv[optind], uid) != CTL_OK))
		return CTL_FAIL;
	params[0] = tid[0] ? tid : NULL;
	params[1] = uid[0] ? uid : NULL;
	if (pa_db_query(c->db, "SELECT s.id, coalesce(t.domain, '-'), u.username, s.flavour,"
	    " coalesce(s.client_addr, '-'), " CTL_SQL_RFC3339("s.created_at") ","
	    " coalesce(" CTL_SQL_RFC3339("s.refreshed_at") ", '-'), "
	    CTL_SQL_RFC3339("s.refresh_expires_at")
	    " FROM sessions s JOIN users u ON u.id = s.user_id"
	    " LEFT JOIN tenants t ON t.id = u.tenant_id"
	    " WHERE s.revoked_at IS NULL AND s.refresh_expires_at > now()"
	    " AND ($1::bigint IS NULL OR u.tenant_id = $1::bigint)"
	    " AND ($2::bigint IS NULL OR u.id = $2::bigint)"
	    " ORDER BY s.created_at, s.id", 2, params, &r) != PA_OK)
		return CTL_FAIL;
	ctl_print_rows(r, keys, (int)PA_NELEM(keys));
	pa_db_res_free(r);
	return CTL_OK;
}

/* A session id: a positive bigint in decimal. */
static bool
valid_id(const char *s)
{
	size_t n = strspn(s, "0123456789");

	if (n == 0 || s[n] != '\0' || s[0] == '0')
		return false;
	return n < 19 || (n == 19 && strcmp(s, "9223372036854775807") <= 0);
}

/* Revokes the sessions ids[0..n), all or none. */
static int
revoke_ids(ctl_t *c, char **ids, int n)
{
	char arr[MAX_IDS * 21 + 3], *p = arr;
	const char *params[1] = { arr };
	const char *missing;
	pa_db_res_t *r;
	long count;

	if (n > MAX_IDS) {
		ctl_err("at most %d session ids at once", MAX_IDS);
		return CTL_USAGE;
	}
	*p++ = '{';
	for (int i = 0; i < n; i++) {
		if (!valid_id(ids[i])) {
			ctl_err("'%s' is not a session id (a positive integer)", ids[i]);
			return CTL_USAGE;
		}
		p += sprintf(p, "%s%s", i ? "," : "", ids[i]);
	}
	*p++ = '}';
	*p = '\0';
	if (!ctl_exec(c, "BEGIN"))
		return CTL_FAIL;
	if (pa_db_query(c->db, "WITH r AS (UPDATE sessions SET revoked_at = now(),"
	    " revoke_reason = 'pbx-authctl' WHERE id = ANY ($1::bigint[]) AND revoked_at IS NULL"
	    " RETURNING id, user_id)," AUDIT_REVOKED_SQL
	    " SELECT (SELECT count(*) FROM r), (SELECT string_agg(x::text, ', ' ORDER BY x)"
	    " FROM (SELECT DISTINCT x FROM unnest($1::bigint[]) x"
	    " WHERE x NOT IN (SELECT id FROM r)) d)",
	    1, params, &r) != PA_OK) {
		(void)ctl_exec(c, "ROLLBACK");
		return CTL_FAIL;
	}
	count = strtol(pa_db_value(r, 0, 0), NULL, 10);
	if ((missing = pa_db_value(r, 0, 1)) != NULL) {
		ctl_err("no session to revoke with id %s (unknown or already revoked);"
		    " nothing revoked", missing);
		pa_db_res_free(r);
		(void)ctl_exec(c, "ROLLBACK");
		return CTL_FAIL;
	}
	pa_db_res_free(r);
	if (!ctl_exec(c, "COMMIT"))
		return CTL_FAIL;
	printf("revoked %ld session%s\n", count, count == 1 ? "" : "s");
	return CTL_OK;
}

static int
revoke(ctl_t *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "domain", required_argument, NULL, 'd' },
		{ "user", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	const char *domain = NULL, *user = NULL;
	char id[CTL_ID_LEN];
	long n;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': domain = optarg; break;
		case 'u': user = optarg; break;
		default: usage(stderr); return CTL_USAGE;
		}
	}
	if (user == NULL) {
		if (domain != NULL || optind == argc) {
			ctl_err(domain != NULL ? "--domain goes with --user" :
			    "session revoke needs session ids or --user");
			usage(stderr);
			return CTL_USAGE;
		}
		return revoke_ids(c, argv + optind, argc - optind);
	}
	if (optind != argc) {
		ctl_err("session revoke takes either session ids or --user");
		usage(stderr);
		return CTL_USAGE;
	}
	if (ctl_user_find(c, domain, user, id) != CTL_OK)
		return CTL_FAIL;
	if (!ctl_revoke_user_sessions(c, id, "pbx-authctl", &n))
		return CTL_FAIL;
	printf("revoked %ld session%s\n", n, n == 1 ? "" : "s");
	return CTL_OK;
}

int
ctl_session(ctl_t *c, int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "";

	if (ctl_wants_help(argc, argv)) {
		usage(stdout);
		return CTL_OK;
	}
	if (strcmp(sub, "list") == 0)
		return list(c, argc - 1, argv + 1);
	if (strcmp(sub, "revoke") == 0)
		return revoke(c, argc - 1, argv + 1);
	return ctl_unknown("session", argc, argv);
}
