/*
 * Route matching with {param} segments, and the dispatcher.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "router.h"

#define MAX_PATH_PARAMS 8

/*
 * Matches path against pattern segment by segment; a {name} segment takes
 * one non-empty path segment.  Returns the number of params, or -1.
 */
static int
match(const char *pattern, const char *path, pa_str_t *names, pa_str_t *values)
{
	int k = 0;

	while (*pattern != '\0' && *path != '\0') {
		size_t plen = strcspn(pattern, "/"), slen = strcspn(path, "/");

		if (plen >= 2 && pattern[0] == '{' && pattern[plen - 1] == '}') {
			if (slen == 0 || k == MAX_PATH_PARAMS)
				return -1;
			names[k] = (pa_str_t){ pattern + 1, plen - 2 };
			values[k] = (pa_str_t){ path, slen };
			k++;
		} else if (plen != slen || memcmp(pattern, path, plen) != 0) {
			return -1;
		}
		pattern += plen;
		path += slen;
		if (*pattern != *path)
			return -1;
		if (*pattern == '/')
			pattern++, path++;
	}
	return *pattern == '\0' && *path == '\0' ? k : -1;
}

/* True when the comma-separated list holds method. */
static bool
has_method(const char *list, const char *method)
{
	size_t n = strlen(method);

	for (const char *p = list; (p = strstr(p, method)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ','))
			return true;
	return false;
}

const pa_route_t *
pa_router_match(const pa_route_t *routes, size_t n, const char *method, const char *path,
    pa_arena_t *a, pa_param_t **params, size_t *nparams, char *allow, size_t allowlen, bool *oom)
{
	pa_str_t names[MAX_PATH_PARAMS], values[MAX_PATH_PARAMS];
	size_t used = 0;

	/* RFC 9110 section 9.3.2: HEAD is answered wherever GET is (http.c sends no body). */
	if (strcmp(method, "HEAD") == 0)
		method = "GET";

	*params = NULL;
	*nparams = 0;
	*oom = false;
	if (allowlen > 0)
		allow[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int k = match(routes[i].pattern, path, names, values);

		if (k < 0)
			continue;
		if (strcmp(routes[i].method, method) == 0) {
			pa_param_t *p = k ? pa_calloc(a, (size_t)k, sizeof(*p)) : NULL;

			if (k > 0 && p == NULL) {
				*oom = true;
				return NULL;
			}
			for (int j = 0; j < k; j++) {
				p[j].name = pa_strndup(a, names[j].p, names[j].len);
				p[j].value = pa_strndup(a, values[j].p, values[j].len);
				if (p[j].name == NULL || p[j].value == NULL) {
					*oom = true;
					return NULL;
				}
			}
			*params = p;
			*nparams = (size_t)k;
			return &routes[i];
		}
		/* Collect each other method once, for the Allow header (GET brings HEAD). */
		for (int h = 0; h < 2 && allowlen > 0; h++) {
			const char *m = h == 0 ? routes[i].method : "HEAD";
			size_t mlen = strlen(m), sep = used ? 2 : 0;

			if (h == 1 && strcmp(routes[i].method, "GET") != 0)
				break;
			if (!has_method(allow, m) && used + sep + mlen < allowlen) {
				memcpy(allow + used, ", ", sep);
				memcpy(allow + used + sep, m, mlen + 1);
				used += sep + mlen;
			}
		}
	}
	return NULL;
}

/* Validates the body against the route's kind; replies and returns false on error. */
static bool
check_body(const pa_route_t *r, pa_req_t *req)
{
	const char *why = NULL;
	enum pa_err rv;

	if (r->body == PA_BODY_FORM) {
		if (!pa_http_media_type_is(req->content_type, "application/x-www-form-urlencoded")) {
			pa_http_reply_error(req, 415, NULL,
			    "Content-Type must be application/x-www-form-urlencoded", NULL);
			return false;
		}
		rv = pa_http_parse_query(req->arena, req->body, req->body_len, &req->form, &req->nform);
		if (rv == PA_ENOMEM) {
			pa_http_reply_error(req, 500, NULL, "Internal error", NULL);
			return false;
		}
		if (rv != PA_OK) {
			pa_http_reply_error(req, 400, NULL, "Malformed form body", NULL);
			return false;
		}
		return true;
	}
	if (req->body_len == 0 && r->body == PA_BODY_NONE)
		return true;
	if (!pa_http_media_type_is(req->content_type, "application/json")) {
		pa_http_reply_error(req, 415, NULL, "Content-Type must be application/json", NULL);
		return false;
	}
	if (r->body == PA_BODY_NONE)
		return true;
	rv = pa_json_parse_object(req->arena, req->body, req->body_len, &req->json, &why);
	if (rv == PA_ENOMEM) {
		pa_http_reply_error(req, 500, NULL, "Internal error", NULL);
		return false;
	}
	if (rv != PA_OK) {
		pa_http_reply_error(req, 400, NULL, why, NULL);
		return false;
	}
	return true;
}

const pa_route_t *
pa_router_dispatch(const pa_route_t *routes, size_t n, pa_req_t *req, pa_ctx_t *ctx)
{
	const pa_route_t *r;
	char allow[128];
	bool oom;

	if (req->parse_status != 0) {
		pa_http_reply_error(req, req->parse_status, NULL, req->parse_error, NULL);
		return NULL;
	}
	r = pa_router_match(routes, n, req->method, req->path, req->arena, &req->path_params,
	    &req->npath_params, allow, sizeof(allow), &oom);
	if (r == NULL) {
		if (oom) {
			pa_http_reply_error(req, 500, NULL, "Internal error", NULL);
		} else if (allow[0] != '\0') {
			pa_http_add_header(req, "Allow: %s", allow);
			pa_http_reply_error(req, 405, NULL, "Method not allowed", NULL);
		} else {
			pa_http_reply_error(req, 404, NULL, "No such endpoint", NULL);
		}
		return NULL;
	}
	req->route = (int)(r - routes);
	if (!check_body(r, req))
		return r;
	r->handler(req, ctx);
	if (req->status == 0) {
		pa_log_error("handler for %s %s sent no response", r->method, r->pattern);
		pa_http_reply_error(req, 500, NULL, "Internal error", NULL);
	}
	return r;
}
