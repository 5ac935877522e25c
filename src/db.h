/*
 * PostgreSQL access (the only user of libpq).  A pa_db_t is one connection:
 * the daemon's workers prepare the statement table below at every (re)connect
 * and run only those statements; the operator CLI runs constant SQL with
 * parameters.  SQL text is never assembled from input.
 */
#ifndef PA_DB_H
#define PA_DB_H

#include <stdbool.h>

#include "arena.h"
#include "pa.h"

typedef struct pa_db pa_db_t;
typedef struct pa_db_res pa_db_res_t;	/* a query result */

/* Prepared statements of the daemon; their SQL is in db.c. */
enum pa_stmt {
	PA_STMT_SYSTEM_INFO,	/* () -> system metadata row */
	PA_STMT_TENANT_INFO,	/* (domain) -> enabled tenant's metadata row */
	PA_STMT_TENANT_INFO_CHUNK,	/* (after, limit) -> the next rows by lower(domain) */
	PA_STMT_CALLBACK_PREFIXES,	/* (domain or NULL) -> allowed callback prefixes */
	/* Users and sessions (sessions.c), throttling (throttle.c), audit (audit.c). */
	PA_STMT_USER_TENANT,	/* (domain, username) -> PA_COL_USER_* row */
	PA_STMT_USER_SYSTEM,	/* (username) -> PA_COL_USER_* row of a system-level account */
	PA_STMT_USER_REHASH,	/* (id, new hash, old hash) */
	PA_STMT_SESSION_CREATE,	/* -> id, access expiry (RFC 3339) */
	PA_STMT_FLOW_CREATE,	/* a two-factor flow */
	PA_STMT_SESSION_REFRESH,	/* -> id: rotated */
	PA_STMT_REFRESH_FALLBACK,	/* a token that did not rotate -> PA_FB_* row, or none */
	PA_STMT_REFRESH_RETRYABLE,	/* (spent hash, successor hash, window) */
	PA_STMT_SESSION_ACCESS,	/* (access hash) -> PA_COL_SESSION_ACCESS_* row */
	PA_STMT_SESSION_SIGN_OUT,	/* (access hash, addr) -> id, user id, domain, username, flavour */
	PA_STMT_SESSION_COOKIE,	/* (cookie hash) -> PA_COL_SESSION_COOKIE_* row */
	PA_STMT_SESSION_COOKIE_ROTATE,	/* (id, gen, access hash, ttl) -> expiry, seconds left */
	PA_STMT_SESSION_LOGOUT,	/* (cookie hash, addr) -> id, user id, domain, username */
	PA_STMT_THROTTLE_RESERVE,	/* reserves an attempt -> seconds blocked, ip/account blocked */
	PA_STMT_THROTTLE_RELEASE,	/* (key, limit): a success gives its attempt back */
	PA_STMT_SIGN_IN_FAILED,	/* audits a failure and the lockouts its reservation caused */
	PA_STMT_AUDIT,		/* (domain, username, user id, addr, event, outcome, detail) */
	/* Microsoft 365 (ms365.c). */
	PA_STMT_MS365_TENANT,	/* (domain) -> PA_COL_MS365_TENANT_* row of an enabled tenant */
	PA_STMT_MS365_FLOW_CREATE,	/* an OpenID Connect flow */
	PA_STMT_MS365_FLOW_SPEND,	/* (state hash) -> PA_COL_MS365_FLOW_* row, once */
	PA_STMT_MS365_FLOW_BIND,	/* (state hash, browser hash) -> PA_COL_MS365_FLOW_* row, once */
	PA_STMT_MS365_USER_MAP,	/* (tenant id, oid, upn, preferred_username) -> PA_COL_USER_* row */
	/* Password reset and email one-time codes (flows.c). */
	PA_STMT_RESET_USER,	/* (domain, username) -> PA_COL_RESET_USER_* row */
	PA_STMT_RESET_REQUEST,	/* voids older reset flows, starts one, queues its mail -> count */
	PA_STMT_RESET_CHECK,	/* (token hash) -> a row while the reset token is usable */
	PA_STMT_RESET_SPEND,	/* sets the password, revokes sessions -> user, domain, name, count */
	PA_STMT_OTP_FLOW,	/* (token hash, resend interval, max attempts) -> PA_COL_OTP_FLOW_* row */
	PA_STMT_OTP_SEND,	/* stores the code, queues its mail -> user id */
	PA_STMT_OTP_RESERVE,	/* counts an attempt -> PA_COL_OTP_RESERVE_* row */
	PA_STMT_OTP_SPEND,	/* (flow id, addr) -> user id: the code was right */
	PA_STMT_OTP_FAILED,	/* (flow id, max attempts, addr) -> voided */
	/* The mailer (mailer.c): the outbox and the deletion of expired rows. */
	PA_STMT_MAIL_CLAIM,	/* () -> PA_COL_MAIL_CLAIM_* row of one due message, locked; or none */
	PA_STMT_MAIL_RESULT,	/* (id, sent|retry|failed, reply, base, max) -> status, delay */
	PA_STMT_MAIL_NEXT,	/* () -> seconds until the next queued message is due, or NULL */
	PA_STMT_CLEAN_FLOWS,	/* (limit, grace) -> deleted: flows past expiry */
	PA_STMT_CLEAN_SESSIONS,	/* (limit, grace): sessions past refresh expiry */
	PA_STMT_CLEAN_THROTTLE,	/* (limit, window, grace): windows and blocks over */
	PA_STMT_CLEAN_MAIL,	/* (limit, days): sent and failed mail */
	PA_STMT_MAIL_STATS,	/* () -> queued, sent, failed, age of the oldest queued (s) */
	/* Readiness (health.c). */
	PA_STMT_HEALTH_PING,	/* () -> 1 */
	PA_STMT_HEALTH_MIGRATIONS,	/* () -> version, checksum of each applied migration */
	PA_STMT_CLEAN_AUDIT,	/* (limit, days): audit rows (days 0: none) */
	/* The gate and introspection (gate.c, handlers/verify.c). */
	PA_STMT_GATE_ACCESS,	/* (access hash) -> PA_COL_GATE_* row of a live session */
	PA_STMT_GATE_COOKIE,	/* (cookie hash) -> PA_COL_GATE_* row of a live cookie session */
	PA_STMT_CLIENT_SECRET,	/* (client name) -> secret hash (hex) */
	PA_STMT__MAX
};
/* Columns of PA_STMT_MAIL_CLAIM. */
enum { PA_COL_MAIL_CLAIM_ID, PA_COL_MAIL_CLAIM_RECIPIENT, PA_COL_MAIL_CLAIM_SUBJECT, PA_COL_MAIL_CLAIM_BODY, PA_COL_MAIL_CLAIM_ATTEMPTS, PA_COL_MAIL_CLAIM_CREATED_US,
	PA_COL_MAIL_CLAIM_REQUEST_ID, PA_COL_MAIL_CLAIM__MAX };

