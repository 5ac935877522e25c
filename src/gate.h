/*
 * The gate's per-worker cache of verified tokens (GET /api/auth/verify,
 * POST /api/auth/introspect): the SHA-256 of a live access token or session
 * cookie maps to who holds it, until the token expires.  Never the token.
 *
 * Bounded by entries and by the bytes of the names it keeps; when full, the
 * oldest entry goes (entries of one access TTL expire in insertion order, so
 * the oldest is the nearest to expiry).  Notifications on the cache channel
 * (0010_gate.sql) drop entries: "session <id>", "user <id>", "tenant
 * <domain>", "all".  While the database connection is lost, cached entries
 * keep answering for gate_offline_ttl seconds; a new connection empties the
 * cache, since notifications may have been missed meanwhile.
 */
#ifndef PA_GATE_H
#define PA_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "arena.h"
#include "config.h"
#include "db.h"
#include "pa.h"

typedef struct pa_gate pa_gate_t;

/* Who holds a token.  Strings live in the arena given to pa_gate_check. */
typedef struct {
	long long session_id, user_id, exp, iat;
	const char *username, *domain, *role;	/* domain "": system-level account */
	bool force_reset;
} pa_gate_who_t;

/* cfg must outlive the cache.  NULL when out of memory. */
pa_gate_t *pa_gate_new(const pa_config_t *cfg);
void pa_gate_free(pa_gate_t *g);
void pa_gate_flush(pa_gate_t *g);
/* Applies one notification of the cache channel (see above). */
void pa_gate_invalidate(pa_gate_t *g, const char *payload);
/*
 * Tells the cache whether the database connection is up after polling its
 * notifications: connected false starts (or continues) the offline period.
 */
void pa_gate_offline(pa_gate_t *g, bool offline);

/*
 * Who holds token (a session cookie when cookie, else an access token): from
 * the cache, or from PostgreSQL and then cached.  PA_OK, PA_ENOTFOUND (not a
 * live token), PA_EDB or PA_ENOMEM.
 */
enum pa_err pa_gate_check(pa_gate_t *g, pa_db_t *db, pa_arena_t *a, const char *token,
    bool cookie, pa_gate_who_t *out) PA_MUSTCHECK;

/* Entries and bytes in use (for the benchmark's figures and the tests). */
void pa_gate_stats(const pa_gate_t *g, size_t *entries, size_t *bytes);

#endif
