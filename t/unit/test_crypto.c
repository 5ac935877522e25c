/*
 * Unit tests of src/crypto.c: known-answer vectors for SHA-256, HMAC-SHA256
 * (RFC 4231) and base64url (RFC 4648), token shape, and password hashing,
 * verification and the rehash rule with libxcrypt.
 */
#include "autoconfig.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "log.h"
#include "tap.h"

/* Small costs keep the test fast; libxcrypt's default for yescrypt is 5. */
#define COST 2

static void
hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static void
test_sha256(void)
{
	char out[PA_SHA256_HEX_LEN + 1];

	ok(pa_sha256_hex("", 0, out) == PA_OK, "sha256: empty");
	is_str(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	    "sha256: empty input");
	ok(pa_sha256_hex("abc", 3, out) == PA_OK, "sha256: abc");
	is_str(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	    "sha256: FIPS 180-2 \"abc\"");
	/* The context is kept between calls: a long input, then a short one again. */
	{
		static char million[1000000];
		unsigned char md[PA_SHA256_LEN];
		char h[2 * PA_SHA256_LEN + 1];

		memset(million, 'a', sizeof(million));
		ok(pa_sha256_hex(million, sizeof(million), out) == PA_OK, "sha256: a million a");
		is_str(out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
		    "sha256: FIPS 180-2 one million \"a\"");
		ok(pa_sha256("abc", 3, md) == PA_OK, "sha256 (binary): abc after it");
		hex(md, sizeof(md), h);
		is_str(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		    "sha256 (binary): the same digest as the hex form");
	}
}

static void
test_hmac(void)
{
	unsigned char key1[20], mac[PA_SHA256_LEN];
	char h[2 * PA_SHA256_LEN + 1];

	/* RFC 4231 4.2, test case 1 */
	memset(key1, 0x0b, sizeof(key1));
	ok(pa_hmac_sha256(key1, sizeof(key1), "Hi There", 8, mac) == PA_OK, "hmac: case 1");
	hex(mac, sizeof(mac), h);
	is_str(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
	    "hmac: RFC 4231 test case 1");

	/* RFC 4231 4.3, test case 2 */
	ok(pa_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac) == PA_OK,
	    "hmac: case 2");
	hex(mac, sizeof(mac), h);
	is_str(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
	    "hmac: RFC 4231 test case 2");

	/* An empty key is valid HMAC (the key is zero-padded). */
	ok(pa_hmac_sha256("", 0, "", 0, mac) == PA_OK, "hmac: empty key and message");
	hex(mac, sizeof(mac), h);
	is_str(h, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
	    "hmac: empty key and message");
}

static void
test_ct_equal(void)
{
	ok(pa_ct_equal("abcdef", "abcdef", 6), "ct_equal: equal");
	ok(!pa_ct_equal("abcdef", "abcdeg", 6), "ct_equal: last byte differs");
	ok(!pa_ct_equal("xbcdef", "abcdef", 6), "ct_equal: first byte differs");
	ok(pa_ct_equal("abc", "abd", 2), "ct_equal: only n bytes compared");
	ok(pa_ct_equal("a", "b", 0), "ct_equal: n = 0");
}

static void
test_base64url(void)
{
	/* RFC 4648 section 10; the alphabet of section 5, no padding */
	static const struct {
		const char *in, *out;
	} v[] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" }, { "foob", "Zm9vYg" },
		{ "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
	};
	static const unsigned char hi[] = { 0xfb, 0xff, 0xbf, 0xfe };
	char out[64];

	for (size_t i = 0; i < PA_NELEM(v); i++) {
		size_t n = strlen(v[i].in);

		memset(out, 'X', sizeof(out));
		pa_base64url(v[i].in, n, out);
		is_str(out, v[i].out, "base64url: \"%s\"", v[i].in);
		is_int((long long)strlen(out), (long long)PA_B64URL_LEN(n),
		    "base64url: PA_B64URL_LEN(%zu)", n);
	}
	pa_base64url(hi, sizeof(hi), out);
	is_str(out, "-_-__g", "base64url: '-' and '_' instead of '+' and '/'");
}

