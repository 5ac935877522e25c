/*
 * Unit tests of the pure request parsers of http.c: percent-decoding, query
 * strings and form bodies, Cookie headers, UTF-8 validation and media types.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "http.h"
#include "tap.h"

/* ---- pa_http_decode ---------------------------------------------------- */

struct decode_case {
	const char *in;
	bool form;
	enum pa_err rv;
	const char *out;	/* when rv is PA_OK */
};

static const struct decode_case decode_cases[] = {
	{ "", false, PA_OK, "" },
	{ "plain", false, PA_OK, "plain" },
	{ "%41%42%43", false, PA_OK, "ABC" },
	{ "%4a%4A", false, PA_OK, "JJ" },		/* lower and upper hex */
	{ "%2f%2F", false, PA_OK, "//" },
	{ "a%20b", false, PA_OK, "a b" },
	{ "%25", false, PA_OK, "%" },
	{ "%2541", false, PA_OK, "%41" },		/* decoded once only */
	{ "a+b", true, PA_OK, "a b" },			/* '+' is a space in forms */
	{ "a+b", false, PA_OK, "a+b" },			/* but not in paths */
	{ "++", true, PA_OK, "  " },
	{ "%2B", true, PA_OK, "+" },			/* an escaped '+' stays '+' */
	{ "%2b", false, PA_OK, "+" },
	{ "%c3%a9", false, PA_OK, "\xc3\xa9" },		/* é: 2 bytes */
	{ "%C3%A9t%C3%A9", true, PA_OK, "\xc3\xa9t\xc3\xa9" },
	{ "%e2%82%ac", false, PA_OK, "\xe2\x82\xac" },	/* €: 3 bytes */
	{ "%f0%9f%98%80", false, PA_OK, "\xf0\x9f\x98\x80" },	/* U+1F600: 4 bytes */
	{ "%f4%8f%bf%bf", false, PA_OK, "\xf4\x8f\xbf\xbf" },	/* U+10FFFF */
	{ "\xc3\xa9", false, PA_OK, "\xc3\xa9" },		/* raw UTF-8 passes through */
	{ "%c3\xa9", false, PA_OK, "\xc3\xa9" },		/* half escaped, half raw */
	{ "%zz", false, PA_EINPUT, NULL },
	{ "%g1", false, PA_EINPUT, NULL },
	{ "%1g", false, PA_EINPUT, NULL },
	{ "%4", false, PA_EINPUT, NULL },
	{ "a%4", false, PA_EINPUT, NULL },
	{ "%", false, PA_EINPUT, NULL },
	{ "abc%", true, PA_EINPUT, NULL },
	{ "%%41", false, PA_EINPUT, NULL },
	{ "% 41", false, PA_EINPUT, NULL },
	{ "%+1", true, PA_EINPUT, NULL },
	{ "%00", false, PA_EINPUT, NULL },		/* NUL */
	{ "a%00b", true, PA_EINPUT, NULL },
	{ "%ff", false, PA_EINPUT, NULL },		/* never valid in UTF-8 */
	{ "%fe", false, PA_EINPUT, NULL },
	{ "%80", false, PA_EINPUT, NULL },		/* lone continuation byte */
	{ "%c3", false, PA_EINPUT, NULL },		/* truncated sequence */
	{ "%c3%28", false, PA_EINPUT, NULL },
	{ "%e2%82", false, PA_EINPUT, NULL },
	{ "%c0%af", false, PA_EINPUT, NULL },		/* overlong '/' */
	{ "%c1%bf", false, PA_EINPUT, NULL },
	{ "%e0%80%af", false, PA_EINPUT, NULL },	/* overlong, 3 bytes */
	{ "%f0%80%80%af", false, PA_EINPUT, NULL },	/* overlong, 4 bytes */
	{ "%ed%a0%80", false, PA_EINPUT, NULL },	/* surrogate U+D800 */
	{ "%ed%bf%bf", false, PA_EINPUT, NULL },	/* surrogate U+DFFF */
	{ "%f4%90%80%80", false, PA_EINPUT, NULL },	/* beyond U+10FFFF */
	{ "\xff", false, PA_EINPUT, NULL },		/* raw invalid byte */
};

