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
	fprintf(f, "usage: pbx-authctl audit [--domain D] [--user U] [--event E] [--outcome O]\n"
	    "           [--since WHEN] [--limit N]\n"
	    "  Prints the newest N (default %s) audit rows, oldest first: time (UTC), domain\n"
	    "  (- for system level), username, client address, event, outcome, detail and\n"
	    "  the operator who ran pbx-authctl (- for the service's own rows).  --user,\n"
	    "  --event and --outcome keep the rows with that username (case-insensitive),\n"
	    "  event (sign_in, user_set, throttle_clear, ...) or outcome (success, failure,\n"
	    "  ...).  WHEN is a duration back from now (30s, 15m, 2h, 7d) or a date or time\n"
	    "  (2026-11-28, 2026-11-28T10:00:00Z, 2026-11-28 10:00:00+02); without an\n"
	    "  offset it is taken as UTC.\n", DEFAULT_LIMIT);
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

/* Reads exactly n digits at *p as a number in [min, max]; advances *p. */
static bool
digits(const char **p, int n, int min, int max)
{
	int v = 0;

	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return false;
		v = v * 10 + (**p - '0');
	}
	return v >= min && v <= max;
}

/*
 * YYYY-MM-DD, optionally followed by [T ]HH:MM[:SS[.fraction]] and Z or
 * +HH[:MM] / -HH[:MM]: checked here so that PostgreSQL's own message never
 * reaches the operator for a typing error.
 */
static bool
timestamp(const char *s)
{
	const char *p = s;

	if (!digits(&p, 4, 1, 9999) || *p++ != '-' || !digits(&p, 2, 1, 12) || *p++ != '-' ||
	    !digits(&p, 2, 1, 31))
		return false;
	if (*p == '\0')
		return true;
	if ((*p != 'T' && *p != ' ') || (p++, !digits(&p, 2, 0, 23)) || *p++ != ':' ||
	    !digits(&p, 2, 0, 59))
		return false;
	if (*p == ':') {
		p++;
		if (!digits(&p, 2, 0, 60))
			return false;
		if (*p == '.') {
			p++;
			if (strspn(p, "0123456789") == 0 || strspn(p, "0123456789") > 6)
				return false;
			p += strspn(p, "0123456789");
		}
	}
	if (*p == 'Z' || *p == 'z')
		return p[1] == '\0';
	if (*p == '+' || *p == '-') {
		p++;
		if (!digits(&p, 2, 0, 15))
			return false;
		if (*p == ':')
			p++;
		if (*p != '\0' && !digits(&p, 2, 0, 59))
			return false;
	}
	return *p == '\0';
}

/* A name of an event or an outcome: [a-z0-9_]{1,64}. */
static bool
word(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_");

	return n > 0 && n <= 64 && s[n] == '\0';
}

int
ctl_audit(ctl_t *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "domain", required_argument, NULL, 'd' },
		{ "user", required_argument, NULL, 'u' },
		{ "event", required_argument, NULL, 'e' },
		{ "outcome", required_argument, NULL, 'o' },
		{ "since", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const keys[] = { "at", "domain", "username", "client_addr", "event",
		"outcome", "detail", "operator" };
	const char *domain = NULL, *since = NULL, *limit = DEFAULT_LIMIT, *params[7];
	const char *user = NULL, *event = NULL, *outcome = NULL;
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
		case 'u': user = optarg; break;
		case 'e': event = optarg; break;
		case 'o': outcome = optarg; break;
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
	if (user != NULL && !pa_valid_username(user, strlen(user))) {
		ctl_err("--user '%s': not a valid username", user);
		return CTL_USAGE;
	}
	if ((event != NULL && !word(event)) || (outcome != NULL && !word(outcome))) {
		ctl_err("--%s '%s': expected a name of lower-case letters, digits and _",
		    event != NULL && !word(event) ? "event" : "outcome",
		    event != NULL && !word(event) ? event : outcome);
		return CTL_USAGE;
	}
	if (since != NULL && (dur = duration(since, secs)) < 0) {
		ctl_err("--since '%s': too long ago", since);
		return CTL_USAGE;
	}
	if (since != NULL && dur == 0 && !timestamp(since)) {
		ctl_err("--since '%s': expected a duration (30s, 15m, 2h, 7d) or a date or time"
		    " (2026-11-28, 2026-11-28T10:00:00Z)", since);
		return CTL_USAGE;
	}
	/* Timestamps without an offset are UTC, like the times printed. */
	if (!ctl_exec(c, "SET TIME ZONE 'UTC'"))
		return CTL_FAIL;
	if (since != NULL && dur == 0) {
		params[0] = since;
		if (ctl_query_quiet(c, "SELECT $1::timestamptz", 1, params, NULL) != PA_OK) {
			/* The shape was right: a day the month does not have. */
			ctl_err("--since '%s': no such date", since);
			return CTL_USAGE;
		}
	}
	params[0] = domain;
	params[1] = since != NULL && dur == 0 ? since : NULL;
	params[2] = dur ? secs : NULL;
	params[3] = limit;
	params[4] = user;
	params[5] = event;
	params[6] = outcome;
	if (pa_db_query(c->db, "SELECT " CTL_SQL_RFC3339("at") ", tenant_domain, username,"
	    " client_addr, event, outcome, detail, operator FROM (SELECT * FROM audit_log"
	    " WHERE ($1::text IS NULL OR lower(tenant_domain) = lower($1::text))"
	    " AND ($5::text IS NULL OR lower(username) = lower($5::text))"
	    " AND ($6::text IS NULL OR event = $6::text)"
	    " AND ($7::text IS NULL OR outcome = $7::text)"
	    " AND at >= coalesce($2::timestamptz,"
	    " now() - make_interval(secs => $3::double precision), '-infinity')"
	    " ORDER BY at DESC, id DESC LIMIT $4::bigint) x ORDER BY at, id",
	    7, params, &r) != PA_OK)
		return CTL_FAIL;
	ctl_print_rows(r, keys, (int)PA_NELEM(keys));
	pa_db_res_free(r);
	return CTL_OK;
}

