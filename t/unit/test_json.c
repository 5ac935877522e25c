/*
 * Unit tests of json.c and the JSON string escaping of buf.c: error bodies
 * (exact bytes), validation problems, bounded object parsing and typed
 * member access.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "http.h"
#include "json.h"
#include "tap.h"

/* ---- pa_buf_json_str --------------------------------------------------- */

struct esc_case {
	const char *in;
	size_t n;
	const char *out;
};

#define E(lit, out) { lit, sizeof(lit) - 1, out }
static const struct esc_case esc_cases[] = {
	E("", "\"\""),
	E("plain", "\"plain\""),
	E("say \"hi\"", "\"say \\\"hi\\\"\""),
	E("C:\\dir\\", "\"C:\\\\dir\\\\\""),
	E("a\nb", "\"a\\nb\""),
	E("a\r\nb", "\"a\\r\\nb\""),
	E("\t", "\"\\t\""),
	E("\x01\x1f", "\"\\u0001\\u001f\""),
	E("\b\f", "\"\\u0008\\u000c\""),
	E("\x7f", "\"\\u007f\""),
	E("a\0b", "\"a\\u0000b\""),			/* n counts, not strlen */
	E("\x20~/", "\" ~/\""),				/* printable ASCII and '/' as is */
	E("\xc3\xa9\xe2\x82\xac", "\"\xc3\xa9\xe2\x82\xac\""),	/* UTF-8 as is */
	E("</script>", "\"</script>\""),
	E("\"\\\n", "\"\\\"\\\\\\n\""),
};
#undef E

static void
test_escape(void)
{
	pa_buf_t b = PA_BUF_INIT;

	for (size_t i = 0; i < PA_NELEM(esc_cases); i++) {
		pa_buf_reset(&b);
		pa_buf_json_str(&b, esc_cases[i].in, esc_cases[i].n);
		ok(!pa_buf_failed(&b) && b.len == strlen(esc_cases[i].out),
		    "escape case %zu: length", i);
		is_str(b.p, esc_cases[i].out, "escape case %zu", i);
	}
	pa_buf_reset(&b);
	pa_buf_json_str(&b, "abcdef", 3);
	is_str(b.p, "\"abc\"", "only n bytes are escaped");
	pa_buf_reset(&b);
	pa_buf_json_nstr(&b, NULL);
	pa_buf_putc(&b, ',');
	pa_buf_json_nstr(&b, "x\"y");
	is_str(b.p, "null,\"x\\\"y\"", "json_nstr: NULL is null");
	pa_buf_free(&b);
}

/* ---- error bodies ------------------------------------------------------ */

static void
check_body(const char *code, const char *message, const char *detail, const char *want,
    const char *what)
{
	pa_buf_t b = PA_BUF_INIT;

	pa_json_error_body(&b, code, message, detail);
	ok(!pa_buf_failed(&b), "%s: buffer ok", what);
	is_str(b.p, want, "%s: exact bytes", what);
	is_int((long long)b.len, (long long)strlen(want), "%s: length", what);
	pa_buf_free(&b);
}

static void
test_error_body(void)
{
	pa_buf_t b = PA_BUF_INIT;

	check_body("NOT_FOUND", "x", NULL,
	    "{\"errors\":[{\"code\":\"NOT_FOUND\",\"message\":\"x\",\"detail\":null}]}",
	    "error body");
	check_body("VALIDATE_FAILED", "Validation failed",
	    "{\"field\":\"domain\",\"rule\":\"format\"}",
	    "{\"errors\":[{\"code\":\"VALIDATE_FAILED\",\"message\":\"Validation failed\","
	    "\"detail\":{\"field\":\"domain\",\"rule\":\"format\"}}]}",
	    "detail is raw JSON");
	check_body("BAD_REQUEST", "m", "[1,2]",
	    "{\"errors\":[{\"code\":\"BAD_REQUEST\",\"message\":\"m\",\"detail\":[1,2]}]}",
	    "array detail");
	check_body("BAD_REQUEST", "bad \"value\" in C:\\x\nline 2\t\x01",
	    NULL,
	    "{\"errors\":[{\"code\":\"BAD_REQUEST\",\"message\":"
	    "\"bad \\\"value\\\" in C:\\\\x\\nline 2\\t\\u0001\",\"detail\":null}]}",
	    "message escaping");
	check_body("A\"B", "", NULL,
	    "{\"errors\":[{\"code\":\"A\\\"B\",\"message\":\"\",\"detail\":null}]}",
	    "code escaping, empty message");
	check_body(NULL, NULL, NULL,
	    "{\"errors\":[{\"code\":null,\"message\":null,\"detail\":null}]}",
	    "NULL code and message are null");

	pa_json_error_item(&b, "CONFLICT", "taken", "\"x\"");
	is_str(b.p, "{\"code\":\"CONFLICT\",\"message\":\"taken\",\"detail\":\"x\"}",
	    "error item alone");
	pa_buf_free(&b);
}

