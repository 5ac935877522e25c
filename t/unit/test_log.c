/*
 * Unit tests of the log line (src/log.c): escaping of every class of
 * character a request can carry, logfmt quoting, the split of a format into
 * message and fields, JSON lines, and the request id on every line.
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "pa.h"
#include "tap.h"

static const struct { const char *in, *out; bool escaped; } esc_cases[] = {
	{ "plain", "plain", false },
	{ "caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac", false },
	{ "a\"b\\c", "a\\\"b\\\\c", true },
	{ "cr\rlf\ntab\t", "cr\\rlf\\ntab\\t", true },
	{ "\x1b[31mred", "\\u001b[31mred", true },		/* ESC */
	{ "\x08\x0b\x0c\x7f", "\\u0008\\u000b\\u000c\\u007f", true },	/* BS VT FF DEL */
	{ "nel\xc2\x85", "nel\\u0085", true },			/* U+0085 NEL */
	{ "c1\xc2\x80\xc2\x9f", "c1\\u0080\\u009f", true },	/* C1 bounds */
	{ "\xc2\xa0nbsp", "\xc2\xa0nbsp", false },		/* U+00A0 is text */
	{ "ls\xe2\x80\xa8ps\xe2\x80\xa9", "ls\\u2028ps\\u2029", true },
	{ "bidi\xe2\x80\xae", "bidi\\u202e", true },		/* RIGHT-TO-LEFT OVERRIDE */
	{ "bad\xff", "bad\\ufffd", true },			/* not UTF-8 */
	{ "over\xc0\xaf", "over\\ufffd\\ufffd", true },		/* overlong '/' */
	{ "sur\xed\xa0\x80", "sur\\ufffd\\ufffd\\ufffd", true },	/* a surrogate */
	{ "cut\xe2\x80", "cut\\ufffd\\ufffd", true },		/* truncated sequence */
};

static size_t PA_PRINTF(3, 4)
render(char *line, size_t cap, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = pa_log_vrender(line, cap, PA_LOG_INFO, NULL, 0, fmt, ap);
	va_end(ap);
	line[n] = '\0';
	return n;
}

/* The line after "...]: " (text) or the whole line (JSON) minus the timestamp. */
static const char *
body(const char *line)
{
	const char *p = strstr(line, "]:");

	return p ? p + 2 : line;
}

static void
test_escape(void)
{
	char out[256];
	bool e;

	for (size_t i = 0; i < PA_NELEM(esc_cases); i++) {
		pa_log_escape(out, sizeof(out), esc_cases[i].in, strlen(esc_cases[i].in), &e);
		is_str(out, esc_cases[i].out, "escape case %zu", i);
		ok(e == esc_cases[i].escaped, "escape case %zu: escaped=%d", i, (int)e);
	}
	/* An escape that does not fit whole is left out, not cut. */
	pa_log_escape(out, 8, "ab\x1b", 3, NULL);
	is_str(out, "ab", "no half escape at the end");
	pa_log_escape(out, 4, "a\xe2\x82\xac", 4, NULL);
	is_str(out, "a", "no half character at the end");
}

static void
test_text(void)
{
	char line[1024];

	pa_log_init("test");
	pa_log_set_format(PA_LOG_TEXT);
	pa_log_set_request_id(NULL);
	render(line, sizeof(line), "mail sent id=%d reply=%s", 7, "250 2.0.0 queued");
	is_str(body(line), " mail sent id=7 reply=\"250 2.0.0 queued\"", "values with spaces quoted");
	render(line, sizeof(line), "audit event=%s detail=%s", "sign_out", "2 sessions revoked");
	is_str(body(line), " audit event=sign_out detail=\"2 sessions revoked\"",
	    "the issue's example");
	render(line, sizeof(line), "refused error=%s description=%.200s", "x\r\n audit event=forged",
	    "\x1b]0;pwned\x07");
	is_str(body(line), " refused error=\"x\\r\\n audit event=forged\""
	    " description=\"\\u001b]0;pwned\\u0007\"", "CR LF and ESC cannot forge fields");
	render(line, sizeof(line), "cannot prepare %s: %s", "s1", "relation \"x\" does not exist");
	is_str(body(line), " msg=\"cannot prepare s1: relation \\\"x\\\" does not exist\"",
	    "a message with quotes becomes msg=\"...\"");
	render(line, sizeof(line), "empty v=%s n=%lld z=%zu u=%lu", "", -5LL, (size_t)3, 9UL);
	is_str(body(line), " empty v=\"\" n=-5 z=3 u=9", "empty value quoted; integer conversions");
	render(line, sizeof(line), "pct %d%% width=%5.2s|", 50, "abcdef");
	is_str(body(line), " pct 50% width=\"   ab|\"", "%% and precision");
	pa_log_set_request_id("0123abcd");
	render(line, sizeof(line), "request status=%d", 200);
	is_str(body(line), " request status=200 request_id=0123abcd", "request id on the line");
	pa_log_set_request_id("bad id\n");
	render(line, sizeof(line), "x");
	is_str(body(line), " x", "an invalid request id is not kept");
	pa_log_set_request_id(NULL);
}

static void
test_json(void)
{
	char line[1024];
	const char *p;

	pa_log_set_format(PA_LOG_JSON);
	pa_log_set_request_id("r1");
	render(line, sizeof(line), "mail sent id=%d reply=%s", 7, "a\"\x1b\xc2\x85");
	p = strstr(line, "\"msg\"");
	is_str(p, "\"msg\":\"mail sent\",\"id\":\"7\",\"reply\":\"a\\\"\\u001b\\u0085\","
	    "\"request_id\":\"r1\"}", "a JSON line");
	ok(strncmp(line, "{\"ts\":\"", 7) == 0, "a JSON object with ts first");
	pa_log_set_request_id(NULL);
	pa_log_set_format(PA_LOG_TEXT);
}

static void
test_truncation(void)
{
	char big[3000], line[300];
	size_t n;

	memset(big, '\x1b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	n = render(line, sizeof(line), "long v=%s w=%s", big, "end");
	ok(n < sizeof(line), "the line fits its buffer");
	ok(line[n - 1] == '"' && strstr(line, "\\u001b\"") != NULL,
	    "a value cut at the limit still closes its quotes after a whole escape");
}

int
main(void)
{
	test_escape();
	test_text();
	test_json();
	test_truncation();
	return done_testing();
}
