/*
 * pbx-authctl's commands and the helpers they share.  Exit statuses: 0 done,
 * 1 failed (the message says why), 2 usage error; migrate --status adds 3
 * and 4.
 */
#ifndef PA_CTL_H
#define PA_CTL_H

#include <stdbool.h>

#include "config.h"
#include "db.h"

enum { CTL_OK = 0, CTL_FAIL = 1, CTL_USAGE = 2 };
/* migrate --status: files are pending; an applied file has changed. */
enum { CTL_MIGRATE_PENDING = 3, CTL_MIGRATE_CHANGED = 4 };

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
int ctl_status(ctl_t *c, int argc, char **argv);
int ctl_throttle(ctl_t *c, int argc, char **argv);

/* How list and show commands print (pbx-authctl.c sets it from --tsv, --json, isatty). */
enum ctl_format { CTL_FMT_TABLE, CTL_FMT_TSV, CTL_FMT_JSON };
extern enum ctl_format ctl_format;

/*
 * (table.c) Prints every row of r, whose columns are keys[0..ncols), as
 * ctl_format says: a header row and aligned columns, tab-separated lines
 * without header, or a JSON array of objects.  SQL NULL prints as "-" (null
 * in JSON); control characters as '?' (not in JSON).
 */
void ctl_print_rows(const pa_db_res_t *r, const char *const *keys, int ncols);
/* (table.c) Prints one record keys[i] = vals[i]: two columns, or a JSON object. */
void ctl_print_record(const char *const *keys, const char *const *vals, size_t n);
/* (pbx-authctl.c) The usage error for an unknown subcommand of cmd. */
int ctl_unknown(const char *cmd, int argc, char **argv);

/*
 * (audit.c) The audit trail of operator changes.  A snapshot is one row as
 * JSON text, taken with sql (one column, FOR UPDATE, at most one parameter
 * param): *out is NULL when there is no row, else malloc'd.  false (message
 * printed) on a database failure.
 */
bool ctl_snapshot(ctl_t *c, const char *sql, const char *param, char **out);
/*
 * (audit.c) Writes the audit row of a change from before to after (either
 * NULL: added, deleted): event, outcome success, the tenant domain,
 * username and user id (user_id NULL: none) from the snapshot, and as
 * detail the changes of keys[0..nkeys) as "key: old -> new" (never a
 * secret: callers leave hashes out of snapshots), then note if any.  The
 * operator is the connection's (pbx_auth.operator).  *detail (malloc'd, may
 * be NULL) is what was written.  false (message printed) on failure.
 */
bool ctl_audit_change(ctl_t *c, const char *event, const char *user_id, const char *before,
    const char *after, const char *const *keys, size_t nkeys, const char *note, char **detail);
/*
 * (audit.c) Ends the transaction of a change that began with snapshot
 * before: takes the snapshot after with sql and param, writes the audit
 * row (ctl_audit_change) and commits.  *detail as there.  false (message
 * printed) on failure; the caller rolls back.
 */
bool ctl_commit_change(ctl_t *c, const char *sql, const char *param, const char *event,
    const char *user_id, const char *before, const char *const *keys, size_t nkeys,
    const char *note, char **detail);
/* (audit.c) An audit row of event with detail for the tenant domain (NULL: none). */
bool ctl_audit_event(ctl_t *c, const char *event, const char *domain, const char *detail);

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
