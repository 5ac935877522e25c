/*
 * Input rules of the contract (API.md "Field rules") shared by the handlers
 * and the operator CLI.
 */
#ifndef PA_VALID_H
#define PA_VALID_H

#include <stdbool.h>
#include <stddef.h>

#define PA_DOMAIN_MAX 280

/* A tenant SIP domain: 1..280 characters of an FQDN or IP address ([A-Za-z0-9.-_:[]]). */
bool pa_valid_domain(const char *s);
/* True for localhost, 127.0.0.0/8 and [::1] (host[0..n) without port). */
bool pa_valid_loopback_host(const char *host, size_t n);
/*
 * Splits an absolute http(s) URL: scheme, then a host (a name of letters,
 * digits, dots and dashes, or a bracketed IPv6 literal) and an optional port
 * 1-65535; no user information.  Sets *https, the host (without port) and
 * *rest (what follows the authority: "", or from '/', '?' or '#').
 * Returns NULL, or what is wrong.
 */
const char *pa_url_split(const char *s, bool *https, const char **host, size_t *hostlen,
    const char **rest);
/*
 * An absolute http(s) URL: https://, or http:// with a loopback host; no
 * whitespace, control characters, backslashes or user info.  Returns NULL,
 * or what is wrong.
 */
const char *pa_valid_url(const char *s);
/* No control characters (C0, DEL) and valid UTF-8: text fit for a name. */
bool pa_valid_text(const char *s, size_t maxlen);

#endif
