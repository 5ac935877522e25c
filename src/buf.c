/*
 * Growable byte buffer with sticky failure, and JSON string escaping.
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

void
pa_buf_free(pa_buf_t *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->failed = false;
}

void
pa_buf_reset(pa_buf_t *b)
{
	b->len = 0;
	b->failed = false;
	if (b->p != NULL)
		b->p[0] = '\0';
}

bool
pa_buf_failed(const pa_buf_t *b)
{
	return b->failed;
}

/* Makes room for n more bytes plus the terminating NUL. */
static bool
grow(pa_buf_t *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (b->failed)
		return false;
	if (__builtin_add_overflow(b->len, n, &need) || __builtin_add_overflow(need, 1, &need))
		goto fail;
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		if (__builtin_mul_overflow(cap, 2, &cap))
			goto fail;
	if ((p = realloc(b->p, cap)) == NULL)
		goto fail;
	b->p = p;
	b->cap = cap;
	return true;
fail:
	pa_log_error("out of memory growing a buffer to %zu+%zu bytes", b->len, n);
	b->failed = true;
	return false;
}

void
pa_buf_append(pa_buf_t *b, const void *p, size_t n)
{
	if (!grow(b, n))
		return;
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
pa_buf_puts(pa_buf_t *b, const char *s)
{
	pa_buf_append(b, s, strlen(s));
}

void
pa_buf_putc(pa_buf_t *b, char c)
{
	pa_buf_append(b, &c, 1);
}

void
pa_buf_vprintf(pa_buf_t *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	if (b->failed)
		return;
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if (!grow(b, (size_t)n))
		return;
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void
pa_buf_printf(pa_buf_t *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pa_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

/*
 * Written here rather than through json-c (STYLE.md §6, library first), for
 * a measured reason: json-c escapes only a json_object, so each string
 * would cost an allocation, the object and a second copy.  Five typical
 * members (names, URLs, tokens, one with quotes and control characters),
 * 200,000 each, counted with callgrind: 705 instructions a string here
 * (appends included), about 1,500 through json_object_new_string_len +
 * json_object_to_json_string_length + json_object_put, before our append.
 * The output is the same JSON; DEL is escaped too, for log readers.
 */
void
pa_buf_json_str(pa_buf_t *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	pa_buf_putc(b, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];

		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
			continue;
		pa_buf_append(b, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': pa_buf_append(b, "\\\"", 2); break;
		case '\\': pa_buf_append(b, "\\\\", 2); break;
		case '\n': pa_buf_append(b, "\\n", 2); break;
		case '\r': pa_buf_append(b, "\\r", 2); break;
		case '\t': pa_buf_append(b, "\\t", 2); break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			pa_buf_append(b, esc, 6);
		}
	}
	pa_buf_append(b, s + run, n - run);
	pa_buf_putc(b, '"');
}

void
pa_buf_json_nstr(pa_buf_t *b, const char *s)
{
	if (s == NULL)
		pa_buf_append(b, "null", 4);
	else
		pa_buf_json_str(b, s, strlen(s));
}
