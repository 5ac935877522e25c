/*
 * pbx-authctl system show | set KEY=VALUE…: the system metadata row.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "valid.h"

enum kind { K_TEXT, K_HOST, K_IPV4, K_IPV6, K_IP, K_BOOL, K_URL };

/* The columns of system_settings operators may set, with the one UPDATE for each. */
static const ctl_field_t fields[] = {
	{ "web_domain", K_HOST, "UPDATE system_settings SET web_domain = $1, updated_at = now()" },
	{ "private_ipv4", K_IPV4, "UPDATE system_settings SET private_ipv4 = $1, updated_at = now()" },
	{ "public_ipv4", K_IPV4, "UPDATE system_settings SET public_ipv4 = $1, updated_at = now()" },
	{ "enable_ipv6", K_BOOL,
	    "UPDATE system_settings SET enable_ipv6 = $1::boolean, updated_at = now()" },
	{ "private_ipv6", K_IPV6, "UPDATE system_settings SET private_ipv6 = $1, updated_at = now()" },
	{ "public_ipv6", K_IPV6, "UPDATE system_settings SET public_ipv6 = $1, updated_at = now()" },
	{ "primary_dns_server", K_IP,
	    "UPDATE system_settings SET primary_dns_server = $1, updated_at = now()" },
	{ "secondary_dns_server", K_IP,
	    "UPDATE system_settings SET secondary_dns_server = $1, updated_at = now()" },
	{ "enable_dataflow", K_BOOL,
	    "UPDATE system_settings SET enable_dataflow = $1::boolean, updated_at = now()" },
	{ "public_base_url", K_URL,
	    "UPDATE system_settings SET public_base_url = $1, updated_at = now()" },
};

/* The system row as JSON for the audit trail, locked. */
#define SNAPSHOT_SQL "SELECT to_jsonb(s) FROM system_settings s FOR UPDATE"

static void
usage(FILE *f)
{
	fprintf(f, "usage: pbx-authctl system show\n"
	    "       pbx-authctl system set KEY=VALUE…\n"
	    "  keys:");
	for (size_t i = 0; i < PA_NELEM(fields); i++)
		fprintf(f, " %s", fields[i].key);
	fprintf(f, "\n  An empty VALUE clears a text field; booleans take true or false.\n");
}

/* Returns NULL, or what is wrong with v; *out is the value to store (NULL: SQL NULL). */
static const char *
check(int kind, const char *v, const char **out)
{
	unsigned char addr[16];

	*out = v;
	if (*v == '\0') {
		*out = NULL;
		return kind == K_BOOL ? "expected true or false" : NULL;
	}
	switch (kind) {
	case K_BOOL:
		return (*out = ctl_bool(v)) ? NULL : "expected true or false";
	case K_HOST:
		return pa_valid_domain(v) ? NULL : "expected a host name or IP address";
	case K_IPV4:
		return inet_pton(AF_INET, v, addr) == 1 ? NULL : "expected an IPv4 address";
	case K_IPV6:
		return inet_pton(AF_INET6, v, addr) == 1 ? NULL : "expected an IPv6 address";
	case K_IP:
		return inet_pton(AF_INET, v, addr) == 1 || inet_pton(AF_INET6, v, addr) == 1 ?
		    NULL : "expected an IP address";
	case K_URL:
		return pa_valid_url(v);
	default:
		return pa_valid_text(v, 1024) ? NULL : "must be text without control characters";
	}
}

static int
show(ctl_t *c)
{
	const char *keys[PA_NELEM(fields)], *vals[PA_NELEM(fields)];
	pa_db_res_t *r;

	if (pa_db_query(c->db, "SELECT web_domain, private_ipv4, public_ipv4, enable_ipv6,"
	    " private_ipv6, public_ipv6, primary_dns_server, secondary_dns_server,"
	    " enable_dataflow, public_base_url FROM system_settings", 0, NULL, &r) != PA_OK)
		return CTL_FAIL;
	if (pa_db_rows(r) != 1) {
		ctl_err("system_settings has no row: run pbx-authctl migrate");
		pa_db_res_free(r);
		return CTL_FAIL;
	}
	for (size_t i = 0; i < PA_NELEM(fields); i++) {
		keys[i] = fields[i].key;
		vals[i] = pa_db_value(r, 0, (int)i);
		if (fields[i].kind == K_BOOL)
			vals[i] = pa_db_bool(r, 0, (int)i) ? "true" : "false";
	}
	ctl_print_record(keys, vals, PA_NELEM(fields));
	pa_db_res_free(r);
	return CTL_OK;
}

static int
set(ctl_t *c, int argc, char **argv)
{
	const ctl_field_t *todo[PA_NELEM(fields)];
	const char *vals[PA_NELEM(fields)], *keys[PA_NELEM(fields)];
	char *before = NULL, *detail = NULL;
	size_t n;
	int rv;

	if (argc == 0) {
		usage(stderr);
		return CTL_USAGE;
	}
	if ((rv = ctl_assignments(argc, argv, fields, PA_NELEM(fields), check, todo, vals, &n))
	    != CTL_OK)
		return rv;
	for (size_t i = 0; i < n; i++)
		keys[i] = todo[i]->key;
	rv = CTL_FAIL;
	if (!ctl_exec(c, "BEGIN") || !ctl_snapshot(c, SNAPSHOT_SQL, NULL, &before))
		goto rollback;
	for (size_t i = 0; i < n; i++)
		if (pa_db_query(c->db, todo[i]->sql, 1, &vals[i], NULL) != PA_OK)
			goto rollback;
	if (!ctl_commit_change(c, SNAPSHOT_SQL, NULL, "system_set", NULL, before, keys, n, NULL,
	    &detail))
		goto rollback;
	printf("system: %s\n", detail ? detail : "nothing changed");
	rv = CTL_OK;
	goto out;
rollback:
	(void)ctl_exec(c, "ROLLBACK");
out:
	free(before);
	free(detail);
	return rv;
}

int
ctl_system(ctl_t *c, int argc, char **argv)
{
	if (ctl_wants_help(argc, argv)) {
		usage(stdout);
		return CTL_OK;
	}
	if (argc >= 2 && strcmp(argv[1], "show") == 0 && argc == 2)
		return show(c);
	if (argc >= 2 && strcmp(argv[1], "set") == 0)
		return set(c, argc - 2, argv + 2);
	if (argc < 2 || strcmp(argv[1], "show") != 0)
		return ctl_unknown("system", argc, argv);
	usage(stderr);
	return CTL_USAGE;
}
