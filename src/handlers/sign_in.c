/*
 * POST /api/auth/sign_in[?qr=bool]: password sign-in, bearer flavour; and
 * the sign-in both flavours share (POST /api/login is in login.c).
 * Unknown tenant, unknown user, disabled user and wrong password take the
 * same statements and one hash verification each, and answer the same bytes.
 */
#include "autoconfig.h"

#include <string.h>

#include "audit.h"
#include "handlers.h"
#include "log.h"
#include "throttle.h"
#include "valid.h"

#define PASSWORD_MAX 1024	/* bytes a sign-in password may have */

static void
reply_failed(pa_req_t *req)
{
	pa_http_reply_error(req, 401, "AUTHENTICATION_FAILED", "Authentication Error", NULL);
}

bool
pa_sign_in_password(pa_req_t *req, pa_ctx_t *ctx, pa_flavour_t f, pa_json_problems_t *p,
    pa_sign_in_t *out)
{
	pa_json_problems_t own = { PA_BUF_INIT, 0 };
	const char *username, *password, *domain;
	size_t ulen, plen, dlen;
	pa_throttle_keys_t keys;
	pa_throttle_res_t th;
	pa_user_t user;
	bool found, match, rehash = false;
	enum pa_err rv;

	memset(out, 0, sizeof(*out));
	if (p == NULL)
		p = &own;
	pa_body_string(req, p, "username", true, &username, &ulen);
	pa_body_string(req, p, "password", true, &password, &plen);
	pa_body_string(req, p, "domain", false, &domain, &dlen);
	if (username != NULL) {
		if (!pa_valid_username(username, ulen))
			pa_json_problem(p, "username", "1-64 letters, digits, _ - ' or ., not starting"
			    " or ending with .");
		else if (domain != NULL && pa_username_reserved(username))
			pa_json_problem(p, "username", "reserved for the system administrator");
	}
	if (password != NULL && (plen < 1 || plen > PASSWORD_MAX))
		pa_json_problem(p, "password", "length 1..1024");
	if (domain != NULL && (dlen < 1 || dlen > PA_DOMAIN_MAX))
		pa_json_problem(p, "domain", "length 1..280");
	else if (domain != NULL && !pa_valid_domain(domain))
		pa_json_problem(p, "domain", "an FQDN or an IP address");
	if (p->n > 0) {
		pa_reply_problems(req, ctx, p);
		return false;
	}

	if ((rv = pa_throttle_keys(req->arena, ctx->cfg, req->remote_addr, domain, username,
	    &keys)) != PA_OK ||
	    (rv = pa_throttle_reserve(ctx->db, req->arena, ctx->cfg, &keys, &th)) != PA_OK)
		goto fail;
	if (th.retry_after > 0) {
		pa_audit_t e = { domain, username, NULL, req->remote_addr, "sign_in", "blocked",
			pa_flavour_name(f) };

		if ((rv = pa_audit(ctx->db, req->arena, &e)) != PA_OK)
			goto fail;
		pa_http_add_header(req, "Retry-After: %d", th.retry_after);
		pa_http_reply_error(req, 429, NULL, "Too many failed sign-ins; try again later",
		    NULL);
		return false;
	}

	rv = pa_user_find(ctx->db, req->arena, domain, username, &user);
	if (rv != PA_OK && rv != PA_ENOTFOUND)
		goto fail;
	found = rv == PA_OK;
	/* Without a user (or a hash) the dummy hash is verified: the same work. */
	match = pa_passwd_verify(ctx->passwd, password, found ? user.password_hash : NULL,
	    &rehash);
	if (!found || !match || !user.enabled) {
		pa_audit_t e = { domain, username, found ? user.id : NULL, req->remote_addr,
			"sign_in", "failure", pa_flavour_name(f) };

		if ((rv = pa_throttle_failure(ctx->db, req->arena, ctx->cfg, &th, &e)) != PA_OK)
			goto fail;
		reply_failed(req);
		return false;
	}

	/* The attempt was not a failure: give its reservation back. */
	if ((rv = pa_throttle_release(ctx->db, req->arena, ctx->cfg, &keys)) != PA_OK)
		goto fail;
	if (rehash) {
		char hash[PA_HASH_MAX];

		if (pa_passwd_hash(ctx->passwd, password, hash) == PA_OK &&
		    (rv = pa_user_rehash(ctx->db, req->arena, &user, hash)) != PA_OK)
			goto fail;
	}
	out->role = user.role;
	req->user_id = user.id;
	if (user.two_factor) {
		out->two_factor = true;
		rv = pa_session_two_factor(ctx->db, req->arena, ctx->cfg, &user, f,
		    req->remote_addr, keys.account, PA_VIA_PASSWORD, out->flow_token);
	} else {
		rv = pa_session_create(ctx->db, req->arena, ctx->cfg, &user, f, req->remote_addr,
		    keys.account, PA_VIA_PASSWORD, &out->tokens);
	}
	if (rv != PA_OK)
		goto fail;
	return true;
fail:
	pa_reply_failure(req, ctx, rv);
	return false;
}

void
pa_two_factor_body(pa_buf_t *b, const char *token)
{
	pa_buf_puts(b, "{\"two_factor_enabled\":true,\"token\":");
	pa_buf_json_str(b, token, strlen(token));
	pa_buf_putc(b, '}');
}

void
pa_handle_sign_in(pa_req_t *req, pa_ctx_t *ctx)
{
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	const char *qr = pa_http_param(req->query, req->nquery, "qr");
	pa_buf_t b = PA_BUF_INIT;
	pa_sign_in_t s;

	/* qr (the QR-code sign-in of the apps) only has to be a boolean. */
	if (qr != NULL && (pa_http_param_count(req->query, req->nquery, "qr") > 1 ||
	    (strcmp(qr, "true") != 0 && strcmp(qr, "false") != 0)))
		pa_json_problem(&p, "qr", "must be true or false, once");
	if (!pa_sign_in_password(req, ctx, PA_FLAVOUR_BEARER, &p, &s))
		return;
	if (s.two_factor)
		pa_two_factor_body(&b, s.flow_token);
	else
		pa_token_body(&b, &s.tokens);
	pa_reply_json(req, ctx, &b);
}
