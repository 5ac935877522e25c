/*
 * Shared-memory counters and their Prometheus text exposition (metrics.h).
 */
#include "autoconfig.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

/* Request duration buckets, seconds (upper bounds; +Inf follows). */
static const double bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
	2.5, 5 };
#define NB (PA_NELEM(bounds) + 1)
#define NR (PA_METRICS_ROUTES + 1)
#define NCLASS 5

struct slot {
	uint64_t c[PA_M__MAX];
	uint64_t req[NR][NCLASS];
	uint64_t bucket[NR][NB];	/* not cumulative here; the render sums them */
	uint64_t sum_us[NR];
};

struct shared {
	uint64_t seq;		/* odd while the master folds a slot */
	int64_t outbox[3];	/* queued, sent, failed; -1: never sampled */
	int64_t oldest_age, sampled_at;
	size_t nslots;		/* children's slots; the master's is the last */
	unsigned char used[1024];
	struct slot slot[];
};

static struct shared *sh;
static struct slot *mine;

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
/* One writer per slot: a relaxed load and store, no lock prefix. */
#define BUMP(p, n) STORE((p), LOAD(p) + (n))

bool
pa_metrics_init(size_t nslots)
{
	size_t size = sizeof(struct shared) + (nslots + 1) * sizeof(struct slot);
	void *p;

	if (nslots >= sizeof(sh->used))
		nslots = sizeof(sh->used) - 1;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		pa_log_syserr("mmap of %zu bytes for the metrics", size);
		return false;
	}
	sh = p;
	sh->nslots = nslots;
	sh->outbox[0] = sh->outbox[1] = sh->outbox[2] = -1;
	sh->used[nslots] = 1;
	mine = &sh->slot[nslots];
	return true;
}

void
pa_metrics_slot_start(size_t i)
{
	if (sh != NULL && i < sh->nslots)
		STORE(&sh->used[i], 1);
}

void
pa_metrics_slot_retire(size_t i)
{
	uint64_t *from, *to;

	if (sh == NULL || i >= sh->nslots)
		return;
	from = (uint64_t *)&sh->slot[i];
	to = (uint64_t *)&sh->slot[sh->nslots];
	/* The child is dead: nobody writes slot i.  Scrapes retry around this. */
	__atomic_fetch_add(&sh->seq, 1, __ATOMIC_ACQ_REL);
	for (size_t k = 0; k < sizeof(struct slot) / sizeof(uint64_t); k++) {
		BUMP(&to[k], LOAD(&from[k]));
		STORE(&from[k], 0);
	}
	STORE(&sh->used[i], 0);
	__atomic_fetch_add(&sh->seq, 1, __ATOMIC_ACQ_REL);
}

void
pa_metrics_attach(size_t i)
{
	if (sh != NULL && i < sh->nslots)
		mine = &sh->slot[i];
}

void
pa_metrics_inc(enum pa_metric m)
{
	if (mine != NULL)
		BUMP(&mine->c[m], 1);
}

void
pa_metrics_request(int route, int status, long long us)
{
	size_t r = route < 0 || route >= PA_METRICS_ROUTES ? PA_METRICS_ROUTES : (size_t)route;
	size_t cls = status >= 100 && status < 600 ? (size_t)(status / 100 - 1) : 4;
	size_t b = 0;

	if (mine == NULL)
		return;
	while (b < PA_NELEM(bounds) && (double)us > bounds[b] * 1e6)
		b++;
	BUMP(&mine->req[r][cls], 1);
	BUMP(&mine->bucket[r][b], 1);
	BUMP(&mine->sum_us[r], (uint64_t)(us < 0 ? 0 : us));
	if (status == 503)
		BUMP(&mine->c[PA_M_UNAVAILABLE], 1);
}

