/*
 * Microsoft 365 sign-in (API.md "Microsoft sign-in"): POST
 * /api/auth/sign_in/{provider} (bearer flavour, answers the authorization
 * URL), POST /api/login/by_microsoft (cookie flavour, a browser form post
 * answered with a 302), and the callback GET|POST
 * /api/auth/callback/microsoft (response_mode query or form_post).  The
 * relying party is oidc.c; the rows are ms365.c's.
 *
 * Every flow is bound to the browser that starts it (RFC 9700 section 4.7,
 * login CSRF): a random value goes into the cookie <cookie_name>_oidc,
 * scoped to the callback's path, and the flow keeps its SHA-256; the
 * callback signs in only the browser that presents it.  by_microsoft sets
 * it with its 302 to Microsoft; sign_in/{provider} answers the URL of GET
 * /api/auth/authorize/microsoft?state=…, which sets it in the browser that
 * opens it (once per flow) and redirects to Microsoft.  The cookie is
 * SameSite=Lax, which a cross-site POST does not carry, so flows ask for
 * response_mode=query (a top-level GET).  An iss parameter in the
 * authorization response (RFC 9207) must be the directory's issuer.
 *
 * Answers before a flow exists are JSON errors: an unknown or disabled
 * tenant is 404, a tenant without complete Microsoft 365 settings is 400
 * (detail: domain).  At the callback, a missing, unknown, expired or spent
 * state is 400 JSON; everything after the flow is found redirects to its
 * destination with #error=…&error_description=… (a database failure is 503).
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "callback.h"
#include "crypto.h"
#include "handlers.h"
#include "log.h"
#include "metrics.h"
#include "ms365.h"
#include "oidc.h"
#include "outbound.h"
#include "valid.h"

#define CODE_MAX 4096		/* bytes of an authorization code */
#define STATE_MAX 512
#define CALLBACK_PATH "/api/auth/callback/microsoft"
#define AUTHORIZE_PATH "/api/auth/authorize/microsoft"
#define BINDING_SUFFIX "_oidc"	/* the binding cookie: <cookie_name>_oidc */

/* The redirect_uri: public_base_url without trailing '/', then the callback path. */
static enum pa_err
base_url(pa_req_t *req, pa_ctx_t *ctx, const char **base)
{
	pa_db_res_t *r;
	const char *b;
	size_t n;
	enum pa_err rv;

	*base = NULL;
	if ((rv = pa_db_exec(ctx->db, req->arena, PA_STMT_SYSTEM_INFO, NULL, &r)) != PA_OK)
		return rv;
	b = pa_db_rows(r) == 1 ? pa_db_value(r, 0, PA_COL_SYSTEM_INFO_PUBLIC_BASE_URL) : NULL;
	if (b == NULL || pa_valid_url(b) != NULL) {
		pa_log_error("Microsoft sign-in needs a valid public_base_url in the system settings");
		return PA_EINPUT;
	}
	n = strlen(b);
	while (n > 0 && b[n - 1] == '/')
		n--;
	*base = pa_strndup(req->arena, b, n);
	return *base != NULL ? PA_OK : PA_ENOMEM;
}

/* base followed by path (arena), or NULL. */
static const char *
base_path(pa_req_t *req, const char *base, const char *path)
{
	size_t n = strlen(base) + strlen(path) + 1;
	char *s = pa_alloc(req->arena, n);

	if (s != NULL)
		snprintf(s, n, "%s%s", base, path);
	return s;
}

static const char *
redirect_uri(pa_req_t *req, const char *base)
{
	return base_path(req, base, CALLBACK_PATH);
}

static void redirect_error(pa_req_t *req, pa_ctx_t *ctx, const char *dest, const char *error,
    const char *description);

/*
 * Where a cookie flow lands: portal_url, else public_base_url + "/".  PA_OK,
 * PA_EDB, PA_EINPUT (no public_base_url; logged), PA_ENOMEM.
 */
