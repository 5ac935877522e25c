/*
 * Unit tests of the configuration: defaults, the `key = value` parser and its
 * messages, PBX_AUTH_* environment overrides, and the cross-key checks.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "valid.h"
#include "tap.h"

static const char *const env_vars[] = {
	"PBX_AUTH_DATABASE", "PBX_AUTH_LISTEN", "PBX_AUTH_LISTEN_MODE", "PBX_AUTH_LISTEN_BACKLOG",
	"PBX_AUTH_WORKERS", "PBX_AUTH_USER", "PBX_AUTH_LOG_LEVEL", "PBX_AUTH_RETRY_AFTER",
	"PBX_AUTH_MIGRATIONS_DIR", "PBX_AUTH_MS365_AUTHORITY_GLOBAL",
	"PBX_AUTH_MS365_AUTHORITY_CHINA", "PBX_AUTH_TENANT_CACHE_SIZE", "PBX_AUTH_HASH_LISTEN",
	"PBX_AUTH_HASH_WORKERS", "PBX_AUTH_HASH_QUEUE_MAX", "PBX_AUTH_HASH_NICE",
};

static void
clear_env(void)
{
	for (size_t i = 0; i < PA_NELEM(env_vars); i++)
		unsetenv(env_vars[i]);
}

/* Parses text into a fresh configuration; *cp receives it (free it). */
static enum pa_err
parse(const char *text, pa_config_t **cp, char *err, size_t errlen)
{
	err[0] = '\0';
	if ((*cp = pa_config_new()) == NULL)
		return PA_ENOMEM;
	return pa_config_parse(*cp, text, "test.conf", err, errlen);
}

static void
test_defaults(void)
{
	pa_config_t *c = pa_config_new();
	size_t n;

	if (!ok(c != NULL, "pa_config_new"))
		return;
	is_str(c->database, NULL, "database has no default");
	is_str(c->listen, PA_RUNSTATEDIR "/pbx-auth/fcgi.sock", "default listen: $(runstatedir)/...");
	is_int(c->listen_mode, 0660, "default listen_mode 0660");
	is_int(c->listen_backlog, 1024, "default listen_backlog");
	is_int(c->workers, 0, "default workers 0 (CPUs, resolved by parse)");
	is_str(c->user, NULL, "user has no default");
	is_int(c->log_level, PA_LOG_INFO, "default log_level info");
	is_int(c->retry_after, 5, "default retry_after 5");
	n = c->migrations_dir ? strlen(c->migrations_dir) : 0;
	ok(n > 11 && strcmp(c->migrations_dir + n - 11, "/migrations") == 0,
	    "default migrations_dir ends in /migrations");
	is_str(c->ms365_authority_global, "https://login.microsoftonline.com",
	    "default global authority");
	is_str(c->ms365_authority_china, "https://login.partner.microsoftonline.cn",
	    "default china authority");
	is_int(c->tenant_cache_size, 131072, "default tenant_cache_size");
	pa_config_free(c);
	pa_config_free(NULL);
	ok(1, "pa_config_free(NULL) is a no-op");
}

static void
test_full(void)
{
	static const char text[] =
	    "# pbx-auth configuration\n"
	    "\n"
	    "database = host=/run/postgresql dbname=pbx_auth user=pbx\n"
	    "listen = 127.0.0.1:9000\n"
	    "listen_mode = 0600\n"
	    "listen_backlog = 128\n"
	    "workers = 4\n"
	    "user = pbx-auth\n"
	    "log_level = debug\n"
	    "retry_after = 30\n"
	    "migrations_dir = /opt/pbx-auth/migrations\n"
	    "ms365_authority_global = https://login.example.com/\n"
	    "ms365_authority_china = http://127.0.0.1:8080\n"
	    "tenant_cache_size = 1000\n";
	pa_config_t *c;
	char err[256];

	is_int(parse(text, &c, err, sizeof(err)), PA_OK, "full config parses");
	is_str(err, "", "no message");
	is_str(c->database, "host=/run/postgresql dbname=pbx_auth user=pbx",
	    "database keeps the '=' after the first");
	is_str(c->listen, "127.0.0.1:9000", "listen");
	is_int(c->listen_mode, 0600, "listen_mode is octal");
	is_int(c->listen_backlog, 128, "listen_backlog");
	is_int(c->workers, 4, "workers");
	is_str(c->user, "pbx-auth", "user");
	is_int(c->log_level, PA_LOG_DEBUG, "log_level");
	is_int(c->retry_after, 30, "retry_after");
	is_str(c->migrations_dir, "/opt/pbx-auth/migrations", "migrations_dir");
	is_str(c->ms365_authority_global, "https://login.example.com",
	    "global authority without its trailing slash");
	is_str(c->ms365_authority_china, "http://127.0.0.1:8080", "china authority (loopback)");
	is_int(c->tenant_cache_size, 1000, "tenant_cache_size");
	pa_config_free(c);
}

