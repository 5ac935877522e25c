/*
 * The Microsoft 365 relying party: discovery and JWKS caches (per worker,
 * malloc-backed, keeping the last good copy when a refresh fails), the
 * authorization URL, code redemption and the ID token checks.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "http.h"
#include "json.h"
#include "jwt.h"
#include "log.h"
#include "metrics.h"
#include "oidc.h"
#include "outbound.h"

#define MAX_DOCS 32		/* cached discovery documents and key sets each */
#define MAX_KEYS 64		/* keys kept per key set */
#define MAX_RESPONSE PA_HTTP_MAX_BODY	/* bytes of any IdP response: what json.c parses */
#define SECRET_MAX 1024
#define AUTHORIZE_ENDPOINT_MAX 2048	/* bytes of the discovered authorization_endpoint */		/* bytes of a client secret file */
/* No offline_access: the IdP's refresh token would go unused (RFC 9700 section 2.3). */
#define SCOPE "openid profile email"

struct meta {
	char *url;		/* discovery URL: the key; NULL: free slot */
	char *issuer, *authorization_endpoint, *token_endpoint, *jwks_uri;
	time_t fetched;
};

struct jwk {
	char *kid, *n, *e;
};

struct keyset {
	char *uri;		/* jwks_uri: the key; NULL: free slot */
	struct jwk keys[MAX_KEYS];
	size_t nkeys;
	time_t fetched;
	time_t unknown_refetch;	/* last refetch for an unknown kid */
};

struct pa_oidc {
	const pa_config_t *cfg;
	struct meta metas[MAX_DOCS];
	struct keyset sets[MAX_DOCS];
};

pa_oidc_t *
pa_oidc_new(const pa_config_t *cfg)
{
	pa_oidc_t *o = calloc(1, sizeof(*o));

	if (o != NULL)
		o->cfg = cfg;
	return o;
}

static void
meta_clear(struct meta *m)
{
	free(m->url);
	free(m->issuer);
	free(m->authorization_endpoint);
	free(m->token_endpoint);
	free(m->jwks_uri);
	memset(m, 0, sizeof(*m));
}

static void
keys_clear(struct keyset *s)
{
	for (size_t i = 0; i < s->nkeys; i++) {
		free(s->keys[i].kid);
		free(s->keys[i].n);
		free(s->keys[i].e);
	}
	s->nkeys = 0;
}

void
pa_oidc_free(pa_oidc_t *o)
{
	if (o == NULL)
		return;
	for (size_t i = 0; i < MAX_DOCS; i++) {
		meta_clear(&o->metas[i]);
		keys_clear(&o->sets[i]);
		free(o->sets[i].uri);
	}
	free(o);
}

