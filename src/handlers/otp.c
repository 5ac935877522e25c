/*
 * The email one-time code of the two-factor step: POST /api/auth/send_otp
 * emails a code for the two-factor token of a sign-in, POST
 * /api/auth/verify_otp checks it and answers like a successful sign-in of
 * the flow's flavour: the token response, or the portal's cookie (flows.c).
 */
#include "autoconfig.h"

#include <string.h>

#include "flows.h"
#include "handlers.h"

void
pa_handle_send_otp(pa_req_t *req, pa_ctx_t *ctx)
{
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	const char *token;
	size_t len;
	pa_otp_send_t res;
	int retry;
	enum pa_err rv;

	pa_body_string(req, &p, "token", true, &token, &len);
	if (p.n > 0) {
		pa_reply_problems(req, ctx, &p);
		return;
	}
	rv = pa_otp_send(ctx->db, req->arena, ctx->cfg, token, req->remote_addr, &res, &retry);
	if (rv != PA_OK) {
		pa_reply_failure(req, ctx, rv);
		return;
	}
	switch (res) {
	case PA_OTP_SENT:
		pa_http_reply(req, 200, NULL, 0);
		break;
	case PA_OTP_NO_FLOW:
		pa_reply_invalid_token(req, false);
		break;
	case PA_OTP_TOO_SOON:
		pa_http_add_header(req, "Retry-After: %d", retry);
		pa_http_reply_error(req, 429, NULL, "A code was sent moments ago; try again later",
		    NULL);
		break;
	case PA_OTP_NO_EMAIL:
		pa_http_reply_error(req, 403, NULL, "The account has no email address for a code",
		    NULL);
		break;
	}
}

void
pa_handle_verify_otp(pa_req_t *req, pa_ctx_t *ctx)
{
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	const char *token, *code;
	size_t tlen, clen;
	pa_buf_t b = PA_BUF_INIT;
	pa_otp_verify_t res;
	pa_otp_session_t s;
	bool cookie_ok;
	enum pa_err rv;

	pa_body_string(req, &p, "token", true, &token, &tlen);
	pa_body_string(req, &p, "code", true, &code, &clen);
	if (code != NULL && (clen != PA_OTP_DIGITS || strspn(code, "0123456789") != clen))
		pa_json_problem(&p, "code", "6 digits");
	if (p.n > 0) {
		pa_reply_problems(req, ctx, &p);
		return;
	}
	if ((rv = pa_cookie_origin_check(req, ctx, &cookie_ok)) != PA_OK ||
	    (rv = pa_otp_verify(ctx->db, req->arena, ctx->cfg, token, code, req->remote_addr,
	    cookie_ok, &res, &s)) != PA_OK) {
		pa_reply_failure(req, ctx, rv);
		return;
	}
	switch (res) {
	case PA_OTP_OK:
		if (s.flavour == PA_FLAVOUR_COOKIE) {
			pa_reply_cookie_session(req, ctx, &s.tokens, s.role);
		} else {
			pa_token_body(&b, &s.tokens);
			pa_reply_json(req, ctx, &b);
		}
		break;
	case PA_OTP_INVALID:
	case PA_OTP_VOIDED:
		pa_reply_invalid_token(req, false);
		break;
	case PA_OTP_WRONG:
		pa_http_reply_error(req, 401, "AUTHENTICATION_FAILED", "Authentication Error", NULL);
		break;
	case PA_OTP_FORBIDDEN:
		pa_http_reply_error(req, 403, NULL, "Origin not allowed", NULL);
		break;
	}
}
