/*
 * Unit tests of the field rules (src/valid.c): URLs, domains, text, the
 * loopback rule that lets plain http through, usernames, roles, the password
 * policy and email addresses.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "pa.h"
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

static bool
username(const char *s)
{
	return pa_valid_username(s, strlen(s));
}

static void
test_usernames(void)
{
	char u64[66], u65[66];

	memset(u64, 'u', 64);
	u64[64] = '\0';
	memset(u65, 'u', 65);
	u65[65] = '\0';
	ok(username("alice"), "username: plain");
	ok(username("A"), "username: one character");
	ok(username("o'brien"), "username: quote");
	ok(username("first.last"), "username: inner dot");
	ok(username("a..b"), "username: two inner dots");
	ok(username("_-'"), "username: only punctuation");
	ok(username("User_01-x"), "username: letters, digits, _ and -");
	ok(username(u64), "username: 64 characters");
	ok(!username(u65), "username: 65 characters refused");
	ok(!username(""), "username: empty refused");
	ok(!username(".alice"), "username: leading dot refused");
	ok(!username("alice."), "username: trailing dot refused");
	ok(!username("."), "username: a lone dot refused");
	ok(!username("al ice"), "username: space refused");
	ok(!username(" alice"), "username: leading space refused");
	ok(!username("al\"ice"), "username: double quote refused");
	ok(!username("al@ice"), "username: @ refused");
	ok(!username("al\\ice"), "username: backslash refused");
	ok(!username("al;ice"), "username: semicolon refused");
	ok(!username("al\tice"), "username: tab refused");
	ok(!username("ali\nce"), "username: newline refused");
	ok(!username("jos\xc3\xa9"), "username: non-ASCII letter refused");
	ok(!username("\xd0\xb0lice"), "username: Cyrillic a refused");
	ok(!pa_valid_username("al\0ice", 6), "username: embedded NUL refused");
	ok(pa_valid_username("alice.", 5), "username: only n bytes looked at");

	ok(pa_username_reserved("admin"), "reserved: admin");
	ok(pa_username_reserved("ADMIN"), "reserved: ADMIN");
	ok(pa_username_reserved("Administrator"), "reserved: Administrator");
	ok(pa_username_reserved("sYsTeM"), "reserved: sYsTeM");
	ok(pa_username_reserved("Root"), "reserved: Root");
	ok(!pa_username_reserved("admin1"), "reserved: admin1 is not");
	ok(!pa_username_reserved("admi"), "reserved: admi is not");
	ok(!pa_username_reserved("root."), "reserved: root. is not");
	ok(!pa_username_reserved("administrators"), "reserved: administrators is not");
	ok(!pa_username_reserved(""), "reserved: empty is not");
	ok(!pa_username_reserved("sysadmin"), "reserved: sysadmin is not");
}

static void
test_roles(void)
{
	static const struct {
		const char *name;
		bool system_level;
	} good[] = {
		{ "SystemAdmin", true }, { "Dealer", true }, { "Admin", false },
		{ "StandardUser", false }, { "StandardInternationalUser", false },
		{ "QueueManager", false },
	};
	static const char *const bad[] = {
		"", "systemadmin", "admin", "ADMIN", "Standard User", "StandardUser ", "Root", "User",
	};
	bool sys;

	for (size_t i = 0; i < PA_NELEM(good); i++) {
		sys = !good[i].system_level;
		ok(pa_valid_role(good[i].name, &sys) && sys == good[i].system_level,
		    "role: %s (%s)", good[i].name, good[i].system_level ? "system" : "tenant");
	}
	for (size_t i = 0; i < PA_NELEM(bad); i++)
		ok(!pa_valid_role(bad[i], &sys), "role: \"%s\" refused (case matters)", bad[i]);
	ok(pa_valid_role("Admin", NULL), "role: system_level may be NULL");
}

static const char *
password(const char *s, int min, int max)
{
	static char buf[128];

	return pa_valid_new_password(s, strlen(s), min, max, buf, sizeof(buf));
}

static void
test_passwords(void)
{
	char p[1200], buf[64];
	size_t n;

	is_str(password("12345678", 8, 128), NULL, "password: 8 characters");
	is_str(password("1234567", 8, 128), "must be 8-128 characters", "password: 7 refused");
	is_str(password("", 8, 128), "must be 8-128 characters", "password: empty refused");
	memset(p, 'x', 128);
	p[128] = '\0';
	is_str(password(p, 8, 128), NULL, "password: 128 characters");
	p[128] = 'x';
	p[129] = '\0';
	is_str(password(p, 8, 128), "must be 8-128 characters", "password: 129 refused");
	is_str(password("correct horse battery", 8, 128), NULL, "password: spaces allowed");
	is_str(password("        ", 8, 128), NULL, "password: only spaces allowed");
	is_str(password("\"';--<>\\", 8, 128), NULL, "password: punctuation allowed");

	/* characters are code points: 8 two-byte é are 16 bytes but 8 characters */
	is_str(password("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, 128),
	    NULL, "password: 8 two-byte characters");
	is_str(password("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, 128),
	    "must be 8-128 characters", "password: 7 two-byte characters (14 bytes) refused");
	is_str(password("\xf0\x9f\x94\x91\xf0\x9f\x94\x91" "abcdef", 8, 128), NULL,
	    "password: emoji count once each");
	for (n = 0; n < 128; n++)
		memcpy(p + 3 * n, "\xe2\x82\xac", 3);	/* € */
	p[3 * n] = '\0';
	is_str(password(p, 8, 128), NULL, "password: 128 euro signs (384 bytes)");
	memcpy(p + 3 * n, "\xe2\x82\xac", 4);
	is_str(password(p, 8, 128), "must be 8-128 characters", "password: 129 euro signs refused");
	for (n = 0; n < 128; n++)
		memcpy(p + 4 * n, "\xf0\x9f\x94\x91", 4);	/* 🔑 */
	p[4 * n] = '\0';
	is_str(password(p, 8, 128), "must be at most 511 bytes of UTF-8",
	    "password: 128 four-byte characters (512 bytes) refused: libxcrypt's limit");
	p[4 * 127] = 'x';
	p[4 * 127 + 1] = '\0';
	is_str(password(p, 8, 128), NULL, "password: 127 four-byte characters and one ASCII (509 bytes)");

	is_str(password("abcd\nefgh", 8, 128), "must not contain control characters",
	    "password: LF refused");
	is_str(password("abcdefgh\r", 8, 128), "must not contain control characters",
	    "password: CR refused");
	is_str(password("abcd\tefgh", 8, 128), "must not contain control characters",
	    "password: tab refused");
	is_str(password("abcd\x7f" "efgh", 8, 128), "must not contain control characters",
	    "password: DEL refused");
	is_str(password("abcd\x1b" "efgh", 8, 128), "must not contain control characters",
	    "password: ESC refused");
	is_str(password("abcd\xc2\x85" "efgh", 8, 128), "must not contain control characters",
	    "password: C1 NEL (U+0085) refused");
	is_str(password("abcd\xc2\xa0" "efgh", 8, 128), NULL, "password: NBSP (U+00A0) allowed");
	is_str(pa_valid_new_password("abcd\0efgh", 9, 8, 128, buf, sizeof(buf)),
	    "must not contain control characters", "password: embedded NUL refused");
	is_str(password("abcdefg\xff", 8, 128), "must be valid UTF-8", "password: 0xff refused");
	is_str(password("abcdefg\xc3", 8, 128), "must be valid UTF-8",
	    "password: truncated sequence refused");
	is_str(password("abcdefg\xc0\xaf", 8, 128), "must be valid UTF-8",
	    "password: overlong '/' refused");
	is_str(password("abcdefg\xed\xa0\x80", 8, 128), "must be valid UTF-8",
	    "password: surrogate refused");
	is_str(password("abcdefg\x80", 8, 128), "must be valid UTF-8",
	    "password: lone continuation byte refused");

	is_str(password("abcdefghijkl", 12, 64), NULL, "password: configured 12-64");
	is_str(password("abcdefghijk", 12, 64), "must be 12-64 characters",
	    "password: the message names the configured rule");
	is_str(pa_valid_new_password("abc", 3, 8, 128, buf, 10), "must be 8",
	    "password: the message is cut to buflen");
}

static void
test_emails(void)
{
	char local64[100], e254[300], e255[300];

	ok(pa_valid_email("alice@example.com"), "email: plain");
	ok(pa_valid_email("first.last+tag@mail.example-1.co.uk"), "email: dots, plus, dash");
	ok(pa_valid_email("o'brien_x!#$%&*=?^`{|}~/@example.com"), "email: allowed specials");
	ok(pa_valid_email("a@localhost"), "email: single-label domain");
	ok(pa_valid_email("A@EXAMPLE.COM"), "email: upper case");
	ok(!pa_valid_email(""), "email: empty refused");
	ok(!pa_valid_email("alice"), "email: no @ refused");
	ok(!pa_valid_email("a@b@example.com"), "email: two @ refused");
	ok(!pa_valid_email("@example.com"), "email: empty local part refused");
	ok(!pa_valid_email("alice@"), "email: empty domain refused");
	ok(!pa_valid_email("alice@.example.com"), "email: leading dot in domain refused");
	ok(!pa_valid_email("alice@example.com."), "email: trailing dot in domain refused");
	ok(!pa_valid_email("alice@example..com"), "email: double dot in domain refused");
	ok(!pa_valid_email("alice@exa_mple.com"), "email: underscore in domain refused");
	ok(!pa_valid_email("alice@[192.0.2.1]"), "email: address literal refused");
	ok(!pa_valid_email("alice@caf\xc3\xa9.example"), "email: non-ASCII domain refused");
	ok(!pa_valid_email("al ice@example.com"), "email: space refused");
	ok(!pa_valid_email("alice@example.com\r\nBcc: victim@example.net"),
	    "email: CRLF header injection refused");
	ok(!pa_valid_email("alice@example.com>\r\nRSET\r\nMAIL FROM:<evil@x"),
	    "email: SMTP command smuggling refused");
	ok(!pa_valid_email("alice\n@example.com"), "email: LF in the local part refused");
	ok(!pa_valid_email("alice@example.com\n"), "email: trailing LF refused");
	ok(!pa_valid_email("alice\r@example.com"), "email: CR refused");
	ok(!pa_valid_email("alice\t@example.com"), "email: tab refused");
	ok(!pa_valid_email("alice\x7f@example.com"), "email: DEL refused");
	ok(!pa_valid_email("al\xc3\xaf" "ce@example.com"), "email: non-ASCII local part refused");
	ok(!pa_valid_email("<alice@example.com>"), "email: angle brackets refused");
	ok(!pa_valid_email("Alice <alice@example.com>"), "email: display name refused");
	ok(!pa_valid_email("\"al ice\"@example.com"), "email: quoted local part refused");
	ok(!pa_valid_email("a,b@example.com"), "email: comma refused");
	ok(!pa_valid_email("a;b@example.com"), "email: semicolon refused");
	ok(!pa_valid_email("a:b@example.com"), "email: colon refused");
	ok(!pa_valid_email("a(b)@example.com"), "email: parentheses refused");
	ok(!pa_valid_email("a[b]@example.com"), "email: brackets refused");
	ok(!pa_valid_email("a\\b@example.com"), "email: backslash refused");

	memset(local64, 'l', 63);
	strcpy(local64 + 63, "@example.com");
	ok(pa_valid_email(local64), "email: 63-character local part");
	memset(local64, 'l', 64);
	strcpy(local64 + 64, "@example.com");
	ok(!pa_valid_email(local64), "email: 64-character local part refused");

	/* 63 + '@' + 63 '.' 63 '.' 63 = 254 */
	memset(e254, 'l', 63);
	e254[63] = '@';
	snprintf(e254 + 64, sizeof(e254) - 64, "%.63s.%.63s.%.62s",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
	    "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
	is_int((long long)strlen(e254), 254, "email: built 254 characters");
	ok(pa_valid_email(e254), "email: 254 characters");
	snprintf(e255, sizeof(e255), "%sc", e254);
	is_int((long long)strlen(e255), 255, "email: built 255 characters");
	ok(!pa_valid_email(e255), "email: 255 characters refused");
	snprintf(e255, sizeof(e255), "a@%.64s.example",
	    "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
	ok(!pa_valid_email(e255), "email: 64-character domain label refused");
}

static void
test_prefixes(void)
{
	static const struct { const char *url, *prefix; bool ok; } c[] = {
		{ "https://a.example/cb", "https://a.example/", true },
		{ "https://a.example/cb?x=1", "https://a.example/cb", true },
		{ "https://a.example/cb#f", "https://a.example/cb", true },
		{ "https://a.example/cb/deeper", "https://a.example/cb", true },
		{ "https://a.example", "https://a.example", true },
		{ "https://a.example.evil/cb", "https://a.example", false },
		{ "https://a.example:8443/cb", "https://a.example", false },
		{ "https://a.example@evil/cb", "https://a.example", false },
		{ "https://a.example/cbx", "https://a.example/cb", false },
		{ "https://A.example/cb", "https://a.example/", false },
		{ "http://a.example/cb", "https://a.example/", false },
		{ "https://a.example/cb", "", false },
	};

	for (size_t i = 0; i < PA_NELEM(c); i++)
		ok(pa_url_prefix_match(c[i].url, c[i].prefix) == c[i].ok,
		    "prefix %s %s %s", c[i].prefix, c[i].ok ? "admits" : "refuses", c[i].url);
}

/* throttle_exempt: address blocks parsed, checked and matched. */
static void
test_cidrs(void)
{
	static const struct { const char *list, *addr; bool in; } m[] = {
		{ "192.0.2.0/24", "192.0.2.77", true },
		{ "192.0.2.0/24", "192.0.3.1", false },
		{ "198.51.100.7", "198.51.100.7", true },
		{ "198.51.100.7", "198.51.100.8", false },
		{ "10.0.0.0/9", "10.127.255.255", true },
		{ "10.0.0.0/9", "10.128.0.0", false },
		{ "0.0.0.0/0", "203.0.113.9", true },
		{ "2001:db8::/32", "2001:db8:ffff::1", true },
		{ "2001:db8::/32", "2001:db9::1", false },
		{ "192.0.2.0/24", "::ffff:192.0.2.5", true },
		{ "::1, 127.0.0.0/8", "127.0.0.1", true },
		{ "192.0.2.0/24", "2001:db8::1", false },
		{ "192.0.2.0/24", "not an address", false },
	};
	static const char *const bad[] = { "10.0.0.1/8", "300.0.0.0/8", "10.0.0.0/33",
		"10.0.0.0/", "10.0.0.0/x", "example.com", "2001:db8::1/129" };
	pa_cidr_t nets[PA_CIDR_MAX];
	size_t n;

	for (size_t i = 0; i < PA_NELEM(m); i++) {
		ok(pa_cidr_parse_list(m[i].list, nets, &n) == NULL, "cidr: '%s' parses", m[i].list);
		ok(pa_cidr_match(nets, n, m[i].addr) == m[i].in, "cidr: %s %s %s", m[i].addr,
		    m[i].in ? "in" : "not in", m[i].list);
	}
	for (size_t i = 0; i < PA_NELEM(bad); i++)
		ok(pa_cidr_parse_list(bad[i], nets, &n) != NULL, "cidr: '%s' refused", bad[i]);
	ok(pa_cidr_parse_list("", nets, &n) == NULL && n == 0, "cidr: empty list");
	ok(pa_cidr_parse_list(" 192.0.2.0/24 ,, 198.51.100.0/24 ", nets, &n) == NULL && n == 2,
	    "cidr: commas and spaces separate");
}

int
main(void)
{
	test_urls();
	test_prefixes();
	test_split();
	test_domains();
	test_text();
	test_loopback();
	test_usernames();
	test_roles();
	test_passwords();
	test_emails();
	test_cidrs();
	return done_testing();
}