/* A directory id fit for a URL path segment: a GUID or a domain name. */
static bool
directory_ok(const char *d)
{
	size_t n = d != NULL ? strlen(d) : 0;

	return n > 0 && n <= 253 && strspn(d, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n && d[0] != '.';
}

static pa_outbound_req_t
request(const pa_oidc_t *o, const char *url, const char *form, const char *what)
{
	return (pa_outbound_req_t){ url, form, o->cfg->ms365_ca_file,
		o->cfg->ms365_connect_timeout, o->cfg->ms365_timeout, MAX_RESPONSE, what };
}

/* A JSON object from a 200 response, or NULL (logged as what). */
static pa_json_t *
json_ok(pa_arena_t *a, const pa_outbound_res_t *res, const char *what)
{
	pa_json_t *j = NULL;
	const char *why;

	if (res->status != 200) {
		pa_metrics_inc(PA_M_OUTBOUND_ERROR + PA_M_OUT_STATUS);
		pa_log_warn("%s answered status %ld", what, res->status);
		return NULL;
	}
	if (pa_json_parse_object(a, res->body, res->len, &j, &why) != PA_OK) {
		pa_metrics_inc(PA_M_OUTBOUND_ERROR + PA_M_OUT_INVALID);
		pa_log_warn("%s answered no JSON object: %s", what, why);
		return NULL;
	}
	return j;
}

static char *
member_dup(const pa_json_t *j, const char *key)
{
	const char *s;
	size_t n;

	if (pa_json_get_string(j, key, &s, &n) != PA_JSON_FOUND || n == 0)
		return NULL;
	return strndup(s, n);
}

/* The entry of url, else a free one, else the least recently fetched one. */
static struct meta *
meta_slot(pa_oidc_t *o, const char *url)
{
	struct meta *best = &o->metas[0];

	for (size_t i = 0; i < MAX_DOCS; i++) {
		struct meta *m = &o->metas[i];

		if (m->url != NULL && strcmp(m->url, url) == 0)
			return m;
		if (best->url != NULL && (m->url == NULL || m->fetched < best->fetched))
			best = m;
	}
	return best;
}

/* The same for key sets, by jwks_uri. */
static struct keyset *
keyset_slot(pa_oidc_t *o, const char *uri)
{
	struct keyset *best = &o->sets[0];

	for (size_t i = 0; i < MAX_DOCS; i++) {
		struct keyset *k = &o->sets[i];

		if (k->uri != NULL && strcmp(k->uri, uri) == 0)
			return k;
		if (best->uri != NULL && (k->uri == NULL || k->fetched < best->fetched))
			best = k;
	}
	return best;
}

/*
 * The discovery document of authority and directory, fetched when absent or
 * older than ms365_metadata_ttl; a failed refresh keeps the last good one.
 */
static enum pa_err
get_meta(pa_oidc_t *o, pa_arena_t *a, const char *authority, const char *dir,
    const struct meta **out)
{
	char *url;
	pa_outbound_req_t req;
	pa_outbound_res_t res;
	struct meta *m, fresh = { 0 };
	pa_json_t *j;
	time_t now = time(NULL);
	size_t n;
	enum pa_err rv;

	*out = NULL;
	n = strlen(authority) + strlen(dir) + 64;
	if ((url = pa_alloc(a, n)) == NULL)
		return PA_ENOMEM;
	snprintf(url, n, "%s/%s/v2.0/.well-known/openid-configuration", authority, dir);
	m = meta_slot(o, url);
	if (m->url != NULL && strcmp(m->url, url) == 0 &&
	    now - m->fetched < o->cfg->ms365_metadata_ttl) {
		*out = m;
		return PA_OK;
	}
	req = request(o, url, NULL, "OpenID discovery");
	rv = pa_outbound_fetch(a, &req, &res);
	if (rv == PA_ENOMEM)
		return rv;
	if (rv == PA_OK && (j = json_ok(a, &res, "OpenID discovery")) != NULL) {
		fresh.issuer = member_dup(j, "issuer");
		fresh.authorization_endpoint = member_dup(j, "authorization_endpoint");
		/* It becomes a Location header with ~600 bytes of parameters. */
		if (fresh.authorization_endpoint != NULL &&
		    strlen(fresh.authorization_endpoint) > AUTHORIZE_ENDPOINT_MAX) {
			free(fresh.authorization_endpoint);
			fresh.authorization_endpoint = NULL;
		}
		fresh.token_endpoint = member_dup(j, "token_endpoint");
		fresh.jwks_uri = member_dup(j, "jwks_uri");
		fresh.url = strdup(url);
		if (fresh.issuer != NULL && fresh.authorization_endpoint != NULL &&
		    fresh.token_endpoint != NULL &&
		    fresh.jwks_uri != NULL && fresh.url != NULL) {
			fresh.fetched = now;
			meta_clear(m);
			*m = fresh;
			*out = m;
			return PA_OK;
		}
		pa_log_warn("OpenID discovery %s: issuer, authorization_endpoint, token_endpoint"
		    " or jwks_uri missing", url);
		meta_clear(&fresh);
	}
	if (m->url != NULL && strcmp(m->url, url) == 0) {
		pa_log_warn("OpenID discovery %s failed: using the copy of %lds ago", url,
		    (long)(now - m->fetched));
		*out = m;
		return PA_OK;
	}
	return PA_EUPSTREAM;
}

/* Replaces s's keys with the RSA signing keys of a JWKS document. */
static enum pa_err
fetch_keys(pa_oidc_t *o, pa_arena_t *a, struct keyset *s, const char *uri)
{
	pa_outbound_req_t req = request(o, uri, NULL, "JWKS");
	pa_outbound_res_t res;
	const pa_json_t *arr, *k;
	struct jwk got[MAX_KEYS];
	size_t n, ngot = 0;
	pa_json_t *j;
	enum pa_err rv;

	if ((rv = pa_outbound_fetch(a, &req, &res)) != PA_OK)
		return rv == PA_ENOMEM ? rv : PA_EUPSTREAM;
	if ((j = json_ok(a, &res, "JWKS")) == NULL)
		return PA_EUPSTREAM;
	if (pa_json_get_array(j, "keys", &arr, &n) != PA_JSON_FOUND) {
		pa_log_warn("JWKS %s: no keys array", uri);
		return PA_EUPSTREAM;
	}
	for (size_t i = 0; i < n && ngot < MAX_KEYS; i++) {
		const char *kty, *use;
		size_t len;

		if ((k = pa_json_at(arr, i)) == NULL ||
		    pa_json_get_string(k, "kty", &kty, &len) != PA_JSON_FOUND ||
		    strcmp(kty, "RSA") != 0)
			continue;
		if (pa_json_get_string(k, "use", &use, &len) == PA_JSON_FOUND &&
		    strcmp(use, "sig") != 0)
			continue;
		/* RFC 7517 section 4.4: a key meant for another algorithm is not an RS256 key. */
		if (pa_json_get_string(k, "alg", &use, &len) == PA_JSON_FOUND &&
		    strcmp(use, "RS256") != 0)
			continue;
		got[ngot].kid = member_dup(k, "kid");	/* optional */
		got[ngot].n = member_dup(k, "n");
		got[ngot].e = member_dup(k, "e");
		if (got[ngot].n == NULL || got[ngot].e == NULL) {
			free(got[ngot].kid);
			free(got[ngot].n);
			free(got[ngot].e);
			continue;
		}
		ngot++;
	}
	if (ngot == 0) {
		pa_log_warn("JWKS %s: no RSA signing key", uri);
		return PA_EUPSTREAM;
	}
	if (s->uri == NULL || strcmp(s->uri, uri) != 0) {
		char *u = strdup(uri);

		if (u == NULL) {
			for (size_t i = 0; i < ngot; i++) {
				free(got[i].kid);
				free(got[i].n);
				free(got[i].e);
			}
			return PA_ENOMEM;
		}
		keys_clear(s);
		free(s->uri);
		s->uri = u;
		s->unknown_refetch = 0;
	}
	keys_clear(s);
	memcpy(s->keys, got, ngot * sizeof(got[0]));
	s->nkeys = ngot;
	s->fetched = time(NULL);
	pa_log_info("JWKS fetched uri=%s keys=%zu", uri, ngot);
	return PA_OK;
}

/*
 * The key of kid; for a token without kid (RFC 7515 section 4.1.4: kid is
 * optional), the only key of a set that holds exactly one.
 */
static const struct jwk *
find_kid(const struct keyset *s, const char *kid)
{
	if (s->uri == NULL)
		return NULL;
	if (kid == NULL)
		return s->nkeys == 1 ? &s->keys[0] : NULL;
	for (size_t i = 0; i < s->nkeys; i++)
		if (s->keys[i].kid != NULL && strcmp(s->keys[i].kid, kid) == 0)
			return &s->keys[i];
	return NULL;
}

/*
 * The key kid of the JWKS at uri.  The set is fetched when absent or older
 * than ms365_metadata_ttl (a failed refresh keeps the old keys), and once
 * more for an unknown kid unless that happened less than
 * PA_OIDC_JWKS_REFETCH seconds ago.  kid NULL: the only key of the set
 * (no refetch).  PA_OK; PA_EINPUT (unknown kid, or no kid and not exactly one key);
 * PA_EUPSTREAM (no keys at all); PA_ENOMEM.
 */
static enum pa_err
get_key(pa_oidc_t *o, pa_arena_t *a, const char *uri, const char *kid, const struct jwk **out)
{
	struct keyset *s;
	time_t now = time(NULL);
	enum pa_err rv;

	*out = NULL;
	s = keyset_slot(o, uri);
	if (s->uri == NULL || strcmp(s->uri, uri) != 0 ||
	    now - s->fetched >= o->cfg->ms365_metadata_ttl) {
		rv = fetch_keys(o, a, s, uri);
		if (rv == PA_ENOMEM)
			return rv;
		if (rv != PA_OK && (s->uri == NULL || strcmp(s->uri, uri) != 0))
			return PA_EUPSTREAM;
		if (rv != PA_OK)
			pa_log_warn("JWKS %s: refresh failed, keeping the keys of %lds ago", uri,
			    (long)(now - s->fetched));
	}
	if ((*out = find_kid(s, kid)) != NULL)
		return PA_OK;
	if (kid == NULL)	/* no kid: nothing a refetch could name */
		return PA_EINPUT;
	if (now - s->unknown_refetch < PA_OIDC_JWKS_REFETCH) {
		pa_log_warn("JWKS %s: unknown kid; the last refetch was %lds ago", uri,
		    (long)(now - s->unknown_refetch));
		return PA_EINPUT;
	}
	s->unknown_refetch = now;
	pa_log_info("JWKS refetch for an unknown kid uri=%s", uri);
	if ((rv = fetch_keys(o, a, s, uri)) == PA_ENOMEM)
		return rv;
	s->unknown_refetch = now;
	return (*out = find_kid(s, kid)) != NULL ? PA_OK : PA_EINPUT;
}

/* The discovery document of tenant t's directory.  As get_meta, plus PA_EINPUT. */
static enum pa_err
tenant_meta(pa_oidc_t *o, pa_arena_t *a, const pa_ms365_tenant_t *t, const struct meta **m)
{
	*m = NULL;
	if (!directory_ok(t->directory_id)) {
		pa_log_error("tenant %s: Microsoft directory id is not a GUID or domain name",
		    t->domain);
		return PA_EINPUT;
	}
	return get_meta(o, a, pa_ms365_authority(o->cfg, t->cloud), t->directory_id, m);
}

enum pa_err
pa_oidc_start(const pa_ms365_tenant_t *t, pa_oidc_start_t *out)
{
	enum pa_err rv;

	memset(out, 0, sizeof(*out));
	if (!directory_ok(t->directory_id)) {
		pa_log_error("tenant %s: Microsoft directory id is not a GUID or domain name",
		    t->domain);
		return PA_EINPUT;
	}
	if ((rv = pa_token_new(out->state)) != PA_OK || (rv = pa_token_new(out->nonce)) != PA_OK ||
	    (rv = pa_token_new(out->verifier)) != PA_OK)
		return rv;
	return PA_OK;
}

enum pa_err
pa_oidc_authorize_url(pa_oidc_t *o, pa_arena_t *a, const pa_ms365_tenant_t *t,
    const char *redirect_uri, const char *state, const char *nonce, const char *verifier,
    char **url)
{
	unsigned char md[PA_SHA256_LEN];
	char challenge[PA_B64URL_LEN(PA_SHA256_LEN) + 1];
	const struct meta *m;
	pa_buf_t b = PA_BUF_INIT;
	enum pa_err rv;

	*url = NULL;
	if ((rv = tenant_meta(o, a, t, &m)) != PA_OK)
		return rv;
	/* RFC 7636 section 4.2: BASE64URL(SHA256(ASCII(code_verifier))). */
	if ((rv = pa_sha256(verifier, strlen(verifier), md)) != PA_OK)
		return rv;
	pa_base64url(md, sizeof(md), challenge);
	/* The endpoint the discovery document names (OpenID Connect Discovery section 3). */
	pa_buf_puts(&b, m->authorization_endpoint);
	if (strchr(m->authorization_endpoint, '?') == NULL)
		pa_buf_putc(&b, '?');
	pa_outbound_param(&b, "client_id", t->application_id);
	pa_outbound_param(&b, "response_type", "code");
	pa_outbound_param(&b, "redirect_uri", redirect_uri);
	/*
	 * query: the response is a top-level GET, which carries the SameSite=Lax
	 * binding cookie; a cross-site form_post would not.
	 */
	pa_outbound_param(&b, "response_mode", "query");
	pa_outbound_param(&b, "scope", SCOPE);
	pa_outbound_param(&b, "state", state);
	pa_outbound_param(&b, "nonce", nonce);
	pa_outbound_param(&b, "code_challenge", challenge);
	pa_outbound_param(&b, "code_challenge_method", "S256");
	rv = PA_ENOMEM;
	if (!pa_buf_failed(&b) && (*url = pa_strndup(a, b.p, b.len)) != NULL)
		rv = PA_OK;
	pa_buf_free(&b);
	return rv;
}

/* Reads the client secret file into buf (trailing whitespace dropped).  PA_OK or PA_EINPUT (logged). */
static enum pa_err
read_secret(const char *path, char *buf, size_t buflen)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL) {
		pa_log_error("client secret file %s: %s", path, strerror(errno));
		return PA_EINPUT;
	}
	n = fread(buf, 1, buflen - 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
	    buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	if (n == 0 || n == buflen - 1 || memchr(buf, '\0', n) != NULL) {
		pa_log_error("client secret file %s: empty, too long or binary", path);
		explicit_bzero(buf, buflen);
		return PA_EINPUT;
	}
	return PA_OK;
}

