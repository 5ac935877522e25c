/*
 * Unit tests of the field rules (src/valid.c): URLs, domains, text, and the
 * loopback rule that lets plain http through.
 */
#include "autoconfig.h"

#include <string.h>

#include "tap.h"
#include "valid.h"

struct url_case {
	const char *url;
	const char *why;	/* NULL: valid */
};

static const struct url_case url_cases[] = {
	{ "https://portal.example.com/", NULL },
	{ "https://portal.example.com", NULL },
	{ "HTTPS://portal.example.com/cb?x=1#f", NULL },
	{ "https://portal.example.com:8443/cb", NULL },
	{ "https://[2001:db8::1]/cb", NULL },
	{ "https://[2001:db8::1]:443/cb", NULL },
	{ "http://127.0.0.1:8080/", NULL },
	{ "http://localhost/cb", NULL },
	{ "http://[::1]:3000/", NULL },
	{ "http://portal.example.com/", "must use https:// (http:// only for loopback hosts)" },
	{ "http://10.0.0.1/", "must use https:// (http:// only for loopback hosts)" },
	{ "http://127.0.0.1.evil.example/", "must use https:// (http:// only for loopback hosts)" },
	{ "ftp://portal.example.com/", "must start with https://" },
	{ "//portal.example.com/", "must start with https://" },
	{ "javascript:alert(1)", "must start with https://" },
	{ "https://user@portal.example.com/", "must not contain user information" },
	{ "https://a@b@portal.example.com/", "must not contain user information" },
	{ "https:///cb", "has no host" },
	{ "https://", "has no host" },
	{ "https://:443/", "has no host" },
	{ "https://[]/", "has a malformed host" },
	{ "https://[::1/", "has a malformed host" },
	{ "https://[::g]/", "has a malformed host" },
	{ "http://[::1]evil.example/", "has a bad port" },
	{ "https://exa_mple.com/", "has a malformed host" },
	{ "https://exa%2Emple.com/", "has a malformed host" },
	{ "http://127.0.0.1:x.evil.example/", "has a bad port" },
	{ "https://a:b/", "has a bad port" },
	{ "https://a:/", "has a bad port" },
	{ "https://a:0/", "has a bad port" },
	{ "https://a:65536/", "has a bad port" },
	{ "https://a:123456/", "has a bad port" },
	{ "https://a:65535/", NULL },
	{ "https://portal.example.com/a b", "must not contain spaces, control characters or backslashes" },
	{ "https://portal.example.com\\@evil.example/", "must not contain spaces, control characters or backslashes" },
	{ "https://portal.example.com/\r\nX: y", "must not contain spaces, control characters or backslashes" },
};

static void
test_urls(void)
{
	for (size_t i = 0; i < sizeof(url_cases) / sizeof(url_cases[0]); i++)
		is_str(pa_valid_url(url_cases[i].url), url_cases[i].why, "url case %zu%s%s", i,
		    strpbrk(url_cases[i].url, "\r\n") ? "" : ": ",
		    strpbrk(url_cases[i].url, "\r\n") ? "" : url_cases[i].url);
}

static void
test_split(void)
{
	const char *host, *rest;
	size_t hn;
	bool https;

	is_str(pa_url_split("https://Portal.example.com:8443/cb?x#y", &https, &host, &hn, &rest),
	    NULL, "split: valid");
	ok(https, "split: https");
	ok(hn == 18 && strncmp(host, "Portal.example.com", hn) == 0, "split: host without port");
	is_str(rest, "/cb?x#y", "split: rest from the path");
	is_str(pa_url_split("http://[::1]", &https, &host, &hn, &rest), NULL, "split: IPv6");
	ok(!https && hn == 5 && strncmp(host, "[::1]", 5) == 0, "split: IPv6 host with brackets");
	is_str(rest, "", "split: empty rest");
}

static void
test_domains(void)
{
	char d280[281], d281[282];

	memset(d280, 'a', 280);
	d280[280] = '\0';
	memset(d281, 'a', 281);
	d281[281] = '\0';
	ok(pa_valid_domain("demo.pbx.test"), "domain: FQDN");
	ok(pa_valid_domain("192.0.2.7"), "domain: IPv4");
	ok(pa_valid_domain("[2001:db8::1]"), "domain: IPv6 literal");
	ok(pa_valid_domain("sip_host-1.Example"), "domain: underscore, dash, case");
	ok(pa_valid_domain(d280), "domain: 280 characters");
	ok(!pa_valid_domain(d281), "domain: 281 characters refused");
	ok(!pa_valid_domain(""), "domain: empty refused");
	ok(!pa_valid_domain("a b"), "domain: space refused");
	ok(!pa_valid_domain("a'b"), "domain: quote refused");
	ok(!pa_valid_domain("a;DROP"), "domain: semicolon refused");
	ok(!pa_valid_domain("caf\xc3\xa9.test"), "domain: non-ASCII refused");
}

static void
test_text(void)
{
	ok(pa_valid_text("Demo Tenant", 1024), "text: plain");
	ok(pa_valid_text("Caf\xc3\xa9 \"quoted\" ';--", 1024), "text: UTF-8 and punctuation");
	ok(!pa_valid_text("a\nb", 1024), "text: newline refused");
	ok(!pa_valid_text("a\x7f", 1024), "text: DEL refused");
	ok(!pa_valid_text("\xff", 1024), "text: invalid UTF-8 refused");
	ok(pa_valid_text("abc", 3), "text: at the limit");
	ok(!pa_valid_text("abcd", 3), "text: over the limit");
}

static void
test_loopback(void)
{
	ok(pa_valid_loopback_host("127.0.0.1", 9), "loopback: 127.0.0.1");
	ok(pa_valid_loopback_host("127.255.0.9", 11), "loopback: 127/8");
	ok(pa_valid_loopback_host("LocalHost", 9), "loopback: localhost, any case");
	ok(pa_valid_loopback_host("[::1]", 5), "loopback: [::1]");
	ok(!pa_valid_loopback_host("127.0.0.1.nip.io", 16), "loopback: name under 127 refused");
	ok(!pa_valid_loopback_host("127.1", 5), "loopback: short form refused");
	ok(!pa_valid_loopback_host("128.0.0.1", 9), "loopback: other address refused");
	ok(!pa_valid_loopback_host("[::2]", 5), "loopback: other IPv6 refused");
	ok(!pa_valid_loopback_host("::1", 3), "loopback: ::1 without brackets refused");
	ok(!pa_valid_loopback_host("127.0.0.", 8), "loopback: trailing dot refused");
	ok(!pa_valid_loopback_host("127.0.0.1:80", 12), "loopback: a port is not part of the host");
	ok(!pa_valid_loopback_host("localhostx", 10), "loopback: localhostx refused");
	ok(pa_valid_loopback_host("localhost:1", 9), "loopback: only n bytes are looked at");
}

int
main(void)
{
	test_urls();
	test_split();
	test_domains();
	test_text();
	test_loopback();
	return done_testing();
}