static enum pa_err
portal(pa_req_t *req, pa_ctx_t *ctx, const char **dest)
{
	const char *base;
	enum pa_err rv;

	*dest = ctx->cfg->portal_url;
	if (*dest != NULL)
		return PA_OK;
	if ((rv = base_url(req, ctx, &base)) != PA_OK)
		return rv;
	*dest = base_path(req, base, "/");
	return *dest != NULL ? PA_OK : PA_ENOMEM;
}

/*
 * Refuses a sign-in start.  A bearer flow (sign_in/{provider}, JSON) gets
 * status (404, or 400 naming domain with rule); a cookie flow (a browser's
 * form post) is sent to the portal with #error=error&error_description=rule.
 */
static void
refuse_start(pa_req_t *req, pa_ctx_t *ctx, pa_flavour_t f, int status, const char *rule,
    const char *error)
{
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	const char *dest;
	enum pa_err rv;

	if (f == PA_FLAVOUR_COOKIE) {
		if ((rv = portal(req, ctx, &dest)) != PA_OK)
			pa_reply_failure(req, ctx, rv);
		else
			redirect_error(req, ctx, dest, error, rule);
	} else if (status == 404) {
		pa_http_reply_error(req, 404, NULL, rule, NULL);
	} else {
		pa_json_problem(&p, "domain", rule);
		pa_reply_problems(req, ctx, &p);
	}
}

/*
 * A failed start: the database's is 503 JSON (as everywhere); for a cookie
 * flow, anything else goes to the portal (temporarily_unavailable when
 * Microsoft cannot be reached, else server_error).
 */
static void
fail_start(pa_req_t *req, pa_ctx_t *ctx, pa_flavour_t f, enum pa_err rv)
{
	if (f != PA_FLAVOUR_COOKIE || rv == PA_EDB || rv == PA_ENOMEM)
		pa_reply_failure(req, ctx, rv);
	else if (rv == PA_EUPSTREAM)
		refuse_start(req, ctx, f, 503, "the Microsoft OpenID configuration is unavailable",
		    "temporarily_unavailable");
	else
		refuse_start(req, ctx, f, 500, "Microsoft sign-in is misconfigured", "server_error");
}

/*
 * Looks the tenant up and stores a flow; for a cookie flow (browser set)
 * also makes the authorization URL, for a bearer flow the start URL that
 * binds the browser opening it.  Returns the URL, or NULL after answering
 * the request.
 */
static const char *
start(pa_req_t *req, pa_ctx_t *ctx, const char *domain, pa_flavour_t f, const char *destination,
    const char *browser)
{
	pa_ms365_tenant_t t;
	pa_oidc_start_t s;
	pa_buf_t b = PA_BUF_INIT;
	const char *base, *ruri;
	char *url = NULL;
	enum pa_err rv;

	memset(&s, 0, sizeof(s));
	rv = pa_ms365_tenant(ctx->db, req->arena, domain, &t);
	if (rv == PA_ENOTFOUND) {
		refuse_start(req, ctx, f, 404, "No such tenant", "access_denied");
		return NULL;
	}
	if (rv != PA_OK)
		goto fail;
	if (!t.enabled) {
		refuse_start(req, ctx, f, 400, "Microsoft 365 sign-in is not enabled for this tenant",
		    "access_denied");
		return NULL;
	}
	if ((rv = base_url(req, ctx, &base)) != PA_OK)
		goto fail;
	if ((ruri = redirect_uri(req, base)) == NULL) {
		rv = PA_ENOMEM;
		goto fail;
	}
	if ((rv = pa_oidc_start(&t, &s)) != PA_OK)
		goto fail;
	if (browser != NULL) {
		if ((rv = pa_oidc_authorize_url(ctx->oidc, req->arena, &t, ruri, s.state, s.nonce,
		    s.verifier, &url)) != PA_OK)
			goto fail;
	} else {
		pa_buf_printf(&b, "%s" AUTHORIZE_PATH "?", base);
		pa_outbound_param(&b, "state", s.state);
		rv = PA_ENOMEM;
		if (pa_buf_failed(&b) || (url = pa_strndup(req->arena, b.p, b.len)) == NULL)
			goto fail;
	}
	if ((rv = pa_ms365_flow_create(ctx->db, req->arena, t.tenant_id, s.state, s.nonce,
	    s.verifier, f, destination, ctx->cfg->ms365_flow_ttl, req->remote_addr,
	    browser)) != PA_OK)
		goto fail;
	explicit_bzero(&s, sizeof(s));
	pa_buf_free(&b);
	return url;
fail:
	explicit_bzero(&s, sizeof(s));
	pa_buf_free(&b);
	fail_start(req, ctx, f, rv);
	return NULL;
}

