/*
 * Input rules of the contract (API.md "Field rules") shared by the handlers
 * and the operator CLI.
 */
#ifndef PA_VALID_H
#define PA_VALID_H

#include <stdbool.h>
#include <stddef.h>

#define PA_DOMAIN_MAX 280
#define PA_USERNAME_MAX 64

/* An address block: family AF_INET or AF_INET6, the address, prefix bits. */
typedef struct {
	int family;
	unsigned char addr[16];
	int bits;
} pa_cidr_t;
#define PA_CIDR_MAX 64

/*
 * A list of address blocks (192.0.2.0/24, 2001:db8::/32, 198.51.100.7),
 * separated by commas or spaces, into nets[0..*n) (at most PA_CIDR_MAX).
 * Host bits must be zero.  Returns NULL, or what is wrong.
 */
const char *pa_cidr_parse_list(const char *s, pa_cidr_t *nets, size_t *n);
/* Whether the address text addr lies in one of nets[0..n) (IPv4-mapped IPv6 as IPv4). */
bool pa_cidr_match(const pa_cidr_t *nets, size_t n, const char *addr);

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
/*
 * Whether url starts with the allow-listed prefix at a boundary: the prefix
 * ends with '/', or url continues with '/', '?', '#' or ends there, so that
 * "https://a.example" does not admit "https://a.example.evil" or ":8443".
 * Byte comparison: a prefix is written as the URLs it admits.
 */
bool pa_url_prefix_match(const char *url, const char *prefix);
/* No control characters (C0, DEL) and valid UTF-8: text fit for a name. */
bool pa_valid_text(const char *s, size_t maxlen);

/*
 * A username: 1..64 characters of ASCII letters, digits and _ - ' . that
 * does not start or end with a dot.
 */
bool pa_valid_username(const char *s, size_t n);
/* admin, system, administrator or root in any case: the system administrator's names. */
bool pa_username_reserved(const char *s);
/* A role name of the contract; *system_level (may be NULL) says whether it is system-level. */
bool pa_valid_role(const char *s, bool *system_level);
/*
 * Checks a new password s[0..n) against the policy: min..max Unicode
 * characters (code points) of valid UTF-8 without control characters (C0,
 * DEL, C1; NUL included), and at most PA_PASSPHRASE_MAX (511) bytes, the
 * most libxcrypt hashes.  Returns NULL, or buf holding the rule it breaks
 * ("must be 8-128 characters").
 */
const char *pa_valid_new_password(const char *s, size_t n, int min, int max, char *buf,
    size_t buflen);
/*
 * An email address safe to put in a header or an SMTP command: exactly one
 * '@'; a local part of 1..63 printable ASCII characters other than space and
 * < > ( ) , ; : \ " [ ]; a domain of labels of [A-Za-z0-9-] (1..63 each)
 * joined by single dots; at most 254 characters in all.
 */
bool pa_valid_email(const char *s);

#endif