static void
test_problems(void)
{
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	pa_buf_t b = PA_BUF_INIT;

	pa_json_problem(&p, "domain", "required");
	pa_json_problem(&p, "redirect_uri", "format");
	is_int((long long)p.n, 2, "two problems counted");
	pa_json_problems_body(&p, &b);
	is_str(b.p,
	    "{\"errors\":["
	    "{\"code\":\"VALIDATE_FAILED\",\"message\":\"Validation failed\","
	    "\"detail\":{\"field\":\"domain\",\"rule\":\"required\"}},"
	    "{\"code\":\"VALIDATE_FAILED\",\"message\":\"Validation failed\","
	    "\"detail\":{\"field\":\"redirect_uri\",\"rule\":\"format\"}}"
	    "]}", "problems body, exact bytes");
	ok(!pa_buf_failed(&b), "problems body: buffer ok");
	ok(p.n == 0 && p.items.p == NULL, "problems freed and reset");
	pa_buf_free(&b);

	pa_json_problem(&p, "a\"b", "x\ny");
	pa_json_problems_body(&p, &b);
	is_str(b.p,
	    "{\"errors\":[{\"code\":\"VALIDATE_FAILED\",\"message\":\"Validation failed\","
	    "\"detail\":{\"field\":\"a\\\"b\",\"rule\":\"x\\ny\"}}]}",
	    "problem field and rule are escaped");
	pa_buf_free(&b);

	pa_json_problems_body(&p, &b);
	is_str(b.p, "{\"errors\":[]}", "no problems: empty list");
	pa_buf_free(&b);
}

/* ---- pa_json_parse_object ---------------------------------------------- */

struct parse_case {
	const char *s;
	size_t n;
	bool valid;
	const char *why;	/* when invalid; NULL: not checked */
};

#define MALFORMED "malformed JSON"
#define NOTOBJ "the body must be a JSON object"
#define BADUTF8 "body is not valid UTF-8"
#define P(lit, v, why) { lit, sizeof(lit) - 1, v, why }
static const struct parse_case parse_cases[] = {
	P("{}", true, NULL),
	P("{\"a\":1}", true, NULL),
	P("{\"a\":\"b\",\"c\":[1,2,{\"d\":null}],\"e\":true,\"f\":-1.5e3}", true, NULL),
	P("  {} ", true, NULL),
	P("{}\n", true, NULL),					/* trailing whitespace */
	P("{}\r\n\t ", true, NULL),
	P("{\"s\":\"\xc3\xa9\\u00e9\\ud83d\\ude00\"}", true, NULL),
	P("[]", false, NOTOBJ),					/* other top-level values */
	P("[{}]", false, NOTOBJ),
	P("\"str\"", false, NOTOBJ),
	P("true", false, NULL),
	P("null", false, NULL),
	P("123", false, NULL),
	P("1.5 ", false, NULL),
	P("", false, MALFORMED),				/* malformed */
	P("   ", false, MALFORMED),
	P("{", false, MALFORMED),
	P("{\"a\":", false, MALFORMED),
	P("{\"a\":1,}", false, MALFORMED),
	P("{\"a\" 1}", false, MALFORMED),
	P("{a:1}", false, MALFORMED),
	P("{'a':'b'}", false, MALFORMED),
	P("{\"a\":nan}", false, MALFORMED),
	P("{\"a\":TRUE}", false, MALFORMED),
	P("{\"a\":+1}", false, MALFORMED),
	P("{\"a\":.5}", false, MALFORMED),
	P("{\"a\":0x10}", false, MALFORMED),
	P("{\"a\":1e}", false, MALFORMED),
	P("{\"a\":\"\\u00\"}", false, MALFORMED),
	P("{/*c*/}", false, MALFORMED),
	P("\xef\xbb\xbf{}", false, MALFORMED),		/* BOM */
	P("{\"a\":01}", false, MALFORMED),
	P("{\"a\":\"\\x\"}", false, MALFORMED),
	P("{\"a\":1}/*c*/", false, NULL),
	P("}", false, MALFORMED),
	/*
	 * Trailing garbage: json-c's strict mode already calls it malformed, so
	 * the reason is not checked (json.c means to say TRAILING).
	 */
	P("{}}", false, NULL),
	P("{} x", false, NULL),
	P("{}{}", false, NULL),
	P("{},", false, NULL),
	P("{}\n[]", false, NULL),
	P("{\"a\":\"\xff\"}", false, BADUTF8),			/* invalid UTF-8 */
	P("{\"a\":\"\xc0\xaf\"}", false, BADUTF8),
	P("{\"a\":\"\xed\xa0\x80\"}", false, BADUTF8),
	P("{\"\xe2\x82\":1}", false, BADUTF8),
	P("{}\x80", false, BADUTF8),
};

