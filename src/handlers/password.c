/*
 * The forgotten password: POST /api/auth/forget_password emails a reset
 * link (or, for an unknown user or one without an email address, answers
 * the same way and sends nothing); POST /api/auth/reset_password sets the
 * new password with the emailed token (flows.c).
 */
#include "autoconfig.h"

#include <string.h>

#include "callback.h"
#include "flows.h"
#include "handlers.h"
#include "valid.h"

void
pa_handle_forget_password(pa_req_t *req, pa_ctx_t *ctx)
{
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	const char *domain, *username, *url, *why;
	size_t dlen, ulen, urllen;
	enum pa_err rv;

	pa_body_string(req, &p, "domain", true, &domain, &dlen);
	pa_body_string(req, &p, "username", true, &username, &ulen);
	pa_body_string(req, &p, "callback_url", true, &url, &urllen);
	if (domain != NULL && (dlen < 1 || dlen > PA_DOMAIN_MAX))
		pa_json_problem(&p, "domain", "length 1..280");
	else if (domain != NULL && !pa_valid_domain(domain))
		pa_json_problem(&p, "domain", "an FQDN or an IP address");
	if (username != NULL) {
		if (!pa_valid_username(username, ulen))
			pa_json_problem(&p, "username", "1-64 letters, digits, _ - ' or ., not starting"
			    " or ending with .");
		else if (pa_username_reserved(username))
			pa_json_problem(&p, "username", "reserved for the system administrator");
	}
	if (p.n == 0) {
		/* The allow-list of the tenant asked for (tenants are public: GET /api/info). */
		rv = pa_callback_check(ctx->db, req->arena, domain, url, &why);
		if (rv == PA_EINPUT) {
			pa_json_problem(&p, "callback_url", why);
		} else if (rv != PA_OK) {	/* p holds nothing yet */
			pa_reply_failure(req, ctx, rv);
			return;
		}
	}
	if (p.n > 0) {
		pa_reply_problems(req, ctx, &p);
		return;
	}
	if ((rv = pa_reset_request(ctx->db, req->arena, ctx->cfg, domain, username, url,
	    req->remote_addr)) != PA_OK) {
		pa_reply_failure(req, ctx, rv);
		return;
	}
	pa_http_reply(req, 200, NULL, 0);
}

void
pa_handle_reset_password(pa_req_t *req, pa_ctx_t *ctx)
{
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	const char *token, *password, *rule;
	size_t tlen, plen;
	char why[128];
	enum pa_err rv;

	pa_body_string(req, &p, "token", true, &token, &tlen);
	pa_body_string(req, &p, "new_password", true, &password, &plen);
	if (password != NULL && (rule = pa_valid_new_password(password, plen,
	    ctx->cfg->password_min_length, ctx->cfg->password_max_length, why,
	    sizeof(why))) != NULL)
		pa_json_problem(&p, "new_password", rule);
	if (p.n > 0) {
		pa_reply_problems(req, ctx, &p);
		return;
	}
	rv = pa_reset_password(ctx->db, req->arena, ctx->passwd, token, password,
	    req->remote_addr);
	if (rv == PA_ENOTFOUND)
		pa_reply_invalid_token(req, false);
	else if (rv != PA_OK)
		pa_reply_failure(req, ctx, rv);
	else
		pa_http_reply(req, 200, NULL, 0);
}
