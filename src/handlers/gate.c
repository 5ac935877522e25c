/*
 * The gate for the rest of the PBX: GET /api/auth/verify, nginx's
 * auth_request target (an internal location, deploy/nginx/pbx-auth-gate.conf.in),
 * and RFC 7662 POST /api/auth/introspect for services elsewhere.  Both look
 * tokens up through the per-worker cache (gate.h).
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "handlers.h"
#include "log.h"
#include "valid.h"

/*
 * Appends s to b with every byte outside printable ASCII (0x21-0x7E), and
 * '%', as %XX (RFC 3986 percent-encoding): a header value can then carry
 * neither CR/LF nor bytes a proxy might mangle.  Usernames are ASCII by the
 * schema; a domain written by hand need not be.
 */
static void
header_value(pa_buf_t *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c >= 0x7f || c == '%') {
			pa_buf_putc(b, '%');
			pa_buf_putc(b, hex[c >> 4]);
			pa_buf_putc(b, hex[c & 15]);
		} else {
			pa_buf_putc(b, (char)c);
		}
	}
}

static void
add_identity_header(pa_req_t *req, const char *name, const char *value)
{
	pa_buf_t b = PA_BUF_INIT;

	header_value(&b, value);
	if (!pa_buf_failed(&b))
		pa_http_add_header(req, "%s: %.*s", name, (int)b.len, b.p ? b.p : "");
	pa_buf_free(&b);
}

/*
 * Checks the roles= list of the auth_request URI: NULL when every name is a
 * role (setting *match when who's role is one of them), else the bad name.
 */
static const char *
roles_match(pa_req_t *req, const char *list, const char *role, bool *match)
{
	*match = false;
	for (const char *p = list; *p != '\0';) {
		size_t n = strcspn(p, ",");
		char *name = pa_strndup(req->arena, p, n);

		if (name == NULL || !pa_valid_role(name, NULL))
			return name ? name : "";
		if (strcmp(name, role) == 0)
			*match = true;
		p += n;
		if (*p == ',')
			p++;
	}
	return NULL;
}

/*
 * Whether the original request's method does not change state (RFC 7231
 * section 4.2.1).  nginx gives the original request line in
 * PBX_ORIGINAL_REQUEST ("GET /api/pbx/x HTTP/1.1"); without it, no.
 */
static bool
safe_method(const pa_req_t *req)
{
	const char *line = pa_http_env(req, "PBX_ORIGINAL_REQUEST");
	static const char *const safe[] = { "GET ", "HEAD ", "OPTIONS " };

	for (size_t i = 0; line != NULL && i < PA_NELEM(safe); i++)
		if (strncmp(line, safe[i], strlen(safe[i])) == 0)
			return true;
	return false;
}

void
pa_handle_gate_verify(pa_req_t *req, pa_ctx_t *ctx)
{
	const char *roles = pa_http_param(req->query, req->nquery, "roles");
	const char *allow = pa_http_param(req->query, req->nquery, "allow_force_reset");
	const char *token = pa_bearer_token(req), *bad;
	bool bearer = token != NULL, allowed, match = true;
	char num[32];
	pa_gate_who_t who;
	enum pa_err rv;

	if (roles != NULL && *roles == '\0')	/* the location set no roles: any */
		roles = NULL;
	if (roles != NULL && (bad = roles_match(req, roles, "", &match)) != NULL) {
		/* The operator's nginx line is wrong: say so where they look. */
		pa_log_error("gate: unknown role '%.40s' in roles= of the auth_request URI", bad);
		pa_http_reply_error(req, 500, NULL, "Unknown role in roles=", NULL);
		return;
	}
	if (!bearer) {
		token = pa_login_cookie(req, ctx);
		if (token == NULL) {
			pa_reply_invalid_token(req, true);
			return;
		}
		/* A cookie rides along on a foreign page's requests: CSRF. */
		if (!safe_method(req)) {
			if ((rv = pa_cookie_origin_check(req, ctx, &allowed)) != PA_OK) {
				pa_reply_failure(req, ctx, rv);
				return;
			}
			if (!allowed) {
				pa_http_reply_error(req, 403, NULL, "Origin not allowed", NULL);
				return;
			}
		}
	}
	rv = pa_gate_check(ctx->gate, ctx->db, req->arena, token, !bearer, &who);
	if (rv == PA_ENOTFOUND) {
		pa_reply_invalid_token(req, bearer);
		return;
	}
	if (rv != PA_OK) {
		pa_reply_failure(req, ctx, rv);
		return;
	}
	match = true;
	if (roles != NULL)	/* every name was checked above */
		(void)roles_match(req, roles, who.role, &match);
	if (!match || (who.force_reset && (allow == NULL || strcmp(allow, "1") != 0))) {
		pa_http_reply_error(req, 403, NULL,
		    match ? "Password change required" : "Role not allowed", NULL);
		return;
	}
	snprintf(num, sizeof(num), "%lld", who.user_id);
	add_identity_header(req, "X-PBX-User-Id", num);
	add_identity_header(req, "X-PBX-Username", who.username);
	add_identity_header(req, "X-PBX-Domain", who.domain);
	add_identity_header(req, "X-PBX-Role", who.role);
	snprintf(num, sizeof(num), "%lld", who.session_id);
	add_identity_header(req, "X-PBX-Session-Id", num);
	add_identity_header(req, "X-PBX-Auth", bearer ? "bearer" : "cookie");
	pa_http_reply(req, 204, NULL, 0);
}