static void
test_decode(pa_arena_t *a)
{
	char *out;
	enum pa_err rv;

	for (size_t i = 0; i < PA_NELEM(decode_cases); i++) {
		const struct decode_case *c = &decode_cases[i];

		rv = pa_http_decode(a, c->in, strlen(c->in), c->form, &out);
		if (c->rv == PA_OK) {
			if (is_int(rv, PA_OK, "decode case %zu (form=%d) succeeds", i, c->form))
				is_str(out, c->out, "decode case %zu gives the expected bytes", i);
		} else {
			is_int(rv, c->rv, "decode case %zu (form=%d) is rejected", i, c->form);
			ok(out == NULL, "decode case %zu leaves *out NULL", i);
		}
	}

	/* Only n bytes are decoded, whatever follows. */
	rv = pa_http_decode(a, "abc%zz", 3, false, &out);
	is_int(rv, PA_OK, "decode stops at n");
	is_str(out, "abc", "decode of the first 3 bytes");
	rv = pa_http_decode(a, "%41", 2, false, &out);
	is_int(rv, PA_EINPUT, "an escape cut by n is rejected");
	rv = pa_http_decode(a, "a\0b", 3, false, &out);
	is_int(rv, PA_EINPUT, "a raw NUL byte is rejected");
	rv = pa_http_decode(a, "", 0, true, &out);
	ok(rv == PA_OK && out != NULL && *out == '\0', "empty input decodes to an empty string");
}

/* ---- pa_utf8_valid ----------------------------------------------------- */

struct utf8_case {
	const char *s;
	size_t n;
	bool valid;
};

#define U(lit, v) { lit, sizeof(lit) - 1, v }
static const struct utf8_case utf8_cases[] = {
	U("", true),
	U("hello, world", true),
	U("\x7f", true),
	U("a\0b", true),			/* NUL is valid UTF-8 (decode rejects it) */
	U("\xc2\x80", true),			/* U+0080, smallest 2-byte */
	U("\xc3\xa9", true),
	U("\xdf\xbf", true),			/* U+07FF */
	U("\xe0\xa0\x80", true),		/* U+0800, smallest 3-byte */
	U("\xe2\x82\xac", true),
	U("\xed\x9f\xbf", true),		/* U+D7FF, just below the surrogates */
	U("\xee\x80\x80", true),		/* U+E000, just above */
	U("\xef\xbf\xbf", true),		/* U+FFFF */
	U("\xf0\x90\x80\x80", true),		/* U+10000, smallest 4-byte */
	U("\xf0\x9f\x98\x80", true),
	U("\xf4\x8f\xbf\xbf", true),		/* U+10FFFF, the last code point */
	U("\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", true),	/* Привет */
	U("\x80", false),			/* continuation bytes alone */
	U("\xbf", false),
	U("a\x80z", false),
	U("\xc3", false),			/* truncated */
	U("\xe2\x82", false),
	U("\xf0\x9f\x98", false),
	U("a\xc3", false),
	U("\xc3\x28", false),			/* bad continuation */
	U("\xe2\x28\xa1", false),
	U("\xe2\x82\x28", false),
	U("\xf0\x28\x8c\xbc", false),
	U("\xc3\xa9\xa9", false),		/* extra continuation */
	U("\xc0\x80", false),			/* overlong NUL */
	U("\xc0\xaf", false),
	U("\xc1\xbf", false),
	U("\xe0\x80\xaf", false),
	U("\xe0\x9f\xbf", false),		/* overlong U+07FF */
	U("\xf0\x80\x80\xaf", false),
	U("\xf0\x8f\xbf\xbf", false),		/* overlong U+FFFF */
	U("\xed\xa0\x80", false),		/* surrogates */
	U("\xed\xbf\xbf", false),
	U("\xed\xa0\xbd\xed\xb8\x80", false),	/* CESU-8 pair */
	U("\xf4\x90\x80\x80", false),		/* U+110000 */
	U("\xf5\x80\x80\x80", false),
	U("\xf7\xbf\xbf\xbf", false),
	U("\xf8\x88\x80\x80\x80", false),	/* 5-byte form */
	U("\xfc\x84\x80\x80\x80\x80", false),	/* 6-byte form */
	U("\xfe", false),
	U("\xff", false),
};
#undef U