/*
 * Columns of PA_STMT_SYSTEM_INFO and PA_STMT_TENANT_INFO, in order.
 * PA_COL_TENANT_INFO_MS365_ENABLED: Microsoft 365 sign-in switched on and its settings
 * complete (directory, application, credential).
 */
enum { PA_COL_SYSTEM_INFO_WEB_DOMAIN, PA_COL_SYSTEM_INFO_PRIVATE_IPV4, PA_COL_SYSTEM_INFO_PUBLIC_IPV4, PA_COL_SYSTEM_INFO_ENABLE_IPV6,
	PA_COL_SYSTEM_INFO_PRIVATE_IPV6, PA_COL_SYSTEM_INFO_PUBLIC_IPV6, PA_COL_SYSTEM_INFO_PRIMARY_DNS, PA_COL_SYSTEM_INFO_SECONDARY_DNS,
	PA_COL_SYSTEM_INFO_ENABLE_DATAFLOW, PA_COL_SYSTEM_INFO_PUBLIC_BASE_URL, PA_COL_SYSTEM_INFO__MAX };
enum { PA_COL_TENANT_INFO_NAME, PA_COL_TENANT_INFO_DOMAIN, PA_COL_TENANT_INFO_WEBSITE, PA_COL_TENANT_INFO_AVATAR_URL, PA_COL_TENANT_INFO_MS365_ENABLED,
	PA_COL_TENANT_INFO_MS365_DIRECTORY, PA_COL_TENANT_INFO_MS365_CLOUD, PA_COL_TENANT_INFO__MAX };
