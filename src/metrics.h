/*
 * Prometheus metrics from counters in a shared mapping: the master maps it
 * before forking, each child (worker, mailer) writes only its own slot
 * without locks (one writer per slot: relaxed loads and stores), and a
 * scrape sums the slots in use.  A dead child's slot is folded into the
 * master's slot before it is reused, so counters never go down.  Gauges the
 * mailer samples (the outbox) sit outside the slots.
 */
#ifndef PA_METRICS_H
#define PA_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "pa.h"

#define PA_METRICS_ROUTES 32	/* route table entries counted; one more for "no route" */

enum pa_metric {
	PA_M_SIGN_IN,		/* [flavour][outcome]: PA_M_SIGN_IN + f * 4 + o */
	PA_M_THROTTLE_BLOCK = PA_M_SIGN_IN + 8,	/* [address, account] */
	PA_M_REFRESH = PA_M_THROTTLE_BLOCK + 2,
	PA_M_REFRESH_REUSE_REVOKED,
	PA_M_OTP_SENT,
	PA_M_OTP_FAILED,		/* wrong or voided codes */
	PA_M_MS365_SIGN_IN,		/* [success (user accepted), failure]: +0, +1 */
	PA_M_OUTBOUND_ERROR = PA_M_MS365_SIGN_IN + 2,	/* [connect, timeout, status, invalid, other] */
	PA_M_MAIL_DELIVERY = PA_M_OUTBOUND_ERROR + 5,	/* [sent, retry, failed] */
	PA_M_DB_RECONNECT = PA_M_MAIL_DELIVERY + 3,
	PA_M_UNAVAILABLE,		/* 503 answers */
	PA_M_INFO_CACHE_HIT,
	PA_M_INFO_CACHE_MISS,
	PA_M_INFO_CACHE_EVICT,
	PA_M_TOKEN_CACHE_HIT,		/* the gate's cache of verified tokens (gate.c) */
	PA_M_TOKEN_CACHE_MISS,
	PA_M_TOKEN_CACHE_EVICT,		/* dropped to make room, not revoked or expired */
	PA_M_CHILD_RESTART,		/* [worker, mailer], counted by the master */
	PA_M__MAX = PA_M_CHILD_RESTART + 2
};
enum { PA_M_FLAVOUR_BEARER, PA_M_FLAVOUR_COOKIE };
enum { PA_M_OUT_CONNECT, PA_M_OUT_TIMEOUT, PA_M_OUT_STATUS, PA_M_OUT_INVALID, PA_M_OUT_OTHER };

/* Master, before forking: maps room for nslots children.  False on failure (logged). */
bool pa_metrics_init(size_t nslots);
/* Master: slot i is given to a new child / its child died (folds it). */
void pa_metrics_slot_start(size_t i);
void pa_metrics_slot_retire(size_t i);
/* Child, after fork: writes go to slot i.  Until then they go to the master's slot. */
void pa_metrics_attach(size_t i);

/* Adds one to counter m (no-op without a mapping). */
void pa_metrics_inc(enum pa_metric m);
/* Counts an answered request: route index (-1: none), status, duration in µs. */
void pa_metrics_request(int route, int status, long long us);
/* Counts an audit event (sign-ins, reuse revocations, codes) from its fields. */
void pa_metrics_audit(const char *event, const char *outcome, const char *detail);
/* The mailer's sample of the outbox: messages by status, age of the oldest queued. */
void pa_metrics_outbox(long queued, long sent, long failed, long oldest_age);

/*
 * Appends the text exposition (format 0.0.4) to b.  routes[i] names route i
 * as "METHOD /path".  Reads only memory: no lock, no query.
 */
void pa_metrics_render(pa_buf_t *b, const char *const *routes, size_t nroutes);

#endif
