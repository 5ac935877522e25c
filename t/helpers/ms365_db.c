/*
 * Drives src/ms365.c against a database for t/ctl_ms365.t: one call per run,
 * its status and results printed as key=value lines (strings with control
 * characters are not expected: the test chooses them).
 *
 *   ms365_db CONNINFO tenant DOMAIN
 *   ms365_db CONNINFO flow-create TENANT_ID STATE NONCE VERIFIER bearer|cookie DEST|- TTL ADDR
 *       BROWSER|-
 *   ms365_db CONNINFO flow-spend STATE [BROWSER|-]   (with BROWSER: browser_ok=true|false)
 *   ms365_db CONNINFO map TENANT_ID OID|- UPN|- PREFERRED_USERNAME|-
 *
 * "-" stands for NULL.  Exit 0 when the call was made (whatever its status),
 * 2 on a usage error, 1 when setting up failed.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "db.h"
#include "log.h"
#include "ms365.h"

static const char *
status(enum pa_err e)
{
	static const char *const names[] = { "OK", "ENOMEM", "EINPUT", "ENOTFOUND", "EDB",
		"ECONFLICT", "ESYS", "EUPSTREAM" };

	return (size_t)e < PA_NELEM(names) ? names[e] : "?";
}

static const char *
arg(const char *s)
{
	return strcmp(s, "-") == 0 ? NULL : s;
}

static void
kv(const char *k, const char *v)
{
	printf("%s=%s\n", k, v ? v : "<null>");
}

static int
usage(void)
{
	fprintf(stderr, "usage: ms365_db CONNINFO tenant|flow-create|flow-spend|map ARGS…\n");
	return 2;
}

int
main(int argc, char **argv)
{
	pa_arena_t *a = NULL;
	pa_db_t *db = NULL;
	const char *cmd;
	enum pa_err e;
	int rv = 1;

	if (argc < 3)
		return usage();
	cmd = argv[2];
	pa_log_init("ms365_db");
	if ((a = pa_arena_new()) == NULL ||
	    (db = pa_db_new(argv[1], "ms365_db", PA_DB_PREPARE)) == NULL) {
		fprintf(stderr, "ms365_db: out of memory\n");
		goto out;
	}
	if (strcmp(cmd, "tenant") == 0 && argc == 4) {
		pa_ms365_tenant_t t;

		e = pa_ms365_tenant(db, a, argv[3], &t);
		kv("status", status(e));
		if (e == PA_OK) {
			kv("tenant_id", t.tenant_id);
			kv("domain", t.domain);
			kv("name", t.name);
			kv("enabled", t.enabled ? "true" : "false");
			kv("directory_id", t.directory_id);
			kv("application_id", t.application_id);
			kv("cloud", t.cloud);
			kv("client_secret_file", t.client_secret_file);
			kv("certificate_file", t.certificate_file);
			kv("private_key_file", t.private_key_file);
		}
	} else if (strcmp(cmd, "flow-create") == 0 && argc == 12) {
		pa_flavour_t f = strcmp(argv[7], "cookie") == 0 ? PA_FLAVOUR_COOKIE :
		    PA_FLAVOUR_BEARER;

		e = pa_ms365_flow_create(db, a, argv[3], argv[4], argv[5], argv[6], f,
		    arg(argv[8]), atoi(argv[9]), arg(argv[10]), arg(argv[11]));
		kv("status", status(e));
	} else if (strcmp(cmd, "flow-spend") == 0 && (argc == 4 || argc == 5)) {
		pa_ms365_flow_t fl;

		e = pa_ms365_flow_spend(db, a, argv[3], &fl);
		kv("status", status(e));
		if (e == PA_OK) {
			kv("tenant_id", fl.tenant_id);
			kv("domain", fl.domain);
			kv("nonce", fl.nonce);
			kv("verifier", fl.verifier);
			kv("destination", fl.destination);
			kv("flavour", pa_flavour_name(fl.flavour));
			kv("client_addr", fl.client_addr);
			kv("browser_hash", fl.browser_hash);
			if (argc == 5)
				kv("browser_ok", pa_ms365_flow_browser_ok(&fl, arg(argv[4])) ?
				    "true" : "false");
		}
	} else if (strcmp(cmd, "map") == 0 && argc == 7) {
		pa_user_t u;

		e = pa_ms365_user_map(db, a, argv[3], arg(argv[4]), arg(argv[5]), arg(argv[6]), &u);
		kv("status", status(e));
		if (e == PA_OK) {
			kv("id", u.id);
			kv("domain", u.domain);
			kv("username", u.username);
			kv("role", u.role);
			kv("enabled", u.enabled ? "true" : "false");
			kv("two_factor", u.two_factor ? "true" : "false");
		}
	} else {
		rv = usage();
		goto out;
	}
	rv = 0;
out:
	pa_db_free(db);
	pa_arena_free(a);
	return rv;
}
