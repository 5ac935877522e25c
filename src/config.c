/*
 * Configuration table, parser, environment overrides and validation.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "valid.h"

#ifndef PA_SYSCONFDIR
#define PA_SYSCONFDIR "/etc"
#endif
#ifndef PA_RUNSTATEDIR
#define PA_RUNSTATEDIR "/run"
#endif
#ifndef PA_MIGRATIONS_DIR
#define PA_MIGRATIONS_DIR "/usr/share/pbx-auth/migrations"
#endif

#define MAX_CONFIG_SIZE (1024 * 1024)

enum type { T_STR, T_INT, T_OCTAL, T_LOGLEVEL, T_AUTHORITY, T_BOOL, T_ORIGINS, T_NAME,
	T_SUBJECT, T_BODY, T_TLS, T_LOGFORMAT, T_CIDRS };

struct key {
	const char *name;
	enum type type;
	size_t offset;
	const char *def;	/* text form of the default; NULL: unset */
	long min, max;		/* T_INT and T_OCTAL bounds */
};

#define OFF(f) offsetof(pa_config_t, f)
static const struct key keys[] = {
	{ "database", T_STR, OFF(database), NULL, 0, 0 },
	{ "ctl_database", T_STR, OFF(ctl_database), NULL, 0, 0 },
	{ "listen", T_STR, OFF(listen), PA_RUNSTATEDIR "/pbx-auth/fcgi.sock", 0, 0 },
	{ "listen_mode", T_OCTAL, OFF(listen_mode), "0660", 0, 0777 },
	{ "listen_backlog", T_INT, OFF(listen_backlog), "1024", 1, 65535 },
	{ "workers", T_INT, OFF(workers), "0", 0, 256 },
	{ "hash_listen", T_STR, OFF(hash_listen), NULL, 0, 0 },
	{ "hash_workers", T_INT, OFF(hash_workers), "0", 0, 256 },
	{ "hash_queue_max", T_INT, OFF(hash_queue_max), "64", 1, 4096 },
	{ "hash_nice", T_INT, OFF(hash_nice), "10", 0, 19 },
	{ "user", T_STR, OFF(user), NULL, 0, 0 },
	{ "listen_group", T_STR, OFF(listen_group), NULL, 0, 0 },
	{ "pidfile", T_STR, OFF(pidfile), NULL, 0, 0 },
	{ "log_level", T_LOGLEVEL, OFF(log_level), "info", 0, 0 },
	{ "log_format", T_LOGFORMAT, OFF(log_format), "text", 0, 0 },
	{ "retry_after", T_INT, OFF(retry_after), "5", 1, 3600 },
	{ "migrations_dir", T_STR, OFF(migrations_dir), PA_MIGRATIONS_DIR, 0, 0 },
	{ "ms365_authority_global", T_AUTHORITY, OFF(ms365_authority_global),
	    "https://login.microsoftonline.com", 0, 0 },
	{ "ms365_authority_china", T_AUTHORITY, OFF(ms365_authority_china),
	    "https://login.partner.microsoftonline.cn", 0, 0 },
	{ "ms365_ca_file", T_STR, OFF(ms365_ca_file), NULL, 0, 0 },
	{ "ms365_connect_timeout", T_INT, OFF(ms365_connect_timeout), "5", 1, 300 },
	{ "ms365_timeout", T_INT, OFF(ms365_timeout), "15", 1, 300 },
	{ "ms365_flow_ttl", T_INT, OFF(ms365_flow_ttl), "600", 60, 3600 },
	{ "ms365_metadata_ttl", T_INT, OFF(ms365_metadata_ttl), "3600", 1, 604800 },
	{ "portal_url", T_STR, OFF(portal_url), NULL, 0, 0 },
	{ "tenant_cache_size", T_INT, OFF(tenant_cache_size), "131072", 16, 10000000 },
	{ "gate_cache_size", T_INT, OFF(gate_cache_size), "100000", 0, 10000000 },
	{ "gate_cache_memory", T_INT, OFF(gate_cache_memory), "16", 1, 4096 },
	{ "gate_offline_ttl", T_INT, OFF(gate_offline_ttl), "300", 0, 86400 },
	{ "access_token_ttl", T_INT, OFF(access_token_ttl), "3600", 1, 86400 },
	{ "refresh_token_ttl", T_INT, OFF(refresh_token_ttl), "2592000", 1, 31536000 },
	{ "refresh_reuse_grace", T_INT, OFF(refresh_reuse_grace), "10", 0, 300 },
	{ "refresh_retry_window", T_INT, OFF(refresh_retry_window), "600", 0, 86400 },
	{ "two_factor_ttl", T_INT, OFF(two_factor_ttl), "600", 1, 3600 },
	{ "password_hash_cost", T_INT, OFF(password_hash_cost), "0", 0, 11 },
	{ "password_min_length", T_INT, OFF(password_min_length), "8", 1, 1024 },
	{ "password_max_length", T_INT, OFF(password_max_length), "128", 1, 1024 },
	{ "throttle_ip_failures", T_INT, OFF(throttle_ip_failures), "5", 0, 100000 },
	{ "throttle_ip_window", T_INT, OFF(throttle_ip_window), "600", 1, 86400 },
	{ "throttle_ip_block", T_INT, OFF(throttle_ip_block), "3600", 1, 604800 },
	{ "throttle_account_failures", T_INT, OFF(throttle_account_failures), "10", 0, 100000 },
	{ "throttle_account_window", T_INT, OFF(throttle_account_window), "600", 1, 86400 },
	{ "throttle_account_block", T_INT, OFF(throttle_account_block), "900", 1, 604800 },
	{ "throttle_exempt", T_CIDRS, OFF(throttle_exempt), NULL, 0, 0 },
	{ "cookie_name", T_NAME, OFF(cookie_name), "pbx_session", 0, 0 },
	{ "cookie_secure", T_BOOL, OFF(cookie_secure), "on", 0, 0 },
	{ "allowed_origins", T_ORIGINS, OFF(allowed_origins), NULL, 0, 0 },
	{ "reset_token_ttl", T_INT, OFF(reset_token_ttl), "1800", 60, 86400 },
	{ "mail_rate_interval", T_INT, OFF(mail_rate_interval), "60", 0, 86400 },
	{ "otp_ttl", T_INT, OFF(otp_ttl), "300", 30, 600 },
	{ "otp_resend_interval", T_INT, OFF(otp_resend_interval), "60", 0, 3600 },
	{ "otp_max_attempts", T_INT, OFF(otp_max_attempts), "5", 1, 100 },
	{ "reset_mail_subject", T_SUBJECT, OFF(reset_mail_subject),
	    "Password reset for {tenant}", 0, 0 },
	{ "reset_mail_body", T_BODY, OFF(reset_mail_body),
	    "Hello {username},\\n\\nsomeone asked to reset the password of your account {username}"
	    " at {tenant}. To choose a new password, open this link within {minutes} minutes:"
	    "\\n\\n{link}\\n\\nThe link works once. If you did not ask for it, ignore this"
	    " message: your password stays as it is.\\n", 0, 0 },
	{ "otp_mail_subject", T_SUBJECT, OFF(otp_mail_subject),
	    "Your sign-in code for {tenant}", 0, 0 },
	{ "otp_mail_body", T_BODY, OFF(otp_mail_body),
	    "Hello {username},\\n\\nyour sign-in code for {tenant} is {code}. It is valid for"
	    " {minutes} minutes.\\n\\nIf you did not try to sign in, change your password.\\n",
	    0, 0 },
	{ "smtp_url", T_STR, OFF(smtp_url), NULL, 0, 0 },
	{ "smtp_from", T_STR, OFF(smtp_from), NULL, 0, 0 },
	{ "smtp_from_name", T_STR, OFF(smtp_from_name), NULL, 0, 0 },
	{ "smtp_user", T_STR, OFF(smtp_user), NULL, 0, 0 },
	{ "smtp_password_file", T_STR, OFF(smtp_password_file), NULL, 0, 0 },
	{ "smtp_starttls", T_TLS, OFF(smtp_starttls), "required", 0, 0 },
	{ "smtp_ca_file", T_STR, OFF(smtp_ca_file), NULL, 0, 0 },
	{ "smtp_connect_timeout", T_INT, OFF(smtp_connect_timeout), "10", 1, 25 },
	{ "smtp_timeout", T_INT, OFF(smtp_timeout), "20", 1, 25 },
	{ "smtp_max_attempts", T_INT, OFF(smtp_max_attempts), "8", 1, 100 },
	{ "smtp_retry_base", T_INT, OFF(smtp_retry_base), "30", 1, 3600 },
	{ "cleanup_interval", T_INT, OFF(cleanup_interval), "300", 1, 86400 },
	{ "mail_keep_days", T_INT, OFF(mail_keep_days), "7", 0, 3650 },
	{ "audit_keep_days", T_INT, OFF(audit_keep_days), "365", 0, 36500 },
};