/* PA_STMT_TENANT_INFO_CHUNK: those of PA_STMT_TENANT_INFO, then lower(domain). */
#define PA_COL_TENANT_INFO_CHUNK_CURSOR PA_COL_TENANT_INFO__MAX

/* Columns of PA_STMT_USER_TENANT and PA_STMT_USER_SYSTEM. */
enum { PA_COL_USER_ID, PA_COL_USER_HASH, PA_COL_USER_ROLE, PA_COL_USER_ENABLED, PA_COL_USER_TWO_FACTOR,
	PA_COL_USER_FORCE_RESET, PA_COL_USER_VERIFIED, PA_COL_USER_DOMAIN, PA_COL_USER_NAME, PA_COL_USER__MAX };
/*
 * SQL: whether tenant row T's Microsoft 365 sign-in is switched on and
 * complete: directory, application and a credential (a client secret, or a
 * certificate and its key).  Plain SQL can store less; that counts as off.
 */
#define PA_DB_MS365_READY(T) \
	"(" T ".ms365_enabled AND coalesce(" T ".ms365_directory_id, '') <> ''" \
	" AND coalesce(" T ".ms365_application_id, '') <> ''" \
	" AND (coalesce(" T ".ms365_client_secret_file, '') <> ''" \
	" OR (coalesce(" T ".ms365_certificate_file, '') <> ''" \
	" AND coalesce(" T ".ms365_private_key_file, '') <> '')))"
/* Columns of PA_STMT_MS365_TENANT. */
enum { PA_COL_MS365_TENANT_TENANT_ID, PA_COL_MS365_TENANT_DOMAIN, PA_COL_MS365_TENANT_NAME, PA_COL_MS365_TENANT_READY, PA_COL_MS365_TENANT_DIRECTORY, PA_COL_MS365_TENANT_APPLICATION,
	PA_COL_MS365_TENANT_CLOUD, PA_COL_MS365_TENANT_SECRET_FILE, PA_COL_MS365_TENANT_CERT_FILE, PA_COL_MS365_TENANT_KEY_FILE, PA_COL_MS365_TENANT__MAX };
/* Columns of PA_STMT_MS365_FLOW_SPEND and PA_STMT_MS365_FLOW_BIND. */
enum { PA_COL_MS365_FLOW_TENANT_ID, PA_COL_MS365_FLOW_DOMAIN, PA_COL_MS365_FLOW_NONCE, PA_COL_MS365_FLOW_VERIFIER, PA_COL_MS365_FLOW_DESTINATION,
	PA_COL_MS365_FLOW_FLAVOUR, PA_COL_MS365_FLOW_ADDR, PA_COL_MS365_FLOW_BROWSER, PA_COL_MS365_FLOW__MAX };
/* Columns of PA_STMT_SESSION_ACCESS. */
enum { PA_COL_SESSION_ACCESS_ID, PA_COL_SESSION_ACCESS_USER_ID, PA_COL_SESSION_ACCESS_FLAVOUR, PA_COL_SESSION_ACCESS_ROLE, PA_COL_SESSION_ACCESS_VERIFIED,
	PA_COL_SESSION_ACCESS_FORCE_RESET, PA_COL_SESSION_ACCESS_DOMAIN, PA_COL_SESSION_ACCESS_USERNAME, PA_COL_SESSION_ACCESS__MAX };
/*
 * Columns of PA_STMT_GATE_ACCESS and PA_STMT_GATE_COOKIE: EXP and IAT are
 * Unix times of the token (a cookie's EXP is the session's end).
 */