static void
test_syntax(void)
{
	static const char text[] =
	    "   # an indented comment\r\n"
	    "#key = value in a comment\n"
	    "\n"
	    "   \t  \n"
	    "\r\n"
	    "  database=dbname=x  \r\n"
	    "retry_after\t=\t7\t\n"
	    "log_level =warn\n"
	    "user = a b  c \n"
	    "workers = 2";	/* no final newline */
	pa_config_t *c;
	char err[256];

	is_int(parse(text, &c, err, sizeof(err)), PA_OK, "comments, blank lines, CRLF parse");
	is_str(c->database, "dbname=x", "key and value trimmed");
	is_int(c->retry_after, 7, "tabs around '='");
	is_int(c->log_level, PA_LOG_WARN, "no space after '='");
	is_str(c->user, "a b  c", "inner spaces kept");
	is_int(c->workers, 2, "last line without newline");
	pa_config_free(c);

	is_int(parse("database = a\ndatabase = b\n", &c, err, sizeof(err)), PA_OK,
	    "a repeated key parses");
	is_str(c->database, "b", "the last value wins");
	pa_config_free(c);

	is_int(parse("database = x\nuser = bob\nuser =\n", &c, err, sizeof(err)), PA_OK,
	    "'key =' parses");
	is_str(c->user, NULL, "'key =' unsets a string");
	pa_config_free(c);

	is_int(parse("", &c, err, sizeof(err)), PA_EINPUT, "empty text: database missing");
	pa_config_free(c);
}

struct err_case {
	const char *text;
	const char *err;
};

static const struct err_case err_cases[] = {
	{ "database = x\n\nfoo = 1\n", "test.conf:3: unknown key 'foo'" },
	{ "# c\nDatabase = x\n", "test.conf:2: unknown key 'Database'" },
	{ "database = x\n= 1\n", "test.conf:2: unknown key ''" },
	{ "database = x\njust words\n", "test.conf:2: expected 'key = value'" },
	{ "listen_mode = 0689\n", "test.conf:1: listen_mode = '0689': expected a whole number" },
	{ "listen_mode = 0o660\n", "test.conf:1: listen_mode = '0o660': expected a whole number" },
	{ "listen_mode = 01000\n", "test.conf:1: listen_mode = '01000': out of range" },
	{ "listen_mode = -1\n",
	    "test.conf:1: listen_mode = '-1': expected a non-negative whole number" },
	{ "retry_after = 0\n", "test.conf:1: retry_after = '0': out of range" },
	{ "retry_after = 3601\n", "test.conf:1: retry_after = '3601': out of range" },
	{ "retry_after = 99999999999999999999\n",
	    "test.conf:1: retry_after = '99999999999999999999': expected a whole number" },
	{ "retry_after = 5s\n", "test.conf:1: retry_after = '5s': expected a whole number" },
	{ "retry_after = 0x10\n", "test.conf:1: retry_after = '0x10': expected a whole number" },
	{ "retry_after = +5\n",
	    "test.conf:1: retry_after = '+5': expected a non-negative whole number" },
	{ "retry_after =\n",
	    "test.conf:1: retry_after = '': expected a non-negative whole number" },
	{ "workers = 257\n", "test.conf:1: workers = '257': out of range" },
	{ "listen_backlog = 0\n", "test.conf:1: listen_backlog = '0': out of range" },
	{ "listen_backlog = 65536\n", "test.conf:1: listen_backlog = '65536': out of range" },
	{ "tenant_cache_size = 15\n", "test.conf:1: tenant_cache_size = '15': out of range" },
	{ "log_level = verbose\n",
	    "test.conf:1: log_level = 'verbose': expected debug, info, warn or error" },
	{ "ms365_authority_global = http://example.com\n",
	    "test.conf:1: ms365_authority_global = 'http://example.com': "
	    "plain http:// is allowed for loopback hosts only" },
	/* cross-key checks, after the whole file */
	{ "listen = /tmp/x.sock\n", "'database' (a libpq connection string) is required" },
	{ "database = x\ndatabase =\n", "'database' (a libpq connection string) is required" },
	{ "database = x\nlisten =\n", "'listen' is required" },
	{ "database = x\nlisten = relative.sock\n",
	    "listen = 'relative.sock': expected an absolute unix socket path or host:port" },
};

