/*
 * Users' sign-in records and their sessions: looking a user up for sign-in,
 * issuing, rotating, validating and revoking tokens, and the two-factor flow
 * a sign-in starts.  Tokens are random (crypto.h); only their SHA-256 reaches
 * the database.  Cookie sessions keep the cookie's hash and derive their
 * access tokens from the cookie, so every tab of a browser gets the same one.
 */
#ifndef PA_SESSIONS_H
#define PA_SESSIONS_H

#include <stdbool.h>

#include "arena.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "pa.h"

/* A user found for sign-in (strings live in the arena). */
typedef struct {
	const char *id;
	const char *domain;		/* NULL: system-level account */
	const char *username;		/* as stored */
	const char *password_hash;	/* NULL: no password set */
	const char *role;
	bool enabled;			/* the user, and its tenant */
	bool two_factor, force_reset, verified;
} pa_user_t;

typedef enum { PA_FLAVOUR_BEARER, PA_FLAVOUR_COOKIE } pa_flavour_t;
/* "bearer" or "cookie", as sessions.flavour and audit details write it. */
const char *pa_flavour_name(pa_flavour_t f);
/* The flavour a column holds: "cookie", else bearer. */
pa_flavour_t pa_flavour_parse(const char *name);

/* What a client receives when a session starts or rotates. */
typedef struct {
	char access[PA_TOKEN_LEN + 1];
	char refresh[PA_TOKEN_LEN + 1];	/* the cookie's value for cookie sessions */
	const char *expires_at;		/* of the access token, RFC 3339 UTC (arena) */
	long expires_in;		/* seconds */
} pa_tokens_t;

/* The session behind a valid access token. */
typedef struct {
	const char *session_id, *user_id, *domain, *username, *role;
	bool verified, force_reset;
} pa_principal_t;

/* Finds the user (domain NULL: system-level).  PA_OK, PA_ENOTFOUND or PA_EDB. */
enum pa_err pa_user_find(pa_db_t *db, pa_arena_t *a, const char *domain, const char *username,
    pa_user_t *out) PA_MUSTCHECK;
/* Fills out from row 0 of a result with the PA_COL_USER_* columns (strings live with r). */
void pa_user_from_row(const pa_db_res_t *r, pa_user_t *out);
/* Replaces u's password hash with new_hash unless it changed meanwhile. */
enum pa_err pa_user_rehash(pa_db_t *db, pa_arena_t *a, const pa_user_t *u, const char *new_hash)
	PA_MUSTCHECK;

/* How the user proved who they are; the audit detail says it. */
typedef enum {
	PA_VIA_PASSWORD,	/* detail "bearer" or "cookie" */
	PA_VIA_MICROSOFT	/* detail "microsoft bearer" or "microsoft cookie" */
} pa_via_t;

/*
 * Starts a session for u and writes its audit row; clears the account's
 * throttle count (account_key, may be NULL).  via PA_VIA_PASSWORD records
 * that the user proved the password.  PA_OK, PA_EDB or PA_ESYS.
 */
enum pa_err pa_session_create(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg,
    const pa_user_t *u, pa_flavour_t f, const char *addr, const char *account_key,
    pa_via_t via, pa_tokens_t *out) PA_MUSTCHECK;

/* Starts the two-factor step of a sign-in; token receives its token. */
enum pa_err pa_session_two_factor(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg,
    const pa_user_t *u, pa_flavour_t f, const char *addr, const char *account_key,
    pa_via_t via, char token[PA_TOKEN_LEN + 1]) PA_MUSTCHECK;

/*
 * Rotates a bearer session by its refresh token.  PA_OK with new tokens
 * (also for the retry of a rotation whose answer was lost); PA_ENOTFOUND for
 * an unknown, expired, revoked or spent token (a spent one outside the
 * grace period revokes its session, audited); PA_EDB when the database
 * failed, and for the token a lost rotation spent while its verdict waits
 * (answer 503: retry later); PA_ESYS.
 */
enum pa_err pa_session_refresh(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg,
    const char *refresh, const char *addr, pa_tokens_t *out) PA_MUSTCHECK;

/*
 * Rotations whose answer was lost (the database connection broke with the
 * statement in flight) are remembered in the worker.  pa_session_mark_lost
 * tells the database, once it answers again, that each one's spent token
 * may be presented again as a retry (refresh_retry_window); the worker
 * calls it before each request and, while anything is pending, every
 * second.  pa_session_lost_pending: whether anything is.
 */
bool pa_session_lost_pending(void);
void pa_session_mark_lost(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg);

/* The session of a valid access token.  PA_OK, PA_ENOTFOUND or PA_EDB. */
enum pa_err pa_session_by_access(pa_db_t *db, pa_arena_t *a, const char *access,
    pa_principal_t *out) PA_MUSTCHECK;

/* Revokes the session of a valid access token (audited).  PA_OK, PA_ENOTFOUND or PA_EDB. */
enum pa_err pa_session_sign_out(pa_db_t *db, pa_arena_t *a, const char *access,
    const char *addr) PA_MUSTCHECK;

/*
 * The current access token of the cookie session named by cookie, issuing
 * the next one when it has (nearly) expired.  *role is the user's role.
 * PA_OK, PA_ENOTFOUND, PA_EDB or PA_ESYS.
 */
enum pa_err pa_session_cookie(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg,
    const char *cookie, pa_tokens_t *out, const char **role) PA_MUSTCHECK;

/* Revokes the cookie session named by cookie, if any (audited).  PA_OK or PA_EDB. */
enum pa_err pa_session_logout(pa_db_t *db, pa_arena_t *a, const char *cookie, const char *addr)
	PA_MUSTCHECK;

#endif