static void
test_utf8(void)
{
	for (size_t i = 0; i < PA_NELEM(utf8_cases); i++)
		is_int(pa_utf8_valid(utf8_cases[i].s, utf8_cases[i].n), utf8_cases[i].valid,
		    "utf8 case %zu is %s", i, utf8_cases[i].valid ? "valid" : "invalid");
	ok(!pa_utf8_valid("\xc3\xa9", 1), "a sequence cut by n is invalid");
	ok(pa_utf8_valid("ab\xff", 2), "bytes past n are not looked at");
}

/* ---- pa_http_parse_query ----------------------------------------------- */

static void
check_params(const pa_param_t *p, size_t n, const char *const *want, size_t nwant,
    const char *what)
{
	if (!is_int((long long)n, (long long)nwant, "%s: %zu params", what, nwant))
		return;
	for (size_t i = 0; i < n; i++) {
		is_str(p[i].name, want[2 * i], "%s: name %zu", what, i);
		is_str(p[i].value, want[2 * i + 1], "%s: value %zu", what, i);
	}
}

struct query_case {
	const char *qs;
	enum pa_err rv;
	size_t n;
	const char *pairs[8];	/* name, value, ... */
};

static const struct query_case query_cases[] = {
	{ "", PA_OK, 0, { NULL } },
	{ "a=1", PA_OK, 1, { "a", "1" } },
	{ "a=1&b=2", PA_OK, 2, { "a", "1", "b", "2" } },
	{ "b=2&a=1", PA_OK, 2, { "b", "2", "a", "1" } },	/* order kept */
	{ "a=1&&b=2", PA_OK, 2, { "a", "1", "b", "2" } },	/* empty segment */
	{ "&a=1&", PA_OK, 1, { "a", "1" } },
	{ "&&&", PA_OK, 0, { NULL } },
	{ "flag", PA_OK, 1, { "flag", "" } },			/* no '=': empty value */
	{ "flag&x=1", PA_OK, 2, { "flag", "", "x", "1" } },
	{ "a=", PA_OK, 1, { "a", "" } },
	{ "=v", PA_OK, 1, { "", "v" } },			/* empty name */
	{ "=", PA_OK, 1, { "", "" } },
	{ "a=1=2", PA_OK, 1, { "a", "1=2" } },			/* first '=' splits */
	{ "q=hello+world%21", PA_OK, 1, { "q", "hello world!" } },
	{ "a+b=c+d", PA_OK, 1, { "a b", "c d" } },
	{ "a%3Db=c%26d", PA_OK, 1, { "a=b", "c&d" } },		/* escaped separators */
	{ "k=%e2%82%ac", PA_OK, 1, { "k", "\xe2\x82\xac" } },
	{ "redirect_uri=https%3A%2F%2Fexample.com%2Fcb%3Fx%3D1", PA_OK, 1,
	    { "redirect_uri", "https://example.com/cb?x=1" } },
	{ "a=%zz", PA_EINPUT, 0, { NULL } },
	{ "%zz=1", PA_EINPUT, 0, { NULL } },
	{ "a=1&b=%4", PA_EINPUT, 0, { NULL } },
	{ "a=%", PA_EINPUT, 0, { NULL } },
	{ "a=%00", PA_EINPUT, 0, { NULL } },
	{ "a%00=1", PA_EINPUT, 0, { NULL } },
	{ "a=%ff", PA_EINPUT, 0, { NULL } },
	{ "a=%c0%af", PA_EINPUT, 0, { NULL } },
	{ "a=%ed%a0%80", PA_EINPUT, 0, { NULL } },
	{ "bad%", PA_EINPUT, 0, { NULL } },
};

