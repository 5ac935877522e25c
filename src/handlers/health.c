/*
 * GET /api/health/live and GET /api/health/ready.  Readiness costs at most
 * one query a second per worker: the migrations query until they check out
 * on this connection, then SELECT 1; between queries the last answer stands.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "handlers.h"
#include "health.h"
#include "json.h"
#include "metrics.h"

static struct {
	long long checked_ms;	/* monotonic; 0: never */
	bool db_up, schema_ok;
	char why[160];
} ready;

static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1;
}

void
pa_handle_health_live(pa_req_t *req, pa_ctx_t *ctx)
{
	static const char body[] = "{\"status\":\"ok\"}";

	(void)ctx;
	pa_http_reply(req, 200, body, sizeof(body) - 1);
}

static void
check(pa_req_t *req, pa_ctx_t *ctx)
{
	long long now = mono_ms();
	pa_db_res_t *r;

	if (ready.checked_ms != 0 && now - ready.checked_ms < 1000)
		return;
	ready.checked_ms = now;
	if (ready.db_up && ready.schema_ok) {
		ready.db_up = pa_db_exec(ctx->db, req->arena, PA_STMT_HEALTH_PING, NULL, &r) == PA_OK;
		ready.schema_ok = ready.db_up;	/* checked again after an outage */
		return;
	}
	ready.db_up = pa_db_exec(ctx->db, req->arena, PA_STMT_HEALTH_MIGRATIONS, NULL, &r) ==
	    PA_OK;
	ready.schema_ok = ready.db_up &&
	    pa_health_migrations(r, ready.why, sizeof(ready.why)) == PA_OK;
}

void
pa_handle_health_ready(pa_req_t *req, pa_ctx_t *ctx)
{
	pa_buf_t b = PA_BUF_INIT;
	bool ok;

	check(req, ctx);
	ok = ready.db_up && ready.schema_ok;
	pa_buf_printf(&b, "{\"status\":\"%s\",\"checks\":{\"database\":\"%s\"",
	    ok ? "ok" : "unavailable", ready.db_up ? "up" : "down");
	if (ready.db_up) {
		pa_buf_puts(&b, ",\"migrations\":");
		if (ready.schema_ok)
			pa_buf_puts(&b, "\"ok\"");
		else
			pa_buf_json_str(&b, ready.why, strlen(ready.why));
	}
	pa_buf_puts(&b, "}}");
	if (pa_buf_failed(&b))
		pa_reply_failure(req, ctx, PA_ENOMEM);
	else
		pa_http_reply(req, ok ? 200 : 503, b.p, b.len);
	pa_buf_free(&b);
}

/*
 * GET /api/metrics: sums the shared counters (memory reads only, well under
 * a millisecond) into the Prometheus text format.
 */
void
pa_handle_metrics(pa_req_t *req, pa_ctx_t *ctx)
{
	static char names[PA_METRICS_ROUTES][128];
	static const char *ptrs[PA_METRICS_ROUTES];
	pa_buf_t b = PA_BUF_INIT;
	size_t n = pa_nroutes < PA_METRICS_ROUTES ? pa_nroutes : PA_METRICS_ROUTES;

	if (ptrs[0] == NULL)
		for (size_t i = 0; i < n; i++) {
			snprintf(names[i], sizeof(names[i]), "%s %s", pa_routes[i].method,
			    pa_routes[i].pattern);
			ptrs[i] = names[i];
		}
	pa_metrics_render(&b, ptrs, n);
	if (pa_buf_failed(&b))
		pa_reply_failure(req, ctx, PA_ENOMEM);
	else
		pa_http_reply_typed(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.p,
		    b.len);
	pa_buf_free(&b);
}
