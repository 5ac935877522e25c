/*
 * The route table, and the failure replies handlers share.
 */
#include "autoconfig.h"

#include "handlers.h"

const pa_route_t pa_routes[] = {
	{ "GET", "/api/info", PA_BODY_NONE, pa_handle_info },
};
const size_t pa_nroutes = PA_NELEM(pa_routes);

void
pa_reply_failure(pa_req_t *req, pa_ctx_t *ctx, enum pa_err err)
{
	if (err == PA_EDB) {
		pa_http_add_header(req, "Retry-After: %d", ctx->cfg->retry_after);
		pa_http_reply_error(req, 503, NULL, "The service is temporarily unavailable", NULL);
	} else {
		pa_http_reply_error(req, 500, NULL, "Internal error", NULL);
	}
}

void
pa_reply_problems(pa_req_t *req, pa_ctx_t *ctx, pa_json_problems_t *p)
{
	pa_buf_t b = PA_BUF_INIT;

	pa_json_problems_body(p, &b);
	if (pa_buf_failed(&b))
		pa_reply_failure(req, ctx, PA_ENOMEM);
	else
		pa_http_reply(req, 400, b.p, b.len);
	pa_buf_free(&b);
}
