/*
 * The web portal's cookie session: POST /api/login, GET /api/login,
 * POST /api/logout.  State-changing cookie requests from a page of another
 * origin are refused (API.md "Security behaviour"): the allowed origins are
 * the configured ones, https://<web_domain> and public_base_url's origin.
 */
#include "autoconfig.h"

#include <string.h>
#include <strings.h>

#include "handlers.h"

/* True when origin equals the scheme://host[:port] of url (case-insensitive). */
static bool
same_origin(const char *origin, const char *url)
{
	const char *p = strstr(url, "://");
	size_t n;

	if (p == NULL)
		return false;
	n = (size_t)(p + 3 - url) + strcspn(p + 3, "/?#");
	return strlen(origin) == n && strncasecmp(origin, url, n) == 0;
}

enum pa_err
pa_cookie_origin_check(pa_req_t *req, pa_ctx_t *ctx, bool *allowed)
{
	const char *origin = pa_http_env(req, "HTTP_ORIGIN");
	const char *list = ctx->cfg->allowed_origins, *web, *base;
	pa_db_res_t *r;
	enum pa_err rv;

	/* No Origin: not a browser's cross-origin request (browsers send it on POST). */
	*allowed = true;
	if (origin == NULL)
		return PA_OK;
	for (const char *p = list; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, " \t");

		if (n > 0 && strlen(origin) == n && strncasecmp(origin, p, n) == 0)
			return PA_OK;
		p += n;
		p += strspn(p, " \t");
	}
	if ((rv = pa_db_exec(ctx->db, req->arena, PA_STMT_SYSTEM_INFO, NULL, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) == 1) {
		web = pa_db_value(r, 0, PA_COL_SYSTEM_INFO_WEB_DOMAIN);
		base = pa_db_value(r, 0, PA_COL_SYSTEM_INFO_PUBLIC_BASE_URL);
		if (web != NULL && strncasecmp(origin, "https://", 8) == 0 &&
		    strcasecmp(origin + 8, web) == 0)
			return PA_OK;
		if (base != NULL && same_origin(origin, base))
			return PA_OK;
	}
	*allowed = false;
	return PA_OK;
}

bool
pa_login_origin_ok(pa_req_t *req, pa_ctx_t *ctx)
{
	bool allowed;
	enum pa_err rv;

	if ((rv = pa_cookie_origin_check(req, ctx, &allowed)) != PA_OK) {
		pa_reply_failure(req, ctx, rv);
		return false;
	}
	if (!allowed)
		pa_http_reply_error(req, 403, NULL, "Origin not allowed", NULL);
	return allowed;
}

/* The value of the session cookie, or NULL. */
static const char *
session_cookie(pa_req_t *req, pa_ctx_t *ctx)
{
	const char *h = pa_http_env(req, "HTTP_COOKIE");
	pa_param_t *c;
	size_t n;

	if (h == NULL || pa_http_parse_cookies(req->arena, h, &c, &n) != PA_OK)
		return NULL;
	return pa_http_param(c, n, ctx->cfg->cookie_name);
}

static void
set_cookie(pa_req_t *req, pa_ctx_t *ctx, const char *value, int max_age)
{
	pa_http_add_header(req, "Set-Cookie: %s=%s; Path=/api; Max-Age=%d; HttpOnly; SameSite=Lax%s",
	    ctx->cfg->cookie_name, value, max_age, ctx->cfg->cookie_secure ? "; Secure" : "");
}

/* {"access_token","expires_at","expires_in","role"} */
static void
reply_status(pa_req_t *req, pa_ctx_t *ctx, const pa_tokens_t *t, const char *role)
{
	pa_buf_t b = PA_BUF_INIT;

	pa_buf_puts(&b, "{\"access_token\":");
	pa_buf_json_str(&b, t->access, strlen(t->access));
	pa_buf_puts(&b, ",\"expires_at\":");
	pa_buf_json_nstr(&b, t->expires_at);
	pa_buf_printf(&b, ",\"expires_in\":%ld,\"role\":", t->expires_in);
	pa_buf_json_nstr(&b, role);
	pa_buf_putc(&b, '}');
	pa_reply_json(req, ctx, &b);
}

void
pa_reply_cookie_session(pa_req_t *req, pa_ctx_t *ctx, const pa_tokens_t *t, const char *role)
{
	set_cookie(req, ctx, t->refresh, ctx->cfg->refresh_token_ttl);
	reply_status(req, ctx, t, role);
}

void
pa_handle_login(pa_req_t *req, pa_ctx_t *ctx)
{
	pa_buf_t b = PA_BUF_INIT;
	pa_sign_in_t s;

	if (!pa_login_origin_ok(req, ctx) ||
	    !pa_sign_in_password(req, ctx, PA_FLAVOUR_COOKIE, NULL, &s))
		return;
	if (s.two_factor) {
		pa_two_factor_body(&b, s.flow_token);
		pa_reply_json(req, ctx, &b);
		return;
	}
	pa_reply_cookie_session(req, ctx, &s.tokens, s.role);
}

void
pa_handle_login_status(pa_req_t *req, pa_ctx_t *ctx)
{
	const char *cookie = session_cookie(req, ctx), *role;
	pa_tokens_t t;
	enum pa_err rv;

	if (cookie == NULL) {
		pa_reply_invalid_token(req, false);
		return;
	}
	rv = pa_session_cookie(ctx->db, req->arena, ctx->cfg, cookie, &t, &role);
	if (rv == PA_ENOTFOUND)
		pa_reply_invalid_token(req, false);
	else if (rv != PA_OK)
		pa_reply_failure(req, ctx, rv);
	else
		reply_status(req, ctx, &t, role);
}

void
pa_handle_logout(pa_req_t *req, pa_ctx_t *ctx)
{
	const char *cookie = session_cookie(req, ctx);
	enum pa_err rv;

	if (!pa_login_origin_ok(req, ctx))
		return;
	if (cookie != NULL &&
	    (rv = pa_session_logout(ctx->db, req->arena, cookie, req->remote_addr)) != PA_OK) {
		pa_reply_failure(req, ctx, rv);
		return;
	}
	set_cookie(req, ctx, "", 0);
	pa_http_reply(req, 204, NULL, 0);
}

void
pa_login_set_cookie(pa_req_t *req, pa_ctx_t *ctx, const char *value)
{
	set_cookie(req, ctx, value, ctx->cfg->refresh_token_ttl);
}