const char *
pa_config_default_path(void)
{
	return PA_SYSCONFDIR "/pbx-auth/pbx-auth.conf";
}

static void PA_PRINTF(3, 4)
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Validators return NULL, or a message saying what is wrong. */
static const char *
parse_long(const char *v, int base, long min, long max, long *out)
{
	char *end;
	long n;

	errno = 0;
	if (*v == '\0' || isspace((unsigned char)*v) || *v == '+' || *v == '-')
		return "expected a non-negative whole number";
	n = strtol(v, &end, base);
	if (errno != 0 || *end != '\0')
		return "expected a whole number";
	if (n < min || n > max)
		return "out of range";
	*out = n;
	return NULL;
}

/*
 * An authority is scheme://host[:port] with nothing after it (one trailing
 * slash is dropped).  Plain http is allowed for loopback hosts only (tests).
 */
static const char *
check_authority(char *v)
{
	const char *host, *rest, *why;
	size_t hn;
	bool https;

	if ((why = pa_url_split(v, &https, &host, &hn, &rest)) != NULL)
		return why;
	if (rest[0] == '/' && rest[1] == '\0')
		v[strlen(v) - 1] = '\0';
	else if (rest[0] != '\0')
		return "must be scheme://host[:port] with no path, query or user";
	if (!https && !pa_valid_loopback_host(host, hn))
		return "plain http:// is allowed for loopback hosts only";
	return NULL;
}