enum { PA_COL_GATE_SESSION_ID, PA_COL_GATE_USER_ID, PA_COL_GATE_ROLE, PA_COL_GATE_FORCE_RESET,
	PA_COL_GATE_DOMAIN, PA_COL_GATE_USERNAME, PA_COL_GATE_EXP, PA_COL_GATE_IAT,
	PA_COL_GATE__MAX };
/* Columns of PA_STMT_REFRESH_FALLBACK. */
enum { PA_FB_RETRIED, PA_FB_IN_GRACE, PA_FB_REVOKED, PA_FB_WAIT, PA_FB_USER_ID, PA_FB_DOMAIN,
	PA_FB_USERNAME, PA_FB__MAX };
/* Columns of PA_STMT_SESSION_COOKIE. */
enum { PA_COL_SESSION_COOKIE_ID, PA_COL_SESSION_COOKIE_GEN, PA_COL_SESSION_COOKIE_EXPIRES_AT, PA_COL_SESSION_COOKIE_LEFT, PA_COL_SESSION_COOKIE_ROLE, PA_COL_SESSION_COOKIE__MAX };
/* Columns of PA_STMT_RESET_USER, PA_STMT_OTP_FLOW and PA_STMT_OTP_RESERVE. */
enum { PA_COL_RESET_USER_ID, PA_COL_RESET_USER_EMAIL, PA_COL_RESET_USER_TENANT, PA_COL_RESET_USER_DOMAIN, PA_COL_RESET_USER_USERNAME, PA_COL_RESET_USER_USABLE,
	PA_COL_RESET_USER__MAX };
enum { PA_COL_OTP_FLOW_ID, PA_COL_OTP_FLOW_USER_ID, PA_COL_OTP_FLOW_EMAIL, PA_COL_OTP_FLOW_TENANT, PA_COL_OTP_FLOW_DOMAIN, PA_COL_OTP_FLOW_USERNAME,
	PA_COL_OTP_FLOW_FLAVOUR, PA_COL_OTP_FLOW_WAIT, PA_COL_OTP_FLOW__MAX };
enum { PA_COL_OTP_RESERVE_ID, PA_COL_OTP_RESERVE_USER_ID, PA_COL_OTP_RESERVE_FLAVOUR, PA_COL_OTP_RESERVE_CODE_HASH, PA_COL_OTP_RESERVE_CODE_LIVE, PA_COL_OTP_RESERVE_ATTEMPTS,
	PA_COL_OTP_RESERVE_ROLE, PA_COL_OTP_RESERVE_DOMAIN, PA_COL_OTP_RESERVE_USERNAME, PA_COL_OTP_RESERVE__MAX };

enum pa_db_flags {
	PA_DB_PREPARE = 1,	/* prepare the statement table at connect */
	PA_DB_LISTEN = 2,	/* LISTEN for cache invalidations at connect */
	PA_DB_LISTEN_MAIL = 4	/* LISTEN for queued mail at connect (the mailer) */
};

/* The NOTIFY channel of the mail outbox's trigger (0003_email.sql). */
#define PA_DB_MAIL_CHANNEL "pbx_auth_mail"

/* The NOTIFY channel that tells workers to drop cached metadata. */
#define PA_DB_CACHE_CHANNEL "pbx_auth_cache"

/* Returns a handle (not yet connected; free with pa_db_free), or NULL. */
pa_db_t *pa_db_new(const char *conninfo, const char *application_name, int flags);
void pa_db_free(pa_db_t *db);

/* Expected counts of one statement, replacing the table's (tests). */
typedef struct {
	enum pa_stmt id;
	int nparams, ncols;
} pa_db_expect_t;

/*
 * Checks every prepared statement's parameter and column counts
 * (PQdescribePrepared) against the statement table, one statement's taken
 * from override when not NULL (for tests).  Logs each drift.  PA_OK or
 * PA_EDB.  pa_db_connect runs it at every connect of a PA_DB_PREPARE handle
 * and refuses the connection on drift.
 */
