/*
 * Fuzz target for the request parsers (STYLE.md §9): percent-decoding, query
 * strings and form bodies, Cookie headers, UTF-8 validation, media types,
 * JSON bodies, route matching and the field rules of valid.c.
 *
 * The first input byte picks the parser, the rest is its input:
 *
 *   'd' pa_http_decode (path mode)     'f' pa_http_decode (form mode)
 *   'q' pa_http_parse_query            'c' pa_http_parse_cookies
 *   'u' pa_utf8_valid                  'm' pa_http_media_type_is
 *   'j' pa_json_parse_object + get     'r' pa_router_match
 *   'U' pa_valid_url                   'D' pa_valid_domain
 *   't' pa_valid_text
 *
 * Any other first byte runs every parser on the rest.  Besides the
 * sanitizers, cheap invariants are checked: the decoders agree with a
 * straightforward reference implementation (kept deliberately different in
 * shape: a table-driven UTF-8 check after RFC 3629 / Unicode table 3-7), a
 * matched route rebuilds the path, accepted URLs and texts obey their rules.
 *
 * Built with -DPA_LIBFUZZER it is a libFuzzer target (t/fuzz/run), where a
 * broken invariant aborts.  Otherwise it has a main that replays
 * $PA_SRCDIR/t/fuzz/corpus/ as a TAP test (make check: t/fuzz/replay), one
 * "ok" per file; a broken invariant is a "not ok", a sanitizer error ends
 * the run.  `t/fuzz/replay DIR-OR-FILE...` replays other inputs.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "http.h"
#include "json.h"
#include "pa.h"
#include "router.h"
#include "valid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- invariants -------------------------------------------------------- */

#ifndef PA_LIBFUZZER
static unsigned int broken;	/* invariants broken by the current input */
#endif

#define CHECK(cond) do { if (!(cond)) check_failed(#cond, __func__, __LINE__); } while (0)

static void
check_failed(const char *what, const char *func, int line)
{
	fprintf(stderr, "# invariant broken in %s (fuzz_parsers.c:%d): %s\n", func, line, what);
#ifdef PA_LIBFUZZER
	abort();
#else
	broken++;
#endif
}

/* ---- reference implementations ----------------------------------------- */

/* Well-formed UTF-8 after Unicode table 3-7: the lead byte fixes the ranges. */
static bool
ref_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		unsigned char lo = 0x80, hi = 0xbf;
		size_t len;

		if (c <= 0x7f) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			len = 2;
		else if (c == 0xe0)
			len = 3, lo = 0xa0;
		else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
			len = 3;
		else if (c == 0xed)
			len = 3, hi = 0x9f;
		else if (c == 0xf0)
			len = 4, lo = 0x90;
		else if (c >= 0xf1 && c <= 0xf3)
			len = 4;
		else if (c == 0xf4)
			len = 4, hi = 0x8f;
		else
			return false;
		if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k < len; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return false;
		i += len;
	}
	return true;
}

static bool
is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static unsigned int
hex_of(unsigned char c)
{
	return c <= '9' ? (unsigned int)(c - '0') : (unsigned int)((c | 0x20) - 'a' + 10);
}

/*
 * Percent-decodes s[0..n) into out (n + 1 bytes).  Returns the length, or -1
 * on a bad escape, a NUL byte or invalid UTF-8 in the result.
 */
static long
ref_decode(const unsigned char *s, size_t n, bool form, char *out)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned int c = s[i];

		if (c == '%') {
			if (i + 2 >= n || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
				return -1;
			c = hex_of(s[i + 1]) * 16 + hex_of(s[i + 2]);
			i += 2;
		} else if (form && c == '+') {
			c = ' ';
		}
		if (c == 0)
			return -1;
		out[j++] = (char)c;
	}
	out[j] = '\0';
	return ref_utf8_valid((const unsigned char *)out, j) ? (long)j : -1;
}

/* True when every '%' of s[0..n) starts a valid escape. */
static bool
escapes_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%')
			continue;
		if (n - i < 3 || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
			return false;
		i += 2;
	}
	return true;
}

/* ---- targets ----------------------------------------------------------- */

