/*
 * Compact JWS parsing, RS256 verification against a JWK and PS256 signing of
 * client assertions, with OpenSSL 3's EVP interface.  The algorithm is fixed
 * by the caller, never taken from the token: a token saying "none" or
 * "HS256" is refused before any key is touched.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "buf.h"
#include "crypto.h"
#include "jwt.h"
#include "log.h"

#define RSA_MIN_BITS 2048
#define ASSERTION_LIFETIME 300	/* seconds: Microsoft accepts up to 10 minutes */

/* Decodes base64url s[0..n) into a new arena buffer (NUL-terminated). */
static unsigned char *
b64_decode(pa_arena_t *a, const char *s, size_t n, size_t *outlen)
{
	unsigned char *p = pa_alloc(a, n * 3 / 4 + 1);

	if (p == NULL || !pa_base64url_decode(s, n, p, outlen))
		return NULL;
	p[*outlen] = '\0';
	return p;
}

static char *
b64_encode(pa_arena_t *a, const void *p, size_t n)
{
	char *s = pa_alloc(a, PA_B64URL_LEN(n) + 1);

	if (s != NULL)
		pa_base64url(p, n, s);
	return s;
}

enum pa_err
pa_jwt_parse(pa_arena_t *a, const char *compact, pa_jwt_t *out, const char **why)
{
	const char *d1, *d2, *end, *jwhy;
	unsigned char *hdr, *pay;
	size_t n = strlen(compact), hlen, plen;
	pa_json_t *h, *c;
	enum pa_err rv;

	memset(out, 0, sizeof(*out));
	*why = NULL;
	if (n > PA_JWT_MAX) {
		*why = "token too long";
		return PA_EINPUT;
	}
	end = compact + n;
	if ((d1 = memchr(compact, '.', n)) == NULL ||
	    (d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1))) == NULL ||
	    memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL) {
		*why = "not a compact JWS (three parts)";
		return PA_EINPUT;
	}
	hdr = b64_decode(a, compact, (size_t)(d1 - compact), &hlen);
	pay = b64_decode(a, d1 + 1, (size_t)(d2 - d1 - 1), &plen);
	out->sig = b64_decode(a, d2 + 1, (size_t)(end - d2 - 1), &out->siglen);
	if (hdr == NULL || pay == NULL || out->sig == NULL) {
		*why = "a part is not base64url";
		return PA_EINPUT;
	}
	if ((rv = pa_json_parse_object(a, (const char *)hdr, hlen, &h, &jwhy)) != PA_OK ||
	    (rv = pa_json_parse_object(a, (const char *)pay, plen, &c, &jwhy)) != PA_OK) {
		*why = "header or claims are not a JSON object";
		return rv;
	}
	out->header = h;
	out->claims = c;
	{
		size_t len;

		if (pa_json_get_string(h, "alg", &out->alg, &len) != PA_JSON_FOUND) {
			*why = "no alg in the header";
			return PA_EINPUT;
		}
		switch (pa_json_get_string(h, "kid", &out->kid, &len)) {
		case PA_JSON_FOUND:
			break;
		case PA_JSON_ABSENT:
			out->kid = NULL;
			break;
		case PA_JSON_WRONG_TYPE:
			*why = "kid is not a string";
			return PA_EINPUT;
		}
	}
	out->signing_input = compact;
	out->signing_len = (size_t)(d2 - compact);
	return PA_OK;
}

/* An RSA public key from a JWK's n and e, or NULL (*why set). */
static EVP_PKEY *
rsa_from_jwk(const char *n64, const char *e64, const char **why)
{
	unsigned char nb[1024], eb[16];
	size_t nlen, elen;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;

	if (strlen(n64) > sizeof(nb) * 4 / 3 || strlen(e64) > sizeof(eb) * 4 / 3 ||
	    !pa_base64url_decode(n64, strlen(n64), nb, &nlen) ||
	    !pa_base64url_decode(e64, strlen(e64), eb, &elen) || nlen == 0 || elen == 0) {
		*why = "the key's n or e is not base64url of a suitable size";
		return NULL;
	}
	if ((bn = BN_bin2bn(nb, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(eb, (int)elen, NULL)) == NULL ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(pctx) <= 0 ||
	    EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		*why = "the key is not a usable RSA key";
		pkey = NULL;
	} else if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS) {
		*why = "the RSA key is shorter than 2048 bits";
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return pkey;
}

enum pa_err
pa_jwt_verify_rs256(const pa_jwt_t *t, const char *n, const char *e, const char **why)
{
	EVP_MD_CTX *md = NULL;
	EVP_PKEY *pkey = NULL;
	enum pa_err rv = PA_EINPUT;

	*why = NULL;
	if (t->alg == NULL || strcmp(t->alg, "RS256") != 0) {
		*why = "alg is not RS256";
		return PA_EINPUT;
	}
	if ((pkey = rsa_from_jwk(n, e, why)) == NULL)
		goto out;
	if ((md = EVP_MD_CTX_new()) == NULL) {
		rv = PA_ENOMEM;
		goto out;
	}
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    EVP_DigestVerify(md, t->sig, t->siglen, (const unsigned char *)t->signing_input,
	    t->signing_len) != 1) {
		*why = "bad signature";
		goto out;
	}
	rv = PA_OK;
out:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	return rv;
}