/* Space-separated origins, each scheme://host[:port] as an authority. */
static const char *
check_origins(char *v)
{
	char one[512];
	const char *why;

	for (char *p = v; *p != '\0';) {
		size_t n = strcspn(p, " \t");

		if (n == 0) {
			p++;
			continue;
		}
		if (n >= sizeof(one))
			return "an origin is too long";
		memcpy(one, p, n);
		one[n] = '\0';
		if ((why = check_authority(one)) != NULL)
			return why;
		if (strlen(one) != n)
			return "an origin ends with '/': write scheme://host[:port]";
		p += n;
	}
	return NULL;
}

/* A cookie name: letters, digits, '_', '-' and '.' (an RFC 6265 token). */
static const char *
check_name(const char *v)
{
	if (strlen(v) > 64 || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789_-.") != strlen(v))
		return "expected 1-64 letters, digits, '_', '-' or '.'";
	return NULL;
}

/*
 * The text of a message (flows.h): valid UTF-8 without control characters,
 * {name} placeholders of the known names only; in a body, "\\n" is a line
 * break and "\\\\" a backslash (decoded here, in place).
 */
static const char *
check_mail_text(char *v, bool body)
{
	static const char *const names[] = { "tenant", "domain", "username", "link", "code",
		"minutes" };
	char *w = v;

	if (!pa_valid_text(v, body ? 8000 : 300))
		return body ? "expected at most 8000 bytes of UTF-8 without control characters"
		    : "expected at most 300 bytes of UTF-8 without control characters";
	for (const char *p = strchr(v, '{'); p != NULL; p = strchr(p + 1, '{')) {
		size_t n = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_");
		bool known = false;

		if (n == 0 || p[1 + n] != '}')
			continue;	/* not a placeholder: a literal brace */
		for (size_t i = 0; i < PA_NELEM(names); i++)
			known |= strlen(names[i]) == n && strncmp(names[i], p + 1, n) == 0;
		if (!known)
			return "unknown {placeholder}: use {tenant}, {domain}, {username}, {link},"
			    " {code} or {minutes}";
	}
	if (!body)
		return NULL;
	for (const char *r = v; *r != '\0'; r++) {
		if (*r != '\\') {
			*w++ = *r;
			continue;
		}
		if (r[1] == 'n')
			*w++ = '\n';
		else if (r[1] == '\\')
			*w++ = '\\';
		else
			return "a backslash starts \\n (line break) or \\\\ (backslash) only";
		r++;
	}
	*w = '\0';
	return NULL;
}

/*
 * smtp://host[:port][/ehlo-name] or smtps://...: no user information (the
 * password has its own file) and nothing that is not printable ASCII.
 * Sets *loopback when the host is a loopback address.
 */
static const char *
check_smtp_url(const char *v, bool *loopback)
{
	const char *h, *end, *hend;

	if (strncasecmp(v, "smtp://", 7) == 0)
		h = v + 7;
	else if (strncasecmp(v, "smtps://", 8) == 0)
		h = v + 8;
	else
		return "smtp_url must start with smtp:// or smtps://";
	for (const char *p = v; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return "smtp_url must not contain spaces or control characters";
	end = h + strcspn(h, "/?#");
	if (memchr(h, '@', (size_t)(end - h)) != NULL)
		return "smtp_url must not contain user information (use smtp_user and"
		    " smtp_password_file)";
	hend = *h == '[' ? h + strcspn(h, "]") + 1 : h + strcspn(h, ":/?#");
	if (hend == h || hend > end)
		return "smtp_url has no host";
	*loopback = pa_valid_loopback_host(h, (size_t)(hend - h));
	return NULL;
}

/* The smtp_* keys together. */
static const char *
check_smtp(const pa_config_t *c)
{
	bool loopback = false;
	const char *why;

	if (c->smtp_url != NULL && (why = check_smtp_url(c->smtp_url, &loopback)) != NULL)
		return why;
	if (c->smtp_url != NULL && c->smtp_from == NULL)
		return "smtp_from (the sender address) is required with smtp_url";
	if (c->smtp_from != NULL && !pa_valid_email(c->smtp_from))
		return "smtp_from is not a valid email address (write the name in smtp_from_name)";
	if (c->smtp_from_name != NULL && !pa_valid_text(c->smtp_from_name, 200))
		return "smtp_from_name: expected at most 200 bytes of UTF-8 without control characters";
	if ((c->smtp_user == NULL) != (c->smtp_password_file == NULL))
		return "smtp_user and smtp_password_file go together";
	if (c->smtp_url != NULL && c->smtp_user != NULL && !loopback &&
	    strncasecmp(c->smtp_url, "smtps://", 8) != 0 && c->smtp_starttls != PA_SMTP_TLS_REQUIRED)
		return "smtp_user over smtp:// needs smtp_starttls = required (or smtps://),"
		    " unless the server is on loopback";
	return NULL;
}

/* Parses throttle_exempt into c, which keeps its blocks when v is wrong. */
static const char *
set_cidrs(pa_config_t *c, const char *v)
{
	pa_cidr_t nets[PA_CIDR_MAX];
	const char *why;
	size_t n;

	if ((why = pa_cidr_parse_list(v, nets, &n)) != NULL)
		return why;
	memcpy(c->throttle_exempt_nets, nets, sizeof(nets));
	c->throttle_exempt_n = n;
	return NULL;
}

static const struct key *
find_key(const char *name)
{
	for (size_t i = 0; i < PA_NELEM(keys); i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

enum pa_err
pa_config_set(pa_config_t *c, const char *name, const char *value, char *err, size_t errlen)
{
	const struct key *k = find_key(name);
	void *field;
	const char *msg = NULL;
	enum pa_log_level level;
	enum pa_log_format lf;
	char *s = NULL;
	long n;

	if (k == NULL) {
		seterr(err, errlen, "unknown key '%s'", name);
		return PA_EINPUT;
	}
	field = (char *)c + k->offset;
	switch (k->type) {
	case T_STR:
	case T_AUTHORITY:
	case T_ORIGINS:
	case T_CIDRS:
	case T_NAME:
	case T_SUBJECT:
	case T_BODY:
		if (*value == '\0' && k->type != T_STR && k->type != T_ORIGINS &&
		    k->type != T_CIDRS) {
			msg = "must not be empty";
			break;
		}
		if (*value == '\0') {	/* "key =" unsets */
			if (k->type == T_CIDRS)
				c->throttle_exempt_n = 0;
			free(*(char **)field);
			*(char **)field = NULL;
			return PA_OK;
		}
		if ((s = strdup(value)) == NULL) {
			seterr(err, errlen, "out of memory");
			return PA_ENOMEM;
		}
		if (k->type == T_AUTHORITY)
			msg = check_authority(s);
		else if (k->type == T_ORIGINS)
			msg = check_origins(s);
		else if (k->type == T_CIDRS)	/* throttle_exempt is the only one */
			msg = set_cidrs(c, s);
		else if (k->type == T_NAME)
			msg = check_name(s);
		else if (k->type == T_SUBJECT || k->type == T_BODY)
			msg = check_mail_text(s, k->type == T_BODY);
		if (msg == NULL) {
			free(*(char **)field);
			*(char **)field = s;
			s = NULL;
		}
		break;
	case T_INT:
	case T_OCTAL:
		if ((msg = parse_long(value, k->type == T_OCTAL ? 8 : 10, k->min, k->max, &n)) == NULL)
			*(int *)field = (int)n;
		break;
	case T_BOOL:
		if (strcmp(value, "on") == 0 || strcmp(value, "true") == 0 ||
		    strcmp(value, "yes") == 0 || strcmp(value, "1") == 0)
			*(bool *)field = true;
		else if (strcmp(value, "off") == 0 || strcmp(value, "false") == 0 ||
		    strcmp(value, "no") == 0 || strcmp(value, "0") == 0)
			*(bool *)field = false;
		else
			msg = "expected on or off";
		break;
	case T_TLS:
		if (strcmp(value, "required") == 0)
			*(int *)field = PA_SMTP_TLS_REQUIRED;
		else if (strcmp(value, "optional") == 0)
			*(int *)field = PA_SMTP_TLS_OPTIONAL;
		else if (strcmp(value, "off") == 0)
			*(int *)field = PA_SMTP_TLS_OFF;
		else
			msg = "expected required, optional or off";
		break;
	case T_LOGLEVEL:
		if (pa_log_parse_level(value, &level))
			*(enum pa_log_level *)field = level;
		else
			msg = "expected debug, info, warn or error";
		break;
	case T_LOGFORMAT:
		if (pa_log_parse_format(value, &lf))
			*(enum pa_log_format *)field = lf;
		else
			msg = "expected text or json";
		break;
	}
	free(s);
	if (msg != NULL) {
		seterr(err, errlen, "%s = '%s': %s", name, value, msg);
		return PA_EINPUT;
	}
	return PA_OK;
}

pa_config_t *
pa_config_new(void)
{
	pa_config_t *c = calloc(1, sizeof(*c));
	char err[256];

	if (c == NULL)
		return NULL;
	for (size_t i = 0; i < PA_NELEM(keys); i++)
		if (keys[i].def != NULL && pa_config_set(c, keys[i].name, keys[i].def, err,
		    sizeof(err)) != PA_OK) {
			pa_config_free(c);
			return NULL;
		}
	return c;
}

void
pa_config_free(pa_config_t *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < PA_NELEM(keys); i++)
		if (keys[i].type == T_STR || keys[i].type == T_AUTHORITY ||
		    keys[i].type == T_ORIGINS || keys[i].type == T_NAME || keys[i].type == T_CIDRS ||
		    keys[i].type == T_SUBJECT || keys[i].type == T_BODY)
			free(*(char **)((char *)c + keys[i].offset));
	free(c);
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static enum pa_err
apply_env(pa_config_t *c, char *err, size_t errlen)
{
	char var[64], msg[256];
	enum pa_err rv;

	for (size_t i = 0; i < PA_NELEM(keys); i++) {
		const char *v;
		size_t j;

		memcpy(var, "PBX_AUTH_", 9);
		for (j = 0; keys[i].name[j] != '\0' && 9 + j < sizeof(var) - 1; j++)
			var[9 + j] = (char)toupper((unsigned char)keys[i].name[j]);
		var[9 + j] = '\0';
		if ((v = getenv(var)) == NULL)
			continue;
		if ((rv = pa_config_set(c, keys[i].name, v, msg, sizeof(msg))) != PA_OK) {
			seterr(err, errlen, "environment %s: %s", var, msg);
			return rv;
		}
	}
	return PA_OK;
}

static int
cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

/*
 * The default of hash_listen, next to listen: "/run/x/fcgi.sock" gives
 * "/run/x/fcgi-hash.sock" (a path without ".sock" gets "-hash"), and
 * "host:port" gives "host:port+1".  NULL when out of memory or when the
 * port is not a number below 65535 (*why says which).
 */
static char *
derive_hash_listen(const char *listen, const char **why)
{
	size_t n = strlen(listen);
	const char *colon;
	char *out;
	long port;

	if (listen[0] == '/') {
		if (n > 5 && strcmp(listen + n - 5, ".sock") == 0)
			n -= 5;
		if ((out = malloc(n + sizeof("-hash.sock"))) == NULL)
			return NULL;
		memcpy(out, listen, n);
		strcpy(out + n, listen[n] == '.' ? "-hash.sock" : "-hash");
		return out;
	}
	colon = strrchr(listen, ':');
	if (parse_long(colon + 1, 10, 1, 65534, &port) != NULL) {
		*why = "cannot be derived from listen's port: set it";
		return NULL;
	}
	n = (size_t)(colon - listen);
	if ((out = malloc(n + 8)) == NULL)
		return NULL;
	snprintf(out, n + 8, "%.*s:%ld", (int)n, listen, port + 1);
	return out;
}

static enum pa_err
check(pa_config_t *c, char *err, size_t errlen)
{
	const char *why;

	if (c->database == NULL) {
		seterr(err, errlen, "'database' (a libpq connection string) is required");
		return PA_EINPUT;
	}
	if (c->listen == NULL) {
		seterr(err, errlen, "'listen' is required");
		return PA_EINPUT;
	}
	if (c->listen[0] != '/' && strrchr(c->listen, ':') == NULL) {
		seterr(err, errlen, "listen = '%s': expected an absolute unix socket path or host:port",
		    c->listen);
		return PA_EINPUT;
	}
	if (c->pidfile != NULL && c->pidfile[0] != '/') {
		seterr(err, errlen, "pidfile = '%s': expected an absolute path", c->pidfile);
		return PA_EINPUT;
	}
	if (c->password_min_length > c->password_max_length) {
		seterr(err, errlen, "password_min_length (%d) is greater than password_max_length (%d)",
		    c->password_min_length, c->password_max_length);
		return PA_EINPUT;
	}
	if (c->portal_url != NULL && (why = pa_valid_url(c->portal_url)) != NULL) {
		seterr(err, errlen, "portal_url = '%s': %s", c->portal_url, why);
		return PA_EINPUT;
	}
	if (c->ms365_connect_timeout > c->ms365_timeout) {
		seterr(err, errlen, "ms365_connect_timeout (%d) is greater than ms365_timeout (%d)",
		    c->ms365_connect_timeout, c->ms365_timeout);
		return PA_EINPUT;
	}
	if (strstr(c->reset_mail_body, "{link}") == NULL) {
		seterr(err, errlen, "reset_mail_body must contain {link}");
		return PA_EINPUT;
	}
	if (strstr(c->otp_mail_body, "{code}") == NULL) {
		seterr(err, errlen, "otp_mail_body must contain {code}");
		return PA_EINPUT;
	}
	if ((why = check_smtp(c)) != NULL) {
		seterr(err, errlen, "%s", why);
		return PA_EINPUT;
	}
	why = "out of memory";
	if (c->hash_listen == NULL &&
	    (c->hash_listen = derive_hash_listen(c->listen, &why)) == NULL) {
		seterr(err, errlen, "hash_listen: %s", why);
		return PA_EINPUT;
	}
	if (c->hash_listen[0] != '/' && strrchr(c->hash_listen, ':') == NULL) {
		seterr(err, errlen, "hash_listen = '%s': expected an absolute unix socket path or"
		    " host:port", c->hash_listen);
		return PA_EINPUT;
	}
	if (strcmp(c->hash_listen, c->listen) == 0) {
		seterr(err, errlen, "hash_listen must differ from listen ('%s')", c->listen);
		return PA_EINPUT;
	}
	if (c->workers == 0)
		c->workers = cpu_count();
	if (c->hash_workers == 0)
		c->hash_workers = cpu_count();
	return PA_OK;
}

enum pa_err
pa_config_parse(pa_config_t *c, const char *text, const char *name, char *err, size_t errlen)
{
	char *copy = strdup(text), *line, *next, msg[256];
	enum pa_err rv = PA_OK;
	int lineno = 0;

	if (copy == NULL) {
		seterr(err, errlen, "out of memory");
		return PA_ENOMEM;
	}
	for (line = copy; line != NULL; line = next) {
		char *eq, *k, *v;

		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		k = trim(line);
		if (*k == '\0' || *k == '#')
			continue;
		if ((eq = strchr(k, '=')) == NULL) {
			seterr(err, errlen, "%s:%d: expected 'key = value'", name, lineno);
			rv = PA_EINPUT;
			goto out;
		}
		*eq = '\0';
		k = trim(k);
		v = trim(eq + 1);
		if ((rv = pa_config_set(c, k, v, msg, sizeof(msg))) != PA_OK) {
			seterr(err, errlen, "%s:%d: %s", name, lineno, msg);
			goto out;
		}
	}
	if ((rv = apply_env(c, err, errlen)) != PA_OK)
		goto out;
	rv = check(c, err, errlen);
out:
	free(copy);
	return rv;
}

enum pa_err
pa_config_load(pa_config_t *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t n;
	enum pa_err rv = PA_ESYS;

	if (f == NULL) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return PA_ESYS;
	}
	if ((text = malloc(MAX_CONFIG_SIZE + 1)) == NULL) {
		seterr(err, errlen, "out of memory");
		rv = PA_ENOMEM;
		goto out;
	}
	n = fread(text, 1, MAX_CONFIG_SIZE + 1, f);
	if (ferror(f)) {
		seterr(err, errlen, "%s: read error", path);
		goto out;
	}
	if (n > MAX_CONFIG_SIZE) {
		seterr(err, errlen, "%s: larger than %d bytes", path, MAX_CONFIG_SIZE);
		rv = PA_EINPUT;
		goto out;
	}
	if (memchr(text, '\0', n) != NULL) {
		seterr(err, errlen, "%s: contains a NUL byte", path);
		rv = PA_EINPUT;
		goto out;
	}
	text[n] = '\0';
	rv = pa_config_parse(c, text, path, err, errlen);
out:
	free(text);
	fclose(f);
	return rv;
}