/* Not JSON (RFC 8259), but json-c 0.16 takes them even in strict mode. */
static const struct parse_case lenient_cases[] = {
	P("{'a':1}", false, NULL),
	P("{\"a\":NaN}", false, NULL),
	P("{\"a\":Infinity}", false, NULL),
	P("{\"a\":-Infinity}", false, NULL),
	P("{\"a\":1.}", false, NULL),
	P("{\"a\":\"tab\tinside\"}", false, NULL),
	P("{\"a\":\"new\nline\"}", false, NULL),
};
#undef P

/* n nested arrays inside one object: {"a":[[...]]} has depth n + 1. */
static char *
nested(int depth)
{
	size_t n = (size_t)depth;
	char *s = malloc(2 * n + 8), *p = s;

	if (s == NULL)
		return NULL;
	memcpy(p, "{\"a\":", 5);
	p += 5;
	for (size_t i = 1; i < n; i++)
		*p++ = '[';
	for (size_t i = 1; i < n; i++)
		*p++ = ']';
	if (n == 1)
		*p++ = '1';
	*p++ = '}';
	*p = '\0';
	return s;
}

static void
test_parse(pa_arena_t *a)
{
	pa_json_t *j;
	const char *why;
	enum pa_err rv;
	char *s;

	for (size_t i = 0; i < PA_NELEM(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];

		rv = pa_json_parse_object(a, c->s, c->n, &j, &why);
		if (c->valid) {
			is_int(rv, PA_OK, "parse case %zu is accepted", i);
			ok(j != NULL && why == NULL, "parse case %zu: object, no reason", i);
			continue;
		}
		is_int(rv, PA_EINPUT, "parse case %zu is rejected", i);
		ok(j == NULL && why != NULL, "parse case %zu: no object, a reason", i);
		if (c->why != NULL)
			is_str(why, c->why, "parse case %zu reason", i);
	}

	for (size_t i = 0; i < PA_NELEM(lenient_cases); i++) {
		const struct parse_case *c = &lenient_cases[i];

		rv = pa_json_parse_object(a, c->s, c->n, &j, &why);
		is_int(rv, PA_EINPUT, "lenient case %zu is rejected", i);
	}

	/* Only n bytes are parsed. */
	rv = pa_json_parse_object(a, "{}garbage", 2, &j, &why);
	is_int(rv, PA_OK, "parse stops at n");
	rv = pa_json_parse_object(a, "{\"a\":1}", 6, &j, &why);
	is_int(rv, PA_EINPUT, "an object cut by n is malformed");

	/* Depth: PA_JSON_MAX_DEPTH levels of nesting pass, one more does not. */
	for (int d = 1; d <= PA_JSON_MAX_DEPTH + 2; d++) {
		if ((s = nested(d)) == NULL)
			break;
		rv = pa_json_parse_object(a, s, strlen(s), &j, &why);
		if (d <= PA_JSON_MAX_DEPTH) {
			is_int(rv, PA_OK, "depth %d accepted", d);
		} else {
			is_int(rv, PA_EINPUT, "depth %d rejected", d);
			is_str(why, "JSON nested too deeply", "depth %d reason", d);
		}
		free(s);
	}

	/* A NUL byte inside or after the value is not JSON whitespace. */
	rv = pa_json_parse_object(a, "{\"a\":1}\0", 8, &j, &why);
	is_int(rv, PA_EINPUT, "a NUL byte after the object is trailing data");
	rv = pa_json_parse_object(a, "{}\0x", 4, &j, &why);
	is_int(rv, PA_EINPUT, "NUL then garbage after the object is rejected");
	rv = pa_json_parse_object(a, "{\"a\":\0}", 7, &j, &why);
	is_int(rv, PA_EINPUT, "a NUL byte inside the object is rejected");

	/* The size limit. */
	s = malloc(PA_HTTP_MAX_BODY + 2);
	if (s != NULL) {
		memset(s, ' ', PA_HTTP_MAX_BODY + 1);
		memcpy(s, "{}", 2);
		rv = pa_json_parse_object(a, s, PA_HTTP_MAX_BODY, &j, &why);
		is_int(rv, PA_OK, "a body of PA_HTTP_MAX_BODY bytes parses");
		rv = pa_json_parse_object(a, s, PA_HTTP_MAX_BODY + 1, &j, &why);
		is_int(rv, PA_EINPUT, "one byte more is rejected");
		is_str(why, "body too large", "too large reason");
		free(s);
	}
}

