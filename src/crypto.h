/*
 * Cryptographic primitives (the only user of OpenSSL and libxcrypt).
 */
#ifndef PA_CRYPTO_H
#define PA_CRYPTO_H

#include <stddef.h>

#include "pa.h"

#define PA_SHA256_HEX_LEN 64

/* Writes the lower-case hex SHA-256 of p[0..n) and a NUL to out.  PA_OK or PA_ENOMEM. */
enum pa_err pa_sha256_hex(const void *p, size_t n, char out[PA_SHA256_HEX_LEN + 1]) PA_MUSTCHECK;

#endif
