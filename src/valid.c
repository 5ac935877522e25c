/*
 * Field rules: domains, URLs, display text.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

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

const char *
pa_valid_url(const char *s)
{
	const char *host, *end;
	bool https;
	size_t hn;

	if (strncasecmp(s, "https://", 8) == 0)
		https = true, host = s + 8;
	else if (strncasecmp(s, "http://", 7) == 0)
		https = false, host = s + 7;
	else
		return "must be an absolute https:// URL";
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '\\')
			return "must not contain spaces, control characters or backslashes";
	end = host + strcspn(host, "/?#");
	if (memchr(host, '@', (size_t)(end - host)) != NULL)
		return "must not contain user information";
	/* the host without a port */
	if (*host == '[') {
		const char *rb = memchr(host, ']', (size_t)(end - host));

		if (rb == NULL)
			return "has a malformed host";
		hn = (size_t)(rb + 1 - host);
	} else {
		const char *colon = memchr(host, ':', (size_t)(end - host));

		hn = colon ? (size_t)(colon - host) : (size_t)(end - host);
	}
	if (hn == 0)
		return "has no host";
	if (!https && !pa_valid_loopback_host(host, hn))
		return "must use https:// (http:// only for loopback hosts)";
	return NULL;
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
