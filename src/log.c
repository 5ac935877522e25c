/*
 * Logging to stderr, one write(2) per line (the journal under systemd), or
 * to syslog(3) once a detached daemon has no stderr worth writing to; as
 * logfmt after a syslog-like prefix or as one JSON object.  Every value is
 * escaped here, the same way for every module, so no caller can forget: a
 * value from a request never reaches an operator's terminal with control
 * characters in it.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LINE_MAX_BYTES 4096
#define MSG_MAX 1024
#define VALUE_MAX 512
#define FIELDS_MAX 16
#define KEY_MAX 32
#define RID_MAX 64

static const char *prog = "pbx-auth";
static pid_t pid;	/* cached: glibc's getpid() is a system call per line */
static enum pa_log_level min_level = PA_LOG_INFO;
static bool use_syslog;
static const int priorities[PA_LOG__MAX] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };
static enum pa_log_format format = PA_LOG_TEXT;
static char request_id[RID_MAX + 1];
static const char *const names[PA_LOG__MAX] = { "debug", "info", "warn", "error" };
static const char *const format_names[PA_LOG_FORMAT__MAX] = { "text", "json" };

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

void
pa_log_set_format(enum pa_log_format f)
{
	format = f;
}

bool
pa_log_parse_format(const char *s, enum pa_log_format *out)
{
	for (int i = 0; i < PA_LOG_FORMAT__MAX; i++)
		if (strcmp(s, format_names[i]) == 0) {
			*out = (enum pa_log_format)i;
			return true;
		}
	return false;
}

bool
pa_log_request_id_valid(const char *id)
{
	size_t n = 0;

	if (id == NULL)
		return false;
	for (; id[n] != '\0'; n++)
		if (n == RID_MAX || !((id[n] >= '0' && id[n] <= '9') ||
		    (id[n] >= 'a' && id[n] <= 'z') || (id[n] >= 'A' && id[n] <= 'Z') ||
		    id[n] == '-' || id[n] == '_' || id[n] == '.'))
			return false;
	return n > 0;
}

void
pa_log_set_request_id(const char *id)
{
	if (pa_log_request_id_valid(id))
		memcpy(request_id, id, strlen(id) + 1);
	else
		request_id[0] = '\0';
}

const char *
pa_log_request_id(void)
{
	return request_id[0] != '\0' ? request_id : NULL;
}

/*
 * The code point of the UTF-8 sequence at s[0..n), and its length in *len;
 * -1 (with *len 1) for a byte that starts no valid sequence (RFC 3629 §4:
 * no overlong forms, no surrogates, nothing above U+10FFFF).
 */
static long
utf8_next(const unsigned char *s, size_t n, size_t *len)
{
	long cp;
	size_t k;

	*len = 1;
	if (s[0] < 0x80)
		return s[0];
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		k = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		k = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		k = 4, cp = s[0] & 0x07;
	else
		return -1;
	if (n < k)
		return -1;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Second-byte bounds of E0 (overlong), ED (surrogates), F0 (overlong), F4 (> U+10FFFF). */
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
		return -1;
	*len = k;
	return cp;
}

/*
 * Code points a terminal or a reader could take for something else: C1
 * controls (NEL among them), the line and paragraph separators, and the
 * bidirectional overrides that reorder what is shown.
 */