/* A domain that is valid, or NULL after adding a problem. */
static const char *
check_domain(pa_json_problems_t *p, const char *domain)
{
	if (domain == NULL)
		return NULL;
	if (strlen(domain) < 1 || strlen(domain) > PA_DOMAIN_MAX) {
		pa_json_problem(p, "domain", "length 1..280");
		return NULL;
	}
	if (!pa_valid_domain(domain)) {
		pa_json_problem(p, "domain", "an FQDN or an IP address");
		return NULL;
	}
	return domain;
}

void
pa_handle_sign_in_provider(pa_req_t *req, pa_ctx_t *ctx)
{
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	const char *provider = pa_http_param(req->path_params, req->npath_params, "provider");
	const char *domain, *cb, *why, *url;
	pa_buf_t b = PA_BUF_INIT;
	size_t dlen, clen;
	enum pa_err rv;

	if (provider == NULL || strcmp(provider, "microsoft") != 0) {
		pa_http_reply_error(req, 404, NULL, "No such sign-in provider", NULL);
		return;
	}
	pa_body_string(req, &p, "domain", true, &domain, &dlen);
	pa_body_string(req, &p, "callback_url", true, &cb, &clen);
	check_domain(&p, domain);
	/* The allow-list decides before anything else happens (no open redirector). */
	if (cb != NULL && p.n == 0) {
		rv = pa_callback_check(ctx->db, req->arena, domain, cb, &why);
		if (rv == PA_EINPUT) {
			pa_json_problem(&p, "callback_url", why);
		} else if (rv != PA_OK) {
			pa_buf_free(&p.items);
			pa_reply_failure(req, ctx, rv);
			return;
		}
	}
	if (p.n > 0) {
		pa_reply_problems(req, ctx, &p);
		return;
	}
	if ((url = start(req, ctx, domain, PA_FLAVOUR_BEARER, cb, NULL)) == NULL)
		return;
	pa_buf_puts(&b, "{\"url\":");
	pa_buf_json_str(&b, url, strlen(url));
	pa_buf_putc(&b, '}');
	pa_reply_json(req, ctx, &b);
}

/*
 * Sets the binding cookie to value for max_age seconds (0 clears it).  Only
 * the callback's path gets it back.
 */
static void
set_binding_cookie(pa_req_t *req, pa_ctx_t *ctx, const char *value, int max_age)
{
	pa_http_add_header(req, "Set-Cookie: %s" BINDING_SUFFIX "=%s; Path=" CALLBACK_PATH
	    "; Max-Age=%d; HttpOnly; SameSite=Lax%s", ctx->cfg->cookie_name, value, max_age,
	    ctx->cfg->cookie_secure ? "; Secure" : "");
}

/*
 * The binding cookie the request carries, or NULL when it has none, or more
 * than one (a cookie planted beside ours must not choose between them).
 */
static const char *
binding_cookie(pa_req_t *req, pa_ctx_t *ctx)
{
	const char *h = pa_http_env(req, "HTTP_COOKIE");
	char name[128];
	pa_param_t *c;
	size_t n;

	if (h == NULL || pa_http_parse_cookies(req->arena, h, &c, &n) != PA_OK)
		return NULL;
	if ((size_t)snprintf(name, sizeof(name), "%s" BINDING_SUFFIX, ctx->cfg->cookie_name) >=
	    sizeof(name) || pa_http_param_count(c, n, name) != 1)
		return NULL;
	return pa_http_param(c, n, name);
}

