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