static void
test_errors(void)
{
	pa_config_t *c;
	char err[256];

	for (size_t i = 0; i < PA_NELEM(err_cases); i++) {
		is_int(parse(err_cases[i].text, &c, err, sizeof(err)), PA_EINPUT,
		    "error case %zu is rejected", i);
		is_str(err, err_cases[i].err, "error case %zu message", i);
		pa_config_free(c);
	}

	/* Bounds are inclusive. */
	is_int(parse("database=x\nretry_after = 3600\nlisten_mode = 0777\nworkers = 256\n"
	    "listen_backlog = 65535\ntenant_cache_size = 16\n", &c, err, sizeof(err)), PA_OK,
	    "the maxima (and the tenant_cache_size minimum) are accepted");
	ok(c->retry_after == 3600 && c->listen_mode == 0777 && c->workers == 256 &&
	    c->listen_backlog == 65535 && c->tenant_cache_size == 16, "the bounds are stored");
	pa_config_free(c);
	is_int(parse("database=x\nretry_after = 1\nlisten_mode = 0\nlisten_mode = 000\n", &c, err,
	    sizeof(err)), PA_OK, "the minima are accepted");
	ok(c->retry_after == 1 && c->listen_mode == 0, "the minima are stored");
	pa_config_free(c);

	/* A bad value leaves the previous one. */
	c = pa_config_new();
	is_int(pa_config_set(c, "retry_after", "abc", err, sizeof(err)), PA_EINPUT,
	    "pa_config_set rejects a bad int");
	is_str(err, "retry_after = 'abc': expected a whole number", "pa_config_set message");
	is_int(c->retry_after, 5, "retry_after unchanged");
	is_int(pa_config_set(c, "nope", "1", err, sizeof(err)), PA_EINPUT,
	    "pa_config_set rejects an unknown key");
	is_str(err, "unknown key 'nope'", "unknown key message");
	is_int(pa_config_set(c, "listen", "host:1", err, sizeof(err)), PA_OK, "pa_config_set ok");
	is_str(c->listen, "host:1", "listen set");
	pa_config_free(c);
}

static void
test_workers(void)
{
	pa_config_t *c;
	char err[256];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	is_int(parse("database = x\nworkers = 0\n", &c, err, sizeof(err)), PA_OK, "workers = 0");
	ok(c->workers >= 1 && c->workers <= 256, "workers = 0 resolves to %d (>= 1)", c->workers);
	if (cpus >= 1 && cpus <= 256)
		is_int(c->workers, cpus, "workers = 0 is the number of CPUs");
	pa_config_free(c);
	is_int(parse("database = x\n", &c, err, sizeof(err)), PA_OK, "workers unset");
	ok(c->workers >= 1, "the default workers resolves too");
	if (cpus >= 1 && cpus <= 256)
		is_int(c->hash_workers, cpus, "hash_workers unset is the number of CPUs");
	is_int(c->hash_queue_max, 64, "default hash_queue_max");
	is_int(c->hash_nice, 10, "default hash_nice");
	is_str(c->hash_listen, PA_RUNSTATEDIR "/pbx-auth/fcgi-hash.sock", "default hash_listen");
	pa_config_free(c);
}