static void
fuzz_decode(pa_arena_t *a, const unsigned char *s, size_t n, bool form)
{
	char *out = (char *)&out, *ref = malloc(n + 1);
	enum pa_err rv;
	long rn;

	if (ref == NULL)
		return;
	rv = pa_http_decode(a, (const char *)s, n, form, &out);
	rn = ref_decode(s, n, form, ref);
	CHECK(rv == PA_OK || rv == PA_EINPUT);
	CHECK((rv == PA_OK) == (rn >= 0));
	if (rv == PA_OK) {
		size_t len = strlen(out);

		CHECK(len <= n);
		CHECK(pa_utf8_valid(out, len));
		CHECK(ref_utf8_valid((const unsigned char *)out, len));
		CHECK(escapes_valid(s, n));
		CHECK(rn >= 0 && (size_t)rn == len && memcmp(out, ref, len) == 0);
	} else {
		CHECK(out == NULL);
	}
	free(ref);
}

/* The reference parse of a query string, compared part by part. */
static void
fuzz_query(pa_arena_t *a, const unsigned char *s, size_t n)
{
	pa_param_t *p = NULL;
	size_t np = 99, k = 0, i = 0;
	char *ref = malloc(n + 1);
	bool ref_ok = true;
	enum pa_err rv;

	if (ref == NULL)
		return;
	rv = pa_http_parse_query(a, (const char *)s, n, &p, &np);
	CHECK(rv == PA_OK || rv == PA_EINPUT);
	if (rv == PA_OK)
		CHECK(escapes_valid(s, n));
	else
		CHECK(p == NULL && np == 0);
	while (i < n) {
		const unsigned char *part = s + i, *amp = memchr(part, '&', n - i), *eq;
		size_t plen = amp ? (size_t)(amp - part) : n - i, nlen;
		long rn;

		i += plen + 1;
		if (plen == 0)
			continue;
		eq = memchr(part, '=', plen);
		nlen = eq ? (size_t)(eq - part) : plen;
		if ((rn = ref_decode(part, nlen, true, ref)) < 0) {
			ref_ok = false;
			break;
		}
		if (rv == PA_OK && k < np)
			CHECK(strlen(p[k].name) == (size_t)rn && memcmp(p[k].name, ref, (size_t)rn) == 0);
		if (eq == NULL)
			rn = 0, ref[0] = '\0';
		else if ((rn = ref_decode(eq + 1, plen - nlen - 1, true, ref)) < 0) {
			ref_ok = false;
			break;
		}
		if (rv == PA_OK && k < np)
			CHECK(strlen(p[k].value) == (size_t)rn &&
			    memcmp(p[k].value, ref, (size_t)rn) == 0);
		k++;
	}
	CHECK((rv == PA_OK) == ref_ok);
	if (rv == PA_OK) {
		CHECK(np == k);
		CHECK((pa_http_param(p, np, "code") == NULL) ==
		    (pa_http_param_count(p, np, "code") == 0));
	}
	free(ref);
}

static bool
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static void
fuzz_cookies(pa_arena_t *a, const char *h)
{
	pa_param_t *p = NULL;
	size_t np = 99, semis = 0;
	enum pa_err rv;

	for (const char *q = h; *q; q++)
		semis += *q == ';';
	rv = pa_http_parse_cookies(a, h, &p, &np);
	CHECK(rv == PA_OK);
	if (rv != PA_OK)
		return;
	CHECK(np <= semis + 1);
	for (size_t i = 0; i < np; i++) {
		size_t nl = strlen(p[i].name);

		CHECK(nl > 0 && !is_ows(p[i].name[0]) && !is_ows(p[i].name[nl - 1]));
		CHECK(strpbrk(p[i].name, ";=") == NULL);
		CHECK(strchr(p[i].value, ';') == NULL);
		CHECK(strstr(h, p[i].name) != NULL && strstr(h, p[i].value) != NULL);
	}
	if (np > 0) {
		CHECK(pa_http_param(p, np, p[0].name) == p[0].value);
		CHECK(pa_http_param_count(p, np, p[np - 1].name) >= 1);
	}
	CHECK((pa_http_param(p, np, "sid") == NULL) == (pa_http_param_count(p, np, "sid") == 0));
}

static void
fuzz_utf8(const unsigned char *s, size_t n)
{
	CHECK(pa_utf8_valid((const char *)s, n) == ref_utf8_valid(s, n));
}

static void
media_type_one(const char *ct, const char *type)
{
	bool is = pa_http_media_type_is(ct, type);
	size_t tn = strlen(type);

	if (is) {
		const char *p = ct + strspn(ct, " \t");

		CHECK(strncasecmp(p, type, tn) == 0);
		p += tn;
		p += strspn(p, " \t");
		CHECK(*p == '\0' || *p == ';');
	}
}

