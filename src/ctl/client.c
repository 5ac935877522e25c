/*
 * pbx-authctl client add|list|remove: the credentials of RFC 7662
 * introspection clients.  A secret is 256 random bits, printed once; only
 * its SHA-256 is stored (0010_gate.sql says why no slow hash).
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "ctl/ctl.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: pbx-authctl client add NAME\n"
	    "       pbx-authctl client list\n"
	    "       pbx-authctl client remove NAME\n"
	    "  add creates an introspection client (POST /api/auth/introspect) and prints\n"
	    "  its secret once, on a line of its own; it cannot be shown again.  NAME:\n"
	    "  1-64 of A-Z a-z 0-9 _ . -.  list prints name and creation time (UTC)\n"
	    "  (--tsv, --json as for the other lists).\n");
}

static bool
valid_name(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 64 &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* Records a change in the audit log, in the caller's transaction. */
static bool
audit(ctl_t *c, const char *event, const char *name)
{
	char detail[80];

	snprintf(detail, sizeof(detail), "client %s", name);
	return ctl_audit_event(c, event, NULL, detail);
}

static int
add(ctl_t *c, const char *name)
{
	char secret[PA_TOKEN_LEN + 1], hash[PA_SHA256_HEX_LEN + 1];
	const char *params[2] = { name, hash };
	enum pa_err rv;

	if (pa_token_new(secret) != PA_OK || pa_sha256_hex(secret, strlen(secret), hash) != PA_OK) {
		ctl_err("cannot make a secret");
		return CTL_FAIL;
	}
	if (!ctl_exec(c, "BEGIN"))
		return CTL_FAIL;
	rv = pa_db_query(c->db, "INSERT INTO introspection_clients (name, secret_hash)"
	    " VALUES ($1, decode($2, 'hex'))", 2, params, NULL);
	if (rv != PA_OK || !audit(c, "client_add", name)) {
		if (rv == PA_ECONFLICT)
			ctl_err("client '%s' exists already", name);
		else
			ctl_err("cannot add the client: %s", pa_db_error(c->db));
		(void)ctl_exec(c, "ROLLBACK");
		return CTL_FAIL;
	}
	if (!ctl_exec(c, "COMMIT"))
		return CTL_FAIL;
	printf("%s\n", secret);
	return CTL_OK;
}

static int
list(ctl_t *c)
{
	static const char *const keys[] = { "name", "created" };
	pa_db_res_t *r;

	if (pa_db_query(c->db, "SELECT name, " CTL_SQL_RFC3339("created_at")
	    " FROM introspection_clients ORDER BY name", 0, NULL, &r) != PA_OK) {
		ctl_err("cannot list the clients: %s", pa_db_error(c->db));
		return CTL_FAIL;
	}
	ctl_print_rows(r, keys, 2);
	pa_db_res_free(r);
	return CTL_OK;
}

static int
remove_client(ctl_t *c, const char *name)
{
	const char *params[1] = { name };
	pa_db_res_t *r;
	long n;

	if (!ctl_exec(c, "BEGIN"))
		return CTL_FAIL;
	if (pa_db_query(c->db, "DELETE FROM introspection_clients WHERE name = $1", 1, params,
	    &r) != PA_OK) {
		ctl_err("cannot remove the client: %s", pa_db_error(c->db));
		(void)ctl_exec(c, "ROLLBACK");
		return CTL_FAIL;
	}
	n = pa_db_affected(r);
	pa_db_res_free(r);
	if (n == 0 || !audit(c, "client_remove", name)) {
		if (n == 0)
			ctl_err("no client '%s'", name);
		else
			ctl_err("cannot audit: %s", pa_db_error(c->db));
		(void)ctl_exec(c, "ROLLBACK");
		return CTL_FAIL;
	}
	return ctl_exec(c, "COMMIT") ? CTL_OK : CTL_FAIL;
}

int
ctl_client(ctl_t *c, int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "";

	if (ctl_wants_help(argc, argv)) {
		usage(stdout);
		return CTL_OK;
	}
	if (strcmp(sub, "list") == 0 && argc == 2)
		return list(c);
	if ((strcmp(sub, "add") == 0 || strcmp(sub, "remove") == 0) && argc == 3) {
		if (!valid_name(argv[2])) {
			ctl_err("bad client name '%.64s' (1-64 of A-Z a-z 0-9 _ . -)", argv[2]);
			return CTL_FAIL;
		}
		return sub[0] == 'a' ? add(c, argv[2]) : remove_client(c, argv[2]);
	}
	usage(stderr);
	return CTL_USAGE;
}