/* hash_listen's default, derived from listen; and what is refused. */
static void
test_hash_listen(void)
{
	static const struct {
		const char *text, *want;
	} ok_cases[] = {
		{ "listen = /tmp/a.sock\n", "/tmp/a-hash.sock" },
		{ "listen = /tmp/fcgi\n", "/tmp/fcgi-hash" },
		{ "listen = 127.0.0.1:9000\n", "127.0.0.1:9001" },
		{ "listen = [::1]:9000\n", "[::1]:9001" },
		{ "listen = :9000\n", ":9001" },
		{ "listen = /tmp/a.sock\nhash_listen = 127.0.0.1:7000\n", "127.0.0.1:7000" },
	}, bad_cases[] = {
		{ "listen = 127.0.0.1:65535\n", "hash_listen: cannot be derived" },
		{ "listen = 127.0.0.1:http\n", "hash_listen: cannot be derived" },
		{ "listen = /tmp/a.sock\nhash_listen = /tmp/a.sock\n", "must differ" },
		{ "hash_listen = relative.sock\n", "expected an absolute unix socket path" },
		{ "hash_nice = 20\n", "hash_nice = '20': out of range" },
		{ "hash_queue_max = 0\n", "hash_queue_max = '0': out of range" },
	};
	pa_config_t *c;
	char err[256], text[256];

	for (size_t i = 0; i < PA_NELEM(ok_cases); i++) {
		snprintf(text, sizeof(text), "database = x\n%s", ok_cases[i].text);
		is_int(parse(text, &c, err, sizeof(err)), PA_OK, "%s: accepted", ok_cases[i].want);
		is_str(c->hash_listen, ok_cases[i].want, "hash_listen %s", ok_cases[i].want);
		pa_config_free(c);
	}
	for (size_t i = 0; i < PA_NELEM(bad_cases); i++) {
		snprintf(text, sizeof(text), "database = x\n%s", bad_cases[i].text);
		is_int(parse(text, &c, err, sizeof(err)), PA_EINPUT, "refused: %s", bad_cases[i].want);
		ok(strstr(err, bad_cases[i].want) != NULL, "message '%s' has '%s'", err,
		    bad_cases[i].want);
		pa_config_free(c);
	}
}

static void
test_env(void)
{
	pa_config_t *c;
	char err[256];

	setenv("PBX_AUTH_RETRY_AFTER", "42", 1);
	is_int(parse("database = x\nretry_after = 10\n", &c, err, sizeof(err)), PA_OK,
	    "env override parses");
	is_int(c->retry_after, 42, "PBX_AUTH_RETRY_AFTER wins over the file");
	pa_config_free(c);
	unsetenv("PBX_AUTH_RETRY_AFTER");
	is_int(parse("database = x\nretry_after = 10\n", &c, err, sizeof(err)), PA_OK,
	    "no override");
	is_int(c->retry_after, 10, "without the variable the file wins");
	pa_config_free(c);

	setenv("PBX_AUTH_RETRY_AFTER", "abc", 1);
	is_int(parse("database = x\n", &c, err, sizeof(err)), PA_EINPUT, "bad env value rejected");
	is_str(err,
	    "environment PBX_AUTH_RETRY_AFTER: retry_after = 'abc': expected a whole number",
	    "the message names the variable");
	pa_config_free(c);
	setenv("PBX_AUTH_RETRY_AFTER", "0", 1);
	is_int(parse("database = x\n", &c, err, sizeof(err)), PA_EINPUT, "env value out of range");
	is_str(err, "environment PBX_AUTH_RETRY_AFTER: retry_after = '0': out of range",
	    "out of range env message");
	pa_config_free(c);
	unsetenv("PBX_AUTH_RETRY_AFTER");

	/* The file is still checked before the environment applies. */
	setenv("PBX_AUTH_RETRY_AFTER", "42", 1);
	is_int(parse("retry_after = 0\n", &c, err, sizeof(err)), PA_EINPUT,
	    "a bad file value is an error even when overridden");
	is_str(err, "test.conf:1: retry_after = '0': out of range", "file error message");
	pa_config_free(c);
	unsetenv("PBX_AUTH_RETRY_AFTER");

	/* Strings, and the cross-key checks after the overrides. */
	setenv("PBX_AUTH_DATABASE", "dbname=fromenv", 1);
	setenv("PBX_AUTH_LOG_LEVEL", "error", 1);
	setenv("PBX_AUTH_LISTEN_MODE", "0640", 1);
	is_int(parse("log_level = debug\n", &c, err, sizeof(err)), PA_OK,
	    "database from the environment satisfies the check");
	is_str(c->database, "dbname=fromenv", "PBX_AUTH_DATABASE");
	is_int(c->log_level, PA_LOG_ERROR, "PBX_AUTH_LOG_LEVEL");
	is_int(c->listen_mode, 0640, "PBX_AUTH_LISTEN_MODE is octal");
	pa_config_free(c);
	clear_env();

	setenv("PBX_AUTH_DATABASE", "", 1);
	is_int(parse("database = x\n", &c, err, sizeof(err)), PA_EINPUT,
	    "an empty variable unsets the file's value");
	is_str(err, "'database' (a libpq connection string) is required",
	    "then database is missing");
	pa_config_free(c);
	clear_env();

	setenv("PBX_AUTH_MS365_AUTHORITY_GLOBAL", "http://example.com", 1);
	is_int(parse("database = x\n", &c, err, sizeof(err)), PA_EINPUT, "bad authority in env");
	is_str(err, "environment PBX_AUTH_MS365_AUTHORITY_GLOBAL: ms365_authority_global = "
	    "'http://example.com': plain http:// is allowed for loopback hosts only",
	    "bad authority env message");
	pa_config_free(c);
	setenv("PBX_AUTH_MS365_AUTHORITY_GLOBAL", "http://localhost:8080/", 1);
	is_int(parse("database = x\n", &c, err, sizeof(err)), PA_OK, "loopback authority in env");
	is_str(c->ms365_authority_global, "http://localhost:8080", "authority from env, no slash");
	pa_config_free(c);
	clear_env();

	setenv("pbx_auth_retry_after", "42", 1);
	is_int(parse("database = x\n", &c, err, sizeof(err)), PA_OK, "lower-case variable");
	is_int(c->retry_after, 5, "variable names are upper case only");
	pa_config_free(c);
	unsetenv("pbx_auth_retry_after");
}

