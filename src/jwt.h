/*
 * JSON Web Tokens as an OpenID Connect relying party needs them (RFC 7515,
 * 7518, 7519): parsing a compact JWS, verifying an RS256 signature with an
 * RSA JSON Web Key, and signing the PS256 client assertion Microsoft's
 * token endpoint accepts instead of a client secret.  OpenSSL EVP only;
 * "none", HMAC and every algorithm other than RS256 are refused.
 */
#ifndef PA_JWT_H
#define PA_JWT_H

#include <stddef.h>

#include "arena.h"
#include "json.h"
#include "pa.h"

/* Largest compact token accepted, in bytes. */
#define PA_JWT_MAX 16384

/* A parsed compact JWS (arena memory). */
typedef struct {
	const char *alg, *kid;		/* from the header; kid may be NULL */
	const pa_json_t *header, *claims;
	const char *signing_input;	/* header.payload, as received */
	size_t signing_len;
	unsigned char *sig;
	size_t siglen;
} pa_jwt_t;

/*
 * Parses header.payload.signature: three base64url parts, a JSON object
 * header with a string alg, and a JSON object payload.  PA_OK, PA_EINPUT
 * (*why says what is wrong), PA_ENOMEM.
 */
enum pa_err pa_jwt_parse(pa_arena_t *a, const char *compact, pa_jwt_t *out, const char **why)
	PA_MUSTCHECK;

/*
 * Verifies t's RS256 signature with the RSA public key (n, e: base64url
 * big-endian integers of a JWK).  Refuses every alg but "RS256" and
 * moduli under 2048 bits.  PA_OK when valid; PA_EINPUT (*why) otherwise;
 * PA_ENOMEM.
 */
enum pa_err pa_jwt_verify_rs256(const pa_jwt_t *t, const char *n, const char *e,
    const char **why) PA_MUSTCHECK;

/* A client assertion's inputs (RFC 7523; Microsoft's "certificate credentials"). */
typedef struct {
	const char *certificate_file;	/* PEM X.509: x5t#S256 is its DER's SHA-256 */
	const char *private_key_file;	/* PEM private key (RSA) of the certificate */
	const char *client_id;		/* iss and sub */
	const char *audience;		/* aud: the token endpoint */
	long long now;			/* nbf = iat = now, exp = now + 300 */
} pa_jwt_assertion_t;

/*
 * Signs the assertion with PS256 (RSASSA-PSS, SHA-256, MGF1-SHA-256, salt
 * 32 bytes) under the header {"alg":"PS256","typ":"JWT","x5t#S256":…}, with
 * a random jti.  *out is the compact token (arena).  PA_OK; PA_EINPUT when a
 * file cannot be read or holds no usable key or certificate (logged);
 * PA_ENOMEM; PA_ESYS.
 */
enum pa_err pa_jwt_sign_assertion(pa_arena_t *a, const pa_jwt_assertion_t *in, char **out)
	PA_MUSTCHECK;

#endif