/*
 * The id_token of a successful token response.  Otherwise NULL with *why and
 * *rv: an answer that refuses the code (invalid_grant: expired, redeemed,
 * PKCE or redirect_uri mismatch) is PA_EINPUT (the user's access_denied); one
 * that refuses us (invalid_client, unauthorized_client, any other OAuth
 * error: our application id, credential or request is wrong) is PA_ECONFIG
 * (server_error); a 5xx, or no JSON or no error code, is PA_EUPSTREAM
 * (temporarily_unavailable).  RFC 6749 section 5.2.
 */
static const char *
token_response(pa_arena_t *a, const pa_outbound_res_t *res, const char **why, enum pa_err *rv)
{
	pa_json_t *j = NULL;
	const char *s, *jwhy, *err = NULL, *desc = NULL;
	size_t n;

	*rv = PA_EUPSTREAM;
	if (pa_json_parse_object(a, res->body, res->len, &j, &jwhy) != PA_OK) {
		pa_metrics_inc(PA_M_OUTBOUND_ERROR + PA_M_OUT_INVALID);
		pa_log_warn("token endpoint answered status %ld and no JSON object: %s",
		    res->status, jwhy);
		*why = "the token endpoint answered nonsense";
		return NULL;
	}
	if (res->status != 200) {
		pa_metrics_inc(PA_M_OUTBOUND_ERROR + PA_M_OUT_STATUS);
		(void)pa_json_get_string(j, "error", &err, &n);
		(void)pa_json_get_string(j, "error_description", &desc, &n);
		if (res->status >= 500 || err == NULL) {
			pa_log_warn("token endpoint answered status %ld error=%.64s description=%.200s:"
			    " answering temporarily_unavailable", res->status, err ? err : "-",
			    desc ? desc : "-");
			*why = "the token endpoint is unavailable";
		} else if (strcmp(err, "invalid_grant") == 0) {
			pa_log_warn("token endpoint refused the code: error=%.64s description=%.200s:"
			    " answering access_denied", err, desc ? desc : "-");
			*why = "the token endpoint refused the code";
			*rv = PA_EINPUT;
		} else {
			pa_log_error("token endpoint refused our client credential: error=%.64s"
			    " description=%.200s: answering server_error (check the tenant's"
			    " application id and credential)", err, desc ? desc : "-");
			*why = "the token endpoint refused this service's credentials";
			*rv = PA_ECONFIG;
		}
		return NULL;
	}
	if (pa_json_get_string(j, "id_token", &s, &n) != PA_JSON_FOUND) {
		pa_metrics_inc(PA_M_OUTBOUND_ERROR + PA_M_OUT_INVALID);
		pa_log_warn("token endpoint answered no id_token");
		*why = "the token endpoint answered no ID token";
		return NULL;
	}
	return s;
}

