/*
 * Unit tests of pa_router_match: exact paths, {param} segments, and the
 * Allow list of a 405.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "router.h"
#include "tap.h"

static const pa_route_t routes[] = {
	{ "GET", "/api/info", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	{ "POST", "/api/auth/sign_in", PA_BODY_JSON, NULL, PA_CLASS_HASH },
	{ "POST", "/api/auth/sign_in/{provider}", PA_BODY_JSON, NULL, PA_CLASS_REQUEST },
	{ "GET", "/api/auth/callback/microsoft", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	{ "POST", "/api/auth/callback/microsoft", PA_BODY_FORM, NULL, PA_CLASS_REQUEST },
};

struct match_case {
	const char *method, *path;
	int route;		/* index into routes, or -1 */
	const char *allow;	/* when route is -1 */
	const char *provider;	/* the {provider} value, or NULL */
};

static const struct match_case cases[] = {
	/* exact matches */
	{ "GET", "/api/info", 0, NULL, NULL },
	{ "HEAD", "/api/info", 0, NULL, NULL },			/* HEAD wherever GET (RFC 9110) */
	{ "POST", "/api/auth/sign_in", 1, NULL, NULL },
	{ "GET", "/api/auth/callback/microsoft", 3, NULL, NULL },
	{ "POST", "/api/auth/callback/microsoft", 4, NULL, NULL },
	/* {param} segments */
	{ "POST", "/api/auth/sign_in/microsoft", 2, NULL, "microsoft" },
	{ "POST", "/api/auth/sign_in/google", 2, NULL, "google" },
	{ "POST", "/api/auth/sign_in/a b.c", 2, NULL, "a b.c" },
	{ "POST", "/api/auth/sign_in/{provider}", 2, NULL, "{provider}" },
	{ "POST", "/api/auth/sign_in/", -1, "", NULL },		/* empty segment */
	{ "POST", "/api/auth/sign_in//", -1, "", NULL },
	{ "POST", "/api/auth/sign_in//x", -1, "", NULL },
	{ "POST", "/api/auth/sign_in/a/b", -1, "", NULL },	/* one segment only */
	{ "POST", "/api/auth/sign_in/a/", -1, "", NULL },
	/* trailing slashes, prefixes and near misses */
	{ "GET", "/api/info/", -1, "", NULL },
	{ "GET", "/api/info//", -1, "", NULL },
	{ "GET", "/api/info/x", -1, "", NULL },
	{ "GET", "/api/infox", -1, "", NULL },
	{ "GET", "/api/inf", -1, "", NULL },
	{ "GET", "/api", -1, "", NULL },
	{ "GET", "/api/", -1, "", NULL },
	{ "GET", "/", -1, "", NULL },
	{ "GET", "", -1, "", NULL },
	{ "GET", "api/info", -1, "", NULL },
	{ "GET", "//api/info", -1, "", NULL },
	{ "GET", "/api//info", -1, "", NULL },
	{ "GET", "/API/INFO", -1, "", NULL },			/* paths are case-sensitive */
	{ "GET", "/api/auth/callback/microsoft/", -1, "", NULL },
	{ "GET", "/api/auth/callback/Microsoft", -1, "", NULL },
	{ "GET", "/nope", -1, "", NULL },
	/* known path, wrong method: 405 with Allow */
	{ "POST", "/api/info", -1, "GET, HEAD", NULL },
	{ "get", "/api/info", -1, "GET, HEAD", NULL },	/* methods are case-sensitive */
	{ "GET", "/api/auth/sign_in", -1, "POST", NULL },
	{ "GET", "/api/auth/sign_in/microsoft", -1, "POST", NULL },
	{ "PUT", "/api/auth/callback/microsoft", -1, "GET, HEAD, POST", NULL },
	{ "DELETE", "/api/auth/callback/microsoft", -1, "GET, HEAD, POST", NULL },
	{ "OPTIONS", "/api/auth/callback/microsoft", -1, "GET, HEAD, POST", NULL },
};

