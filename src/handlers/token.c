/*
 * Bearer tokens: POST /api/auth/refresh_token, POST /api/auth/sign_out,
 * GET /api/auth/user.
 */
#include "autoconfig.h"

#include <string.h>

#include "handlers.h"

void
pa_token_body(pa_buf_t *b, const pa_tokens_t *t)
{
	pa_buf_puts(b, "{\"token_type\":\"Bearer\",\"access_token\":");
	pa_buf_json_str(b, t->access, strlen(t->access));
	pa_buf_puts(b, ",\"refresh_token\":");
	pa_buf_json_str(b, t->refresh, strlen(t->refresh));
	pa_buf_printf(b, ",\"expires_in\":%ld}", t->expires_in);
}

void
pa_handle_refresh_token(pa_req_t *req, pa_ctx_t *ctx)
{
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	const char *token = NULL;
	pa_buf_t b = PA_BUF_INIT;
	pa_tokens_t t;
	size_t len;
	enum pa_err rv;

	pa_body_string(req, &p, "refresh_token", true, &token, &len);
	if (p.n > 0) {
		pa_reply_problems(req, ctx, &p);
		return;
	}
	rv = pa_session_refresh(ctx->db, req->arena, ctx->cfg, token, req->remote_addr, &t);
	if (rv == PA_ENOTFOUND) {
		pa_reply_invalid_token(req, false);
		return;
	}
	if (rv != PA_OK) {
		pa_reply_failure(req, ctx, rv);
		return;
	}
	pa_token_body(&b, &t);
	pa_reply_json(req, ctx, &b);
}

void
pa_handle_sign_out(pa_req_t *req, pa_ctx_t *ctx)
{
	const char *token = pa_bearer_token(req);
	enum pa_err rv;

	if (token == NULL) {
		pa_reply_no_token(req);
		return;
	}
	rv = pa_session_sign_out(ctx->db, req->arena, token, req->remote_addr);
	if (rv == PA_ENOTFOUND)
		pa_reply_invalid_token(req, true);
	else if (rv != PA_OK)
		pa_reply_failure(req, ctx, rv);
	else
		pa_http_reply(req, 200, NULL, 0);
}

void
pa_handle_auth_user(pa_req_t *req, pa_ctx_t *ctx)
{
	const char *token = pa_bearer_token(req);
	pa_buf_t b = PA_BUF_INIT;
	pa_principal_t who;
	enum pa_err rv;

	if (token == NULL) {
		pa_reply_no_token(req);
		return;
	}
	rv = pa_session_by_access(ctx->db, req->arena, token, &who);
	if (rv == PA_ENOTFOUND) {
		pa_reply_invalid_token(req, true);
		return;
	}
	if (rv != PA_OK) {
		pa_reply_failure(req, ctx, rv);
		return;
	}
	req->user_id = who.user_id;
	pa_buf_puts(&b, "{\"role\":");
	pa_buf_json_nstr(&b, who.role);
	pa_buf_printf(&b, ",\"password_verified\":%s,\"password_force_reset\":%s}",
	    who.verified ? "true" : "false", who.force_reset ? "true" : "false");
	pa_reply_json(req, ctx, &b);
}