/* A string claim, or NULL. */
static const char *
claim(const pa_jwt_t *t, const char *key)
{
	const char *s;
	size_t n;

	return pa_json_get_string(t->claims, key, &s, &n) == PA_JSON_FOUND ? s : NULL;
}

/* The issuer metadata names, with "{tenantid}" replaced by dir (arena), or NULL. */
static char *
expected_issuer(pa_arena_t *a, const char *issuer, const char *dir)
{
	const char *p = strstr(issuer, "{tenantid}");
	pa_buf_t b = PA_BUF_INIT;
	char *s = NULL;

	if (p == NULL)
		return pa_strdup(a, issuer);
	pa_buf_append(&b, issuer, (size_t)(p - issuer));
	pa_buf_puts(&b, dir);
	pa_buf_puts(&b, p + strlen("{tenantid}"));
	if (!pa_buf_failed(&b))
		s = pa_strndup(a, b.p, b.len);
	pa_buf_free(&b);
	return s;
}

/*
 * The tid the token must carry: the directory id when it is a GUID; for a
 * directory given by domain name, the GUID Microsoft's issuer names
 * (https://host/<tid>/v2.0).  NULL when it cannot be known (logged).
 */
static const char *
expected_tid(pa_arena_t *a, const char *issuer, const char *dir)
{
	const char *p = strstr(issuer, "://"), *seg;
	char *tid;

	if (pa_ms365_guid(dir))
		return dir;
	if (p == NULL || (p = strchr(p + 3, '/')) == NULL)
		goto none;
	seg = p + 1;
	if ((tid = pa_strndup(a, seg, strcspn(seg, "/"))) == NULL || !pa_ms365_guid(tid))
		goto none;
	return tid;
none:
	pa_log_error("directory %s: its issuer %s names no tenant id; set the directory's GUID",
	    dir, issuer);
	return NULL;
}