/* A dummy hash compared when the client is unknown, so both cost the same. */
static const char dummy_hash[PA_SHA256_HEX_LEN + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/*
 * The client's credential (RFC 7662 section 2.1, RFC 6749 section 2.3.1):
 * HTTP Basic, else client_id and client_secret in the form.  True when the
 * client is known and its secret matches; *err set on PA_EDB.
 */
static bool
client_ok(pa_req_t *req, pa_ctx_t *ctx, enum pa_err *err)
{
	const char *h = pa_http_env(req, "HTTP_AUTHORIZATION"), *id = NULL, *secret = NULL;
	const char *params[1], *stored = dummy_hash;
	char given[PA_SHA256_HEX_LEN + 1], *did, *dsecret;
	unsigned char raw[384];
	size_t n;
	pa_db_res_t *r;
	char *colon;

	*err = PA_OK;
	if (h != NULL && strncasecmp(h, "Basic ", 6) == 0) {
		h += 6;
		while (*h == ' ')
			h++;
		if (!pa_base64_decode(h, strlen(h), raw, &n) || n >= sizeof(raw) ||
		    memchr(raw, '\0', n) != NULL)
			return false;
		raw[n] = '\0';
		if ((colon = strchr((char *)raw, ':')) == NULL)
			return false;
		*colon = '\0';
		/* RFC 6749 section 2.3.1: both were form-urlencoded first. */
		if (pa_http_decode(req->arena, (char *)raw, strlen((char *)raw), true, &did) != PA_OK ||
		    pa_http_decode(req->arena, colon + 1, strlen(colon + 1), true, &dsecret) != PA_OK)
			return false;
		id = did;
		secret = dsecret;
	} else {
		id = pa_http_param(req->form, req->nform, "client_id");
		secret = pa_http_param(req->form, req->nform, "client_secret");
	}
	if (id == NULL || secret == NULL || strlen(id) > 64)
		return false;
	params[0] = id;
	if ((*err = pa_db_exec(ctx->db, req->arena, PA_STMT_CLIENT_SECRET, params, &r)) != PA_OK)
		return false;
	if (pa_db_rows(r) == 1 && pa_db_value(r, 0, 0) != NULL &&
	    strlen(pa_db_value(r, 0, 0)) == PA_SHA256_HEX_LEN)
		stored = pa_db_value(r, 0, 0);
	if (pa_sha256_hex(secret, strlen(secret), given) != PA_OK)
		return false;
	return pa_ct_equal(given, stored, PA_SHA256_HEX_LEN) && stored != dummy_hash;
}

void
pa_handle_introspect(pa_req_t *req, pa_ctx_t *ctx)
{
	const char *token = pa_http_param(req->form, req->nform, "token");
	pa_buf_t b = PA_BUF_INIT;
	pa_gate_who_t who;
	enum pa_err rv;

	if (!client_ok(req, ctx, &rv)) {
		if (rv != PA_OK) {
			pa_reply_failure(req, ctx, rv);
			return;
		}
		pa_http_add_header(req, "WWW-Authenticate: Basic realm=\"pbx-auth\"");
		pa_http_reply_error(req, 401, "INVALID_CLIENT", "Invalid client credentials", NULL);
		return;
	}
	if (token == NULL) {
		pa_http_reply_error(req, 400, NULL, "token is required", NULL);
		return;
	}
	/* Only access tokens: a refresh token or a cookie is not active here. */
	rv = pa_gate_check(ctx->gate, ctx->db, req->arena, token, false, &who);
	if (rv == PA_ENOTFOUND) {
		pa_buf_puts(&b, "{\"active\":false}");
		pa_reply_json(req, ctx, &b);
		return;
	}
	if (rv != PA_OK) {
		pa_reply_failure(req, ctx, rv);
		return;
	}
	pa_buf_printf(&b, "{\"active\":true,\"sub\":\"%lld\",\"username\":", who.user_id);
	pa_buf_json_str(&b, who.username, strlen(who.username));
	pa_buf_puts(&b, ",\"domain\":");
	pa_buf_json_nstr(&b, *who.domain != '\0' ? who.domain : NULL);
	pa_buf_puts(&b, ",\"role\":");
	pa_buf_json_str(&b, who.role, strlen(who.role));
	pa_buf_printf(&b, ",\"exp\":%lld,\"iat\":%lld,\"token_type\":\"Bearer\"}", who.exp,
	    who.iat);
	pa_reply_json(req, ctx, &b);
}