static bool
invisible(long cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
	    cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

size_t
pa_log_escape(char *out, size_t cap, const char *s, size_t n, bool *escaped)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t j = 0, len;

	if (escaped != NULL)
		*escaped = false;
	if (cap == 0)
		return 0;
	for (size_t i = 0; i < n; i += len) {
		long cp = utf8_next(p + i, n - i, &len);
		char e[8];
		size_t elen = 0;

		if (cp == '"' || cp == '\\') {
			e[0] = '\\', e[1] = (char)cp, elen = 2;
		} else if (cp == '\n' || cp == '\r' || cp == '\t') {
			e[0] = '\\', e[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't', elen = 2;
		} else if (cp < 0) {
			memcpy(e, "\\ufffd", 6), elen = 6;	/* not UTF-8: U+FFFD */
		} else if (cp < 0x20 || cp == 0x7f || invisible(cp)) {
			e[0] = '\\', e[1] = 'u';
			for (int k = 0; k < 4; k++)
				e[2 + k] = hex[(cp >> (12 - 4 * k)) & 15];
			elen = 6;
		}
		if (elen == 0) {
			if (j + len >= cap)
				break;
			memcpy(out + j, p + i, len);
			j += len;
			continue;
		}
		if (escaped != NULL)
			*escaped = true;
		if (j + elen >= cap)
			break;
		memcpy(out + j, e, elen);
		j += elen;
	}
	out[j] = '\0';
	return j;
}

/*
 * One conversion of a printf format, spec[0..len) ("%.64s", "%lld"), with
 * its arguments taken from ap, appended raw to out[*n..cap).  Only the
 * conversions our callers use are known; the compiler has checked them
 * against the arguments (PA_PRINTF), and anything else ends the line.
 */
static bool
convert(char *out, size_t *n, size_t cap, const char *spec, size_t len, va_list *ap)
{
	char f[32], conv = spec[len - 1];
	int star[2], nstar = 0, lmod = 0, r = -1;
	bool z = false;

	if (len >= sizeof(f))
		return false;
	for (size_t i = 1; i < len - 1; i++) {
		if (spec[i] == '*' && nstar < 2)
			star[nstar++] = va_arg(*ap, int);
		else if (spec[i] == 'l')
			lmod++;
		else if (spec[i] == 'z')
			z = true;
	}
	memcpy(f, spec, len);
	f[len] = '\0';
	if (*n >= cap - 1)
		return false;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#define PA_CONV(T) (nstar == 2 ? snprintf(out + *n, cap - *n, f, star[0], star[1], va_arg(*ap, T)) \
	: nstar == 1 ? snprintf(out + *n, cap - *n, f, star[0], va_arg(*ap, T)) \
	: snprintf(out + *n, cap - *n, f, va_arg(*ap, T)))
	switch (conv) {
	case 's':
		r = PA_CONV(const char *);
		break;
	case 'd': case 'i':
		r = z ? PA_CONV(ssize_t) : lmod >= 2 ? PA_CONV(long long) :
		    lmod == 1 ? PA_CONV(long) : PA_CONV(int);
		break;
	case 'u': case 'x': case 'X': case 'o':
		r = z ? PA_CONV(size_t) : lmod >= 2 ? PA_CONV(unsigned long long) :
		    lmod == 1 ? PA_CONV(unsigned long) : PA_CONV(unsigned);
		break;
	case 'c':
		r = PA_CONV(int);
		break;
	case 'f': case 'g': case 'e':
		r = PA_CONV(double);
		break;
	case 'p':
		r = PA_CONV(void *);
		break;
	default:
		break;
	}
#undef PA_CONV
#pragma GCC diagnostic pop
	if (r < 0)
		return false;
	*n = (size_t)r >= cap - *n ? cap - 1 : *n + (size_t)r;
	return true;
}

/* Length of a "key=" starting at fmt (a lower-case name, then '='), or 0. */
static size_t
field_key(const char *fmt)
{
	size_t i = 0;

	if (!(fmt[0] >= 'a' && fmt[0] <= 'z'))
		return 0;
	while ((fmt[i] >= 'a' && fmt[i] <= 'z') || (fmt[i] >= '0' && fmt[i] <= '9') ||
	    fmt[i] == '_')
		i++;
	return fmt[i] == '=' && i < KEY_MAX ? i : 0;
}

struct parts {
	char msg[MSG_MAX];
	size_t msglen;
	size_t nfields;
	struct {
		const char *key;	/* into the format string */
		size_t keylen;
		char value[VALUE_MAX];
		size_t len;
	} f[FIELDS_MAX];
};

