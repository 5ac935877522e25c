/*
 * Growable byte buffer (malloc-backed; the owner calls pa_buf_free).  Always
 * NUL-terminated after a successful append.  An append that fails for lack of
 * memory marks the buffer failed; later appends are no-ops, so callers may
 * append a sequence and check pa_buf_failed once.
 */
#ifndef PA_BUF_H
#define PA_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "pa.h"

typedef struct {
	char *p;
	size_t len, cap;
	bool failed;
} pa_buf_t;

#define PA_BUF_INIT { NULL, 0, 0, false }

void pa_buf_free(pa_buf_t *b);
void pa_buf_reset(pa_buf_t *b);	/* len = 0, keeps the memory */
bool pa_buf_failed(const pa_buf_t *b);
void pa_buf_append(pa_buf_t *b, const void *p, size_t n);
void pa_buf_puts(pa_buf_t *b, const char *s);
void pa_buf_putc(pa_buf_t *b, char c);
void pa_buf_printf(pa_buf_t *b, const char *fmt, ...) PA_PRINTF(2, 3);
void pa_buf_vprintf(pa_buf_t *b, const char *fmt, va_list ap) PA_PRINTF(2, 0);
/* Appends s as a JSON string literal with quotes (control chars escaped). */
void pa_buf_json_str(pa_buf_t *b, const char *s, size_t n);
/* Appends s as a JSON string literal, or null when s is NULL. */
void pa_buf_json_nstr(pa_buf_t *b, const char *s);

#endif
