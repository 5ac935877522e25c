/*
 * The route table's shape and the one dispatcher that answers 400/404/405/
 * 413/415 before any handler runs: a handler sees a request whose method,
 * path, media type and body form are already known to be right.
 */
#ifndef PA_ROUTER_H
#define PA_ROUTER_H

#include <stddef.h>

#include "http.h"

typedef struct pa_ctx pa_ctx_t;	/* the worker's state, defined in handlers/handlers.h */
typedef void pa_handler_fn(pa_req_t *req, pa_ctx_t *ctx);

enum pa_body {
	PA_BODY_NONE,	/* no body expected; one that is sent must still be JSON */
	PA_BODY_JSON,	/* a JSON object, parsed into req->json */
	PA_BODY_FORM	/* application/x-www-form-urlencoded, parsed into req->form */
};

/*
 * Which worker class a route belongs to (worker.h).  A route whose handler
 * verifies or sets a password is PA_CLASS_HASH: nginx sends it to the
 * hashing workers' socket.  Either class still serves every route; a worker
 * logs an error when a request hashed a password on a route not marked so.
 */
enum pa_class {
	PA_CLASS_REQUEST,	/* the default: everything that does not hash */
	PA_CLASS_HASH,
	PA_CLASS__MAX
};

typedef struct {
	const char *method;
	const char *pattern;	/* "/api/auth/sign_in/{provider}" */
	enum pa_body body;
	pa_handler_fn *handler;
	enum pa_class cls;
} pa_route_t;

/*
 * Finds the route for method and path.  On a match, fills *params from the
 * pattern's {name} segments (arena memory).  With no match, allow receives
 * the methods the path does have ("GET, POST"), empty when the path is unknown.
 * Returns the route, or NULL (also when out of memory: *oom is set).
 */
const pa_route_t *pa_router_match(const pa_route_t *routes, size_t n, const char *method,
    const char *path, pa_arena_t *a, pa_param_t **params, size_t *nparams, char *allow,
    size_t allowlen, bool *oom);

/*
 * Validates req against the table and calls the handler, or answers the
 * error itself.  Returns the matched route, or NULL when none matched.
 */
const pa_route_t *pa_router_dispatch(const pa_route_t *routes, size_t n, pa_req_t *req, pa_ctx_t *ctx);

#endif