/* ---- typed access ------------------------------------------------------ */

static void
test_get(pa_arena_t *a)
{
	static const char body[] =
	    "{\"s\":\"hello\",\"e\":\"\",\"u\":\"caf\\u00e9\",\"nul\":\"a\\u0000b\","
	    "\"n\":42,\"f\":1.5,\"t\":true,\"F\":false,\"z\":null,\"o\":{},\"a\":[\"x\"],"
	    "\"q\":\"say \\\"hi\\\"\\n\",\"sb\":\"true\",\"lone\":\"\\ud800\"}";
	pa_json_t *j;
	const char *why, *s;
	size_t len;
	bool v;
	long long ll;

	if (!is_int(pa_json_parse_object(a, body, strlen(body), &j, &why), PA_OK,
	    "typed access body parses"))
		return;
	s = NULL, len = 99;
	is_int(pa_json_get_string(j, "s", &s, &len), PA_JSON_FOUND, "string found");
	is_str(s, "hello", "string value");
	is_int((long long)len, 5, "string length");
	is_int(pa_json_get_string(j, "e", &s, &len), PA_JSON_FOUND, "empty string found");
	ok(s != NULL && *s == '\0' && len == 0, "empty string value");
	is_int(pa_json_get_string(j, "u", &s, &len), PA_JSON_FOUND, "escaped string found");
	is_str(s, "caf\xc3\xa9", "\\u00e9 decoded to UTF-8");
	is_int((long long)len, 5, "decoded length in bytes");
	is_int(pa_json_get_string(j, "q", &s, &len), PA_JSON_FOUND, "quotes string found");
	is_str(s, "say \"hi\"\n", "escapes decoded");
	is_int(pa_json_get_string(j, "lone", &s, &len), PA_JSON_FOUND, "lone surrogate found");
	ok(pa_utf8_valid(s, len), "a lone \\ud800 escape still gives valid UTF-8");
	is_int(pa_json_get_string(j, "nul", &s, &len), PA_JSON_WRONG_TYPE,
	    "embedded \\u0000 is the wrong type");
	is_int(pa_json_get_string(j, "n", &s, &len), PA_JSON_WRONG_TYPE, "number is not a string");
	is_int(pa_json_get_string(j, "f", &s, &len), PA_JSON_WRONG_TYPE, "float is not a string");
	is_int(pa_json_get_string(j, "t", &s, &len), PA_JSON_WRONG_TYPE, "bool is not a string");
	is_int(pa_json_get_string(j, "o", &s, &len), PA_JSON_WRONG_TYPE, "object is not a string");
	is_int(pa_json_get_string(j, "a", &s, &len), PA_JSON_WRONG_TYPE, "array is not a string");
	is_int(pa_json_get_string(j, "z", &s, &len), PA_JSON_WRONG_TYPE,
	    "null is the wrong type, not absent");
	is_int(pa_json_get_int(j, "z", &ll), PA_JSON_WRONG_TYPE, "null is not an integer");
	is_int(pa_json_get_string(j, "missing", &s, &len), PA_JSON_ABSENT, "missing is absent");
	is_int(pa_json_get_string(j, "S", &s, &len), PA_JSON_ABSENT, "keys are case-sensitive");

	v = false;
	is_int(pa_json_get_bool(j, "t", &v), PA_JSON_FOUND, "true found");
	ok(v == true, "true value");
	is_int(pa_json_get_bool(j, "F", &v), PA_JSON_FOUND, "false found");
	ok(v == false, "false value");
	is_int(pa_json_get_bool(j, "sb", &v), PA_JSON_WRONG_TYPE, "\"true\" is not a bool");
	is_int(pa_json_get_bool(j, "n", &v), PA_JSON_WRONG_TYPE, "number is not a bool");
	is_int(pa_json_get_bool(j, "z", &v), PA_JSON_WRONG_TYPE, "null bool is the wrong type");
	is_int(pa_json_get_bool(j, "missing", &v), PA_JSON_ABSENT, "missing bool is absent");
}

int
main(void)
{
	pa_arena_t *a = pa_arena_new();

	if (!ok(a != NULL, "arena"))
		return done_testing();
	test_escape();
	test_error_body();
	test_problems();
	test_parse(a);
	pa_arena_reset(a);
	test_get(a);
	pa_arena_free(a);
	return done_testing();
}
