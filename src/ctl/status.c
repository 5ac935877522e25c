/*
 * pbx-authctl status: readiness for a person or a monitoring check.  The
 * database, the migrations this build expects (health.h), the daemon's
 * processes as PostgreSQL sees them (each worker and the mailer hold one
 * connection, named by application_name: this works for pbx-authd on other
 * hosts too, where a pidfile would not), the mail queue, sessions and blocks.
 * Exit status 1 when not ready (database down or migrations off).
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>

#include "ctl.h"
#include "health.h"

static const char stats_sql[] =
    "SELECT (SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pbx-authd'),"
    " (SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pbx-authd mailer'),"
    " (SELECT count(*) FROM mail_outbox WHERE status = 'queued'),"
    " (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::bigint"
    "  FROM mail_outbox WHERE status = 'queued'),"
    " (SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND refresh_expires_at > now()),"
    " (SELECT count(*) FROM throttle WHERE blocked_until > now() AND key LIKE 'ip %')";

int
ctl_status(ctl_t *c, int argc, char **argv)
{
	pa_db_res_t *r = NULL;
	char why[160];
	bool schema_ok;
	int rv = CTL_FAIL;

	(void)argv;
	if (argc != 1) {
		ctl_err("usage: pbx-authctl status");
		return CTL_USAGE;
	}
	if (pa_db_query(c->db, "SELECT version, checksum FROM schema_migrations ORDER BY version",
	    0, NULL, &r) != PA_OK) {
		printf("database: down (%s)\n", pa_db_error(c->db));
		printf("ready: no\n");
		goto out;
	}
	printf("database: up\n");
	schema_ok = pa_health_migrations(r, why, sizeof(why)) == PA_OK;
	pa_db_res_free(r);
	r = NULL;
	if (schema_ok)
		printf("migrations: ok (%zu known, all applied)\n", pa_nmigrations);
	else
		printf("migrations: %s\n", why);
	if (pa_db_query(c->db, stats_sql, 0, NULL, &r) != PA_OK || pa_db_rows(r) != 1) {
		printf("counts: unavailable (%s)\n", pa_db_error(c->db));
	} else {
		printf("workers connected: %s\n", pa_db_value(r, 0, 0));
		printf("mailer connected: %s\n", atoi(pa_db_value(r, 0, 1)) > 0 ? "yes" : "no");
		printf("mail queued: %s (oldest %s s)\n", pa_db_value(r, 0, 2), pa_db_value(r, 0, 3));
		printf("active sessions: %s\n", pa_db_value(r, 0, 4));
		printf("blocked addresses: %s\n", pa_db_value(r, 0, 5));
	}
	printf("ready: %s\n", schema_ok ? "yes" : "no");
	rv = schema_ok ? CTL_OK : CTL_FAIL;
out:
	pa_db_res_free(r);
	return rv;
}