static void
test_query(pa_arena_t *a)
{
	pa_param_t *p;
	size_t n;
	enum pa_err rv;
	const char *qs;
	char what[64];

	for (size_t i = 0; i < PA_NELEM(query_cases); i++) {
		const struct query_case *c = &query_cases[i];

		snprintf(what, sizeof(what), "query case %zu", i);
		rv = pa_http_parse_query(a, c->qs, strlen(c->qs), &p, &n);
		if (!is_int(rv, c->rv, "%s: status %d", what, (int)c->rv))
			continue;
		if (rv != PA_OK)
			ok(p == NULL && n == 0, "%s: nothing returned on error", what);
		else
			check_params(p, n, c->pairs, c->n, what);
	}

	/* Repeated keys: all kept, in order; param gives the first. */
	qs = "a=1&b=2&a=3&c&a=";
	rv = pa_http_parse_query(a, qs, strlen(qs), &p, &n);
	is_int(rv, PA_OK, "repeated keys parse");
	is_int((long long)n, 5, "repeated keys: 5 params");
	is_int((long long)pa_http_param_count(p, n, "a"), 3, "param_count a = 3");
	is_int((long long)pa_http_param_count(p, n, "b"), 1, "param_count b = 1");
	is_int((long long)pa_http_param_count(p, n, "c"), 1, "param_count c = 1");
	is_int((long long)pa_http_param_count(p, n, "d"), 0, "param_count d = 0");
	is_int((long long)pa_http_param_count(p, n, "A"), 0, "names are case-sensitive");
	is_str(pa_http_param(p, n, "a"), "1", "param a is the first value");
	is_str(pa_http_param(p, n, "c"), "", "param c (no '=') is empty");
	is_str(pa_http_param(p, n, "d"), NULL, "param d is absent");
	is_str(pa_http_param(p, n, ""), NULL, "no empty name here");
	is_str(p[2].value, "3", "third param is a=3");
	is_str(p[4].value, "", "fifth param is a= (empty)");
	is_str(pa_http_param(NULL, 0, "a"), NULL, "param on an empty list");
	is_int((long long)pa_http_param_count(NULL, 0, "a"), 0, "param_count on an empty list");

	/* Only n bytes are parsed. */
	rv = pa_http_parse_query(a, "a=1&b=%zz", 3, &p, &n);
	ok(rv == PA_OK && n == 1, "parse_query stops at n");
	is_str(n == 1 ? p[0].value : NULL, "1", "parse_query: value within n");
}

/* ---- pa_http_parse_cookies --------------------------------------------- */

struct cookie_case {
	const char *h;
	size_t n;
	const char *pairs[8];
};

static const struct cookie_case cookie_cases[] = {
	{ "", 0, { NULL } },
	{ "a=1", 1, { "a", "1" } },
	{ "a=1; b=2", 2, { "a", "1", "b", "2" } },
	{ "a=1;b=2", 2, { "a", "1", "b", "2" } },
	{ "a=1;\tb=2", 2, { "a", "1", "b", "2" } },
	{ "  a = 1 ;  b=2  ", 2, { "a", "1", "b", "2" } },	/* spaces trimmed */
	{ "sid=\"abc\"", 1, { "sid", "abc" } },			/* quoted value */
	{ "sid= \"a b\" ", 1, { "sid", "a b" } },
	{ "sid=\"\"", 1, { "sid", "" } },
	{ "sid=\"", 1, { "sid", "\"" } },			/* one quote stays */
	{ "sid=\"abc", 1, { "sid", "\"abc" } },
	{ "a=", 1, { "a", "" } },
	{ "tok=YWJj=; x=a=b", 2, { "tok", "YWJj=", "x", "a=b" } },	/* '=' in values */
	{ "novalue; a=1", 1, { "a", "1" } },			/* no '=': skipped */
	{ "a=1; junk; b=2", 2, { "a", "1", "b", "2" } },
	{ "=v; a=1", 1, { "a", "1" } },				/* empty name: skipped */
	{ "  =v", 0, { NULL } },
	{ ";;; ;", 0, { NULL } },
	{ "a=1;", 1, { "a", "1" } },
	{ "a=1; a=2", 2, { "a", "1", "a", "2" } },
	{ "a=%41", 1, { "a", "%41" } },				/* not percent-decoded */
	{ "a b=1", 1, { "a b", "1" } },
};