enum pa_err pa_db_check_statements(pa_db_t *db, const pa_db_expect_t *override) PA_MUSTCHECK;

/* Connects unless connected.  PA_OK, or PA_EDB (logged once per outage). */
enum pa_err pa_db_connect(pa_db_t *db) PA_MUSTCHECK;

/* Whether the connection is up now (no round trip). */
bool pa_db_connected(const pa_db_t *db);

/* Called with the payload of each notification on the channels listened to. */
typedef void pa_db_notify_fn(void *arg, const char *payload);

/*
 * Reads what the server sent since the last call without blocking, and calls
 * fn for each notification.  Returns false when notifications may have
 * been missed: the connection was lost (it is reconnected on next use), or it
 * was re-established since the last call.  Cached data must be dropped then.
 */
bool pa_db_poll(pa_db_t *db, pa_db_notify_fn *fn, void *arg);
/*
 * pa_db_poll without the poll(2): only what libpq has read already (with
 * the results of this connection's own statements), and the same answer
 * about a new connection.  A lost connection goes unnoticed until the next
 * pa_db_poll or statement.
 */
bool pa_db_notifies(pa_db_t *db, pa_db_notify_fn *fn, void *arg);

/*
 * The connection's socket, for the mailer's poll(2), or -1 when not
 * connected.  Once it is readable, pa_db_poll reads what arrived (and frees
 * the mail notifications: waking up was their point).
 */
int pa_db_socket(pa_db_t *db);

/*
 * An explicit transaction.  pa_db_begin connects if needed.  Until commit or
 * rollback, a lost connection is not silently replaced: pa_db_exec then
 * fails.  pa_db_commit returns PA_OK only when the transaction committed
 * (PA_EDB if it had failed, was rolled back or the connection was lost).
 * pa_db_rollback never fails (a lost connection has rolled back anyway).
 */
enum pa_err pa_db_begin(pa_db_t *db) PA_MUSTCHECK;
enum pa_err pa_db_commit(pa_db_t *db) PA_MUSTCHECK;
void pa_db_rollback(pa_db_t *db);

/*
 * Runs prepared statement id with text parameters (NULL = SQL NULL),
 * connecting first if needed.  *out is released with the arena.  Returns
 * PA_OK, PA_EDB (unreachable or failed; logged) or PA_ECONFLICT (unique violation).
 */
enum pa_err pa_db_exec(pa_db_t *db, pa_arena_t *a, enum pa_stmt id, const char *const *params,
    pa_db_res_t **out) PA_MUSTCHECK;

/*
 * True when the last pa_db_exec failed because the connection broke with the
 * statement sent: it may have committed (without an explicit transaction)
 * or not, nobody can tell.  A connection that could not be opened, or a
 * statement the server refused, is not unknown: nothing was committed.
 */
bool pa_db_outcome_unknown(const pa_db_t *db);

/*
 * Runs constant SQL with nparams text parameters (the CLI's path).  *out is
 * freed with pa_db_res_free (may be NULL when the caller does not want it).
 * Same return values as pa_db_exec; pa_db_error() tells what went wrong.
 */
enum pa_err pa_db_query(pa_db_t *db, const char *sql, int nparams, const char *const *params,
    pa_db_res_t **out) PA_MUSTCHECK;

/* Runs a trusted multi-statement script (a migration file), no parameters. */
enum pa_err pa_db_script(pa_db_t *db, const char *sql) PA_MUSTCHECK;

/* The server's message for the last failure of this connection. */
const char *pa_db_error(pa_db_t *db);

int pa_db_rows(const pa_db_res_t *r);
/* The value as text, or NULL for SQL NULL.  Valid until the result is released. */
const char *pa_db_value(const pa_db_res_t *r, int row, int col);
bool pa_db_bool(const pa_db_res_t *r, int row, int col);
/* Rows an INSERT/UPDATE/DELETE touched. */
long pa_db_affected(const pa_db_res_t *r);
void pa_db_res_free(pa_db_res_t *r);

#endif