static void
test_table(pa_arena_t *a)
{
	static pa_param_t sentinel;

	for (size_t i = 0; i < PA_NELEM(cases); i++) {
		const struct match_case *c = &cases[i];
		const pa_route_t *r;
		pa_param_t *params = &sentinel;	/* must be reset */
		size_t nparams = 99;
		char allow[128], what[80];
		bool oom = true;

		snprintf(what, sizeof(what), "%s '%s'", c->method, c->path);
		memset(allow, 'x', sizeof(allow));
		r = pa_router_match(routes, PA_NELEM(routes), c->method, c->path, a, &params,
		    &nparams, allow, sizeof(allow), &oom);
		ok(!oom, "%s: no oom", what);
		if (c->route < 0) {
			ok(r == NULL, "%s: no route", what);
			is_str(allow, c->allow, "%s: Allow is '%s'", what, c->allow);
			ok(params == NULL && nparams == 0, "%s: no params", what);
			continue;
		}
		if (!ok(r == &routes[c->route], "%s matches route %d", what, c->route))
			continue;
		if (c->provider == NULL) {
			ok(params == NULL && nparams == 0, "%s: no params", what);
		} else if (is_int((long long)nparams, 1, "%s: one param", what)) {
			is_str(params[0].name, "provider", "%s: param name", what);
			is_str(params[0].value, c->provider, "%s: param value", what);
			is_str(pa_http_param(params, nparams, "provider"), c->provider,
			    "%s: pa_http_param finds it", what);
		}
	}
}

/* Several params; a method listed by two routes of one path appears once in Allow. */
static const pa_route_t routes2[] = {
	{ "GET", "/t/{tenant}/users/{id}", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	{ "GET", "/t/{tenant}/users/me", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	{ "DELETE", "/t/{tenant}/users/{id}", PA_BODY_NONE, NULL, PA_CLASS_REQUEST },
	{ "PATCH", "/t/{tenant}/users/{id}", PA_BODY_JSON, NULL, PA_CLASS_REQUEST },
};

static void
test_params_and_allow(pa_arena_t *a)
{
	const pa_route_t *r;
	pa_param_t *p;
	size_t n;
	char allow[128], small[8];
	bool oom;

	r = pa_router_match(routes2, PA_NELEM(routes2), "GET", "/t/acme.example/users/42", a, &p,
	    &n, allow, sizeof(allow), &oom);
	ok(r == &routes2[0], "two params: first route");
	if (is_int((long long)n, 2, "two params: count")) {
		is_str(p[0].name, "tenant", "param 0 name");
		is_str(p[0].value, "acme.example", "param 0 value");
		is_str(p[1].name, "id", "param 1 name");
		is_str(p[1].value, "42", "param 1 value");
	}
	r = pa_router_match(routes2, PA_NELEM(routes2), "DELETE", "/t/x/users/7", a, &p, &n,
	    allow, sizeof(allow), &oom);
	ok(r == &routes2[2] && n == 2, "DELETE route with two params");
	r = pa_router_match(routes2, PA_NELEM(routes2), "GET", "/t//users/7", a, &p, &n, allow,
	    sizeof(allow), &oom);
	ok(r == NULL && allow[0] == '\0', "an empty segment does not fill a param");

	r = pa_router_match(routes2, PA_NELEM(routes2), "PUT", "/t/x/users/me", a, &p, &n, allow,
	    sizeof(allow), &oom);
	ok(r == NULL && !oom, "PUT /t/x/users/me: no route");
	is_str(allow, "GET, HEAD, DELETE, PATCH", "each method once, in table order (HEAD with GET)");

	r = pa_router_match(routes2, PA_NELEM(routes2), "POST", "/t/x/users/7", a, &p, &n, allow,
	    sizeof(allow), &oom);
	is_str(allow, "GET, HEAD, DELETE, PATCH", "Allow for a param path");

	/* Each method fits whole or not at all in a short buffer. */
	r = pa_router_match(routes, PA_NELEM(routes), "PUT", "/api/auth/callback/microsoft", a, &p,
	    &n, small, sizeof(small), &oom);
	ok(r == NULL, "short Allow buffer: no route");
	ok(strlen(small) < sizeof(small), "short Allow buffer: NUL-terminated");
	is_str(small, "GET", "short Allow buffer holds whole methods only");

	r = pa_router_match(routes, 0, "GET", "/api/info", a, &p, &n, allow, sizeof(allow), &oom);
	ok(r == NULL && allow[0] == '\0' && !oom, "an empty table matches nothing");
}

int
main(void)
{
	pa_arena_t *a = pa_arena_new();

	if (!ok(a != NULL, "arena"))
		return done_testing();
	test_table(a);
	pa_arena_reset(a);
	test_params_and_allow(a);
	pa_arena_free(a);
	return done_testing();
}