void
pa_handle_login_by_microsoft(pa_req_t *req, pa_ctx_t *ctx)
{
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	const char *domain = pa_http_param(req->form, req->nform, "domain"), *url, *why = NULL;
	char browser[PA_TOKEN_LEN + 1];
	enum pa_err rv;

	/* A foreign Origin stays a 403 JSON: no redirect for another site's page. */
	if (!pa_login_origin_ok(req, ctx))
		return;
	if (domain == NULL)
		why = "domain is required";
	else if (pa_http_param_count(req->form, req->nform, "domain") > 1)
		why = "domain must be given once";
	else if (check_domain(&p, domain) == NULL)
		why = "domain must be an FQDN or an IP address of 1..280 characters";
	pa_buf_free(&p.items);
	if (why != NULL) {
		refuse_start(req, ctx, PA_FLAVOUR_COOKIE, 400, why, "invalid_request");
		return;
	}
	if ((rv = pa_token_new(browser)) != PA_OK) {
		pa_reply_failure(req, ctx, rv);
		return;
	}
	if ((url = start(req, ctx, domain, PA_FLAVOUR_COOKIE, NULL, browser)) != NULL) {
		set_binding_cookie(req, ctx, browser, ctx->cfg->ms365_flow_ttl);
		pa_http_add_header(req, "Location: %s", url);
		pa_http_reply(req, 302, NULL, 0);
	}
	explicit_bzero(browser, sizeof(browser));
}

/* 302 to dest (its own fragment dropped) with the fragment built in frag. */
static void
redirect(pa_req_t *req, pa_ctx_t *ctx, const char *dest, pa_buf_t *frag)
{
	pa_buf_t loc = PA_BUF_INIT;

	pa_buf_append(&loc, dest, strcspn(dest, "#"));
	pa_buf_putc(&loc, '#');
	if (frag->p != NULL)
		pa_buf_append(&loc, frag->p, frag->len);
	if (pa_buf_failed(&loc) || pa_buf_failed(frag)) {
		pa_reply_failure(req, ctx, PA_ENOMEM);
	} else {
		pa_http_add_header(req, "Location: %s", loc.p);
		pa_http_reply(req, 302, NULL, 0);
	}
	if (frag->p != NULL)
		explicit_bzero(frag->p, frag->cap);
	if (loc.p != NULL)
		explicit_bzero(loc.p, loc.cap);
	pa_buf_free(frag);
	pa_buf_free(&loc);
}

static void
redirect_error(pa_req_t *req, pa_ctx_t *ctx, const char *dest, const char *error,
    const char *description)
{
	pa_buf_t frag = PA_BUF_INIT;

	pa_outbound_param(&frag, "error", error);
	pa_outbound_param(&frag, "error_description", description);
	redirect(req, ctx, dest, &frag);
}

/* A state parameter given once, 1..STATE_MAX bytes; else answers 400 and returns false. */
static bool
check_state(pa_req_t *req, pa_ctx_t *ctx, const pa_param_t *in, size_t nin)
{
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	const char *state = pa_http_param(in, nin, "state");

	if (state == NULL || *state == '\0')
		pa_json_problem(&p, "state", "required");
	else if (pa_http_param_count(in, nin, "state") > 1 || strlen(state) > STATE_MAX)
		pa_json_problem(&p, "state", "must be given once, at most 512 bytes");
	if (p.n == 0)
		return true;
	pa_reply_problems(req, ctx, &p);
	return false;
}

/* An OAuth error code as the IdP sent it, if it looks like one (RFC 6749 §4.1.2.1). */
static const char *
idp_error(const char *e)
{
	size_t n = strlen(e);

	if (n == 0 || n > 64 || strspn(e, "abcdefghijklmnopqrstuvwxyz_") != n)
		return "server_error";
	return e;
}

