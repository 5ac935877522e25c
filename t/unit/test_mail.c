/*
 * Unit tests of the message form (mail.c): the exact headers of a plain
 * message, RFC 2047 subjects and display names, control characters that
 * must not end a header, quoted-printable bodies, line ends, and the
 * addresses that are refused.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mail.h"
#include "tap.h"

/* Formats m; returns a malloc'd message or NULL, *rv the status. */
static char *
fmt(const pa_mail_msg_t *m, enum pa_err *rv)
{
	pa_buf_t b = PA_BUF_INIT;
	char *s;

	*rv = pa_mail_format(&b, m);
	s = *rv == PA_OK ? strdup(b.p) : NULL;
	pa_buf_free(&b);
	return s;
}

static pa_mail_msg_t
base(void)
{
	/* 2026-11-28T03:04:05Z, a Saturday */
	return (pa_mail_msg_t){ 42, 1795835045123456LL, "noreply@pbx.example", NULL,
		"alice@example.com", "Password reset for Demo", "Hello,\nline two\n", 1795835045 };
}

static void
test_plain(void)
{
	pa_mail_msg_t m = base();
	enum pa_err rv;
	char *s = fmt(&m, &rv);

	is_int(rv, PA_OK, "plain message formats");
	is_str(s, "Date: Sat, 28 Nov 2026 03:04:05 +0000\r\n"
	    "From: <noreply@pbx.example>\r\n"
	    "To: <alice@example.com>\r\n"
	    "Subject: Password reset for Demo\r\n"
	    "Message-ID: <pbx-auth.42.1795835045123456@pbx.example>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "Auto-Submitted: auto-generated\r\n"
	    "\r\n"
	    "Hello,\r\nline two\r\n", "plain message: exact text, CRLF line ends");
	free(s);
}

static void
test_subject(void)
{
	pa_mail_msg_t m = base();
	enum pa_err rv;
	char *s;

	m.subject = "Réinitialisation du mot de passe — Société Générale de Téléphonie";
	s = fmt(&m, &rv);
	ok(s != NULL && strstr(s, "\r\nSubject: =?UTF-8?B?") != NULL,
	    "non-ASCII subject: encoded-word");
	ok(s != NULL && strstr(s, "?=\r\n =?UTF-8?B?") != NULL, "long subject: folded encoded-words");
	free(s);

	m.subject = "Reset\r\nBcc: victim@example.com\r\n\r\nbody";
	s = fmt(&m, &rv);
	ok(s != NULL && strstr(s, "\r\nBcc:") == NULL, "CRLF in the subject: no Bcc header");
	ok(s != NULL && strstr(s, "Subject: Reset  Bcc: victim@example.com    body\r\n") != NULL,
	    "CRLF in the subject become spaces");
	free(s);

	m.subject = "=?UTF-8?B?Zm9v?=";
	s = fmt(&m, &rv);
	ok(s != NULL && strstr(s, "Subject: =?UTF-8?B?PT9VVEYtOD9CP1ptOXY/PQ==?=\r\n") != NULL,
	    "a subject that looks encoded is encoded");
	free(s);
}

static void
test_from_name(void)
{
	pa_mail_msg_t m = base();
	enum pa_err rv;
	char *s;

	m.from_name = "PBX \"Demo\" \\ Tenant";
	s = fmt(&m, &rv);
	ok(s != NULL &&
	    strstr(s, "From: \"PBX \\\"Demo\\\" \\\\ Tenant\" <noreply@pbx.example>\r\n") != NULL,
	    "display name: quoted-string with escapes");
	free(s);
	m.from_name = "Téléphonie";
	s = fmt(&m, &rv);
	ok(s != NULL && strstr(s, "From: =?UTF-8?B?VMOpbMOpcGhvbmll?= <noreply@pbx.example>\r\n")
	    != NULL, "display name: encoded-word");
	free(s);
}

static void
test_body(void)
{
	pa_mail_msg_t m = base();
	enum pa_err rv;
	char long_line[1200], want[80] = "";
	char *s;

	m.body = "Grüße\r\n.dot\rtrailing space \nx=y";
	s = fmt(&m, &rv);
	ok(s != NULL && strstr(s, "Content-Transfer-Encoding: quoted-printable\r\n") != NULL,
	    "8-bit body: quoted-printable");
	ok(s != NULL &&
	    strstr(s, "\r\n\r\nGr=C3=BC=C3=9Fe\r\n.dot\r\ntrailing space=20\r\nx=3Dy\r\n") != NULL,
	    "quoted-printable body, line ends normalised");
	free(s);

	memset(long_line, 'a', sizeof(long_line) - 1);
	long_line[sizeof(long_line) - 1] = '\0';
	m.body = long_line;
	s = fmt(&m, &rv);
	ok(s != NULL && strstr(s, "quoted-printable") != NULL, "a 1199-byte line: quoted-printable");
	memset(want, 'a', 75);
	memcpy(want + 75, "=\r\n", 4);
	ok(s != NULL && strstr(s, want) != NULL, "soft line breaks at 76 characters");
	free(s);

	m.body = ".\n..\nend";
	s = fmt(&m, &rv);
	ok(s != NULL && strstr(s, "\r\n\r\n.\r\n..\r\nend\r\n") != NULL,
	    "dot lines left as they are (libcurl stuffs them)");
	free(s);
}

static void
test_addresses(void)
{
	static const char *const bad[] = {
		"alice@example.com\r\nRCPT TO:<evil@x>", "alice@example.com\nRSET",
		"alice@@example.com", "alice", "@example.com", "alice@", "al ice@example.com",
		"alice@exa_mple.com", "<alice@example.com>", "alice@example.com>",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com",
		"alice@ex\001ample.com", "alicé@example.com",
	};
	pa_mail_msg_t m = base();
	enum pa_err rv;
	char *s;

	for (size_t i = 0; i < PA_NELEM(bad); i++) {
		m.to = bad[i];
		s = fmt(&m, &rv);
		ok(rv == PA_EINPUT && s == NULL, "recipient %zu refused", i);
		free(s);
	}
	m = base();
	m.from = "noreply@pbx.example\r\nBcc: x@y";
	s = fmt(&m, &rv);
	ok(rv == PA_EINPUT && s == NULL, "sender with CRLF refused");
	free(s);
}

int
main(void)
{
	test_plain();
	test_subject();
	test_from_name();
	test_body();
	test_addresses();
	return done_testing();
}
