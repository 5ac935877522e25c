/*
 * pbx-authctl audit: prints the audit trail (audit_log), oldest first,
 * optionally of one tenant and since a time.
 */
#include "autoconfig.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "valid.h"

#define DEFAULT_LIMIT "1000"
#define MAX_LIMIT 1000000L
/* The longest duration back from now (about 317 years): keeps now() - it in range. */
#define MAX_SECONDS 10000000000LL

static void
usage(FILE *f)
{
	fprintf(f, "usage: pbx-authctl audit [--domain D] [--since WHEN] [--limit N]\n"
	    "  Prints the newest N (default %s) audit rows, oldest first, one per line:\n"
	    "  time (UTC), domain (- for system level), username, client address, event,\n"
	    "  outcome, detail; - for none.  WHEN is a duration back from now (30s, 15m,\n"
	    "  2h, 7d) or a timestamp PostgreSQL understands (2026-11-28,\n"
	    "  2026-11-28T10:00:00Z); without an offset it is taken as UTC.\n", DEFAULT_LIMIT);
}

/*
 * A duration ^[0-9]+[smhd]$ into seconds (decimal text in out).  Returns 1
 * for a duration, 0 for anything else, -1 for a duration too long.
 */
static int
duration(const char *s, char out[CTL_ID_LEN])
{
	size_t n = strspn(s, "0123456789");
	long long v = 0, mult;

	if (n == 0 || s[n] == '\0' || s[n + 1] != '\0' || strchr("smhd", s[n]) == NULL)
		return 0;
	mult = s[n] == 's' ? 1 : s[n] == 'm' ? 60 : s[n] == 'h' ? 3600 : 86400;
	for (size_t i = 0; i < n; i++) {
		v = v * 10 + (s[i] - '0');
		if (v > MAX_SECONDS)
			return -1;
	}
	if (v * mult > MAX_SECONDS)
		return -1;
	snprintf(out, CTL_ID_LEN, "%lld", v * mult);
	return 1;
}

int
ctl_audit(ctl_t *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "domain", required_argument, NULL, 'd' },
		{ "since", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	const char *domain = NULL, *since = NULL, *limit = DEFAULT_LIMIT, *params[4];
	char secs[CTL_ID_LEN];
	pa_db_res_t *r;
	char *end;
	int ch, dur = 0;
	long l;

	if (ctl_wants_help(argc, argv)) {
		usage(stdout);
		return CTL_OK;
	}
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': domain = optarg; break;
		case 's': since = optarg; break;
		case 'l': limit = optarg; break;
		default: usage(stderr); return CTL_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return CTL_USAGE;
	}
	l = strtol(limit, &end, 10);
	if (limit[0] < '1' || limit[0] > '9' || *end != '\0' || l > MAX_LIMIT) {
		ctl_err("--limit '%s': expected a number from 1 to %ld", limit, MAX_LIMIT);
		return CTL_USAGE;
	}
	if (domain != NULL && !pa_valid_domain(domain)) {
		ctl_err("'%s' is not a valid domain (1-280 characters of an FQDN or IP address)",
		    domain);
		return CTL_FAIL;
	}
	if (since != NULL && (dur = duration(since, secs)) < 0) {
		ctl_err("--since '%s': too long ago", since);
		return CTL_USAGE;
	}
	/* Timestamps without an offset are UTC, like the times printed. */
	if (!ctl_exec(c, "SET TIME ZONE 'UTC'"))
		return CTL_FAIL;
	if (since != NULL && dur == 0) {
		params[0] = since;
		if (ctl_query_quiet(c, "SELECT $1::timestamptz", 1, params, NULL) != PA_OK) {
			ctl_err("--since '%s': not a duration (30s, 15m, 2h, 7d) or a timestamp"
			    " (%s)", since, ctl_db_reason(c));
			return CTL_USAGE;
		}
	}
	params[0] = domain;
	params[1] = since != NULL && dur == 0 ? since : NULL;
	params[2] = dur ? secs : NULL;
	params[3] = limit;
	if (pa_db_query(c->db, "SELECT " CTL_SQL_RFC3339("at") ", coalesce(tenant_domain, '-'),"
	    " coalesce(username, '-'), coalesce(client_addr, '-'), event, outcome,"
	    " coalesce(detail, '-') FROM (SELECT * FROM audit_log"
	    " WHERE ($1::text IS NULL OR lower(tenant_domain) = lower($1::text))"
	    " AND at >= coalesce($2::timestamptz,"
	    " now() - make_interval(secs => $3::double precision), '-infinity')"
	    " ORDER BY at DESC, id DESC LIMIT $4::bigint) x ORDER BY at, id",
	    4, params, &r) != PA_OK)
		return CTL_FAIL;
	for (int i = 0; i < pa_db_rows(r); i++) {
		for (int k = 0; k < 7; k++)
			printf("%s%c", pa_db_value(r, i, k), k == 6 ? '\n' : '\t');
	}
	pa_db_res_free(r);
	return CTL_OK;
}