/* s is "content-type" or "content-type\0type". */
static void
fuzz_media_type(const char *s, size_t n)
{
	size_t cn = strlen(s);

	CHECK(!pa_http_media_type_is(NULL, "application/json"));
	media_type_one(s, "application/json");
	media_type_one(s, "application/x-www-form-urlencoded");
	if (cn < n)
		media_type_one(s, s + cn + 1);
}

static void
fuzz_json(pa_arena_t *a, const unsigned char *s, size_t n)
{
	static const char *const skeys[] = { "email", "password", "name", "a", "", "\xc3\xa9" };
	static const char *const bkeys[] = { "remember", "a", "b" };
	pa_json_t *j = NULL;
	const char *why = "unset";
	enum pa_err rv;

	rv = pa_json_parse_object(a, (const char *)s, n, &j, &why);
	CHECK(rv == PA_OK || rv == PA_EINPUT);
	if (rv != PA_OK) {
		CHECK(j == NULL && why != NULL && *why != '\0');
		return;
	}
	CHECK(j != NULL && why == NULL);
	CHECK(ref_utf8_valid(s, n));
	{
		size_t b = 0, e = n;

		while (b < e && strchr(" \t\r\n", s[b]) != NULL && s[b] != '\0')
			b++;
		while (e > b && strchr(" \t\r\n", s[e - 1]) != NULL && s[e - 1] != '\0')
			e--;
		CHECK(e - b >= 2 && s[b] == '{' && s[e - 1] == '}');
	}
	for (size_t i = 0; i < PA_NELEM(skeys); i++) {
		const char *v = NULL;
		size_t len = 0;
		enum pa_json_get g = pa_json_get_string(j, skeys[i], &v, &len);

		/* \u0000 is WRONG_TYPE; lone surrogates become U+FFFD in json-c. */
		if (g == PA_JSON_FOUND)
			CHECK(v != NULL && strlen(v) == len &&
			    ref_utf8_valid((const unsigned char *)v, len));
	}
	for (size_t i = 0; i < PA_NELEM(bkeys); i++) {
		bool v;
		enum pa_json_get g = pa_json_get_bool(j, bkeys[i], &v);

		CHECK(g == PA_JSON_ABSENT || g == PA_JSON_WRONG_TYPE || g == PA_JSON_FOUND);
	}
}

