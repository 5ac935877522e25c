/*
 * pbx-authctl's output of list and show commands, one helper for all of
 * them: aligned columns under a header on a terminal, tab-separated lines
 * for programs (piped, or --tsv), or JSON (--json).
 */
#include "autoconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ctl/ctl.h"

enum ctl_format ctl_format = CTL_FMT_TSV;

/* Prints s with control characters as '?' (a tab or newline would break the columns). */
static void
put_text(const char *s, size_t width)
{
	size_t n = 0;

	for (; *s; s++, n++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
	for (; n < width; n++)
		putchar(' ');
}

/* Prints a JSON object of keys[i] = vals[i] (NULL: null). */
static void
put_json_object(const char *const *keys, const char *const *vals, size_t n)
{
	pa_buf_t b = PA_BUF_INIT;

	pa_buf_putc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			pa_buf_putc(&b, ',');
		pa_buf_json_nstr(&b, keys[i]);
		pa_buf_putc(&b, ':');
		pa_buf_json_nstr(&b, vals[i]);
	}
	pa_buf_putc(&b, '}');
	if (!pa_buf_failed(&b))
		fwrite(b.p, 1, b.len, stdout);
	pa_buf_free(&b);
}

/*
 * The table form: rows x ncols cells from cell(), keys upper-cased as the
 * header, each column as wide as its widest cell (bytes: our values are
 * mostly ASCII; a wide character only shifts its own row).
 */
static void
put_table(const char *const *keys, int ncols, int rows,
    const char *(*cell)(const void *, int, int), const void *arg)
{
	size_t *w = calloc((size_t)ncols, sizeof(*w));

	if (w == NULL)
		return;
	for (int k = 0; k < ncols; k++) {
		w[k] = strlen(keys[k]);
		for (int i = 0; i < rows; i++) {
			const char *v = cell(arg, i, k);
			size_t n = strlen(v ? v : "-");

			if (n > w[k])
				w[k] = n;
		}
	}
	for (int k = 0; k < ncols; k++) {
		size_t n = 0;

		for (const char *p = keys[k]; *p; p++, n++)
			putchar(toupper((unsigned char)*p));
		if (k + 1 < ncols)
			for (; n < w[k] + 2; n++)
				putchar(' ');
	}
	putchar('\n');
	for (int i = 0; i < rows; i++) {
		for (int k = 0; k < ncols; k++) {
			const char *v = cell(arg, i, k);

			put_text(v ? v : "-", k + 1 < ncols ? w[k] + 2 : 0);
		}
		putchar('\n');
	}
	free(w);
}

static const char *
res_cell(const void *arg, int row, int col)
{
	return pa_db_value(arg, row, col);
}

void
ctl_print_rows(const pa_db_res_t *r, const char *const *keys, int ncols)
{
	int rows = pa_db_rows(r);

	switch (ctl_format) {
	case CTL_FMT_TABLE:
		put_table(keys, ncols, rows, res_cell, r);
		break;
	case CTL_FMT_TSV:
		for (int i = 0; i < rows; i++)
			for (int k = 0; k < ncols; k++) {
				const char *v = pa_db_value(r, i, k);

				put_text(v ? v : "-", 0);
				putchar(k + 1 < ncols ? '\t' : '\n');
			}
		break;
	case CTL_FMT_JSON: {
		const char *vals[64];

		putchar('[');
		for (int i = 0; i < rows; i++) {
			for (int k = 0; k < ncols && k < 64; k++)
				vals[k] = pa_db_value(r, i, k);
			if (i > 0)
				putchar(',');
			put_json_object(keys, vals, (size_t)(ncols < 64 ? ncols : 64));
		}
		puts("]");
		break;
	}
	}
}

struct record {
	const char *const *keys, *const *vals;
};

static const char *
record_cell(const void *arg, int row, int col)
{
	const struct record *rec = arg;

	return col == 0 ? rec->keys[row] : rec->vals[row] ? rec->vals[row] : "";
}

void
ctl_print_record(const char *const *keys, const char *const *vals, size_t n)
{
	static const char *const head[] = { "field", "value" };
	struct record rec = { keys, vals };

	switch (ctl_format) {
	case CTL_FMT_TABLE:
		put_table(head, 2, (int)n, record_cell, &rec);
		break;
	case CTL_FMT_TSV:
		for (size_t i = 0; i < n; i++) {
			put_text(keys[i], 0);
			putchar('\t');
			put_text(vals[i] ? vals[i] : "", 0);
			putchar('\n');
		}
		break;
	case CTL_FMT_JSON:
		put_json_object(keys, vals, n);
		putchar('\n');
		break;
	}
}
