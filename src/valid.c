/*
 * Field rules: domains, URLs, display text, usernames, roles, the password
 * policy and email addresses.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "http.h"
#include "valid.h"

bool
pa_valid_domain(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= PA_DOMAIN_MAX &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]") == n;
}

bool
pa_valid_loopback_host(const char *h, size_t n)
{
	if (n == 9 && strncasecmp(h, "localhost", 9) == 0)
		return true;
	if (n == 5 && memcmp(h, "[::1]", 5) == 0)
		return true;
	if (n >= 7 && n <= 15 && memcmp(h, "127.", 4) == 0) {	/* 127.0.0.0/8, dotted quad */
		int dots = 1;

		for (size_t i = 4; i < n; i++) {
			if (h[i] == '.')
				dots++;
			else if (!isdigit((unsigned char)h[i]))
				return false;
		}
		return dots == 3 && h[n - 1] != '.';
	}
	return false;
}

/*
 * Hand-written rather than libcurl's curl_url (STYLE.md §6), on purpose: the
 * URLs checked here (callback_url, public_base_url, the Microsoft
 * authorities) are followed by browsers, which parse by the WHATWG URL
 * standard, not by libcurl's RFC 3986 parser.  Where the two disagree
 * (backslashes, userinfo, whitespace, percent-encoded or IDN hosts) a
 * permissive parser lets a URL pass that a browser sends elsewhere, so this
 * accepts only the small subset both read the same way (scheme http or
 * https, no userinfo, a host of ASCII letters, digits, dots and hyphens or
 * a bracketed IPv6 literal, an optional decimal port) and refuses the rest.
 */
const char *
pa_url_split(const char *s, bool *https, const char **host, size_t *hostlen, const char **rest)
{
	const char *h, *end, *hend;

	if (strncasecmp(s, "https://", 8) == 0)
		*https = true, h = s + 8;
	else if (strncasecmp(s, "http://", 7) == 0)
		*https = false, h = s + 7;
	else
		return "must start with https://";
	end = h + strcspn(h, "/?#");
	if (memchr(h, '@', (size_t)(end - h)) != NULL)
		return "must not contain user information";
	if (*h == '[') {	/* an IPv6 literal */
		const char *rb = memchr(h, ']', (size_t)(end - h));

		if (rb == NULL || rb == h + 1 ||
		    strspn(h + 1, "0123456789abcdefABCDEF:.") != (size_t)(rb - h - 1))
			return "has a malformed host";
		hend = rb + 1;
	} else {
		hend = h + strcspn(h, ":/?#");
		if (hend == h)
			return "has no host";
		for (const char *p = h; p < hend; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
				return "has a malformed host";
	}
	if (hend < end) {
		long port = 0;
		const char *p = hend + 1;

		if (*hend != ':' || p == end || end - p > 5)
			return "has a bad port";
		for (; p < end; p++) {
			if (!isdigit((unsigned char)*p))
				return "has a bad port";
			port = port * 10 + (*p - '0');
		}
		if (port < 1 || port > 65535)
			return "has a bad port";
	}
	*host = h;
	*hostlen = (size_t)(hend - h);
	*rest = end;
	return NULL;
}

const char *
pa_valid_url(const char *s)
{
	const char *host, *rest, *why;
	size_t hn;
	bool https;

	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '\\')
			return "must not contain spaces, control characters or backslashes";
	if ((why = pa_url_split(s, &https, &host, &hn, &rest)) != NULL)
		return why;
	if (!https && !pa_valid_loopback_host(host, hn))
		return "must use https:// (http:// only for loopback hosts)";
	return NULL;
}

bool
pa_url_prefix_match(const char *url, const char *prefix)
{
	size_t n = strlen(prefix);

	if (n == 0 || strncmp(url, prefix, n) != 0)
		return false;
	return prefix[n - 1] == '/' || url[n] == '\0' || url[n] == '/' || url[n] == '?' ||
	    url[n] == '#';
}

bool
pa_valid_text(const char *s, size_t maxlen)
{
	size_t n = strlen(s);

	if (n > maxlen || !pa_utf8_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* [A-Za-z0-9], whatever the locale */
static bool
ascii_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool
pa_valid_username(const char *s, size_t n)
{
	if (n < 1 || n > PA_USERNAME_MAX || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!ascii_alnum(c) && c != '_' && c != '-' && c != '\'' && c != '.')
			return false;
	}
	return true;
}

/* ASCII-only case-insensitive equality, whatever the locale. */
static bool
ascii_caseeq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		unsigned char x = (unsigned char)*a, y = (unsigned char)*b;

		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y)
			return false;
	}
	return *a == *b;
}

bool
pa_username_reserved(const char *s)
{
	static const char *const names[] = { "admin", "system", "administrator", "root" };

	for (size_t i = 0; i < PA_NELEM(names); i++)
		if (ascii_caseeq(s, names[i]))
			return true;
	return false;
}