/* The claim checks after the signature.  NULL when all pass, else what failed. */
static const char *
check_claims(pa_arena_t *a, const pa_jwt_t *t, const pa_ms365_tenant_t *ten, const char *issuer,
    const char *nonce, bool *oom)
{
	const char *iss = claim(t, "iss"), *aud = claim(t, "aud"), *tid = claim(t, "tid");
	const char *got_nonce = claim(t, "nonce"), *want_iss, *want_tid;
	long long exp, nbf, iat, now = (long long)time(NULL);

	*oom = false;
	if ((want_iss = expected_issuer(a, issuer, ten->directory_id)) == NULL) {
		*oom = true;
		return "out of memory";
	}
	if (iss == NULL || strcmp(iss, want_iss) != 0)
		return "wrong iss";
	/* OpenID Connect Core section 2: a string, or an array holding the client id. */
	if (aud == NULL) {
		const pa_json_t *arr;
		size_t n;

		if (pa_json_get_array(t->claims, "aud", &arr, &n) == PA_JSON_FOUND && n == 1)
			aud = pa_json_string_at(arr, 0);
	}
	if (aud == NULL || strcmp(aud, ten->application_id) != 0)
		return "wrong aud";
	if ((want_tid = expected_tid(a, issuer, ten->directory_id)) == NULL)
		return "no tenant id to compare tid with";
	if (tid == NULL || strcasecmp(tid, want_tid) != 0)
		return "wrong tid";
	if (pa_json_get_int(t->claims, "exp", &exp) != PA_JSON_FOUND || exp + PA_OIDC_SKEW <= now)
		return "expired (exp)";
	switch (pa_json_get_int(t->claims, "nbf", &nbf)) {
	case PA_JSON_FOUND:
		if (nbf - PA_OIDC_SKEW > now)
			return "not yet valid (nbf)";
		break;
	case PA_JSON_ABSENT:
		break;
	case PA_JSON_WRONG_TYPE:
		return "nbf is not a number";
	}
	if (pa_json_get_int(t->claims, "iat", &iat) != PA_JSON_FOUND || iat - PA_OIDC_SKEW > now)
		return "issued in the future or no iat";
	if (got_nonce == NULL || strlen(got_nonce) != strlen(nonce) ||
	    !pa_ct_equal(got_nonce, nonce, strlen(nonce)))
		return "wrong nonce";
	if (claim(t, "oid") == NULL || !pa_ms365_guid(claim(t, "oid")))
		return "no oid (a GUID)";
	/* OpenID Connect Core section 2: sub is REQUIRED. */
	if (claim(t, "sub") == NULL || *claim(t, "sub") == '\0')
		return "no sub";
	return NULL;
}

