/*
 * The handlers of the API, one file per resource, and what they share: the
 * worker's state and the mapping of module status codes to responses.
 * Handlers reach libraries only through the project's modules.
 */
#ifndef PA_HANDLERS_H
#define PA_HANDLERS_H

#include "config.h"
#include "db.h"
#include "http.h"
#include "json.h"
#include "meta.h"
#include "router.h"

struct pa_ctx {
	const pa_config_t *cfg;
	pa_db_t *db;
	pa_meta_t *meta;
};

/* The route table of the API. */
extern const pa_route_t pa_routes[];
extern const size_t pa_nroutes;

/* Answers a failed module call: 503 with Retry-After for PA_EDB, else 500. */
void pa_reply_failure(pa_req_t *req, pa_ctx_t *ctx, enum pa_err err);

/* Answers 400 listing every validation problem in p (and frees p's memory). */
void pa_reply_problems(pa_req_t *req, pa_ctx_t *ctx, pa_json_problems_t *p);

pa_handler_fn pa_handle_info;

#endif
