/*
 * Cryptographic primitives: hashing and HMAC with OpenSSL's EVP interface,
 * randomness from getrandom(2), tokens, base64url, and password hashing with
 * libxcrypt (the only module that calls these libraries).
 */
#include "autoconfig.h"

#include <crypt.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto.h"
#include "log.h"

_Static_assert(PA_HASH_MAX == CRYPT_OUTPUT_SIZE, "PA_HASH_MAX is libxcrypt's CRYPT_OUTPUT_SIZE");
_Static_assert(PA_PASSPHRASE_MAX == CRYPT_MAX_PASSPHRASE_SIZE - 1,
    "PA_PASSPHRASE_MAX is the longest passphrase libxcrypt accepts");
_Static_assert(PA_TOKEN_LEN == PA_B64URL_LEN(PA_TOKEN_BYTES), "a token is 32 bytes in base64url");

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/*
 * SHA-256 of p into md.  The implementation is fetched once and the context
 * kept for the process's life: EVP_Digest with EVP_sha256() makes OpenSSL 3
 * look the implementation up and allocate a context on every call, which
 * costs four times the digest of a token (0.39 against 0.09 us, hot; more
 * with the cold caches of a request).  The processes that call it are
 * single-threaded.
 */
static bool
sha256(const void *p, size_t n, unsigned char md[PA_SHA256_LEN])
{
	static EVP_MD *alg;
	static EVP_MD_CTX *ctx;
	unsigned int mdlen = 0;

	if (alg == NULL && (alg = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		return false;
	if (ctx == NULL && (ctx = EVP_MD_CTX_new()) == NULL)
		return false;
	return EVP_DigestInit_ex2(ctx, alg, NULL) == 1 && EVP_DigestUpdate(ctx, p, n) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == PA_SHA256_LEN;
}

enum pa_err
pa_sha256_hex(const void *p, size_t n, char out[PA_SHA256_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[PA_SHA256_LEN];

	if (!sha256(p, n, md)) {
		pa_log_error("SHA-256 failed");
		return PA_ENOMEM;
	}
	for (unsigned int i = 0; i < PA_SHA256_LEN; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[PA_SHA256_HEX_LEN] = '\0';
	return PA_OK;
}

enum pa_err
pa_sha256(const void *p, size_t n, unsigned char out[PA_SHA256_LEN])
{
	if (!sha256(p, n, out)) {
		pa_log_error("SHA-256 failed");
		return PA_ENOMEM;
	}
	return PA_OK;
}

enum pa_err
pa_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
    unsigned char out[PA_SHA256_LEN])
{
	static const unsigned char nokey[1];
	unsigned int mdlen = 0;

	if (keylen > INT_MAX) {
		pa_log_error("HMAC key of %zu bytes is too long", keylen);
		return PA_ENOMEM;
	}
	/* OpenSSL wants a non-NULL key even when it is empty. */
	if (HMAC(EVP_sha256(), keylen ? key : nokey, (int)keylen, msg, msglen, out, &mdlen) == NULL ||
	    mdlen != PA_SHA256_LEN) {
		pa_log_error("HMAC-SHA256 failed");
		return PA_ENOMEM;
	}
	return PA_OK;
}

bool
pa_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

enum pa_err
pa_random(void *p, size_t n)
{
	unsigned char *q = p;

	/* Blocks only until the kernel's pool is first initialised (at boot). */
	while (n > 0) {
		ssize_t r = getrandom(q, n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			pa_log_syserr("getrandom");
			return PA_ESYS;
		}
		q += r;
		n -= (size_t)r;
	}
	return PA_OK;
}

/* base64 (RFC 4648 section 4) text to base64url (section 5), in place. */
static void
to_url(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		s[i] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
}

/*
 * OpenSSL's EVP_EncodeBlock does the encoding; it writes standard base64
 * with padding, so it runs on chunks of 48 bytes into a small buffer whose
 * alphabet is translated and whose padding is dropped.
 */
void
pa_base64url(const void *p, size_t n, char *out)
{
	const unsigned char *s = p;
	unsigned char chunk[64 + 1];

	while (n > 0) {
		size_t take = n < 48 ? n : 48;
		int len = EVP_EncodeBlock(chunk, s, (int)take);

		while (len > 0 && chunk[len - 1] == '=')
			len--;
		memcpy(out, chunk, (size_t)len);
		to_url(out, (size_t)len);
		out += len;
		s += take;
		n -= take;
	}
	*out = '\0';
}

static int
b64url_value(char c)
{
	const char *p = c != '\0' ? strchr(b64url, c) : NULL;

	return p != NULL ? (int)(p - b64url) : -1;
}

/*
 * OpenSSL's EVP_DecodeBlock decodes; it takes standard, padded base64 and
 * skips surrounding whitespace, so the input is checked here first (the
 * base64url alphabet only, canonical trailing bits) and fed in padded chunks
 * of 64 characters in the standard alphabet.
 */
bool
pa_base64url_decode(const char *s, size_t n, unsigned char *out, size_t *outlen)
{
	unsigned char chunk[64], dec[48];
	size_t j = 0;

	*outlen = 0;
	if (n % 4 == 1)
		return false;
	for (size_t i = 0; i < n; i++)
		if (b64url_value(s[i]) < 0)
			return false;
	/* The leftover bits of the last character must be zero (canonical form). */
	if (n % 4 != 0 && (b64url_value(s[n - 1]) & (n % 4 == 2 ? 15 : 3)) != 0)
		return false;
	while (n > 0) {
		size_t take = n < 64 ? n : 64, pad = (4 - take % 4) % 4;
		int len;

		for (size_t i = 0; i < take; i++)
			chunk[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : (unsigned char)s[i];
		memset(chunk + take, '=', pad);
		if ((len = EVP_DecodeBlock(dec, chunk, (int)(take + pad))) < 0)
			return false;
		len -= (int)pad;	/* EVP_DecodeBlock counts the padding as zero bytes */
		memcpy(out + j, dec, (size_t)len);
		j += (size_t)len;
		s += take;
		n -= take;
	}
	*outlen = j;
	return true;
}

bool
pa_base64_decode(const char *s, size_t n, unsigned char *out, size_t *outlen)
{
	char url[512];
	size_t pad = 0;

	*outlen = 0;
	if (n % 4 != 0 || n > sizeof(url))
		return false;
	while (pad < 2 && n > pad && s[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++) {
		if (s[i] == '-' || s[i] == '_' || s[i] == '=')
			return false;
		url[i] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
	}
	return pa_base64url_decode(url, n - pad, out, outlen);
}

enum pa_err
pa_token_new(char out[PA_TOKEN_LEN + 1])
{
	unsigned char raw[PA_TOKEN_BYTES];

	if (pa_random(raw, sizeof(raw)) != PA_OK)
		return PA_ESYS;
	pa_base64url(raw, sizeof(raw), out);
	explicit_bzero(raw, sizeof(raw));
	return PA_OK;
}

bool
pa_token_valid(const char *s, size_t n)
{
	const char *last;

	if (n != PA_TOKEN_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\0' || strchr(b64url, s[i]) == NULL)
			return false;
	/* 32 bytes fill 256 of the last character's 258 bits: its low 2 bits are 0. */
	last = strchr(b64url, s[n - 1]);
	return ((last - b64url) & 3) == 0;
}

/* --- passwords ------------------------------------------------------------- */

struct pa_passwd {
	unsigned long cost;
	/*
	 * What a new hash starts with: the setting for new hashes without its
	 * salt ("$y$j9T$"), and the number of '$' in a whole new hash.  A stored
	 * hash that differs in either was made with other parameters.
	 */
	char params[CRYPT_GENSALT_OUTPUT_SIZE];
	size_t params_len;
	size_t ndollar;
	char dummy[PA_HASH_MAX];
	/*
	 * Scratch for crypt_rn (32 KiB, zeroed between uses).  Behind a pointer
	 * so that the const verify can use it: a worker verifies one password at
	 * a time, so one pa_passwd_t must not be shared between threads.
	 */
	struct crypt_data *cd;
};

static size_t
count_dollars(const char *s)
{
	size_t k = 0;

	for (; *s; s++)
		k += *s == '$';
	return k;
}

/* A fresh setting (method, cost, random salt) into setting.  PA_OK or PA_ESYS (logged). */
static enum pa_err
new_setting(unsigned long cost, char setting[CRYPT_GENSALT_OUTPUT_SIZE])
{
	errno = 0;
	if (crypt_gensalt_rn(NULL, cost, NULL, 0, setting, CRYPT_GENSALT_OUTPUT_SIZE) == NULL ||
	    setting[0] != '$') {
		if (errno == 0)
			errno = EINVAL;
		pa_log_syserr("crypt_gensalt_rn (cost %lu)", cost);
		return PA_ESYS;
	}
	return PA_OK;
}

/*
 * crypt_rn into the scratch; returns the hash or NULL (errno set).  The
 * failure token ("*0", "*1") some builds return is a failure too.
 */
static unsigned long hashings;

static const char *
hash_with(const pa_passwd_t *pw, const char *password, const char *setting)
{
	const char *h;

	hashings++;
	errno = 0;
	h = crypt_rn(password, setting, pw->cd, (int)sizeof(*pw->cd));
	if (h == NULL || h[0] == '*' || h[0] == '\0') {
		if (errno == 0)
			errno = EINVAL;
		return NULL;
	}
	return h;
}

unsigned long
pa_passwd_hashings(void)
{
	return hashings;
}

pa_passwd_t *
pa_passwd_new(unsigned long cost)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE], phrase[PA_B64URL_LEN(24) + 1];
	unsigned char raw[24];
	pa_passwd_t *pw = NULL, *rv = NULL;
	const char *h, *salt;

	if ((pw = calloc(1, sizeof(*pw))) == NULL || (pw->cd = calloc(1, sizeof(*pw->cd))) == NULL) {
		pa_log_syserr("calloc");
		goto out;
	}
	pw->cost = cost;
	if (new_setting(cost, setting) != PA_OK)
		goto out;
	salt = strrchr(setting, '$');
	pw->params_len = (size_t)(salt - setting) + 1;
	memcpy(pw->params, setting, pw->params_len);
	pw->params[pw->params_len] = '\0';

	if (pa_random(raw, sizeof(raw)) != PA_OK)
		goto out;
	pa_base64url(raw, sizeof(raw), phrase);
	if ((h = hash_with(pw, phrase, setting)) == NULL) {
		pa_log_syserr("crypt_rn of the dummy hash (cost %lu)", cost);
		goto out;
	}
	if (strlen(h) >= sizeof(pw->dummy) || strncmp(h, pw->params, pw->params_len) != 0) {
		pa_log_error("unexpected hash format for cost %lu", cost);
		goto out;
	}
	strcpy(pw->dummy, h);
	pw->ndollar = count_dollars(pw->dummy);
	rv = pw;
	pw = NULL;
out:
	explicit_bzero(phrase, sizeof(phrase));
	explicit_bzero(raw, sizeof(raw));
	pa_passwd_free(pw);
	if (rv != NULL)
		explicit_bzero(rv->cd, sizeof(*rv->cd));
	return rv;
}

void
pa_passwd_free(pa_passwd_t *pw)
{
	if (pw == NULL)
		return;
	if (pw->cd != NULL) {
		explicit_bzero(pw->cd, sizeof(*pw->cd));
		free(pw->cd);
	}
	free(pw);
}

enum pa_err
pa_passwd_hash(const pa_passwd_t *pw, const char *password, char out[PA_HASH_MAX])
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	enum pa_err rv = PA_ESYS;
	const char *h;

	if (strnlen(password, PA_PASSPHRASE_MAX + 1) > PA_PASSPHRASE_MAX) {
		pa_log_error("password longer than %d bytes", PA_PASSPHRASE_MAX);
		rv = PA_EINPUT;
		goto out;
	}
	if (new_setting(pw->cost, setting) != PA_OK)
		goto out;
	if ((h = hash_with(pw, password, setting)) == NULL) {
		pa_log_syserr("crypt_rn");
		goto out;
	}
	if (strlen(h) >= PA_HASH_MAX) {
		pa_log_error("hash longer than %d bytes", PA_HASH_MAX - 1);
		goto out;
	}
	strcpy(out, h);
	rv = PA_OK;
out:
	explicit_bzero(pw->cd, sizeof(*pw->cd));
	return rv;
}

/* After a match: was stored made with other settings than new hashes get? */
static bool
needs_rehash(const pa_passwd_t *pw, const char *stored)
{
	const char *pref = crypt_preferred_method();

	if (crypt_checksalt(stored) == CRYPT_SALT_METHOD_LEGACY)
		return true;
	/* crypt_checksalt calls $2b$ and $6$ strong: compare the method (FACTS.md §4). */
	if (pref == NULL || strncmp(stored, pref, strlen(pref)) != 0)
		return true;
	/* The same method at another cost: "$y$j9T$" against "$y$j75$". */
	return strncmp(stored, pw->params, pw->params_len) != 0 ||
	    count_dollars(stored) != pw->ndollar;
}

bool
pa_passwd_verify(const pa_passwd_t *pw, const char *password, const char *stored,
    bool *rehash)
{
	const char *target = stored, *h;
	bool real = true, match = false;
	size_t n;
	int check;

	if (rehash != NULL)
		*rehash = false;
	/*
	 * No hash, a disabled-account marker ("!", "*…"), a method we don't know,
	 * or a passphrase libxcrypt refuses: spend the same time on the dummy.
	 */
	if (stored == NULL || stored[0] != '$' ||
	    ((check = crypt_checksalt(stored)) != CRYPT_SALT_OK && check != CRYPT_SALT_METHOD_LEGACY &&
	    check != CRYPT_SALT_TOO_CHEAP)) {
		target = pw->dummy;
		real = false;
	}
	if (strnlen(password, PA_PASSPHRASE_MAX + 1) > PA_PASSPHRASE_MAX) {
		password = "";
		target = pw->dummy;
		real = false;
	}
	if ((h = hash_with(pw, password, target)) == NULL) {
		pa_log_syserr(real ? "crypt_rn of a stored hash" : "crypt_rn of the dummy hash");
		if (real)	/* a corrupt stored hash: keep the time of a verification */
			(void)hash_with(pw, "", pw->dummy);
		goto out;
	}
	n = strlen(target);
	match = real && strlen(h) == n && pa_ct_equal(h, target, n);
	if (match && rehash != NULL)
		*rehash = needs_rehash(pw, stored);
out:
	explicit_bzero(pw->cd, sizeof(*pw->cd));
	return match;
}