enum pa_err
pa_oidc_finish(pa_oidc_t *o, pa_arena_t *a, const pa_ms365_tenant_t *t, const char *redirect_uri,
    const char *code, const char *verifier, const char *nonce, pa_oidc_identity_t *id,
    const char **why)
{
	char secret[SECRET_MAX];
	const struct meta *m;
	const struct jwk *key;
	const char *idtok, *reason;
	pa_buf_t form = PA_BUF_INIT;
	pa_outbound_req_t req;
	pa_outbound_res_t res;
	pa_jwt_t jwt;
	bool oom;
	enum pa_err rv;

	memset(id, 0, sizeof(*id));
	secret[0] = '\0';
	*why = "Microsoft sign-in failed";
	if ((rv = tenant_meta(o, a, t, &m)) != PA_OK) {
		if (rv == PA_EUPSTREAM)
			*why = "the Microsoft OpenID configuration is unavailable";
		return rv;
	}

	/* FACTS.md §1 "Token endpoint": the code, the verifier, the credential. */
	pa_outbound_param(&form, "client_id", t->application_id);
	pa_outbound_param(&form, "grant_type", "authorization_code");
	pa_outbound_param(&form, "code", code);
	pa_outbound_param(&form, "redirect_uri", redirect_uri);
	pa_outbound_param(&form, "code_verifier", verifier);
	pa_outbound_param(&form, "scope", SCOPE);
	if (t->certificate_file != NULL && t->private_key_file != NULL) {
		pa_jwt_assertion_t as = { t->certificate_file, t->private_key_file,
			t->application_id, m->token_endpoint, (long long)time(NULL) };
		char *assertion;

		if ((rv = pa_jwt_sign_assertion(a, &as, &assertion)) != PA_OK) {
			*why = "the tenant's certificate credential is unusable";
			if (rv == PA_EINPUT)
				rv = PA_ECONFIG;
			goto out;
		}
		pa_outbound_param(&form, "client_assertion_type",
		    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
		pa_outbound_param(&form, "client_assertion", assertion);
	} else if (t->client_secret_file != NULL) {
		if ((rv = read_secret(t->client_secret_file, secret, sizeof(secret))) != PA_OK) {
			*why = "the tenant's client secret is unusable";
			rv = PA_ECONFIG;
			goto out;
		}
		pa_outbound_param(&form, "client_secret", secret);
	} else {
		pa_log_error("tenant %s: no Microsoft credential", t->domain);
		*why = "the tenant has no Microsoft credential";
		rv = PA_ECONFIG;
		goto out;
	}
	if (pa_buf_failed(&form)) {
		rv = PA_ENOMEM;
		goto out;
	}
	req = request(o, m->token_endpoint, form.p, "token endpoint");
	if ((rv = pa_outbound_fetch(a, &req, &res)) != PA_OK) {
		if (rv != PA_ENOMEM)
			rv = PA_EUPSTREAM;
		*why = "the token endpoint is unavailable";
		goto out;
	}
	if ((idtok = token_response(a, &res, why, &rv)) == NULL)
		goto out;

	/* FACTS.md §1 "ID token validation": the signature first, then the claims. */
	rv = PA_EINPUT;
	*why = "the ID token is invalid";
	if (pa_jwt_parse(a, idtok, &jwt, &reason) != PA_OK) {
		pa_log_warn("ID token refused: %s", reason);
		goto out;
	}
	if (strcmp(jwt.alg, "RS256") != 0) {
		pa_log_warn("ID token refused: alg %.20s is not RS256", jwt.alg);
		goto out;
	}
	if ((rv = get_key(o, a, m->jwks_uri, jwt.kid, &key)) != PA_OK) {
		if (rv == PA_EINPUT && jwt.kid == NULL)
			pa_log_warn("ID token refused: no kid, and the key set has not exactly one key");
		else if (rv == PA_EINPUT)
			pa_log_warn("ID token refused: unknown kid %.64s", jwt.kid);
		else
			*why = "the Microsoft signing keys are unavailable";
		goto out;
	}
	if ((rv = pa_jwt_verify_rs256(&jwt, key->n, key->e, &reason)) != PA_OK) {
		pa_log_warn("ID token refused: %s", reason);
		goto out;
	}
	if ((reason = check_claims(a, &jwt, t, m->issuer, nonce, &oom)) != NULL) {
		rv = oom ? PA_ENOMEM : PA_EINPUT;
		pa_log_warn("ID token refused: %s", reason);
		goto out;
	}
	id->oid = claim(&jwt, "oid");
	id->tid = claim(&jwt, "tid");
	id->upn = claim(&jwt, "upn");
	id->preferred_username = claim(&jwt, "preferred_username");
	*why = NULL;
	rv = PA_OK;
out:
	explicit_bzero(secret, sizeof(secret));
	if (form.p != NULL)
		explicit_bzero(form.p, form.cap);
	pa_buf_free(&form);
	return rv;
}

enum pa_err
pa_oidc_check_iss(pa_oidc_t *o, pa_arena_t *a, const pa_ms365_tenant_t *t, const char *iss)
{
	const struct meta *m;
	const char *want;
	enum pa_err rv;

	if ((rv = tenant_meta(o, a, t, &m)) != PA_OK)
		return rv;
	if ((want = expected_issuer(a, m->issuer, t->directory_id)) == NULL)
		return PA_ENOMEM;
	if (strcmp(iss, want) != 0) {
		pa_log_warn("authorization response of tenant %s: iss is not the issuer %s",
		    t->domain, want);
		return PA_EINPUT;
	}
	return PA_OK;
}