struct authority_case {
	const char *value;
	const char *stored;	/* NULL: refused */
	const char *why;	/* the message's end when refused */
};

#define NOPATH "must be scheme://host[:port] with no path, query or user"
#define PLAIN "plain http:// is allowed for loopback hosts only"
static const struct authority_case authority_cases[] = {
	{ "https://login.microsoftonline.com", "https://login.microsoftonline.com", NULL },
	{ "https://login.microsoftonline.com/", "https://login.microsoftonline.com", NULL },
	{ "https://login.example.com:8443", "https://login.example.com:8443", NULL },
	{ "https://login.example.com:8443/", "https://login.example.com:8443", NULL },
	{ "https://10.0.0.1", "https://10.0.0.1", NULL },
	{ "https://[2001:db8::1]:443", "https://[2001:db8::1]:443", NULL },
	{ "http://127.0.0.1:8080", "http://127.0.0.1:8080", NULL },
	{ "http://127.0.0.1:8080/", "http://127.0.0.1:8080", NULL },
	{ "http://127.1.2.3", "http://127.1.2.3", NULL },
	{ "http://localhost:3000", "http://localhost:3000", NULL },
	{ "http://LOCALHOST", "http://LOCALHOST", NULL },
	{ "http://[::1]:8080", "http://[::1]:8080", NULL },
	{ "http://example.com", NULL, PLAIN },
	{ "http://example.com/", NULL, PLAIN },
	{ "http://10.0.0.1:8080", NULL, PLAIN },
	{ "http://127.0.0.1.example.com", NULL, PLAIN },
	{ "http://127.1", NULL, PLAIN },
	{ "http://localhost.example.com", NULL, PLAIN },
	{ "http://[::2]", NULL, PLAIN },
	{ "https://login.example.com/common", NULL, NOPATH },
	{ "https://login.example.com//", NULL, NOPATH },
	{ "https://login.example.com?x=1", NULL, NOPATH },
	{ "https://login.example.com#f", NULL, NOPATH },
	{ "https://user@login.example.com", NULL, "must not contain user information" },
	{ "https://login example.com", NULL, "has a malformed host" },
	{ "https://[::1]/x", NULL, NOPATH },
	{ "https://login.example.com:abc", NULL, "has a bad port" },
	{ "https://login.example.com:", NULL, "has a bad port" },
	{ "https://login.example.com:-1", NULL, "has a bad port" },
	{ "https://login.example.com: 443", NULL, "has a bad port" },
	{ "https://login.example.com:443/common", NULL, NOPATH },
	{ "https://login.example.com:443:1", NULL, "has a bad port" },
	{ "https://", NULL, NULL },	/* refused, as "must start with https://" */
	{ "https:///", NULL, "has no host" },
	{ "https://:443", NULL, "has no host" },
	{ "login.microsoftonline.com", NULL, "must start with https://" },
	{ "ftp://login.example.com", NULL, "must start with https://" },
	{ "//login.example.com", NULL, "must start with https://" },
};
#undef NOPATH
#undef PLAIN