static int
index_of(const char *s, const char *const *list, int n)
{
	for (int i = 0; s != NULL && i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return i;
	return -1;
}

static const char *const outcomes[] = { "success", "failure", "blocked", "two_factor" };

void
pa_metrics_audit(const char *event, const char *outcome, const char *detail)
{
	int o;

	if (mine == NULL || event == NULL)
		return;
	if (strcmp(event, "sign_in") == 0 && (o = index_of(outcome, outcomes, 4)) >= 0) {
		/* detail: the flavour, or "microsoft <flavour>: reason" (social.c) */
		bool ms = detail != NULL && strncmp(detail, "microsoft ", 10) == 0;
		const char *fl = ms ? detail + 10 : detail;
		int f = fl != NULL && strncmp(fl, "cookie", 6) == 0 ? PA_M_FLAVOUR_COOKIE :
		    PA_M_FLAVOUR_BEARER;

		BUMP(&mine->c[PA_M_SIGN_IN + f * 4 + o], 1);
		if (ms && o == 1)
			BUMP(&mine->c[PA_M_MS365_SIGN_IN + 1], 1);
	} else if (strcmp(event, "lockout") == 0 && outcome != NULL) {
		BUMP(&mine->c[PA_M_THROTTLE_BLOCK + (strcmp(outcome, "ip") == 0 ? 0 : 1)], 1);
	} else if (strcmp(event, "refresh_reuse") == 0 && outcome != NULL &&
	    strcmp(outcome, "revoked") == 0) {
		BUMP(&mine->c[PA_M_REFRESH_REUSE_REVOKED], 1);
	} else if (strcmp(event, "otp_send") == 0) {
		BUMP(&mine->c[PA_M_OTP_SENT], 1);
	} else if (strcmp(event, "otp_verify") == 0 && outcome != NULL &&
	    strcmp(outcome, "success") != 0) {
		BUMP(&mine->c[PA_M_OTP_FAILED], 1);
	}
}

void
pa_metrics_outbox(long queued, long sent, long failed, long oldest_age)
{
	if (sh == NULL)
		return;
	STORE(&sh->outbox[0], queued);
	STORE(&sh->outbox[1], sent);
	STORE(&sh->outbox[2], failed);
	STORE(&sh->oldest_age, oldest_age);
	STORE(&sh->sampled_at, (int64_t)time(NULL));
}

/* Sums the slots in use into *t; false when the master folded a slot meanwhile. */
static bool
sum(struct slot *t)
{
	uint64_t seq = __atomic_load_n(&sh->seq, __ATOMIC_ACQUIRE), *to = (uint64_t *)t;

	if (seq & 1)
		return false;
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i <= sh->nslots; i++) {
		const uint64_t *from = (const uint64_t *)&sh->slot[i];

		if (!LOAD(&sh->used[i]))
			continue;
		for (size_t k = 0; k < sizeof(struct slot) / sizeof(uint64_t); k++)
			to[k] += LOAD(&from[k]);
	}
	return __atomic_load_n(&sh->seq, __ATOMIC_ACQUIRE) == seq;
}