/* A failed sign-in's audit row (tenant known, user maybe). */
static enum pa_err
audit_failure(pa_req_t *req, pa_ctx_t *ctx, const pa_ms365_flow_t *fl, const pa_user_t *u,
    const char *reason)
{
	pa_buf_t d = PA_BUF_INIT;
	pa_audit_t e = { fl->domain, u ? u->username : NULL, u ? u->id : NULL, req->remote_addr,
		"sign_in", "failure", NULL };
	enum pa_err rv;

	pa_buf_printf(&d, "microsoft %s: %s", pa_flavour_name(fl->flavour), reason);
	e.detail = pa_buf_failed(&d) ? "microsoft" : d.p;
	rv = pa_audit(ctx->db, req->arena, &e);
	pa_buf_free(&d);
	return rv;
}

/*
 * GET /api/auth/authorize/microsoft?state=…: the start URL of a bearer
 * flow.  Binds the flow to this browser (the cookie) and sends it to
 * Microsoft.  An unknown, expired, spent or already opened state is 400
 * JSON; later failures redirect to the flow's callback_url with #error.
 */
void
pa_handle_ms365_authorize(pa_req_t *req, pa_ctx_t *ctx)
{
	const char *state = pa_http_param(req->query, req->nquery, "state"), *base, *ruri;
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	char browser[PA_TOKEN_LEN + 1];
	pa_ms365_tenant_t t;
	pa_ms365_flow_t fl;
	char *url;
	enum pa_err rv;

	if (!check_state(req, ctx, req->query, req->nquery))
		return;
	if ((rv = pa_token_new(browser)) != PA_OK)
		goto fail;
	rv = pa_ms365_flow_bind(ctx->db, req->arena, state, browser, &fl);
	if (rv == PA_ENOTFOUND) {
		pa_json_problem(&p, "state", "unknown, expired, already used or already opened");
		pa_reply_problems(req, ctx, &p);
		goto out;
	}
	if (rv != PA_OK)
		goto fail;
	if (fl.destination == NULL) {
		pa_log_error("Microsoft flow of %s has no destination", fl.domain);
		rv = PA_EINPUT;
		goto fail;
	}
	rv = pa_ms365_tenant(ctx->db, req->arena, fl.domain, &t);
	if (rv != PA_OK && rv != PA_ENOTFOUND)
		goto fail;
	if (rv == PA_ENOTFOUND || !t.enabled) {
		redirect_error(req, ctx, fl.destination, "access_denied",
		    "Microsoft 365 sign-in is not enabled for this tenant");
		goto out;
	}
	if ((rv = base_url(req, ctx, &base)) != PA_OK)
		goto fail;
	if ((ruri = redirect_uri(req, base)) == NULL) {
		rv = PA_ENOMEM;
		goto fail;
	}
	rv = pa_oidc_authorize_url(ctx->oidc, req->arena, &t, ruri, state, fl.nonce, fl.verifier,
	    &url);
	if (rv == PA_EUPSTREAM) {
		redirect_error(req, ctx, fl.destination, "temporarily_unavailable",
		    "the Microsoft OpenID configuration is unavailable");
		goto out;
	}
	if (rv != PA_OK)
		goto fail;
	set_binding_cookie(req, ctx, browser, ctx->cfg->ms365_flow_ttl);
	pa_http_add_header(req, "Location: %s", url);
	pa_http_reply(req, 302, NULL, 0);
	goto out;
fail:
	pa_reply_failure(req, ctx, rv);
out:
	explicit_bzero(browser, sizeof(browser));
}