static void
test_tokens(void)
{
	char a[PA_TOKEN_LEN + 1], b[PA_TOKEN_LEN + 1], t[64];
	bool shape = true;
	unsigned char r1[32], r2[32];

	ok(pa_random(r1, sizeof(r1)) == PA_OK && pa_random(r2, sizeof(r2)) == PA_OK, "random: ok");
	ok(memcmp(r1, r2, sizeof(r1)) != 0, "random: two draws differ");
	ok(pa_random(r1, 0) == PA_OK, "random: zero bytes");

	ok(pa_token_new(a) == PA_OK && pa_token_new(b) == PA_OK, "token: two new tokens");
	is_int((long long)strlen(a), PA_TOKEN_LEN, "token: 43 characters");
	ok(strcmp(a, b) != 0, "token: two tokens differ");
	ok(pa_token_valid(a, strlen(a)) && pa_token_valid(b, strlen(b)), "token: new tokens valid");
	for (int i = 0; i < 1000; i++) {
		if (pa_token_new(t) != PA_OK || strlen(t) != PA_TOKEN_LEN ||
		    strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
		    PA_TOKEN_LEN || !pa_token_valid(t, PA_TOKEN_LEN))
			shape = false;
	}
	ok(shape, "token: 1000 new tokens, all 43 base64url characters and valid");

	memcpy(t, a, PA_TOKEN_LEN + 1);
	ok(pa_token_valid(t, PA_TOKEN_LEN), "token_valid: copy");
	ok(!pa_token_valid(t, 42), "token_valid: 42 characters");
	ok(!pa_token_valid(t, 0), "token_valid: empty");
	t[PA_TOKEN_LEN] = 'A';
	t[PA_TOKEN_LEN + 1] = '\0';
	ok(!pa_token_valid(t, 44), "token_valid: 44 characters");
	memcpy(t, a, PA_TOKEN_LEN + 1);
	t[5] = '+';
	ok(!pa_token_valid(t, PA_TOKEN_LEN), "token_valid: '+'");
	t[5] = '/';
	ok(!pa_token_valid(t, PA_TOKEN_LEN), "token_valid: '/'");
	t[5] = '=';
	ok(!pa_token_valid(t, PA_TOKEN_LEN), "token_valid: '='");
	t[5] = '\0';
	ok(!pa_token_valid(t, PA_TOKEN_LEN), "token_valid: NUL inside");
	t[5] = ' ';
	ok(!pa_token_valid(t, PA_TOKEN_LEN), "token_valid: space");
	memcpy(t, a, PA_TOKEN_LEN + 1);
	t[PA_TOKEN_LEN - 1] = '=';
	ok(!pa_token_valid(t, PA_TOKEN_LEN), "token_valid: padding");
	memset(t, 'A', PA_TOKEN_LEN);
	t[PA_TOKEN_LEN - 1] = 'w';	/* 48: low bits 00 */
	ok(pa_token_valid(t, PA_TOKEN_LEN), "token_valid: last character with zero low bits");
	t[PA_TOKEN_LEN - 1] = 'x';	/* 49: a 32-byte value never ends like this */
	ok(!pa_token_valid(t, PA_TOKEN_LEN), "token_valid: last character with unused bits set");
	memset(t, '-', PA_TOKEN_LEN);
	t[PA_TOKEN_LEN - 1] = '0';	/* 52 */
	ok(pa_token_valid(t, PA_TOKEN_LEN), "token_valid: '-' and '_' allowed");
}