static void
test_cookies(pa_arena_t *a)
{
	pa_param_t *p;
	size_t n;
	enum pa_err rv;
	char what[64];

	for (size_t i = 0; i < PA_NELEM(cookie_cases); i++) {
		const struct cookie_case *c = &cookie_cases[i];

		snprintf(what, sizeof(what), "cookie case %zu", i);
		rv = pa_http_parse_cookies(a, c->h, &p, &n);
		if (is_int(rv, PA_OK, "%s parses", what))
			check_params(p, n, c->pairs, c->n, what);
	}
	rv = pa_http_parse_cookies(a, "sid=x; theme=dark; sid=y", &p, &n);
	ok(rv == PA_OK && n == 3, "three cookies");
	is_str(pa_http_param(p, n, "sid"), "x", "first sid cookie");
	is_int((long long)pa_http_param_count(p, n, "sid"), 2, "sid cookie sent twice");
	is_str(pa_http_param(p, n, "theme"), "dark", "theme cookie");
}

/* ---- pa_http_media_type_is --------------------------------------------- */

struct media_case {
	const char *ct, *type;
	bool match;
};

static const struct media_case media_cases[] = {
	{ "application/json", "application/json", true },
	{ "application/json; charset=utf-8", "application/json", true },
	{ "application/json;charset=UTF-8", "application/json", true },
	{ "application/json ; charset=utf-8", "application/json", true },
	{ "Application/JSON", "application/json", true },
	{ "APPLICATION/JSON; CHARSET=UTF-8", "application/json", true },
	{ "  application/json  ", "application/json", true },
	{ "\tapplication/json", "application/json", true },
	{ "application/json;", "application/json", true },
	{ "application/x-www-form-urlencoded", "application/x-www-form-urlencoded", true },
	{ "application/x-www-form-urlencoded; charset=utf-8", "application/x-www-form-urlencoded",
	    true },
	{ "application/jsonx", "application/json", false },
	{ "application/json-patch+json", "application/json", false },
	{ "application/json5", "application/json", false },
	{ "application/jso", "application/json", false },
	{ "application/json x", "application/json", false },
	{ "application/json, text/plain", "application/json", false },
	{ "text/json", "application/json", false },
	{ "text/plain", "application/json", false },
	{ "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", false },
	{ "", "application/json", false },
	{ ";", "application/json", false },
	{ "x application/json", "application/json", false },
};

static void
test_media_type(void)
{
	for (size_t i = 0; i < PA_NELEM(media_cases); i++)
		is_int(pa_http_media_type_is(media_cases[i].ct, media_cases[i].type),
		    media_cases[i].match, "media type case %zu: '%s' %s %s", i, media_cases[i].ct,
		    media_cases[i].match ? "is" : "is not", media_cases[i].type);
	ok(!pa_http_media_type_is(NULL, "application/json"), "absent Content-Type is no match");
}

int
main(void)
{
	pa_arena_t *a = pa_arena_new();

	if (!ok(a != NULL, "arena"))
		return done_testing();
	test_decode(a);
	pa_arena_reset(a);
	test_utf8();
	test_query(a);
	pa_arena_reset(a);
	test_cookies(a);
	test_media_type();
	pa_arena_free(a);
	return done_testing();
}
