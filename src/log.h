/*
 * One line per event on stderr:
 *   2026-11-27T23:50:01.123Z info pbx-authd[1234]: message key=value
 * Warnings and errors name the function that logged them.  A line is written
 * with one write(2), so lines of concurrent processes do not interleave.
 * Never pass a password or a token to these functions.
 */
#ifndef PA_LOG_H
#define PA_LOG_H

#include <errno.h>
#include <stdbool.h>

#include "pa.h"

enum pa_log_level { PA_LOG_DEBUG, PA_LOG_INFO, PA_LOG_WARN, PA_LOG_ERROR, PA_LOG__MAX };

void pa_log_init(const char *progname);
/* From now on, lines go to syslog(3) (facility daemon), not stderr. */
void pa_log_to_syslog(void);
/* Call in a child after fork(2): the pid in log lines is cached. */
void pa_log_forked(void);
void pa_log_set_level(enum pa_log_level level);
enum pa_log_level pa_log_get_level(void);
bool pa_log_enabled(enum pa_log_level level);
/* Parses "debug", "info", "warn", "error"; returns false on anything else. */
bool pa_log_parse_level(const char *s, enum pa_log_level *out);
/* errnum != 0 appends ": strerror(errnum)" to the message. */
void pa_log_write(enum pa_log_level level, const char *func, int errnum, const char *fmt, ...)
	PA_PRINTF(4, 5);

#define pa_log_debug(...) do { if (pa_log_enabled(PA_LOG_DEBUG)) \
	pa_log_write(PA_LOG_DEBUG, __func__, 0, __VA_ARGS__); } while (0)
#define pa_log_info(...) pa_log_write(PA_LOG_INFO, NULL, 0, __VA_ARGS__)
#define pa_log_warn(...) pa_log_write(PA_LOG_WARN, __func__, 0, __VA_ARGS__)
#define pa_log_error(...) pa_log_write(PA_LOG_ERROR, __func__, 0, __VA_ARGS__)
/* Variants that append errno's text (like err(3) versus errx(3)). */
#define pa_log_syswarn(...) pa_log_write(PA_LOG_WARN, __func__, errno, __VA_ARGS__)
#define pa_log_syserr(...) pa_log_write(PA_LOG_ERROR, __func__, errno, __VA_ARGS__)

#endif
