/*
 * pbx-authctl's commands and the helpers they share.  Exit statuses: 0 done,
 * 1 failed (the message says why), 2 usage error.
 */
#ifndef PA_CTL_H
#define PA_CTL_H

#include <stdbool.h>

#include "config.h"
#include "db.h"

enum { CTL_OK = 0, CTL_FAIL = 1, CTL_USAGE = 2 };

typedef struct {
	pa_config_t *cfg;
	pa_db_t *db;
} ctl_t;

/* A settable column: its KEY, a kind the command's checker knows, its one UPDATE. */
typedef struct {
	const char *key;
	int kind;
	const char *sql;
} ctl_field_t;

/* Returns NULL, or what is wrong with v; *out is the value to store (NULL: SQL NULL). */
typedef const char *ctl_check_fn(int kind, const char *v, const char **out);

/*
 * Parses KEY=VALUE arguments against fields[0..nfields), validating all of
 * them before anything is changed.  Fills todo[] and vals[] (nfields entries
 * each) and *n.  Returns CTL_OK, CTL_USAGE (unknown key, no '=', a key twice)
 * or CTL_FAIL (a bad value); the message is printed.
 */
int ctl_assignments(int argc, char **argv, const ctl_field_t *fields, size_t nfields,
    ctl_check_fn *check, const ctl_field_t **todo, const char **vals, size_t *n);

int ctl_migrate(ctl_t *c, int argc, char **argv);
int ctl_system(ctl_t *c, int argc, char **argv);
int ctl_tenant(ctl_t *c, int argc, char **argv);
int ctl_user(ctl_t *c, int argc, char **argv);
int ctl_session(ctl_t *c, int argc, char **argv);
int ctl_audit(ctl_t *c, int argc, char **argv);
int ctl_ms365(ctl_t *c, int argc, char **argv);
int ctl_client(ctl_t *c, int argc, char **argv);

/* SQL: a timestamptz expression as RFC 3339 UTC text ("2026-11-28T10:00:00Z"); NULL stays NULL. */
#define CTL_SQL_RFC3339(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* Room for a bigint id as text. */
#define CTL_ID_LEN 24

/*
 * (user.c) Finds the user addressed as [--domain D] USERNAME: domain NULL
 * means a system-level account.  Checks both names' syntax first.  Writes
 * the user's id to id.  Returns CTL_OK, or CTL_FAIL with the message printed
 * (bad name, no such tenant, no such user, database failure).
 */
int ctl_user_find(ctl_t *c, const char *domain, const char *username, char id[CTL_ID_LEN]);
/*
 * (user.c) Finds the tenant of domain (NULL: system level, id set to "").
 * Returns CTL_OK, or CTL_FAIL with the message printed.
 */
int ctl_tenant_find(ctl_t *c, const char *domain, char id[CTL_ID_LEN]);
/*
 * (session.c) Revokes the active sessions of user_id (not revoked, a token
 * not expired) with reason, writing a session_revoke audit row for each, in
 * the caller's transaction if any.  Sets *n to how many.  false (message
 * printed) on failure.
 */
bool ctl_revoke_user_sessions(ctl_t *c, const char *user_id, const char *reason, long *n);

/* Prints "pbx-authctl: message" on stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* True when argv holds -h or --help. */
bool ctl_wants_help(int argc, char **argv);
/* Parses true/false, yes/no, on/off, 1/0 into "true"/"false"; NULL if none of them. */
const char *ctl_bool(const char *v);
/* Runs BEGIN / COMMIT / ROLLBACK; false (message printed) on failure. */
bool ctl_exec(ctl_t *c, const char *sql);
/*
 * pa_db_query without the error line pa_db logs for a failed statement (a
 * failure to connect is still logged): for statements whose failure the
 * caller explains itself with pa_db_error().
 */
/*
 * The server's message for the connection's last failure without "ERROR:"
 * and without DETAIL, HINT and CONTEXT (which may show row data, a password
 * hash among it).  Valid until the next call.
 */
const char *ctl_db_reason(ctl_t *c);
enum pa_err ctl_query_quiet(ctl_t *c, const char *sql, int nparams, const char *const *params,
    pa_db_res_t **out) PA_MUSTCHECK;

#endif