static void
family(pa_buf_t *b, const char *name, const char *type, const char *help)
{
	pa_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
route_label(pa_buf_t *b, const char *const *routes, size_t nroutes, size_t r)
{
	const char *s = r < nroutes ? routes[r] : "- other";
	const char *sp = strchr(s, ' ');

	/* Route patterns hold no quote, backslash or newline: no escaping needed. */
	pa_buf_printf(b, "method=\"%.*s\",route=\"%s\"", (int)(sp - s), s, sp + 1);
}

void
pa_metrics_render(pa_buf_t *b, const char *const *routes, size_t nroutes)
{
	static const char *const flavours[] = { "bearer", "cookie" };
	static const char *const out_kinds[] = { "connect", "timeout", "status", "invalid", "other" };
	static const char *const deliveries[] = { "sent", "retry", "failed" };
	static const char *const statuses[] = { "queued", "sent", "failed" };
	static struct slot t;	/* 40 KB: off the stack */
	int tries = 0;

	if (sh == NULL)
		return;
	while (!sum(&t) && ++tries < 100)
		;
	if (nroutes > PA_METRICS_ROUTES)
		nroutes = PA_METRICS_ROUTES;
	family(b, "pbx_auth_build_info", "gauge", "The running version.");
	pa_buf_printf(b, "pbx_auth_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
	family(b, "pbx_auth_http_requests_total", "counter",
	    "Requests answered, by route and status class.");
	for (size_t r = 0; r <= nroutes; r++)
		for (size_t c = 0; c < NCLASS; c++) {
			size_t ri = r == nroutes ? PA_METRICS_ROUTES : r;

			pa_buf_puts(b, "pbx_auth_http_requests_total{");
			route_label(b, routes, nroutes, r);
			pa_buf_printf(b, ",code=\"%zuxx\"} %llu\n", c + 1,
			    (unsigned long long)t.req[ri][c]);
		}
	family(b, "pbx_auth_http_request_duration_seconds", "histogram",
	    "Time from request to response, by route.");
	for (size_t r = 0; r <= nroutes; r++) {
		size_t ri = r == nroutes ? PA_METRICS_ROUTES : r;
		unsigned long long cum = 0;

		for (size_t k = 0; k < NB; k++) {
			cum += t.bucket[ri][k];
			pa_buf_puts(b, "pbx_auth_http_request_duration_seconds_bucket{");
			route_label(b, routes, nroutes, r);
			if (k < PA_NELEM(bounds))
				pa_buf_printf(b, ",le=\"%g\"} %llu\n", bounds[k], cum);
			else
				pa_buf_printf(b, ",le=\"+Inf\"} %llu\n", cum);
		}
		pa_buf_puts(b, "pbx_auth_http_request_duration_seconds_sum{");
		route_label(b, routes, nroutes, r);
		pa_buf_printf(b, "} %.6f\n", (double)t.sum_us[ri] / 1e6);
		pa_buf_puts(b, "pbx_auth_http_request_duration_seconds_count{");
		route_label(b, routes, nroutes, r);
		pa_buf_printf(b, "} %llu\n", cum);
	}
	family(b, "pbx_auth_sign_ins_total", "counter",
	    "Sign-ins (password and Microsoft) by session flavour and outcome.");
	for (size_t f = 0; f < PA_NELEM(flavours); f++)
		for (size_t o = 0; o < 4; o++)
			pa_buf_printf(b, "pbx_auth_sign_ins_total{flavour=\"%s\",outcome=\"%s\"} %llu\n",
			    flavours[f], outcomes[o],
			    (unsigned long long)t.c[PA_M_SIGN_IN + f * 4 + o]);
	family(b, "pbx_auth_throttle_blocks_total", "counter",
	    "Blocks started by failed sign-ins, by key kind.");
	pa_buf_printf(b, "pbx_auth_throttle_blocks_total{kind=\"address\"} %llu\n"
	    "pbx_auth_throttle_blocks_total{kind=\"account\"} %llu\n",
	    (unsigned long long)t.c[PA_M_THROTTLE_BLOCK],
	    (unsigned long long)t.c[PA_M_THROTTLE_BLOCK + 1]);
	family(b, "pbx_auth_refreshes_total", "counter", "Refresh tokens exchanged.");
	pa_buf_printf(b, "pbx_auth_refreshes_total %llu\n", (unsigned long long)t.c[PA_M_REFRESH]);
	family(b, "pbx_auth_refresh_reuse_revocations_total", "counter",
	    "Sessions revoked because a spent refresh token came back.");
	pa_buf_printf(b, "pbx_auth_refresh_reuse_revocations_total %llu\n",
	    (unsigned long long)t.c[PA_M_REFRESH_REUSE_REVOKED]);
	family(b, "pbx_auth_otp_sends_total", "counter", "Sign-in codes queued for email.");
	pa_buf_printf(b, "pbx_auth_otp_sends_total %llu\n", (unsigned long long)t.c[PA_M_OTP_SENT]);
	family(b, "pbx_auth_otp_failures_total", "counter", "Wrong or voided sign-in codes.");
	pa_buf_printf(b, "pbx_auth_otp_failures_total %llu\n",
	    (unsigned long long)t.c[PA_M_OTP_FAILED]);
	family(b, "pbx_auth_ms365_sign_ins_total", "counter", "Microsoft sign-ins by outcome.");
	pa_buf_printf(b, "pbx_auth_ms365_sign_ins_total{outcome=\"success\"} %llu\n"
	    "pbx_auth_ms365_sign_ins_total{outcome=\"failure\"} %llu\n",
	    (unsigned long long)t.c[PA_M_MS365_SIGN_IN],
	    (unsigned long long)t.c[PA_M_MS365_SIGN_IN + 1]);
	family(b, "pbx_auth_outbound_errors_total", "counter",
	    "Failed calls to Microsoft, by kind.");
	for (size_t k = 0; k < PA_NELEM(out_kinds); k++)
		pa_buf_printf(b, "pbx_auth_outbound_errors_total{kind=\"%s\"} %llu\n", out_kinds[k],
		    (unsigned long long)t.c[PA_M_OUTBOUND_ERROR + k]);
	family(b, "pbx_auth_mail_deliveries_total", "counter", "Delivery attempts by outcome.");
	for (size_t k = 0; k < PA_NELEM(deliveries); k++)
		pa_buf_printf(b, "pbx_auth_mail_deliveries_total{outcome=\"%s\"} %llu\n",
		    deliveries[k], (unsigned long long)t.c[PA_M_MAIL_DELIVERY + k]);
	family(b, "pbx_auth_mail_outbox_messages", "gauge",
	    "Messages in the outbox by status, as the mailer last counted them.");
	for (size_t k = 0; k < PA_NELEM(statuses); k++)
		if (LOAD(&sh->outbox[k]) >= 0)
			pa_buf_printf(b, "pbx_auth_mail_outbox_messages{status=\"%s\"} %lld\n",
			    statuses[k], (long long)LOAD(&sh->outbox[k]));
	family(b, "pbx_auth_mail_outbox_oldest_queued_age_seconds", "gauge",
	    "Age of the oldest queued message (0: none queued).");
	if (LOAD(&sh->sampled_at) != 0)
		pa_buf_printf(b, "pbx_auth_mail_outbox_oldest_queued_age_seconds %lld\n",
		    (long long)LOAD(&sh->oldest_age));
	family(b, "pbx_auth_db_reconnects_total", "counter", "PostgreSQL connections re-established.");
	pa_buf_printf(b, "pbx_auth_db_reconnects_total %llu\n",
	    (unsigned long long)t.c[PA_M_DB_RECONNECT]);
	family(b, "pbx_auth_unavailable_responses_total", "counter", "503 answers.");
	pa_buf_printf(b, "pbx_auth_unavailable_responses_total %llu\n",
	    (unsigned long long)t.c[PA_M_UNAVAILABLE]);
	family(b, "pbx_auth_info_cache_requests_total", "counter",
	    "/api/info cache lookups by result.");
	pa_buf_printf(b, "pbx_auth_info_cache_requests_total{result=\"hit\"} %llu\n"
	    "pbx_auth_info_cache_requests_total{result=\"miss\"} %llu\n",
	    (unsigned long long)t.c[PA_M_INFO_CACHE_HIT],
	    (unsigned long long)t.c[PA_M_INFO_CACHE_MISS]);
	family(b, "pbx_auth_info_cache_evictions_total", "counter", "/api/info cache evictions.");
	pa_buf_printf(b, "pbx_auth_info_cache_evictions_total %llu\n",
	    (unsigned long long)t.c[PA_M_INFO_CACHE_EVICT]);
	family(b, "pbx_auth_token_cache_requests_total", "counter",
	    "Lookups in the gate's per-worker cache of verified access tokens, by result.");
	pa_buf_printf(b, "pbx_auth_token_cache_requests_total{result=\"hit\"} %llu\n"
	    "pbx_auth_token_cache_requests_total{result=\"miss\"} %llu\n",
	    (unsigned long long)t.c[PA_M_TOKEN_CACHE_HIT],
	    (unsigned long long)t.c[PA_M_TOKEN_CACHE_MISS]);
	family(b, "pbx_auth_token_cache_evictions_total", "counter",
	    "Verified tokens dropped from a full gate cache to make room.");
	pa_buf_printf(b, "pbx_auth_token_cache_evictions_total %llu\n",
	    (unsigned long long)t.c[PA_M_TOKEN_CACHE_EVICT]);
	family(b, "pbx_auth_child_restarts_total", "counter",
	    "Children the master replaced after they died, by kind.");
	pa_buf_printf(b, "pbx_auth_child_restarts_total{kind=\"worker\"} %llu\n"
	    "pbx_auth_child_restarts_total{kind=\"mailer\"} %llu\n",
	    (unsigned long long)t.c[PA_M_CHILD_RESTART],
	    (unsigned long long)t.c[PA_M_CHILD_RESTART + 1]);
}