/*
 * Formats fmt into the message (the text before the first " key=") and the
 * fields (each " key=" of the format starts one; its value runs to the next).
 * Values are kept raw here; rendering escapes them.
 */
static void
split(struct parts *p, const char *fmt, va_list *ap)
{
	char *cur = p->msg;
	size_t *curlen = &p->msglen, cap = MSG_MAX;

	p->msglen = 0;
	p->nfields = 0;
	p->msg[0] = '\0';
	for (size_t i = 0; fmt[i] != '\0';) {
		size_t k;

		if ((i == 0 || fmt[i - 1] == ' ') && p->nfields < FIELDS_MAX &&
		    (k = field_key(fmt + i)) > 0) {
			if (*curlen > 0 && cur[*curlen - 1] == ' ' && i > 0)
				cur[--*curlen] = '\0';
			p->f[p->nfields].key = fmt + i;
			p->f[p->nfields].keylen = k;
			cur = p->f[p->nfields].value;
			curlen = &p->f[p->nfields].len;
			cap = VALUE_MAX;
			*curlen = 0;
			cur[0] = '\0';
			p->nfields++;
			i += k + 1;
			continue;
		}
		if (fmt[i] == '%' && fmt[i + 1] == '%') {
			if (*curlen < cap - 1)
				cur[(*curlen)++] = '%';
			cur[*curlen] = '\0';
			i += 2;
			continue;
		}
		if (fmt[i] == '%') {
			size_t j = i + 1;

			while (fmt[j] != '\0' && strchr("-+ #0123456789.*hlzjtL", fmt[j]) != NULL)
				j++;
			if (fmt[j] == '\0' || !convert(cur, curlen, cap, fmt + i, j - i + 1, ap))
				return;
			i = j + 1;
			continue;
		}
		if (*curlen < cap - 1)
			cur[(*curlen)++] = fmt[i];
		cur[*curlen] = '\0';
		i++;
	}
}

/* Appends s[0..len) to line[*n..cap) verbatim, as far as it fits. */
static void
put(char *line, size_t *n, size_t cap, const char *s, size_t len)
{
	if (*n + len >= cap)
		len = *n < cap ? cap - *n - 1 : 0;
	memcpy(line + *n, s, len);
	*n += len;
}

static void
put_str(char *line, size_t *n, size_t cap, const char *s)
{
	put(line, n, cap, s, strlen(s));
}

/*
 * Appends a value: in JSON always quoted; in text bare when that is
 * unambiguous (no space, quote, '=' or backslash, nothing escaped), else
 * quoted.  The same escapes either way, so one value reads the same in both.
 * Room for the closing quote is kept.
 */
static void
put_value(char *line, size_t *n, size_t cap, const char *v, size_t len, bool json)
{
	char esc[MSG_MAX * 6 + 1];
	bool escaped, quote;
	size_t elen, room;

	if (*n + 4 >= cap)
		return;
	/* Escaping stops before an escape or character that would not fit whole. */
	room = cap - *n - 3;
	elen = pa_log_escape(esc, room + 1 < sizeof(esc) ? room + 1 : sizeof(esc), v, len,
	    &escaped);
	quote = json || escaped || elen == 0 || strpbrk(esc, " =\"\\") != NULL;
	if (quote)
		put(line, n, cap, "\"", 1);
	put(line, n, cap, esc, elen);
	if (quote)
		put(line, n, cap, "\"", 1);
}

static void
put_field(char *line, size_t *n, size_t cap, const char *key, size_t keylen, const char *v,
    size_t vlen, bool json)
{
	if (*n + keylen + 8 >= cap)
		return;
	if (json) {
		put(line, n, cap, ",\"", 2);
		put(line, n, cap, key, keylen);
		put(line, n, cap, "\":", 2);
	} else {
		put(line, n, cap, " ", 1);
		put(line, n, cap, key, keylen);
		put(line, n, cap, "=", 1);
	}
	put_value(line, n, cap - 2, v, vlen, json);
}

