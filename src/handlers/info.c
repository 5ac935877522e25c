/*
 * GET /api/info[?domain=D]: system metadata, plus the tenant's when D names
 * an enabled tenant (compared case-insensitively).  While the worker's
 * cache is not full, each answer is followed by a page of its fill.
 */
#include "autoconfig.h"

#include <string.h>

#include "handlers.h"
#include "json.h"
#include "valid.h"

/* The next page of the cache's fill, once the answer has left. */
static void
fill_after(pa_ctx_t *ctx, pa_arena_t *a, void *arg)
{
	(void)arg;
	pa_meta_fill(ctx->meta, ctx->db, a);
}

void
pa_handle_info(pa_req_t *req, pa_ctx_t *ctx)
{
	const char *domain = pa_http_param(req->query, req->nquery, "domain");
	const char *body = NULL;
	size_t len = 0, dlen;
	const char *rule = NULL;
	enum pa_err rv;

	if (domain != NULL) {
		dlen = strlen(domain);
		if (pa_http_param_count(req->query, req->nquery, "domain") > 1)
			rule = "must be given once";
		else if (dlen < 1 || dlen > PA_DOMAIN_MAX)
			rule = "length 1..280";
		else if (!pa_valid_domain(domain))
			rule = "an FQDN or an IP address";
		if (rule != NULL) {
			pa_json_problems_t p = { PA_BUF_INIT, 0 };

			pa_json_problem(&p, "domain", rule);
			pa_reply_problems(req, ctx, &p);
			return;
		}
	}
	rv = pa_meta_info(ctx->meta, ctx->db, req->arena, domain, &body, &len);
	if (rv != PA_OK && rv != PA_ENOTFOUND) {
		pa_reply_failure(req, ctx, rv);
		return;
	}
	if (rv == PA_ENOTFOUND)
		pa_http_reply_error(req, 404, NULL, "No such tenant", NULL);
	else
		pa_http_reply(req, 200, body, len);
	if (pa_meta_filling(ctx->meta))
		req->after = fill_after;
}
