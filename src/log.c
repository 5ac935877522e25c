/*
 * Logging to stderr, one write(2) per line (the journal under systemd), or
 * to syslog(3) once a detached daemon has no stderr worth writing to.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *prog = "pbx-auth";
static pid_t pid;	/* cached: glibc's getpid() is a system call per line */
static enum pa_log_level min_level = PA_LOG_INFO;
static bool use_syslog;
static const char *const names[PA_LOG__MAX] = { "debug", "info", "warn", "error" };
static const int priorities[PA_LOG__MAX] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };

void
pa_log_init(const char *progname)
{
	prog = progname;
	pid = getpid();
}

void
pa_log_to_syslog(void)
{
	openlog(prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	use_syslog = true;
}

void
pa_log_forked(void)
{
	pid = getpid();
}

enum pa_log_level
pa_log_get_level(void)
{
	return min_level;
}

void
pa_log_set_level(enum pa_log_level level)
{
	min_level = level;
}

bool
pa_log_enabled(enum pa_log_level level)
{
	return level >= min_level;
}

bool
pa_log_parse_level(const char *s, enum pa_log_level *out)
{
	for (int i = 0; i < PA_LOG__MAX; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum pa_log_level)i;
			return true;
		}
	return false;
}

/* Appends to line[n..cap) and returns the new length, truncating silently. */
static size_t
vappend(char *line, size_t n, size_t cap, const char *fmt, va_list ap)
{
	int r;

	if (n >= cap - 1)
		return n;
	r = vsnprintf(line + n, cap - n, fmt, ap);
	if (r < 0)
		return n;
	return (size_t)r >= cap - n ? cap - 1 : n + (size_t)r;
}

static size_t PA_PRINTF(4, 5)
append(char *line, size_t n, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	n = vappend(line, n, cap, fmt, ap);
	va_end(ap);
	return n;
}

void
pa_log_write(enum pa_log_level level, const char *func, int errnum, const char *fmt, ...)
{
	char line[2048], ebuf[128];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	size_t n, start;

	if (level < min_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n = append(line, n, sizeof(line), ".%03dZ %s %s[%d]: ", (int)(tv.tv_usec / 1000),
	    names[level], prog, (int)pid);
	start = n;	/* syslog adds its own time stamp, name and pid */
	va_start(ap, fmt);
	n = vappend(line, n, sizeof(line), fmt, ap);
	va_end(ap);
	/* GNU strerror_r returns the message, not always in ebuf. */
	if (errnum != 0)
		n = append(line, n, sizeof(line), ": %s", strerror_r(errnum, ebuf, sizeof(ebuf)));
	if (func != NULL)
		n = append(line, n, sizeof(line), " at=%s", func);
	/* Keep one event on one line whatever the message held. */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	if (use_syslog) {
		line[n] = '\0';
		syslog(priorities[level], "%s", line + start);
		return;
	}
	line[n++] = '\n';
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
}
