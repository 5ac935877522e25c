/*
 * One line per event on stderr, logfmt after a syslog-like prefix:
 *   2026-11-27T23:50:01.123Z info pbx-authd[1234]: mail sent id=7 reply="250 ok" request_id=ab12
 * or, with log_format = json, one JSON object:
 *   {"ts":"…","level":"info","proc":"pbx-authd","pid":1234,"msg":"mail sent","id":"7",…}
 * The format string is the schema: its text up to the first " key=" is the
 * message, each " key=" in it starts a field whose value runs to the next.
 * Every value (and the message) is escaped by pa_log_escape, so callers pass
 * request data as it is; a message that needs escaping is written as msg="…".
 * The current request's id (pa_log_set_request_id) ends every line as
 * request_id=, then at=<function> for warnings and errors.  Field keys
 * ts, level, proc, pid, msg, request_id and at are the writer's: a JSON line
 * would hold them twice.  A line is written
 * with one write(2), so lines of concurrent processes do not interleave.
 * Never pass a password or a token to these functions.
 */
#ifndef PA_LOG_H
#define PA_LOG_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "pa.h"

enum pa_log_level { PA_LOG_DEBUG, PA_LOG_INFO, PA_LOG_WARN, PA_LOG_ERROR, PA_LOG__MAX };
enum pa_log_format { PA_LOG_TEXT, PA_LOG_JSON, PA_LOG_FORMAT__MAX };

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
void pa_log_set_format(enum pa_log_format f);
/* Parses "text" or "json". */
bool pa_log_parse_format(const char *s, enum pa_log_format *out);
/*
 * The id of the request being served (nginx's $request_id), added to every
 * line until cleared with NULL.  An id that is not 1-64 characters of
 * [A-Za-z0-9._-] clears it too (see pa_log_request_id_valid).
 */
void pa_log_set_request_id(const char *id);
bool pa_log_request_id_valid(const char *id);
/* The current request id, or NULL. */
const char *pa_log_request_id(void);
/*
 * Escapes s[0..n) into out (NUL-terminated, at most cap bytes with the NUL):
 * '"' and '\\' with a backslash, \n \r \t, other C0 controls, DEL, C1
 * controls (U+0080-U+009F, NEL among them), U+2028/U+2029, bidirectional
 * controls and U+FEFF as \uXXXX, each byte that is not UTF-8 as \ufffd.
 * Valid for a JSON string and a quoted logfmt value alike.  Stops before an
 * escape that would not fit whole.  *escaped (may be NULL) tells whether
 * anything was escaped.  Returns the length written.
 */
size_t pa_log_escape(char *out, size_t cap, const char *s, size_t n, bool *escaped);
/* Renders one line (without the newline) into line; returns its length. */
size_t pa_log_vrender(char *line, size_t cap, enum pa_log_level level, const char *func,
    int errnum, const char *fmt, va_list ap);
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
