/*
 * Cryptographic primitives (the only user of OpenSSL, libxcrypt and
 * getrandom): SHA-256, HMAC, constant-time comparison, random tokens,
 * base64url, and password hashing.
 */
#ifndef PA_CRYPTO_H
#define PA_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#include "pa.h"

#define PA_SHA256_LEN 32
#define PA_SHA256_HEX_LEN 64

/* A token: 32 random bytes as base64url without padding. */
#define PA_TOKEN_BYTES 32
#define PA_TOKEN_LEN 43

/* libxcrypt's CRYPT_OUTPUT_SIZE: room for any hash and its NUL. */
#define PA_HASH_MAX 384
/* The longest password libxcrypt hashes, in bytes (CRYPT_MAX_PASSPHRASE_SIZE - 1). */
#define PA_PASSPHRASE_MAX 511

/* Writes the lower-case hex SHA-256 of p[0..n) and a NUL to out.  PA_OK or PA_ENOMEM. */
enum pa_err pa_sha256_hex(const void *p, size_t n, char out[PA_SHA256_HEX_LEN + 1]) PA_MUSTCHECK;

/* The SHA-256 of p[0..n) into out.  PA_OK or PA_ENOMEM (logged). */
enum pa_err pa_sha256(const void *p, size_t n, unsigned char out[PA_SHA256_LEN]) PA_MUSTCHECK;

/* HMAC-SHA256 of msg under key.  PA_OK or PA_ENOMEM (logged). */
enum pa_err pa_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
    unsigned char out[PA_SHA256_LEN]) PA_MUSTCHECK;

/* True when a[0..n) equals b[0..n); the time depends on n only. */
bool pa_ct_equal(const void *a, const void *b, size_t n);

/* Fills p with n bytes from the kernel (getrandom).  PA_OK or PA_ESYS (logged). */
enum pa_err pa_random(void *p, size_t n) PA_MUSTCHECK;

/*
 * Writes p[0..n) as base64url without padding, and a NUL, to out, which has
 * room for PA_B64URL_LEN(n) + 1 bytes.
 */
#define PA_B64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
void pa_base64url(const void *p, size_t n, char *out);
/*
 * Decodes base64url s[0..n) (no padding, no whitespace) into out, which has
 * room for n * 3 / 4 bytes; *outlen receives the length.  False on a
 * character outside the alphabet, an impossible length (n % 4 == 1) or
 * non-zero unused bits in the last character.
 */
bool pa_base64url_decode(const char *s, size_t n, unsigned char *out, size_t *outlen);

/*
 * Decodes standard base64 (RFC 4648 section 4, padded; HTTP Basic) s[0..n)
 * into out, which has room for n bytes.  False when malformed.
 */
bool pa_base64_decode(const char *s, size_t n, unsigned char *out, size_t *outlen);

/* A new random token (PA_TOKEN_LEN characters and a NUL).  PA_OK or PA_ESYS. */
enum pa_err pa_token_new(char out[PA_TOKEN_LEN + 1]) PA_MUSTCHECK;
/*
 * True when s[0..n) has the shape of a token: PA_TOKEN_LEN base64url
 * characters, the last one with the 2 unused low bits zero (as pa_token_new
 * writes it).
 */
bool pa_token_valid(const char *s, size_t n);

/*
 * Password hashing with libxcrypt.  A pa_passwd_t holds the settings for new
 * hashes (the preferred method, yescrypt, at a cost) and a dummy hash of the
 * same cost, verified when there is no real hash so that a sign-in takes the
 * same time whether or not the account exists.  It also holds crypt_rn's
 * scratch, so one pa_passwd_t serves one thread.
 */
typedef struct pa_passwd pa_passwd_t;

/*
 * cost 0 means libxcrypt's default for the preferred method.  Computes the
 * dummy hash (one full hashing).  Returns NULL on failure (logged).  Free
 * with pa_passwd_free.
 */
pa_passwd_t *pa_passwd_new(unsigned long cost);
void pa_passwd_free(pa_passwd_t *pw);

/*
 * Hashes password into out (PA_HASH_MAX bytes) with a fresh salt.  PA_OK,
 * PA_EINPUT when password is longer than PA_PASSPHRASE_MAX bytes, or PA_ESYS
 * (both logged).
 */
enum pa_err pa_passwd_hash(const pa_passwd_t *pw, const char *password, char out[PA_HASH_MAX])
	PA_MUSTCHECK;

/*
 * Verifies password against stored.  When stored is NULL, empty or
 * malformed (not starting with '$', like the markers "!" and "*…" and
 * descrypt hashes, or a method libxcrypt doesn't know), or password is
 * longer than PA_PASSPHRASE_MAX bytes, the dummy hash is verified instead
 * and the result is false.  True only on a match; an internal failure is a
 * mismatch (logged).  On a match *rehash says that stored should be
 * replaced by a new hash: a legacy method, a method other than the
 * preferred one ($2b$, $6$), or other cost parameters; rehash may be NULL.
 */
bool pa_passwd_verify(const pa_passwd_t *pw, const char *password, const char *stored,
    bool *rehash);

/*
 * How many password hashings (crypt_rn calls) this process has done: the
 * worker checks that only routes marked PA_CLASS_HASH hash (router.h).
 */
unsigned long pa_passwd_hashings(void);

#endif