bool
pa_valid_role(const char *s, bool *system_level)
{
	static const struct {
		const char *name;
		bool system_level;
	} roles[] = {
		{ "SystemAdmin", true },
		{ "Dealer", true },
		{ "Admin", false },
		{ "StandardUser", false },
		{ "StandardInternationalUser", false },
		{ "QueueManager", false },
	};

	for (size_t i = 0; i < PA_NELEM(roles); i++)
		if (strcmp(s, roles[i].name) == 0) {
			if (system_level != NULL)
				*system_level = roles[i].system_level;
			return true;
		}
	return false;
}

const char *
pa_valid_new_password(const char *s, size_t n, int min, int max, char *buf, size_t buflen)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t chars = 0;

	/* C0 controls, NUL included, and DEL */
	for (size_t i = 0; i < n; i++)
		if (u[i] < 0x20 || u[i] == 0x7f) {
			snprintf(buf, buflen, "must not contain control characters");
			return buf;
		}
	if (!pa_utf8_valid(s, n)) {
		snprintf(buf, buflen, "must be valid UTF-8");
		return buf;
	}
	for (size_t i = 0; i < n; i++) {
		/* C1 controls U+0080..U+009F are C2 80..C2 9F in UTF-8. */
		if (u[i] == 0xc2 && i + 1 < n && u[i + 1] <= 0x9f) {
			snprintf(buf, buflen, "must not contain control characters");
			return buf;
		}
		chars += (u[i] & 0xc0) != 0x80;
	}
	if (chars < (size_t)(min < 0 ? 0 : min) || chars > (size_t)(max < 0 ? 0 : max)) {
		snprintf(buf, buflen, "must be %d-%d characters", min, max);
		return buf;
	}
	if (n > PA_PASSPHRASE_MAX) {	/* libxcrypt hashes no more */
		snprintf(buf, buflen, "must be at most %d bytes of UTF-8", PA_PASSPHRASE_MAX);
		return buf;
	}
	return NULL;
}

/* FACTS.md §6: nothing that could end a header or an SMTP command, or change its meaning. */
bool
pa_valid_email(const char *s)
{
	const char *at = strchr(s, '@'), *d;
	size_t n = strlen(s), label = 0;

	if (at == NULL || strchr(at + 1, '@') != NULL || n > 254)
		return false;
	if (at == s || at - s > 63)
		return false;
	for (const char *p = s; p < at; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("<>(),;:\\\"[]", *p) != NULL)
			return false;
	/* domain: labels of [A-Za-z0-9-], 1..63 characters (RFC 1035), single dots between */
	for (d = at + 1; *d; d++) {
		if (*d == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (ascii_alnum(*d) || *d == '-') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

/* Parses one "address[/bits]" of len bytes.  Returns NULL, or what is wrong. */
static const char *
cidr_parse(const char *s, size_t len, pa_cidr_t *net)
{
	char buf[64], *slash, *end;
	long bits;
	int max;

	if (len >= sizeof(buf))
		return "an address block is too long";
	memcpy(buf, s, len);
	buf[len] = '\0';
	if ((slash = strchr(buf, '/')) != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, net->addr) == 1) {
		net->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, net->addr) == 1) {
		net->family = AF_INET6;
		max = 128;
	} else {
		return "expected IPv4 or IPv6 addresses with an optional /prefix length";
	}
	bits = max;
	if (slash != NULL) {
		bits = strtol(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || bits > max)
			return "a prefix length is out of range";
	}
	net->bits = (int)bits;
	for (int i = net->bits; i < max; i++)
		if (net->addr[i / 8] & (0x80 >> (i % 8)))
			return "an address block has host bits set (write the network address)";
	return NULL;
}

const char *
pa_cidr_parse_list(const char *s, pa_cidr_t *nets, size_t *n)
{
	const char *why;

	*n = 0;
	while (*s != '\0') {
		size_t len;

		s += strspn(s, ", \t");
		if ((len = strcspn(s, ", \t")) == 0)
			break;
		if (*n == PA_CIDR_MAX)
			return "too many address blocks";
		if ((why = cidr_parse(s, len, &nets[*n])) != NULL)
			return why;
		(*n)++;
		s += len;
	}
	return NULL;
}

/* Whether the first bits of a and b agree. */
static bool
prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)whole) != 0)
		return false;
	return rest == 0 || ((a[whole] ^ b[whole]) & (0xff << (8 - rest)) & 0xff) == 0;
}

bool
pa_cidr_match(const pa_cidr_t *nets, size_t n, const char *addr)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	unsigned char bin[16];
	int family;

	if (n == 0 || addr == NULL)
		return false;
	if (inet_pton(AF_INET, addr, bin) == 1) {
		family = AF_INET;
	} else if (inet_pton(AF_INET6, addr, bin) == 1) {
		family = AF_INET6;
		if (memcmp(bin, mapped, sizeof(mapped)) == 0) {
			memmove(bin, bin + 12, 4);
			family = AF_INET;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (nets[i].family == family && prefix_equal(bin, nets[i].addr, nets[i].bits))
			return true;
	return false;
}
