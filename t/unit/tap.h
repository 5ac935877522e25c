/*
 * A minimal TAP producer for the C unit tests (prove --exec '' t/unit/test_*).
 * Each check prints one line and returns whether it passed; main ends with
 * `return done_testing();`.
 */
#ifndef PA_TAP_H
#define PA_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define TAP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define TAP_CHECK(pass, fmt) do { va_list ap; va_start(ap, fmt); \
	pass = tap_vok(pass, fmt, ap); va_end(ap); } while (0)

static int tap_run, tap_failed, tap_planned = -1;
#define TAP_DIAG stderr

static inline void plan(int n) { tap_planned = n; printf("1..%d\n", n); }

static inline bool TAP_PRINTF(2, 0)
tap_vok(bool pass, const char *fmt, va_list ap)
{
	printf("%sok %d - ", pass ? "" : "not ", ++tap_run);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	tap_failed += !pass;
	return pass;
}

static inline bool TAP_PRINTF(2, 3)
ok(bool pass, const char *fmt, ...) { TAP_CHECK(pass, fmt); return pass; }

static inline bool TAP_PRINTF(3, 4)
is_str(const char *got, const char *want, const char *fmt, ...)
{
	bool pass = got == want || (got != NULL && want != NULL && strcmp(got, want) == 0);

	TAP_CHECK(pass, fmt);
	if (!pass)
		fprintf(TAP_DIAG, "#          got: %s%s%s\n#     expected: %s%s%s\n",
		    got ? "'" : "", got ? got : "NULL", got ? "'" : "",
		    want ? "'" : "", want ? want : "NULL", want ? "'" : "");
	return pass;
}

static inline bool TAP_PRINTF(3, 4)
is_int(long long got, long long want, const char *fmt, ...)
{
	bool pass = got == want;

	TAP_CHECK(pass, fmt);
	if (!pass)
		fprintf(TAP_DIAG, "#          got: %lld\n#     expected: %lld\n", got, want);
	return pass;
}

/* Prints the plan if none was given; the exit status counts the failures. */
static inline int
done_testing(void)
{
	if (tap_planned < 0)
		printf("1..%d\n", tap_run);
	fflush(stdout);
	if (tap_planned >= 0 && tap_planned != tap_run) {
		fprintf(stderr, "# planned %d tests but ran %d\n", tap_planned, tap_run);
		return 255;
	}
	return tap_failed > 254 ? 254 : tap_failed;
}

#endif
