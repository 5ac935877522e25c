/*
 * Hashing with OpenSSL's EVP interface.
 */
#include "autoconfig.h"

#include <openssl/evp.h>

#include "crypto.h"
#include "log.h"

enum pa_err
pa_sha256_hex(const void *p, size_t n, char out[PA_SHA256_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
		pa_log_error("SHA-256 failed");
		return PA_ENOMEM;
	}
	for (unsigned int i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[PA_SHA256_HEX_LEN] = '\0';
	return PA_OK;
}