/* Runs sql; *out is a malloc'd copy of the first row's first value, or NULL.  false on failure. */
static bool
first_value(ctl_t *c, const char *sql, int nparams, const char *const *params, char **out)
{
	pa_db_res_t *r;
	const char *v;
	bool ok = true;

	*out = NULL;
	if (pa_db_query(c->db, sql, nparams, params, &r) != PA_OK)
		return false;
	if (pa_db_rows(r) > 0 && (v = pa_db_value(r, 0, 0)) != NULL &&
	    (*out = strdup(v)) == NULL) {
		ctl_err("out of memory");
		ok = false;
	}
	pa_db_res_free(r);
	return ok;
}

bool
ctl_snapshot(ctl_t *c, const char *sql, const char *param, char **out)
{
	return first_value(c, sql, param != NULL ? 1 : 0, &param, out);
}

bool
ctl_audit_change(ctl_t *c, const char *event, const char *user_id, const char *before,
    const char *after, const char *const *keys, size_t nkeys, const char *note, char **detail)
{
	char arr[1024];
	const char *params[6] = { event, user_id, before, after, arr, note };
	size_t n = 0;

	/* Keys are our own identifiers ([a-z0-9_]): a text[] literal without quoting. */
	arr[n++] = '{';
	for (size_t i = 0; i < nkeys && n + strlen(keys[i]) + 3 < sizeof(arr); i++)
		n += (size_t)snprintf(arr + n, sizeof(arr) - n, "%s%s", i ? "," : "", keys[i]);
	arr[n++] = '}';
	arr[n] = '\0';
	return first_value(c, "WITH s AS (SELECT $3::jsonb AS b, $4::jsonb AS a),"
	    " v AS (SELECT f.k, f.o, nullif(s.b->>f.k, '[]') AS old, nullif(s.a->>f.k, '[]') AS new"
	    "  FROM s, unnest($5::text[]) WITH ORDINALITY AS f(k, o)),"
	    " d AS (SELECT string_agg(k || ': ' || coalesce(old, '-') || ' -> ' || coalesce(new, '-'),"
	    "  ', ' ORDER BY o) AS changes FROM v WHERE old IS DISTINCT FROM new)"
	    " INSERT INTO audit_log (tenant_domain, username, user_id, event, outcome, detail)"
	    " SELECT coalesce(s.a, s.b)->>'domain', coalesce(s.a, s.b)->>'username', $2::bigint,"
	    " $1, 'success', nullif(concat_ws('; ', d.changes, $6::text), '') FROM s, d"
	    " RETURNING detail", 6, params, detail);
}

bool
ctl_commit_change(ctl_t *c, const char *sql, const char *param, const char *event,
    const char *user_id, const char *before, const char *const *keys, size_t nkeys,
    const char *note, char **detail)
{
	char *after = NULL;
	bool ok;

	*detail = NULL;
	ok = ctl_snapshot(c, sql, param, &after) &&
	    ctl_audit_change(c, event, user_id, before, after, keys, nkeys, note, detail) &&
	    ctl_exec(c, "COMMIT");
	free(after);
	return ok;
}

bool
ctl_audit_event(ctl_t *c, const char *event, const char *domain, const char *detail)
{
	const char *params[3] = { event, domain, detail };

	return pa_db_query(c->db, "INSERT INTO audit_log (tenant_domain, event, outcome, detail)"
	    " VALUES ($2, $1, 'success', $3)", 3, params, NULL) == PA_OK;
}
