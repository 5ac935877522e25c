/*
 * pbx-authctl throttle list|clear: the failed sign-in counters and blocks
 * (the throttle table), and lifting them at once, each with an audit row.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "valid.h"

/* Room for "account <domain> <username>". */
#define KEY_MAX (8 + 280 + 1 + PA_USERNAME_MAX + 1)

static void
usage(FILE *f)
{
	fprintf(f, "usage: pbx-authctl throttle list\n"
	    "       pbx-authctl throttle clear ip ADDRESS\n"
	    "       pbx-authctl throttle clear account DOMAIN|- USERNAME\n"
	    "       pbx-authctl throttle clear --all\n"
	    "  list prints each counter: key (ip ADDRESS or account DOMAIN USERNAME), failures\n"
	    "  in the current window, window start and blocked until (UTC, - when not blocked).\n"
	    "  clear deletes the counter, lifting its block at once; DOMAIN - is a system-level\n"
	    "  account.  Addresses that must never be blocked: throttle_exempt in\n"
	    "  pbx-auth.conf(5).  Each cleared counter writes an audit row.\n");
}

static int
list(ctl_t *c)
{
	static const char *const keys[] = { "key", "failures", "window_start", "blocked_until" };
	pa_db_res_t *r;

	if (pa_db_query(c->db, "SELECT key, failures, " CTL_SQL_RFC3339("window_start") ", "
	    CTL_SQL_RFC3339("CASE WHEN blocked_until > now() THEN blocked_until END")
	    " FROM throttle ORDER BY blocked_until > now() IS NOT TRUE, key", 0, NULL,
	    &r) != PA_OK)
		return CTL_FAIL;
	ctl_print_rows(r, keys, (int)PA_NELEM(keys));
	pa_db_res_free(r);
	return CTL_OK;
}

/* Lower-cases s into out (domains and usernames are ASCII: valid.h). */
static void
lower_into(char *out, const char *s)
{
	for (; *s; s++)
		*out++ = (char)(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s);
	*out = '\0';
}

/*
 * Parses clear's arguments into the key (NULL: --all) and, for an account,
 * the names its audit row carries.  Returns CTL_OK or the status with the
 * message printed.
 */
static int
clear_key(int argc, char **argv, char key[KEY_MAX], const char **domain, const char **user,
    bool *all)
{
	/* The names the audit row carries, lower-cased like the key. */
	static char d[PA_DOMAIN_MAX + 1], u[PA_USERNAME_MAX + 1];
	unsigned char bin[16];
	char addr[INET6_ADDRSTRLEN];

	*all = false;
	*domain = *user = NULL;
	if (argc == 1 && strcmp(argv[0], "--all") == 0) {
		*all = true;
		return CTL_OK;
	}
	if (argc == 2 && strcmp(argv[0], "ip") == 0) {
		/* The daemon's key holds the address as nginx writes it: canonical text. */
		if (inet_pton(AF_INET, argv[1], bin) == 1)
			inet_ntop(AF_INET, bin, addr, sizeof(addr));
		else if (inet_pton(AF_INET6, argv[1], bin) == 1)
			inet_ntop(AF_INET6, bin, addr, sizeof(addr));
		else {
			ctl_err("'%s' is not an IPv4 or IPv6 address", argv[1]);
			return CTL_FAIL;
		}
		snprintf(key, KEY_MAX, "ip %s", addr);
		return CTL_OK;
	}
	if (argc == 3 && strcmp(argv[0], "account") == 0) {
		bool system_level = strcmp(argv[1], "-") == 0;

		if (!system_level && !pa_valid_domain(argv[1])) {
			ctl_err("'%s' is not a valid domain (or - for a system-level account)",
			    argv[1]);
			return CTL_FAIL;
		}
		if (!pa_valid_username(argv[2], strlen(argv[2]))) {
			ctl_err("'%s' is not a valid username", argv[2]);
			return CTL_FAIL;
		}
		lower_into(d, system_level ? "" : argv[1]);
		lower_into(u, argv[2]);
		snprintf(key, KEY_MAX, "account %s %s", d, u);
		*domain = system_level ? NULL : d;
		*user = u;
		return CTL_OK;
	}
	ctl_err("throttle clear takes ip ADDRESS, account DOMAIN USERNAME or --all");
	usage(stderr);
	return CTL_USAGE;
}

static int
clear(ctl_t *c, int argc, char **argv)
{
	const char *params[3], *domain, *user;
	char key[KEY_MAX];
	pa_db_res_t *r;
	bool all;
	long n;
	int rv;

	if ((rv = clear_key(argc, argv, key, &domain, &user, &all)) != CTL_OK)
		return rv;
	params[0] = all ? NULL : key;
	params[1] = domain;
	params[2] = user;
	/* One statement: the counters go and their audit rows are written, or neither. */
	if (pa_db_query(c->db, "WITH d AS (DELETE FROM throttle WHERE $1::text IS NULL OR key = $1"
	    " RETURNING key, failures, blocked_until),"
	    " a AS (INSERT INTO audit_log (tenant_domain, username, event, outcome, detail)"
	    " SELECT $2, $3, 'throttle_clear', 'success', d.key || ': failures ' || d.failures"
	    " || coalesce(', blocked until ' || " CTL_SQL_RFC3339("d.blocked_until") ", '')"
	    " || CASE WHEN d.blocked_until > now() THEN ' (lifted)' ELSE '' END FROM d)"
	    " SELECT count(*) FROM d", 3, params, &r) != PA_OK)
		return CTL_FAIL;
	n = strtol(pa_db_value(r, 0, 0), NULL, 10);
	pa_db_res_free(r);
	if (all)
		printf("cleared %ld throttle counter%s\n", n, n == 1 ? "" : "s");
	else if (n == 0)
		printf("no throttle counter for %s: nothing to clear\n", key);
	else
		printf("cleared %s\n", key);
	return CTL_OK;
}

int
ctl_throttle(ctl_t *c, int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "";

	if (ctl_wants_help(argc, argv)) {
		usage(stdout);
		return CTL_OK;
	}
	if (strcmp(sub, "list") == 0 && argc == 2)
		return list(c);
	if (strcmp(sub, "clear") == 0)
		return clear(c, argc - 2, argv + 2);
	if (strcmp(sub, "list") != 0)
		return ctl_unknown("throttle", argc, argv);
	usage(stderr);
	return CTL_USAGE;
}
