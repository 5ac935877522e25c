/*
 * The route table, and the failure replies handlers share.
 */
#include "autoconfig.h"

#include <strings.h>

#include "handlers.h"

/*
 * The last column is the worker class (router.h): PA_CLASS_HASH for every
 * route that verifies or sets a password; nginx routes by it (deploy/nginx).
 */
#define REQ PA_CLASS_REQUEST
#define HASH PA_CLASS_HASH
const pa_route_t pa_routes[] = {
	{ "GET", "/api/info", PA_BODY_NONE, pa_handle_info, REQ },
	{ "GET", "/api/health/live", PA_BODY_NONE, pa_handle_health_live, REQ },
	{ "GET", "/api/health/ready", PA_BODY_NONE, pa_handle_health_ready, REQ },
	{ "GET", "/api/metrics", PA_BODY_NONE, pa_handle_metrics, REQ },
	{ "POST", "/api/auth/sign_in", PA_BODY_JSON, pa_handle_sign_in, HASH },
	{ "POST", "/api/auth/refresh_token", PA_BODY_JSON, pa_handle_refresh_token, REQ },
	{ "POST", "/api/auth/sign_out", PA_BODY_NONE, pa_handle_sign_out, REQ },
	{ "GET", "/api/auth/user", PA_BODY_NONE, pa_handle_auth_user, REQ },
	{ "POST", "/api/login", PA_BODY_JSON, pa_handle_login, HASH },
	{ "GET", "/api/login", PA_BODY_NONE, pa_handle_login_status, REQ },
	{ "POST", "/api/logout", PA_BODY_NONE, pa_handle_logout, REQ },
	{ "POST", "/api/auth/sign_in/{provider}", PA_BODY_JSON, pa_handle_sign_in_provider, REQ },
	{ "POST", "/api/login/by_microsoft", PA_BODY_FORM, pa_handle_login_by_microsoft, REQ },
	{ "GET", "/api/auth/authorize/microsoft", PA_BODY_NONE, pa_handle_ms365_authorize, REQ },
	{ "GET", "/api/auth/callback/microsoft", PA_BODY_NONE, pa_handle_ms365_callback, REQ },
	{ "POST", "/api/auth/callback/microsoft", PA_BODY_FORM, pa_handle_ms365_callback, REQ },
	{ "POST", "/api/auth/forget_password", PA_BODY_JSON, pa_handle_forget_password, REQ },
	{ "POST", "/api/auth/reset_password", PA_BODY_JSON, pa_handle_reset_password, HASH },
	{ "POST", "/api/auth/send_otp", PA_BODY_JSON, pa_handle_send_otp, REQ },
	{ "POST", "/api/auth/verify_otp", PA_BODY_JSON, pa_handle_verify_otp, REQ },
};
#undef REQ
#undef HASH
const size_t pa_nroutes = PA_NELEM(pa_routes);

void
pa_reply_failure(pa_req_t *req, pa_ctx_t *ctx, enum pa_err err)
{
	if (err == PA_EDB) {
		pa_http_add_header(req, "Retry-After: %d", ctx->cfg->retry_after);
		pa_http_reply_error(req, 503, NULL, "The service is temporarily unavailable", NULL);
	} else {
		pa_http_reply_error(req, 500, NULL, "Internal error", NULL);
	}
}

void
pa_reply_no_token(pa_req_t *req)
{
	/* RFC 6750 section 3.1: no credentials at all, so no error code. */
	pa_http_add_header(req, "WWW-Authenticate: Bearer");
	pa_http_reply_error(req, 401, "INVALID_TOKEN", "Invalid or expired token", NULL);
}

void
pa_reply_invalid_token(pa_req_t *req, bool bearer)
{
	/* RFC 6750 section 3: a 401 to a bearer request names the scheme. */
	if (bearer)
		pa_http_add_header(req, "WWW-Authenticate: Bearer error=\"invalid_token\"");
	pa_http_reply_error(req, 401, "INVALID_TOKEN", "Invalid or expired token", NULL);
}

const char *
pa_bearer_token(const pa_req_t *req)
{
	const char *h = pa_http_env(req, "HTTP_AUTHORIZATION");

	/* RFC 7235: the scheme is case-insensitive, then one or more spaces. */
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return h;
}

/* Sends b with status, or 500 when building it ran out of memory; frees b. */
static void
reply_buf(pa_req_t *req, pa_ctx_t *ctx, int status, pa_buf_t *b)
{
	if (pa_buf_failed(b))
		pa_reply_failure(req, ctx, PA_ENOMEM);
	else
		pa_http_reply(req, status, b->p, b->len);
	pa_buf_free(b);
}

void
pa_reply_json(pa_req_t *req, pa_ctx_t *ctx, pa_buf_t *b)
{
	reply_buf(req, ctx, 200, b);
}

void
pa_reply_problems(pa_req_t *req, pa_ctx_t *ctx, pa_json_problems_t *p)
{
	pa_buf_t b = PA_BUF_INIT;

	pa_json_problems_body(p, &b);
	reply_buf(req, ctx, 400, &b);
}

void
pa_body_string(pa_req_t *req, pa_json_problems_t *p, const char *key, bool required,
    const char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	switch (pa_json_get_string(req->json, key, out, len)) {
	case PA_JSON_FOUND:
		break;
	case PA_JSON_ABSENT:
		if (required)
			pa_json_problem(p, key, "required");
		break;
	case PA_JSON_WRONG_TYPE:
		pa_json_problem(p, key, "must be a string");
		*out = NULL;
		break;
	}
}
