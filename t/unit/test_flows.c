/*
 * Unit tests of src/flows.c and the message-text keys of src/config.c:
 * rendering ({placeholders}, control characters in values), the reset link
 * ('?' or '&', before a fragment), the one-time code (6 digits, roughly
 * uniform), and what the configuration accepts as a message text.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "config.h"
#include "flows.h"
#include "tap.h"

static void
test_render(pa_arena_t *a)
{
	const pa_mail_var_t v[] = { { "tenant", "Tenant One" }, { "username", "alice" },
		{ "code", "012345" }, { "domain", NULL } };

	is_str(pa_mail_render(a, "Code for {tenant}: {code}", v, PA_NELEM(v)),
	    "Code for Tenant One: 012345", "placeholders replaced");
	is_str(pa_mail_render(a, "{username}{username}", v, PA_NELEM(v)), "alicealice",
	    "a placeholder twice, adjacent");
	is_str(pa_mail_render(a, "{link}|{domain}|{minutes}", v, PA_NELEM(v)), "||",
	    "known placeholders without a value are empty");
	is_str(pa_mail_render(a, "{nope} {Tenant} {} { tenant} {tenant", v, PA_NELEM(v)),
	    "{nope} {Tenant} {} { tenant} {tenant", "anything else is copied");
	is_str(pa_mail_render(a, "line 1\nline 2 {tenant}\n", v, PA_NELEM(v)),
	    "line 1\nline 2 Tenant One\n", "line breaks of the text are kept");
	{
		const pa_mail_var_t evil[] = { { "tenant", "Evil\r\nBcc: x@evil.test\n\tX: 1" },
			{ "username", "a\xc2\x85" "b\x7f" "c\xc2\xa0" "d" } };

		is_str(pa_mail_render(a, "Reset for {tenant}", evil, PA_NELEM(evil)),
		    "Reset for Evil  Bcc: x@evil.test  X: 1", "CR, LF, TAB in a value become spaces");
		is_str(pa_mail_render(a, "{username}", evil, PA_NELEM(evil)),
		    "a b c\xc2\xa0" "d", "NEL (C1) and DEL become spaces, NBSP stays");
	}
	is_str(pa_mail_render(a, "", v, PA_NELEM(v)), "", "empty text");
	is_str(pa_mail_render(a, "é {tenant} ü", v, PA_NELEM(v)), "é Tenant One ü", "UTF-8 text");
}

static void
test_link(pa_arena_t *a)
{
	static const struct {
		const char *url, *want;
	} cases[] = {
		{ "https://a.test/reset", "https://a.test/reset?token=T" },
		{ "https://a.test/reset?lang=en", "https://a.test/reset?lang=en&token=T" },
		{ "https://a.test/reset?", "https://a.test/reset?token=T" },
		{ "https://a.test/reset?a=1&", "https://a.test/reset?a=1&token=T" },
		{ "https://a.test/reset#/x", "https://a.test/reset?token=T#/x" },
		{ "https://a.test/reset#/x?y=1", "https://a.test/reset?token=T#/x?y=1" },
		{ "https://a.test/r?q=1#f", "https://a.test/r?q=1&token=T#f" },
		{ "https://a.test", "https://a.test?token=T" },
		{ "https://a.test/#", "https://a.test/?token=T#" },
	};

	for (size_t i = 0; i < PA_NELEM(cases); i++)
		is_str(pa_reset_link(a, cases[i].url, "T"), cases[i].want, "link for %s",
		    cases[i].url);
}

static void
test_codes(void)
{
	enum { N = 20000 };
	long first[10] = { 0 }, last[10] = { 0 };
	bool shape = true, leading_zero = false;
	char c[PA_OTP_DIGITS + 1];

	for (int i = 0; i < N; i++) {
		if (pa_otp_code(c) != PA_OK || strlen(c) != 6 || strspn(c, "0123456789") != 6) {
			shape = false;
			break;
		}
		first[c[0] - '0']++;
		last[c[5] - '0']++;
		leading_zero |= c[0] == '0';
	}
	ok(shape, "%d codes of 6 decimal digits", N);
	ok(leading_zero, "codes with a leading zero keep it");
	/* Each digit's expected count is 2000 (sd ~42): 1700..2300 fails by chance ~never. */
	for (int d = 0; d < 10; d++)
		ok(first[d] > 1700 && first[d] < 2300 && last[d] > 1700 && last[d] < 2300,
		    "digit %d: %ld first, %ld last of %d", d, first[d], last[d], N);
}

static void
test_config(void)
{
	pa_config_t *c = pa_config_new();
	char err[256];

	if (!ok(c != NULL, "pa_config_new"))
		return;
	ok(strstr(c->reset_mail_body, "{link}") != NULL && strchr(c->reset_mail_body, '\n') &&
	    strchr(c->reset_mail_body, '\\') == NULL, "default reset body: {link}, line breaks decoded");
	ok(strstr(c->otp_mail_body, "{code}") != NULL, "default code body has {code}");
	is_int(pa_config_set(c, "otp_mail_body", "Code: {code}\\nBye \\\\o/", err, sizeof(err)),
	    PA_OK, "a body with \\n and \\\\");
	is_str(c->otp_mail_body, "Code: {code}\nBye \\o/", "decoded");
	is_int(pa_config_set(c, "otp_mail_body", "Code: {code} \\t", err, sizeof(err)), PA_EINPUT,
	    "\\t refused");
	is_int(pa_config_set(c, "otp_mail_body", "Code: {code} \\", err, sizeof(err)), PA_EINPUT,
	    "a trailing backslash refused");
	is_int(pa_config_set(c, "reset_mail_subject", "Reset {tenat}", err, sizeof(err)),
	    PA_EINPUT, "an unknown placeholder refused");
	is_int(pa_config_set(c, "reset_mail_subject", "Reset {link} { x } {A}", err, sizeof(err)),
	    PA_OK, "known placeholders and literal braces");
	is_str(c->reset_mail_subject, "Reset {link} { x } {A}", "subject kept as written");
	is_int(pa_config_set(c, "reset_mail_subject", "a\\nb", err, sizeof(err)), PA_OK,
	    "a subject takes \\n literally");
	is_str(c->reset_mail_subject, "a\\nb", "no line break in a subject");
	is_int(pa_config_set(c, "reset_mail_subject", "a\tb", err, sizeof(err)), PA_EINPUT,
	    "a control character refused");
	is_int(pa_config_set(c, "reset_mail_subject", "\xff", err, sizeof(err)), PA_EINPUT,
	    "invalid UTF-8 refused");
	is_int(pa_config_set(c, "reset_mail_subject", "", err, sizeof(err)), PA_EINPUT,
	    "an empty subject refused");
	pa_config_free(c);

	c = pa_config_new();
	is_int(pa_config_parse(c, "database = x\nreset_mail_body = no link\n", "t", err,
	    sizeof(err)), PA_EINPUT, "a reset body without {link} refused");
	is_str(err, "reset_mail_body must contain {link}", "its message");
	pa_config_free(c);
	c = pa_config_new();
	is_int(pa_config_parse(c, "database = x\notp_mail_body = no code\n", "t", err,
	    sizeof(err)), PA_EINPUT, "a code body without {code} refused");
	pa_config_free(c);
}

int
main(void)
{
	pa_arena_t *a = pa_arena_new();

	if (a == NULL)
		return 1;
	test_render(a);
	test_link(a);
	test_codes();
	test_config();
	pa_arena_free(a);
	return done_testing();
}
