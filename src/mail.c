/*
 * The form of an outbox message: RFC 5322 headers, RFC 2047 encoded-words
 * for text that is not short printable ASCII, RFC 2045 quoted-printable for
 * bodies that are not 7bit.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mail.h"
#include "valid.h"

#define ENCODED_CHUNK 39	/* bytes per encoded-word: 52 base64 characters */
#define PLAIN_HEADER_MAX 66	/* longer header text is encoded (and so folded) */
#define QP_LINE 76		/* RFC 2045 6.7 (5): encoded lines up to 76 characters */
#define LINE_MAX_7BIT 998	/* RFC 5322 2.1.1 */

static void
put_base64(pa_buf_t *b, const unsigned char *p, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char q[4];

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
		    (i + 2 < n ? p[i + 2] : 0);

		q[0] = tab[v >> 18 & 63];
		q[1] = tab[v >> 12 & 63];
		q[2] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		q[3] = i + 2 < n ? tab[v & 63] : '=';
		pa_buf_append(b, q, 4);
	}
}

/* A header value that may stand as it is: short printable ASCII, no "=?". */
static bool
header_plain(const char *s, size_t n)
{
	if (n > PLAIN_HEADER_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ||
		    (s[i] == '=' && s[i + 1] == '?'))
			return false;
	return true;
}

/*
 * RFC 2047 B encoded-words of at most ENCODED_CHUNK bytes each, never
 * splitting a UTF-8 sequence, folded onto continuation lines (the space
 * between adjacent encoded-words is not part of the text, 6.2).
 */
static void
put_encoded_words(pa_buf_t *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = n - i > ENCODED_CHUNK ? ENCODED_CHUNK : n - i;

		while (i + k < n && k > 1 && ((unsigned char)s[i + k] & 0xc0) == 0x80)
			k--;
		if (i > 0)
			pa_buf_puts(b, "\r\n ");
		pa_buf_puts(b, "=?UTF-8?B?");
		put_base64(b, (const unsigned char *)s + i, k);
		pa_buf_puts(b, "?=");
		i += k;
	}
}

/*
 * A copy of header text with every control character (C0, DEL) turned into
 * a space: CR and LF can never end the header early.  NULL when out of memory.
 */
static char *
header_text(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		return NULL;
	for (char *p = d; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return d;
}

static void
put_unstructured(pa_buf_t *b, const char *s)
{
	size_t n = strlen(s);

	if (header_plain(s, n))
		pa_buf_append(b, s, n);
	else
		put_encoded_words(b, s, n);
}

/* From: a quoted display name (or encoded-words) and the address. */
static void
put_from(pa_buf_t *b, const char *name, const char *addr)
{
	pa_buf_puts(b, "From: ");
	if (name != NULL && name[0] != '\0') {
		size_t n = strlen(name);

		if (header_plain(name, n)) {
			pa_buf_putc(b, '"');
			for (size_t i = 0; i < n; i++) {
				if (name[i] == '"' || name[i] == '\\')
					pa_buf_putc(b, '\\');
				pa_buf_putc(b, name[i]);
			}
			pa_buf_putc(b, '"');
		} else {
			put_encoded_words(b, name, n);
		}
		pa_buf_putc(b, ' ');
	}
	pa_buf_printf(b, "<%s>\r\n", addr);
}

/* The length of the line at s (up to CR or LF) and of its line end (0, 1 or 2). */
static size_t
line_len(const char *s, size_t *eol)
{
	size_t n = strcspn(s, "\r\n");

	*eol = s[n] == '\0' ? 0 : s[n] == '\r' && s[n + 1] == '\n' ? 2 : 1;
	return n;
}

static bool
body_7bit(const char *s)
{
	while (*s != '\0') {
		size_t eol, n = line_len(s, &eol);

		if (n > LINE_MAX_7BIT)
			return false;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)s[i] >= 0x80)
				return false;
		s += n + eol;
	}
	return true;
}

/* Quoted-printable (RFC 2045 6.7) of one line, with soft breaks, then CRLF. */
static void
put_qp_line(pa_buf_t *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool lit = (c >= 33 && c <= 126 && c != '=') ||
		    ((c == ' ' || c == '\t') && i + 1 < n);
		size_t w = lit ? 1 : 3;

		/* Room for the soft break's '=' (and the last character may take it). */
		if (col + w > QP_LINE - 1 && !(i + 1 == n && col + w <= QP_LINE)) {
			pa_buf_puts(b, "=\r\n");
			col = 0;
		}
		if (lit) {
			pa_buf_putc(b, (char)c);
		} else {
			pa_buf_putc(b, '=');
			pa_buf_putc(b, hex[c >> 4]);
			pa_buf_putc(b, hex[c & 15]);
		}
		col += w;
	}
	pa_buf_puts(b, "\r\n");
}

/* The body with every line end as CRLF, 7bit or quoted-printable. */
static void
put_body(pa_buf_t *b, const char *s, bool qp)
{
	while (*s != '\0') {
		size_t eol, n = line_len(s, &eol);

		if (qp) {
			put_qp_line(b, s, n);
		} else {
			pa_buf_append(b, s, n);
			pa_buf_puts(b, "\r\n");
		}
		s += n + eol;
	}
}

enum pa_err
pa_mail_format(pa_buf_t *b, const pa_mail_msg_t *m)
{
	static const char *const wday[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
		"Aug", "Sep", "Oct", "Nov", "Dec" };
	char *subject = NULL, *name = NULL;
	bool qp;
	struct tm tm;
	enum pa_err rv = PA_ENOMEM;

	if (m->from == NULL || m->to == NULL || !pa_valid_email(m->from) || !pa_valid_email(m->to))
		return PA_EINPUT;
	if ((subject = header_text(m->subject ? m->subject : "")) == NULL ||
	    (m->from_name != NULL && (name = header_text(m->from_name)) == NULL))
		goto out;
	if (gmtime_r(&m->date, &tm) == NULL) {
		rv = PA_EINPUT;
		goto out;
	}
	qp = !body_7bit(m->body ? m->body : "");
	pa_buf_printf(b, "Date: %s, %d %s %04d %02d:%02d:%02d +0000\r\n", wday[tm.tm_wday],
	    tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	put_from(b, name, m->from);
	pa_buf_printf(b, "To: <%s>\r\n", m->to);
	pa_buf_puts(b, "Subject: ");
	put_unstructured(b, subject);
	/* Stable across retries: the same message keeps its identity. */
	pa_buf_printf(b, "\r\nMessage-ID: <pbx-auth.%lld.%lld@%s>\r\n", m->id, m->created_us,
	    strchr(m->from, '@') + 1);
	pa_buf_puts(b, "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n");
	pa_buf_printf(b, "Content-Transfer-Encoding: %s\r\n", qp ? "quoted-printable" : "7bit");
	pa_buf_puts(b, "Auto-Submitted: auto-generated\r\n\r\n");
	put_body(b, m->body ? m->body : "", qp);
	rv = pa_buf_failed(b) ? PA_ENOMEM : PA_OK;
out:
	if (rv == PA_ENOMEM)
		pa_log_error("out of memory");
	free(subject);
	free(name);
	return rv;
}