static void
check_authority_case(const char *value, const char *stored, const char *why, size_t i)
{
	pa_config_t *c = pa_config_new();
	char err[256], want[512];
	enum pa_err rv;

	if (c == NULL)
		return;
	err[0] = '\0';
	rv = pa_config_set(c, "ms365_authority_global", value, err, sizeof(err));
	if (stored != NULL) {
		is_int(rv, PA_OK, "authority %zu '%s' accepted", i, value);
		is_str(c->ms365_authority_global, stored, "authority %zu stored as '%s'", i,
		    stored);
	} else {
		is_int(rv, PA_EINPUT, "authority %zu '%s' refused", i, value);
		snprintf(want, sizeof(want), "ms365_authority_global = '%s': %s", value,
		    why ? why : "");
		if (why != NULL)
			is_str(err, want, "authority %zu message", i);
		is_str(c->ms365_authority_global, "https://login.microsoftonline.com",
		    "authority %zu: the previous value is kept", i);
	}
	pa_config_free(c);
}

static void
test_authorities(void)
{
	pa_config_t *c;
	char err[256];

	for (size_t i = 0; i < PA_NELEM(authority_cases); i++)
		check_authority_case(authority_cases[i].value, authority_cases[i].stored,
		    authority_cases[i].why, i);

	/* The china authority has the same rules. */
	c = pa_config_new();
	is_int(pa_config_set(c, "ms365_authority_china", "http://example.cn", err, sizeof(err)),
	    PA_EINPUT, "china authority: plain http refused");
	is_int(pa_config_set(c, "ms365_authority_china", "https://login.example.cn/", err,
	    sizeof(err)), PA_OK, "china authority: https accepted");
	is_str(c->ms365_authority_china, "https://login.example.cn", "china authority stored");
	pa_config_free(c);

	/* Ports in range, balanced brackets, no empty authority. */
	check_authority_case("https://login.example.com:99999", NULL, "has a bad port", 1000);
	check_authority_case("https://login.example.com:0", NULL, "has a bad port", 1001);
	check_authority_case("https://[::1", NULL, NULL, 1002);
	check_authority_case("https://exa]mple.com", NULL, NULL, 1003);
	is_int(parse("database = x\nms365_authority_global =\n", &c, err, sizeof(err)), PA_EINPUT,
	    "an empty authority is refused");
	pa_config_free(c);
}