/* True when the message can stand bare after the prefix as logfmt words. */
static bool
bare_message(const char *m, size_t len)
{
	char esc[MSG_MAX * 6 + 1];
	bool escaped;

	pa_log_escape(esc, sizeof(esc), m, len, &escaped);
	return !escaped && strpbrk(esc, "=\"\\") == NULL;
}

size_t
pa_log_vrender(char *line, size_t cap, enum pa_log_level level, const char *func, int errnum,
    const char *fmt, va_list ap)
{
	static struct parts p;	/* 10 KB: off the stack; processes are single-threaded */
	char ts[40], ebuf[128], num[24];
	const bool json = format == PA_LOG_JSON;
	struct timeval tv;
	struct tm tm;
	va_list aq;
	size_t n = 0, tl;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + tl, sizeof(ts) - tl, ".%03dZ", (int)(tv.tv_usec / 1000));
	va_copy(aq, ap);
	split(&p, fmt, &aq);
	va_end(aq);
	/* GNU strerror_r returns the message, not always in ebuf. */
	if (errnum != 0)
		snprintf(p.msg + p.msglen, sizeof(p.msg) - p.msglen, ": %s",
		    strerror_r(errnum, ebuf, sizeof(ebuf)));
	p.msglen = strlen(p.msg);
	snprintf(num, sizeof(num), "%d", (int)pid);
	if (json) {
		put_str(line, &n, cap, "{\"ts\":\"");
		put_str(line, &n, cap, ts);
		put_str(line, &n, cap, "\",\"level\":\"");
		put_str(line, &n, cap, names[level]);
		put_str(line, &n, cap, "\"");
		put_field(line, &n, cap, "proc", 4, prog, strlen(prog), true);
		put_str(line, &n, cap, ",\"pid\":");
		put_str(line, &n, cap, num);
		put_field(line, &n, cap, "msg", 3, p.msg, p.msglen, true);
	} else {
		put_str(line, &n, cap, ts);
		put_str(line, &n, cap, " ");
		put_str(line, &n, cap, names[level]);
		put_str(line, &n, cap, " ");
		put_str(line, &n, cap, prog);
		put_str(line, &n, cap, "[");
		put_str(line, &n, cap, num);
		put_str(line, &n, cap, "]:");
		if (p.msglen > 0 && bare_message(p.msg, p.msglen)) {
			put(line, &n, cap, " ", 1);
			put(line, &n, cap, p.msg, p.msglen);
		} else if (p.msglen > 0) {
			put_field(line, &n, cap, "msg", 3, p.msg, p.msglen, false);
		}
	}
	for (size_t i = 0; i < p.nfields; i++)
		put_field(line, &n, cap, p.f[i].key, p.f[i].keylen, p.f[i].value, p.f[i].len,
		    json);
	if (request_id[0] != '\0')
		put_field(line, &n, cap, "request_id", 10, request_id, strlen(request_id), json);
	if (func != NULL)
		put_field(line, &n, cap, "at", 2, func, strlen(func), json);
	if (json)
		put(line, &n, cap, "}", 1);
	return n;
}

void
pa_log_write(enum pa_log_level level, const char *func, int errnum, const char *fmt, ...)
{
	char line[LINE_MAX_BYTES + 1];
	va_list ap;
	size_t n;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	n = pa_log_vrender(line, sizeof(line) - 1, level, func, errnum, fmt, ap);
	va_end(ap);
	if (use_syslog) {
		/* syslog adds its own time stamp, name and pid: text lines go
		 * without the prefix (up to "]: "), JSON objects whole. */
		const char *start = NULL;

		line[n] = '\0';
		if (format == PA_LOG_TEXT && (start = strstr(line, "]:")) != NULL)
			start += start[2] == ' ' ? 3 : 2;
		else
			start = line;
		syslog(priorities[level], "%s", start);
		return;
	}
	line[n++] = '\n';
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
}
