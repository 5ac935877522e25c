/*
 * The handlers of the API, one file per resource, and what they share: the
 * worker's state and the mapping of module status codes to responses.
 * Handlers reach libraries only through the project's modules.
 */
#ifndef PA_HANDLERS_H
#define PA_HANDLERS_H

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "http.h"
#include "json.h"
#include "meta.h"
#include "router.h"
#include "sessions.h"

struct pa_ctx {
	const pa_config_t *cfg;
	pa_db_t *db;
	pa_meta_t *meta;
	pa_passwd_t *passwd;	/* password hashing settings and the dummy hash */
	struct pa_oidc *oidc;	/* the Microsoft 365 relying party's caches (oidc.h) */
};

/* The route table of the API. */
extern const pa_route_t pa_routes[];
extern const size_t pa_nroutes;

/* Answers a failed module call: 503 with Retry-After for PA_EDB, else 500. */
void pa_reply_failure(pa_req_t *req, pa_ctx_t *ctx, enum pa_err err);

/* Answers 200 with the JSON body in b (500 if building it failed), and frees b. */
void pa_reply_json(pa_req_t *req, pa_ctx_t *ctx, pa_buf_t *b);

/*
 * A string member of the JSON body into *out (NULL when absent or not a
 * string), recording "required" or "must be a string" in p.
 */
void pa_body_string(pa_req_t *req, pa_json_problems_t *p, const char *key, bool required,
    const char **out, size_t *len);

/* Answers 400 listing every validation problem in p (and frees p's memory). */
void pa_reply_problems(pa_req_t *req, pa_ctx_t *ctx, pa_json_problems_t *p);

/* 401 INVALID_TOKEN, with WWW-Authenticate for bearer endpoints. */
void pa_reply_invalid_token(pa_req_t *req, bool bearer);
/* 401 INVALID_TOKEN to a bearer request without credentials: WWW-Authenticate: Bearer. */
void pa_reply_no_token(pa_req_t *req);

/* The token of an "Authorization: Bearer <token>" header, or NULL. */
const char *pa_bearer_token(const pa_req_t *req);

/* The outcome of a password sign-in. */
typedef struct {
	bool two_factor;		/* the two-factor step started: flow_token is set */
	char flow_token[PA_TOKEN_LEN + 1];
	pa_tokens_t tokens;		/* otherwise: the new session */
	const char *role;
} pa_sign_in_t;

/*
 * The password sign-in both flavours share: validates {username, password,
 * domain?} (plus earlier problems in p, may be NULL), applies throttling,
 * verifies, audits, and starts the session or the two-factor step.  Returns
 * true with *out filled, or false after answering the request itself.
 */
bool pa_sign_in_password(pa_req_t *req, pa_ctx_t *ctx, pa_flavour_t f,
    pa_json_problems_t *p, pa_sign_in_t *out);

/* Appends the token response {"token_type":"Bearer","access_token":…}. */
void pa_token_body(pa_buf_t *b, const pa_tokens_t *t);

/* Appends {"two_factor_enabled":true,"token":…}. */
void pa_two_factor_body(pa_buf_t *b, const char *token);

/*
 * Whether the request's Origin header (if any) may make state-changing
 * cookie requests: allowed_origins, https://<web_domain>, the origin of
 * public_base_url (login.c).  PA_OK with *allowed set, or PA_EDB.
 */
enum pa_err pa_cookie_origin_check(pa_req_t *req, pa_ctx_t *ctx, bool *allowed) PA_MUSTCHECK;

/* Answers a started cookie session as POST /api/login does: Set-Cookie and the status body. */
void pa_reply_cookie_session(pa_req_t *req, pa_ctx_t *ctx, const pa_tokens_t *t,
    const char *role);

/*
 * The Origin check for a handler that answers by itself: true when the
 * request may go on; otherwise it has been answered (403, or 503).
 */
bool pa_login_origin_ok(pa_req_t *req, pa_ctx_t *ctx);
/* Sets the session cookie of a new cookie session, as POST /api/login does. */
void pa_login_set_cookie(pa_req_t *req, pa_ctx_t *ctx, const char *value);

pa_handler_fn pa_handle_info;
pa_handler_fn pa_handle_health_live, pa_handle_health_ready, pa_handle_metrics;
pa_handler_fn pa_handle_sign_in;
pa_handler_fn pa_handle_login;
pa_handler_fn pa_handle_login_status;
pa_handler_fn pa_handle_logout;
pa_handler_fn pa_handle_refresh_token;
pa_handler_fn pa_handle_sign_out;
pa_handler_fn pa_handle_auth_user;
pa_handler_fn pa_handle_sign_in_provider;
pa_handler_fn pa_handle_login_by_microsoft;
pa_handler_fn pa_handle_ms365_authorize;
pa_handler_fn pa_handle_ms365_callback;
pa_handler_fn pa_handle_forget_password;
pa_handler_fn pa_handle_reset_password;
pa_handler_fn pa_handle_send_otp;
pa_handler_fn pa_handle_verify_otp;

#endif