void
pa_handle_ms365_callback(pa_req_t *req, pa_ctx_t *ctx)
{
	bool post = strcmp(req->method, "POST") == 0;
	const pa_param_t *in = post ? req->form : req->query;
	size_t nin = post ? req->nform : req->nquery;
	const char *state = pa_http_param(in, nin, "state"), *code = pa_http_param(in, nin, "code");
	const char *error = pa_http_param(in, nin, "error"), *dest, *base, *ruri, *why, *iss;
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	pa_ms365_tenant_t t;
	pa_ms365_flow_t fl;
	pa_oidc_identity_t id;
	pa_user_t u;
	pa_buf_t frag = PA_BUF_INIT;
	enum pa_err rv;

	if (!check_state(req, ctx, in, nin))
		return;
	rv = pa_ms365_flow_spend(ctx->db, req->arena, state, &fl);
	if (rv == PA_ENOTFOUND) {
		pa_json_problem(&p, "state", "unknown, expired or already used");
		pa_reply_problems(req, ctx, &p);
		return;
	}
	if (rv != PA_OK) {
		pa_reply_failure(req, ctx, rv);
		return;
	}
	if ((rv = base_url(req, ctx, &base)) != PA_OK || (ruri = redirect_uri(req, base)) == NULL) {
		pa_reply_failure(req, ctx, rv != PA_OK ? rv : PA_ENOMEM);
		return;
	}
	if (fl.flavour == PA_FLAVOUR_BEARER) {
		dest = fl.destination;
	} else if ((rv = portal(req, ctx, &dest)) != PA_OK) {
		pa_reply_failure(req, ctx, rv);
		return;
	}
	if (dest == NULL) {
		pa_log_error("Microsoft flow of %s has no destination", fl.domain);
		pa_reply_failure(req, ctx, PA_EINPUT);
		return;
	}
	/*
	 * A flow signs in only the browser that started it; anything else is
	 * login CSRF (another's flow handed to this browser).  The flow is
	 * spent either way, so a link handed around dies with its first use.
	 */
	{
		const char *browser = binding_cookie(req, ctx);

		set_binding_cookie(req, ctx, "", 0);
		if (!pa_ms365_flow_browser_ok(&fl, browser)) {
			why = browser == NULL ? "no browser binding cookie" :
			    "browser binding cookie does not match";
			pa_log_warn("Microsoft sign-in for %s refused: %s (not the browser that"
			    " started it)", fl.domain, why);
			if ((rv = audit_failure(req, ctx, &fl, NULL, why)) != PA_OK)
				goto fail;
			redirect_error(req, ctx, dest, "access_denied",
			    "This sign-in was not started in this browser");
			return;
		}
	}
	rv = pa_ms365_tenant(ctx->db, req->arena, fl.domain, &t);
	if (rv != PA_OK && rv != PA_ENOTFOUND)
		goto fail;
	if (rv == PA_ENOTFOUND || !t.enabled) {
		if ((rv = audit_failure(req, ctx, &fl, NULL, "tenant disabled")) != PA_OK)
			goto fail;
		redirect_error(req, ctx, dest, "access_denied",
		    "Microsoft 365 sign-in is not enabled for this tenant");
		return;
	}
	/* RFC 9207: an authorization response (error or not) names its issuer. */
	if ((iss = pa_http_param(in, nin, "iss")) != NULL) {
		rv = pa_http_param_count(in, nin, "iss") > 1 ? PA_EINPUT :
		    pa_oidc_check_iss(ctx->oidc, req->arena, &t, iss);
		if (rv == PA_EINPUT || rv == PA_EUPSTREAM) {
			enum pa_err arv = audit_failure(req, ctx, &fl, NULL, rv == PA_EINPUT ?
			    "iss is not the directory's issuer" : "no OpenID configuration");

			if (arv != PA_OK) {
				rv = arv;
				goto fail;
			}
			if (rv == PA_EINPUT)
				redirect_error(req, ctx, dest, "access_denied",
				    "The authorization response came from another issuer");
			else
				redirect_error(req, ctx, dest, "temporarily_unavailable",
				    "the Microsoft OpenID configuration is unavailable");
			return;
		}
		if (rv != PA_OK)
			goto fail;
	}

	if (error != NULL) {
		const char *desc = pa_http_param(in, nin, "error_description");

		pa_log_warn("Microsoft sign-in for %s: the IdP answered error=%.64s description=%.200s",
		    fl.domain, error, desc ? desc : "-");
		if ((rv = audit_failure(req, ctx, &fl, NULL, "the identity provider refused")) != PA_OK)
			goto fail;
		redirect_error(req, ctx, dest, idp_error(error), "Microsoft sign-in failed");
		return;
	}
	if (code == NULL || *code == '\0' || strlen(code) > CODE_MAX ||
	    pa_http_param_count(in, nin, "code") > 1) {
		if ((rv = audit_failure(req, ctx, &fl, NULL, "no code")) != PA_OK)
			goto fail;
		redirect_error(req, ctx, dest, "invalid_request", "No authorization code");
		return;
	}
	rv = pa_oidc_finish(ctx->oidc, req->arena, &t, ruri, code, fl.verifier, fl.nonce, &id, &why);
	if (rv == PA_EUPSTREAM || rv == PA_EINPUT || rv == PA_ECONFIG) {
		enum pa_err arv = audit_failure(req, ctx, &fl, NULL, why);

		if (arv != PA_OK) {
			rv = arv;
			goto fail;
		}
		/* README "Microsoft 365 sign-in": which error each failure is. */
		redirect_error(req, ctx, dest, rv == PA_EUPSTREAM ? "temporarily_unavailable" :
		    rv == PA_ECONFIG ? "server_error" : "access_denied", why);
		return;
	}
	if (rv != PA_OK)
		goto fail;

	rv = pa_ms365_user_map(ctx->db, req->arena, t.tenant_id, id.oid, id.upn,
	    id.preferred_username, &u);
	if (rv != PA_OK && rv != PA_ENOTFOUND)
		goto fail;
	if (rv == PA_ENOTFOUND || !u.enabled) {
		/* Like a wrong password: one answer for unknown and disabled users. */
		pa_log_info("Microsoft account refused: %s oid=%s domain=%s",
		    rv == PA_ENOTFOUND ? "no user bound" : "user disabled", id.oid, fl.domain);
		char reason[128];

		snprintf(reason, sizeof(reason), "%s oid=%.40s", rv == PA_ENOTFOUND ?
		    "no user for the Microsoft account" : "user disabled", id.oid);
		if ((rv = audit_failure(req, ctx, &fl, rv == PA_OK ? &u : NULL, reason)) != PA_OK)
			goto fail;
		redirect_error(req, ctx, dest, "access_denied", "Authentication Error");
		return;
	}
	req->user_id = u.id;
	pa_metrics_inc(PA_M_MS365_SIGN_IN);	/* Microsoft vouched for an enabled user */

	if (u.two_factor) {
		char token[PA_TOKEN_LEN + 1];

		if ((rv = pa_session_two_factor(ctx->db, req->arena, ctx->cfg, &u, fl.flavour,
		    req->remote_addr, NULL, PA_VIA_MICROSOFT, token)) != PA_OK)
			goto fail;
		pa_outbound_param(&frag, "two_factor_enabled", "true");
		pa_outbound_param(&frag, "token", token);
		explicit_bzero(token, sizeof(token));
		redirect(req, ctx, dest, &frag);
		return;
	}
	{
		pa_tokens_t tok;
		char exp[24];

		if ((rv = pa_session_create(ctx->db, req->arena, ctx->cfg, &u, fl.flavour,
		    req->remote_addr, NULL, PA_VIA_MICROSOFT, &tok)) != PA_OK)
			goto fail;
		if (fl.flavour == PA_FLAVOUR_COOKIE) {
			pa_login_set_cookie(req, ctx, tok.refresh);
		} else {
			snprintf(exp, sizeof(exp), "%ld", tok.expires_in);
			pa_outbound_param(&frag, "token_type", "Bearer");
			pa_outbound_param(&frag, "access_token", tok.access);
			pa_outbound_param(&frag, "refresh_token", tok.refresh);
			pa_outbound_param(&frag, "expires_in", exp);
		}
		explicit_bzero(&tok, sizeof(tok));
		if (fl.flavour == PA_FLAVOUR_COOKIE) {
			pa_http_add_header(req, "Location: %s", dest);
			pa_http_reply(req, 302, NULL, 0);
			return;
		}
		redirect(req, ctx, dest, &frag);
		return;
	}
fail:
	pa_buf_free(&frag);
	pa_reply_failure(req, ctx, rv);
}
