/*
 * The email flows: forgotten password and reset, and the one-time code of
 * the two-factor step.  Each message is rendered here, at request time, and
 * queued in mail_outbox by the same statement that starts or changes the
 * flow (db.c); the mailer delivers it later.  Tokens reach the database only
 * as SHA-256, codes only as HMAC-SHA256 keyed with the two-factor token, and
 * neither reaches a log.
 */
#ifndef PA_FLOWS_H
#define PA_FLOWS_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "pa.h"
#include "sessions.h"

#define PA_OTP_DIGITS 6

/* One {name} of a message text and its value. */
typedef struct {
	const char *name, *value;
} pa_mail_var_t;

/*
 * Renders a message text (config.h): each {name} of vars becomes its value,
 * other known placeholders become "", anything else is copied.  Control
 * characters in values (CR, LF, C1…) become spaces, so a tenant name cannot
 * add a line to a subject.  Returns the text in the arena, or NULL (ENOMEM).
 */
char *pa_mail_render(pa_arena_t *a, const char *text, const pa_mail_var_t *vars, size_t n);

/*
 * The reset link: url with token=<token> added to its query ('?' or '&' as
 * the URL needs), before any fragment.  Returns it in the arena, or NULL.
 */
char *pa_reset_link(pa_arena_t *a, const char *url, const char *token);

/* A code of PA_OTP_DIGITS decimal digits, uniform (rejection sampling).  PA_OK or PA_ESYS. */
enum pa_err pa_otp_code(char out[PA_OTP_DIGITS + 1]) PA_MUSTCHECK;

/*
 * POST /api/auth/forget_password after validation: when the enabled tenant
 * `domain` has an enabled user `username` with a password and a valid email
 * address whose last reset email is older than mail_rate_interval, voids the
 * user's older reset tokens, starts a new one and queues the message with
 * the link to callback_url (already checked).  Every case runs the same
 * statements and renders a message, so the time does not tell them apart.
 * PA_OK (whatever happened), PA_EDB, PA_ENOMEM or PA_ESYS.
 */
enum pa_err pa_reset_request(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg,
    const char *domain, const char *username, const char *callback_url, const char *addr)
	PA_MUSTCHECK;

/*
 * POST /api/auth/reset_password after the policy check: spends the reset
 * token and sets the new password (hashed with pw), clears
 * password_force_reset, revokes every session of the user and voids the
 * other flows, in one statement with its audit row.  PA_OK; PA_ENOTFOUND
 * for an unknown, spent, expired or voided token (audited); PA_EDB; PA_ESYS.
 */
enum pa_err pa_reset_password(pa_db_t *db, pa_arena_t *a, const pa_passwd_t *pw,
    const char *token, const char *new_password, const char *addr) PA_MUSTCHECK;

typedef enum {
	PA_OTP_SENT,		/* a new code is queued */
	PA_OTP_NO_FLOW,		/* unknown, expired, spent or voided two-factor token */
	PA_OTP_TOO_SOON,	/* the last code is younger than otp_resend_interval */
	PA_OTP_NO_EMAIL		/* the account has no (valid) email address */
} pa_otp_send_t;

/*
 * POST /api/auth/send_otp: draws a new code for the two-factor flow of
 * token, stores its HMAC with a lifetime of otp_ttl and queues the message,
 * in one statement.  *retry_after is set for PA_OTP_TOO_SOON.  PA_OK with
 * *res set, PA_EDB, PA_ENOMEM or PA_ESYS.
 */
enum pa_err pa_otp_send(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg, const char *token,
    const char *addr, pa_otp_send_t *res, int *retry_after) PA_MUSTCHECK;

typedef enum {
	PA_OTP_OK,		/* the flow is spent and *out holds the new session */
	PA_OTP_INVALID,		/* unknown, expired, spent or voided token */
	PA_OTP_WRONG,		/* wrong, expired or not yet sent code: counted */
	PA_OTP_VOIDED,		/* wrong, and it was the last attempt: the token is void */
	PA_OTP_FORBIDDEN	/* a cookie flow from an origin that is not allowed */
} pa_otp_verify_t;

/* The session a right code starts, in the flavour of the sign-in. */
typedef struct {
	pa_flavour_t flavour;
	pa_tokens_t tokens;
	const char *role;
} pa_otp_session_t;

/*
 * POST /api/auth/verify_otp: counts the attempt, compares the code's HMAC
 * in constant time, and on a match spends the flow and starts the session
 * (pa_session_create).  Wrong codes are counted on the flow only (never the
 * sign-in throttle); the otp_max_attempts-th voids the token.  cookie_ok
 * says whether the request's Origin may receive a cookie.  PA_OK with *res
 * set, PA_EDB, PA_ENOMEM or PA_ESYS.
 */
enum pa_err pa_otp_verify(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg, const char *token,
    const char *code, const char *addr, bool cookie_ok, pa_otp_verify_t *res,
    pa_otp_session_t *out) PA_MUSTCHECK;

#endif