/* The keys of sign-in, sessions and the cookie. */
static void
test_auth_keys(void)
{
	pa_config_t *c;
	char err[256];

	is_int(parse("database = x\n", &c, err, sizeof(err)), PA_OK, "defaults parse");
	is_int(c->access_token_ttl, 3600, "default access_token_ttl");
	is_int(c->refresh_token_ttl, 2592000, "default refresh_token_ttl (30 days)");
	is_int(c->refresh_reuse_grace, 10, "default refresh_reuse_grace");
	is_int(c->password_hash_cost, 0, "default password_hash_cost: libxcrypt's");
	is_int(c->password_min_length, 8, "default password_min_length");
	is_int(c->password_max_length, 128, "default password_max_length");
	is_int(c->throttle_ip_failures, 5, "default throttle_ip_failures");
	is_int(c->throttle_ip_block, 3600, "default throttle_ip_block");
	is_int(c->throttle_account_failures, 10, "default throttle_account_failures");
	is_int(c->throttle_account_block, 900, "default throttle_account_block");
	is_str(c->cookie_name, "pbx_session", "default cookie_name");
	ok(c->cookie_secure, "cookie_secure defaults to on");
	ok(c->allowed_origins == NULL, "no allowed_origins by default");
	pa_config_free(c);

	is_int(parse("database = x\ncookie_secure = off\nallowed_origins = https://a.test "
	    "http://127.0.0.1:8080  https://[::1]:9\ncookie_name = my.sid\n", &c, err,
	    sizeof(err)), PA_OK, "cookie keys parse");
	ok(!c->cookie_secure, "cookie_secure = off");
	is_str(c->allowed_origins, "https://a.test http://127.0.0.1:8080  https://[::1]:9",
	    "allowed_origins kept as written");
	is_str(c->cookie_name, "my.sid", "cookie_name");
	pa_config_free(c);

	is_int(parse("database = x\ncookie_secure = maybe\n", &c, err, sizeof(err)), PA_EINPUT,
	    "cookie_secure takes on/off only");
	pa_config_free(c);
	is_int(parse("database = x\ncookie_name = a;b\n", &c, err, sizeof(err)), PA_EINPUT,
	    "a cookie name with ';' is refused");
	pa_config_free(c);
	is_int(parse("database = x\ncookie_name =\n", &c, err, sizeof(err)), PA_EINPUT,
	    "an empty cookie name is refused");
	pa_config_free(c);
	is_int(parse("database = x\nallowed_origins = https://a.test/\n", &c, err, sizeof(err)),
	    PA_EINPUT, "an origin with a path is refused");
	pa_config_free(c);
	is_int(parse("database = x\nallowed_origins = http://portal.test\n", &c, err,
	    sizeof(err)), PA_EINPUT, "a plain-http origin of a public host is refused");
	pa_config_free(c);
	is_int(parse("database = x\nallowed_origins = https://a.test/x\n", &c, err, sizeof(err)),
	    PA_EINPUT, "an origin with a path is refused");
	pa_config_free(c);
	is_int(parse("database = x\npassword_min_length = 20\npassword_max_length = 10\n", &c,
	    err, sizeof(err)), PA_EINPUT, "min length above max length is refused");
	ok(strstr(err, "password_min_length") != NULL, "the message names the keys");
	pa_config_free(c);
	is_int(parse("database = x\npassword_hash_cost = 12\n", &c, err, sizeof(err)), PA_EINPUT,
	    "password_hash_cost above 11 is refused");
	pa_config_free(c);
	is_int(parse("database = x\nthrottle_ip_failures = 0\nrefresh_reuse_grace = 0\n", &c,
	    err, sizeof(err)), PA_OK, "0 turns throttling and the grace period off");
	pa_config_free(c);
	is_int(parse("database = x\naccess_token_ttl = 0\n", &c, err, sizeof(err)), PA_EINPUT,
	    "access_token_ttl 0 is refused");
	pa_config_free(c);
}

static void
test_ms365_keys(void)
{
	pa_config_t *c;
	char err[256];

	is_int(parse("database = x\n", &c, err, sizeof(err)), PA_OK, "defaults parse");
	ok(c->ms365_ca_file == NULL, "no ms365_ca_file by default: the system's CA store");
	is_int(c->ms365_connect_timeout, 5, "default ms365_connect_timeout");
	is_int(c->ms365_timeout, 15, "default ms365_timeout");
	is_int(c->ms365_flow_ttl, 600, "default ms365_flow_ttl");
	is_int(c->ms365_metadata_ttl, 3600, "default ms365_metadata_ttl");
	ok(c->portal_url == NULL, "no portal_url by default");
	pa_config_free(c);

	is_int(parse("database = x\nms365_ca_file = /etc/ca.pem\nms365_timeout = 30\n"
	    "portal_url = https://portal.test/app/\n", &c, err, sizeof(err)), PA_OK,
	    "Microsoft keys parse");
	is_str(c->ms365_ca_file, "/etc/ca.pem", "ms365_ca_file");
	is_str(c->portal_url, "https://portal.test/app/", "portal_url");
	pa_config_free(c);
	is_int(parse("database = x\nportal_url = http://portal.test/\n", &c, err, sizeof(err)),
	    PA_EINPUT, "a plain-http portal_url of a public host is refused");
	pa_config_free(c);
	is_int(parse("database = x\nportal_url = /relative\n", &c, err, sizeof(err)),
	    PA_EINPUT, "a relative portal_url is refused");
	pa_config_free(c);
	is_int(parse("database = x\nms365_connect_timeout = 20\nms365_timeout = 10\n", &c, err,
	    sizeof(err)), PA_EINPUT, "a connect timeout above the total timeout is refused");
	pa_config_free(c);
	is_int(parse("database = x\nms365_flow_ttl = 10\n", &c, err, sizeof(err)), PA_EINPUT,
	    "ms365_flow_ttl under 60 is refused");
	pa_config_free(c);
}

int
main(void)
{
	clear_env();
	test_ms365_keys();
	test_defaults();
	test_full();
	test_syntax();
	test_errors();
	test_workers();
	test_hash_listen();
	test_env();
	test_authorities();
	test_auth_keys();
	clear_env();
	return done_testing();
}