/* Never prompt for a passphrase: an encrypted key file is an error. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1;
}

/* Reads the certificate's x5t#S256 and the private key.  PA_OK, PA_EINPUT, PA_ENOMEM. */
static enum pa_err
load_credential(pa_arena_t *a, const pa_jwt_assertion_t *in, char **x5t, EVP_PKEY **key)
{
	unsigned char *der = NULL, md[PA_SHA256_LEN];
	X509 *cert = NULL;
	FILE *f = NULL;
	int dlen;
	enum pa_err rv = PA_EINPUT;

	*key = NULL;
	if ((f = fopen(in->certificate_file, "r")) == NULL) {
		pa_log_error("certificate %s: %s", in->certificate_file, strerror(errno));
		goto out;
	}
	if ((cert = PEM_read_X509(f, NULL, no_passphrase, NULL)) == NULL) {
		pa_log_error("certificate %s: no PEM certificate", in->certificate_file);
		goto out;
	}
	fclose(f);
	if ((f = fopen(in->private_key_file, "r")) == NULL) {
		pa_log_error("private key %s: %s", in->private_key_file, strerror(errno));
		goto out;
	}
	if ((*key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL)) == NULL ||
	    !EVP_PKEY_is_a(*key, "RSA")) {
		pa_log_error("private key %s: no unencrypted PEM RSA private key",
		    in->private_key_file);
		goto out;
	}
	if (X509_check_private_key(cert, *key) != 1) {
		pa_log_error("private key %s does not belong to certificate %s",
		    in->private_key_file, in->certificate_file);
		goto out;
	}
	if ((dlen = i2d_X509(cert, &der)) <= 0) {
		pa_log_error("certificate %s: cannot encode", in->certificate_file);
		goto out;
	}
	if ((rv = pa_sha256(der, (size_t)dlen, md)) != PA_OK)
		goto out;
	rv = (*x5t = b64_encode(a, md, sizeof(md))) != NULL ? PA_OK : PA_ENOMEM;
out:
	if (rv != PA_OK) {
		EVP_PKEY_free(*key);
		*key = NULL;
	}
	if (f != NULL)
		fclose(f);
	OPENSSL_free(der);
	X509_free(cert);
	return rv;
}

enum pa_err
pa_jwt_sign_assertion(pa_arena_t *a, const pa_jwt_assertion_t *in, char **out)
{
	pa_buf_t hdr = PA_BUF_INIT, claims = PA_BUF_INIT, tok = PA_BUF_INIT;
	unsigned char rnd[16], *sig = NULL;
	char jti[37], *x5t = NULL, *h64, *c64, *s64;
	EVP_PKEY *key = NULL;
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	size_t siglen = 0;
	enum pa_err rv;

	*out = NULL;
	if ((rv = load_credential(a, in, &x5t, &key)) != PA_OK)
		goto out;
	if ((rv = pa_random(rnd, sizeof(rnd))) != PA_OK)
		goto out;
	rnd[6] = (unsigned char)((rnd[6] & 0x0f) | 0x40);	/* a version 4 UUID */
	rnd[8] = (unsigned char)((rnd[8] & 0x3f) | 0x80);
	snprintf(jti, sizeof(jti), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
	    rnd[7], rnd[8], rnd[9], rnd[10], rnd[11], rnd[12], rnd[13], rnd[14], rnd[15]);

	pa_buf_puts(&hdr, "{\"alg\":\"PS256\",\"typ\":\"JWT\",\"x5t#S256\":");
	pa_buf_json_str(&hdr, x5t, strlen(x5t));
	pa_buf_putc(&hdr, '}');
	pa_buf_puts(&claims, "{\"aud\":");
	pa_buf_json_str(&claims, in->audience, strlen(in->audience));
	pa_buf_puts(&claims, ",\"iss\":");
	pa_buf_json_str(&claims, in->client_id, strlen(in->client_id));
	pa_buf_puts(&claims, ",\"sub\":");
	pa_buf_json_str(&claims, in->client_id, strlen(in->client_id));
	pa_buf_printf(&claims, ",\"jti\":\"%s\",\"nbf\":%lld,\"iat\":%lld,\"exp\":%lld}", jti,
	    in->now, in->now, in->now + ASSERTION_LIFETIME);
	rv = PA_ENOMEM;
	if (pa_buf_failed(&hdr) || pa_buf_failed(&claims) ||
	    (h64 = b64_encode(a, hdr.p, hdr.len)) == NULL ||
	    (c64 = b64_encode(a, claims.p, claims.len)) == NULL)
		goto out;
	pa_buf_puts(&tok, h64);
	pa_buf_putc(&tok, '.');
	pa_buf_puts(&tok, c64);
	if (pa_buf_failed(&tok) || (md = EVP_MD_CTX_new()) == NULL)
		goto out;
	if (EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (unsigned char *)tok.p, tok.len) != 1 ||
	    (sig = pa_alloc(a, siglen)) == NULL ||
	    EVP_DigestSign(md, sig, &siglen, (unsigned char *)tok.p, tok.len) != 1) {
		pa_log_error("PS256 signing failed");
		goto out;
	}
	if ((s64 = b64_encode(a, sig, siglen)) == NULL)
		goto out;
	pa_buf_putc(&tok, '.');
	pa_buf_puts(&tok, s64);
	if (pa_buf_failed(&tok) || (*out = pa_strndup(a, tok.p, tok.len)) == NULL)
		goto out;
	rv = PA_OK;
out:
	EVP_MD_CTX_free(md);	/* frees pctx too */
	EVP_PKEY_free(key);
	pa_buf_free(&hdr);
	pa_buf_free(&claims);
	pa_buf_free(&tok);
	return rv;
}