/* A hash of password with libxcrypt's method prefix at a cost, as an older system made it. */
static bool
legacy_hash(const char *prefix, unsigned long cost, const char *password, char out[PA_HASH_MAX])
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *h = NULL;
	bool made = false;

	if (cd != NULL && crypt_gensalt_rn(prefix, cost, NULL, 0, setting, sizeof(setting)) != NULL)
		h = crypt_rn(password, setting, cd, (int)sizeof(*cd));
	if (h != NULL && h[0] != '*') {
		strcpy(out, h);
		made = true;
	}
	free(cd);
	return made;
}

static void
test_passwords(void)
{
	pa_passwd_t *pw, *pw3;
	char h[PA_HASH_MAX], h2[PA_HASH_MAX], old[PA_HASH_MAX], marked[PA_HASH_MAX + 1];
	char longpw[600];
	bool rehash;

	ok((pw = pa_passwd_new(COST)) != NULL, "passwd: new, cost %d", COST);
	ok((pw3 = pa_passwd_new(COST + 1)) != NULL, "passwd: new, cost %d", COST + 1);
	if (pw == NULL || pw3 == NULL)
		return;

	ok(pa_passwd_hash(pw, "correct horse", h) == PA_OK, "hash: ok");
	ok(strncmp(h, crypt_preferred_method(), strlen(crypt_preferred_method())) == 0,
	    "hash: the preferred method (%.4s)", h);
	ok(strncmp(h, "$y$", 3) == 0, "hash: yescrypt");
	ok(pa_passwd_hash(pw, "correct horse", h2) == PA_OK && strcmp(h, h2) != 0,
	    "hash: a fresh salt each time");

	rehash = true;
	ok(pa_passwd_verify(pw, "correct horse", h, &rehash), "verify: right password");
	ok(!rehash, "verify: same method and cost, no rehash");
	ok(pa_passwd_verify(pw, "correct horse", h, NULL), "verify: rehash may be NULL");
	rehash = true;
	ok(!pa_passwd_verify(pw, "correct horsf", h, &rehash), "verify: wrong password");
	ok(!rehash, "verify: no rehash on a mismatch");
	ok(!pa_passwd_verify(pw, "", h, &rehash), "verify: empty password");
	ok(!pa_passwd_verify(pw, "correct horse ", h, &rehash), "verify: trailing space matters");

	ok(!pa_passwd_verify(pw, "correct horse", NULL, &rehash), "verify: stored NULL");
	ok(!pa_passwd_verify(pw, "", NULL, &rehash), "verify: stored NULL, empty password");
	ok(!pa_passwd_verify(pw, "correct horse", "", &rehash), "verify: stored \"\"");
	ok(!pa_passwd_verify(pw, "correct horse", "*0", &rehash), "verify: stored \"*0\"");
	ok(!pa_passwd_verify(pw, "*0", "*0", &rehash), "verify: \"*0\" against \"*0\"");
	ok(!pa_passwd_verify(pw, "correct horse", "!", &rehash), "verify: stored \"!\"");
	ok(!pa_passwd_verify(pw, "x", "garbage", &rehash), "verify: stored garbage");
	ok(!pa_passwd_verify(pw, "x", "$zz$abc$def", &rehash), "verify: unknown method");
	ok(!pa_passwd_verify(pw, "x", "$y$garbage", &rehash), "verify: malformed yescrypt");
	ok(!pa_passwd_verify(pw, "x", "$", &rehash), "verify: stored \"$\"");
	marked[0] = '!';
	memcpy(marked + 1, h, strlen(h) + 1);
	ok(!pa_passwd_verify(pw, "correct horse", marked, &rehash), "verify: '!'-disabled hash");
	/* a setting alone: its output is setting + hash, never the setting itself */
	snprintf(old, sizeof(old), "%.*s", (int)(strrchr(h, '$') - h), h);
	ok(!pa_passwd_verify(pw, "correct horse", old, &rehash), "verify: a setting, not a hash");
	ok(!pa_passwd_verify(pw, "correct horse", "ab01FAX.bQRSU", &rehash),
	    "verify: descrypt (no '$') refused");

	memset(longpw, 'p', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	ok(pa_passwd_hash(pw, longpw, h2) == PA_EINPUT, "hash: 599 bytes refused");
	longpw[PA_PASSPHRASE_MAX] = '\0';
	ok(pa_passwd_hash(pw, longpw, h2) == PA_OK, "hash: 511 bytes");
	ok(pa_passwd_verify(pw, longpw, h2, &rehash), "verify: 511 bytes");
	longpw[PA_PASSPHRASE_MAX] = 'p';
	longpw[PA_PASSPHRASE_MAX + 1] = '\0';
	ok(!pa_passwd_verify(pw, longpw, h2, &rehash), "verify: 512 bytes is a mismatch");

	/* hashes of other methods and costs verify, and ask for a rehash */
	ok(legacy_hash("$2b$", 4, "old secret", old), "bcrypt hash made");
	rehash = false;
	ok(pa_passwd_verify(pw, "old secret", old, &rehash), "verify: bcrypt $2b$");
	ok(rehash, "verify: bcrypt needs a rehash");
	ok(!pa_passwd_verify(pw, "old secreT", old, &rehash), "verify: bcrypt, wrong password");

	ok(legacy_hash("$6$", 1000, "old secret", old), "sha512crypt hash made");
	rehash = false;
	ok(pa_passwd_verify(pw, "old secret", old, &rehash), "verify: sha512crypt $6$");
	ok(rehash, "verify: sha512crypt needs a rehash");

	ok(legacy_hash("$1$", 0, "old secret", old), "md5crypt hash made");
	rehash = false;
	ok(pa_passwd_verify(pw, "old secret", old, &rehash), "verify: md5crypt $1$");
	ok(rehash, "verify: md5crypt (legacy) needs a rehash");

	ok(legacy_hash(NULL, COST, "same cost", old), "yescrypt hash of cost %d made", COST);
	rehash = true;
	ok(pa_passwd_verify(pw, "same cost", old, &rehash), "verify: yescrypt, same cost");
	ok(!rehash, "verify: yescrypt of the same cost, no rehash");

	ok(legacy_hash(NULL, COST + 1, "other cost", old), "yescrypt hash of cost %d made",
	    COST + 1);
	rehash = false;
	ok(pa_passwd_verify(pw, "other cost", old, &rehash), "verify: yescrypt, other cost");
	ok(rehash, "verify: yescrypt of another cost needs a rehash");
	rehash = true;
	ok(pa_passwd_verify(pw3, "other cost", old, &rehash), "verify: with that cost configured");
	ok(!rehash, "verify: no rehash when that cost is configured");

	ok(pa_passwd_hash(pw3, "x", h) == PA_OK, "hash: cost %d", COST + 1);
	ok(pa_passwd_verify(pw, "x", h, &rehash) && rehash, "verify: cost %d hash under cost %d",
	    COST + 1, COST);

	pa_passwd_free(pw);
	pa_passwd_free(pw3);
	pa_passwd_free(NULL);
	ok(pa_passwd_new(99) == NULL, "passwd: cost 99 refused");
}

/* Cost 0 (libxcrypt's default): its own hashes never ask for a rehash. */
static void
test_default_cost(void)
{
	pa_passwd_t *p0 = pa_passwd_new(0);
	char h[PA_HASH_MAX];
	bool rehash = true;

	ok(p0 != NULL, "passwd: cost 0 (default)");
	if (p0 == NULL)
		return;
	ok(pa_passwd_hash(p0, "pw", h) == PA_OK, "hash: default cost");
	ok(pa_passwd_verify(p0, "pw", h, &rehash) && !rehash, "verify: default cost, no rehash");
	pa_passwd_free(p0);
}

int
main(void)
{
	pa_log_init("test_crypto");
	test_sha256();
	test_hmac();
	test_ct_equal();
	test_base64url();
	test_tokens();
	test_passwords();
	test_default_cost();
	return done_testing();
}
