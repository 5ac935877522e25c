/*
 * The OpenID Connect relying party for Microsoft 365 (FACTS.md §1, §2):
 * OpenID discovery per authority and directory and the JWKS of each
 * jwks_uri, cached per worker; the authorization URL (state, nonce, PKCE
 * S256); code redemption at the token endpoint with the tenant's client
 * secret or a certificate assertion; and the ID token checks.
 */
#ifndef PA_OIDC_H
#define PA_OIDC_H

#include "arena.h"
#include "config.h"
#include "crypto.h"
#include "ms365.h"
#include "pa.h"

/* Clock skew allowed on exp, nbf and iat (Microsoft.IdentityModel's default). */
#define PA_OIDC_SKEW 300
/* An unknown kid refetches the JWKS at most this often (seconds). */
#define PA_OIDC_JWKS_REFETCH 60

typedef struct pa_oidc pa_oidc_t;

/* A worker's caches (free with pa_oidc_free), or NULL when out of memory. */
pa_oidc_t *pa_oidc_new(const pa_config_t *cfg);
void pa_oidc_free(pa_oidc_t *o);

/* A started sign-in: what the flow row keeps. */
typedef struct {
	char state[PA_TOKEN_LEN + 1];
	char nonce[PA_TOKEN_LEN + 1];
	char verifier[PA_TOKEN_LEN + 1];	/* PKCE: 32 random bytes, base64url */
} pa_oidc_start_t;

/*
 * New state, nonce and PKCE verifier for a sign-in with tenant t.  PA_OK,
 * PA_EINPUT (a directory id unfit for a URL; logged), PA_ESYS.
 */
enum pa_err pa_oidc_start(const pa_ms365_tenant_t *t, pa_oidc_start_t *out) PA_MUSTCHECK;

/*
 * The authorization URL (*url, arena) of tenant t's directory: the
 * discovery document's authorization_endpoint with client_id,
 * response_type=code, redirect_uri, response_mode=query (the callback is a
 * top-level GET, which carries the SameSite=Lax binding cookie), scope
 * "openid profile email", state, nonce and the S256 code_challenge of
 * verifier.  PA_OK, PA_EUPSTREAM (no discovery document), PA_EINPUT (a
 * directory id unfit for a URL; logged), PA_ENOMEM, PA_ESYS.
 */
enum pa_err pa_oidc_authorize_url(pa_oidc_t *o, pa_arena_t *a, const pa_ms365_tenant_t *t,
    const char *redirect_uri, const char *state, const char *nonce, const char *verifier,
    char **url) PA_MUSTCHECK;

/*
 * RFC 9207: the iss parameter of an authorization response must be the
 * issuer of tenant t's discovery document ({tenantid} resolved).  PA_OK;
 * PA_EINPUT (another issuer; logged); PA_EUPSTREAM (no discovery document);
 * PA_ENOMEM.
 */
enum pa_err pa_oidc_check_iss(pa_oidc_t *o, pa_arena_t *a, const pa_ms365_tenant_t *t,
    const char *iss) PA_MUSTCHECK;

/* The Microsoft account an ID token proved (arena strings; upn and preferred_username may be NULL). */
typedef struct {
	const char *oid, *tid, *upn, *preferred_username;
} pa_oidc_identity_t;

/*
 * Redeems code at the tenant's token endpoint (with verifier, and the client
 * secret from its file or a certificate assertion) and checks the ID token:
 * RS256 only, signature with the JWKS key of its kid (one refetch on an
 * unknown kid, at most every PA_OIDC_JWKS_REFETCH seconds), iss = the
 * discovery issuer with {tenantid} = the directory, aud = the application,
 * exp/nbf/iat within PA_OIDC_SKEW, nonce, tid = the directory, an oid.
 * PA_OK with *id; PA_EUPSTREAM when discovery, the JWKS or the token endpoint
 * cannot be reached, fails (5xx) or answers nonsense; PA_EINPUT when the
 * token endpoint refuses the code (invalid_grant) or the ID token is
 * refused; PA_ECONFIG when our own configuration is at fault (the token
 * endpoint answers invalid_client or another OAuth error, the tenant's
 * credential is unusable; logged as an error); PA_ENOMEM; PA_ESYS.  *why is a short
 * description for the log and the error redirect (never a secret).
 */
enum pa_err pa_oidc_finish(pa_oidc_t *o, pa_arena_t *a, const pa_ms365_tenant_t *t,
    const char *redirect_uri, const char *code, const char *verifier, const char *nonce,
    pa_oidc_identity_t *id, const char **why) PA_MUSTCHECK;

#endif