static const pa_route_t routes[] = {
	{ "GET", "/api/info", PA_BODY_NONE, NULL, PA_CLASS_HASH },
	{ "POST", "/api/auth/sign_in", PA_BODY_JSON, NULL, PA_CLASS_REQUEST },
	{ "POST", "/api/auth/sign_in/{provider}", PA_BODY_JSON, NULL, PA_CLASS_REQUEST },
	{ "GET", "/api/auth/callback/microsoft", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	{ "POST", "/api/auth/callback/microsoft", PA_BODY_FORM, NULL, PA_CLASS_REQUEST },
	{ "DELETE", "/api/tenants/{tenant}/users/{user}", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	{ "GET", "/api/tenants/{tenant}/users/{user}", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	{ "PATCH", "/api/tenants/{tenant}/users/{user}", PA_BODY_JSON, NULL, PA_CLASS_REQUEST },
	{ "GET", "/x/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	{ "GET", "/y/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },	/* > 8 */
	{ "PUT", "/", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	{ "OPTIONS", "/api/{}", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	/* Methods that contain each other, and one method twice, for the Allow list. */
	{ "XGET", "/api/m/{x}", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	{ "GETX", "/api/m/{x}", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	{ "POST", "/api/m/{x}", PA_BODY_FORM, NULL, PA_CLASS_REQUEST },
	{ "GET", "/api/m/{y}", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	{ "POST", "/api/{m}/{y}", PA_BODY_JSON, NULL, PA_CLASS_REQUEST },
};

/* Rebuilds the path from the route's pattern and the params; true when equal. */
static bool
rebuild_matches(const char *pattern, const pa_param_t *p, size_t np, const char *path)
{
	size_t k = 0;

	while (*pattern != '\0') {
		size_t plen = strcspn(pattern, "/");

		if (plen >= 2 && pattern[0] == '{' && pattern[plen - 1] == '}') {
			size_t vlen;

			if (k == np || strlen(p[k].name) != plen - 2 ||
			    memcmp(p[k].name, pattern + 1, plen - 2) != 0)
				return false;
			vlen = strlen(p[k].value);
			if (vlen == 0 || memchr(p[k].value, '/', vlen) != NULL ||
			    strncmp(path, p[k].value, vlen) != 0)
				return false;
			path += vlen;
			k++;
		} else {
			if (strncmp(path, pattern, plen) != 0)
				return false;
			path += plen;
		}
		pattern += plen;
		if (*pattern == '/') {
			if (*path != '/')
				return false;
			pattern++, path++;
		}
	}
	return *path == '\0' && k == np;
}

/* True when the ", "-separated list holds m (which the path then does have). */
static bool
allow_has(const char *list, const char *m)
{
	size_t n = strlen(m);

	for (const char *p = list; *p != '\0'; p += strspn(p, ", ")) {
		size_t len = strcspn(p, ",");

		if (len == n && memcmp(p, m, n) == 0)
			return true;
		p += len;
	}
	return false;
}

static void
router_one(pa_arena_t *a, const char *method, const char *path, size_t allowlen)
{
	char allow[128];
	pa_param_t *p = (pa_param_t *)&p;
	size_t np = 99;
	bool oom = true;
	const pa_route_t *r;

	memset(allow, 'x', sizeof(allow));
	r = pa_router_match(routes, PA_NELEM(routes), method, path, a, &p, &np, allow, allowlen,
	    &oom);
	CHECK(!oom);
	if (r != NULL) {
		CHECK(r >= routes && r < routes + PA_NELEM(routes));
		CHECK(strcmp(r->method, method) == 0);
		CHECK(np == 0 || p != NULL);
		CHECK(rebuild_matches(r->pattern, p, np, path));
	} else {
		CHECK(p == NULL && np == 0);
		CHECK(memchr(allow, '\0', allowlen) != NULL);
		if (memchr(allow, '\0', allowlen) != NULL)
			CHECK(!allow_has(allow, method));
	}
}

static void
fuzz_router(pa_arena_t *a, const char *path)
{
	router_one(a, "GET", path, 128);
	router_one(a, "POST", path, 128);
	router_one(a, "PATCH", path, 6);	/* an Allow buffer too small for the list */
}

static void
fuzz_url(const char *s)
{
	const char *why = pa_valid_url(s);

	if (why == NULL) {
		size_t skip = strncasecmp(s, "https://", 8) == 0 ? 8 : 7;
		const char *host = s + skip;
		size_t hn = strcspn(host, "/?#");

		CHECK(strncasecmp(s, "https://", 8) == 0 || strncasecmp(s, "http://", 7) == 0);
		for (const char *q = s; *q; q++)
			CHECK((unsigned char)*q > 0x20 && *q != 0x7f && *q != '\\');
		CHECK(memchr(host, '@', hn) == NULL);
		CHECK(hn > 0 && host[0] != ':');
	} else {
		CHECK(*why != '\0');
	}
	(void)pa_valid_loopback_host(s, strlen(s));
}

static void
fuzz_domain(const char *s)
{
	if (pa_valid_domain(s)) {
		size_t n = strlen(s);

		CHECK(n >= 1 && n <= PA_DOMAIN_MAX);
		for (size_t i = 0; i < n; i++)
			CHECK((unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f &&
			    strchr("/@\\?#%", s[i]) == NULL);
	}
}

static void
fuzz_text(const char *s)
{
	size_t n = strlen(s);
	bool v = pa_valid_text(s, 255);

	if (v) {
		CHECK(n <= 255 && ref_utf8_valid((const unsigned char *)s, n));
		for (size_t i = 0; i < n; i++)
			CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
	}
	CHECK(!pa_valid_text(s, n == 0 ? 0 : n - 1) || n == 0);
	CHECK(pa_valid_text(s, n) == v || n > 255);
}

/* One arena for all inputs, reset after each (freed by the replay's main). */
static pa_arena_t *arena;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *s;
	char *z;	/* the input NUL-terminated, for the string parsers */
	size_t n;
	int sel;

	if (size == 0)
		return 0;
	if (arena == NULL && (arena = pa_arena_new()) == NULL)
		abort();
	sel = data[0];
	s = data + 1;
	n = size - 1;
	/* A copy of exactly n bytes, so that reads past the end are caught. */
	if ((z = malloc(n + 1)) == NULL)
		abort();
	memcpy(z, s, n);
	z[n] = '\0';
	if (n > 0) {
		unsigned char *exact = malloc(n);

		if (exact == NULL)
			abort();
		memcpy(exact, s, n);
		s = exact;
	}

	switch (sel) {
	case 'd': fuzz_decode(arena, s, n, false); break;
	case 'f': fuzz_decode(arena, s, n, true); break;
	case 'q': fuzz_query(arena, s, n); break;
	case 'c': fuzz_cookies(arena, z); break;
	case 'u': fuzz_utf8(s, n); break;
	case 'm': fuzz_media_type(z, n); break;
	case 'j': fuzz_json(arena, s, n); break;
	case 'r': fuzz_router(arena, z); break;
	case 'U': fuzz_url(z); break;
	case 'D': fuzz_domain(z); break;
	case 't': fuzz_text(z); break;
	default:
		fuzz_decode(arena, s, n, false);
		pa_arena_reset(arena);
		fuzz_decode(arena, s, n, true);
		pa_arena_reset(arena);
		fuzz_query(arena, s, n);
		pa_arena_reset(arena);
		fuzz_cookies(arena, z);
		pa_arena_reset(arena);
		fuzz_utf8(s, n);
		fuzz_media_type(z, n);
		fuzz_json(arena, s, n);
		pa_arena_reset(arena);
		fuzz_router(arena, z);
		pa_arena_reset(arena);
		fuzz_url(z);
		fuzz_domain(z);
		fuzz_text(z);
		break;
	}
	pa_arena_reset(arena);
	if (n > 0)
		free((void *)(uintptr_t)s);
	free(z);
	return 0;
}

/* ---- corpus replay (make check) ---------------------------------------- */

#ifndef PA_LIBFUZZER
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#include "../unit/tap.h"

#define REPLAY_MAX (1024 * 1024)

/* Replays one file; false when it cannot be read or breaks an invariant. */
static bool
replay_file(const char *path, const char *label)
{
	static unsigned char buf[REPLAY_MAX + 1];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "# cannot open %s: %s\n", path, strerror(errno));
		return ok(false, "%s", label);
	}
	n = fread(buf, 1, sizeof(buf), f);
	if (ferror(f) || n > REPLAY_MAX) {
		fprintf(stderr, "# cannot read %s (or larger than %d bytes)\n", path, REPLAY_MAX);
		fclose(f);
		return ok(false, "%s", label);
	}
	fclose(f);
	broken = 0;
	fprintf(stderr, "# %s\n", path);	/* names the input a sanitizer report is about */
	(void)LLVMFuzzerTestOneInput(buf, n);
	return ok(broken == 0, "%s", label);
}

static int
not_hidden(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

/* Replays the regular files of dir in name order; -1 when dir cannot be read. */
static int
replay_dir(const char *dir, const char *prefix)
{
	struct dirent **names;
	int n = scandir(dir, &names, not_hidden, alphasort), k = 0;

	if (n < 0) {
		fprintf(stderr, "# cannot read %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char path[4096], label[4096];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		snprintf(label, sizeof(label), "%s%s", prefix, names[i]->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			replay_file(path, label);
			k++;
		}
		free(names[i]);
	}
	free(names);
	return k;
}

int
main(int argc, char **argv)
{
	const char *srcdir = getenv("PA_SRCDIR");
	char dir[4096];

	if (argc > 1) {		/* t/fuzz/replay DIR-OR-FILE... */
		for (int i = 1; i < argc; i++) {
			struct stat st;

			if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
				replay_dir(argv[i], "");
			else
				replay_file(argv[i], argv[i]);
		}
		pa_arena_free(arena);
		return done_testing();
	}
	if (srcdir != NULL && *srcdir != '\0') {
		snprintf(dir, sizeof(dir), "%s/t/fuzz/corpus", srcdir);
	} else {
		/* Run by hand: the corpus next to this source file, if its path is absolute. */
		const char *slash = strrchr(__FILE__, '/');

		if (__FILE__[0] != '/' || slash == NULL) {
			printf("Bail out! PA_SRCDIR is not set: run through make check, set "
			    "PA_SRCDIR to the source tree, or pass corpus files\n");
			return 1;
		}
		snprintf(dir, sizeof(dir), "%.*s/corpus", (int)(slash - __FILE__), __FILE__);
	}
	if (replay_dir(dir, "corpus/") <= 0) {
		printf("Bail out! no corpus files in %s\n", dir);
		return 1;
	}
	pa_arena_free(arena);
	return done_testing();
}
#endif
