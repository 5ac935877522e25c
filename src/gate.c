/*
 * The gate's cache of verified tokens: entries in one array, found through
 * two open-addressing index tables (by token hash, by session id), and kept
 * in insertion order on a list so that the oldest goes first when full.
 */
#include "autoconfig.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "gate.h"
#include "log.h"
#include "metrics.h"

#define NIL UINT32_MAX

/* 88 bytes: with 100000 entries, 8.4 MiB plus the names. */
struct entry {
	unsigned char key[PA_SHA256_LEN];	/* SHA-256 of the token */
	long long session_id, user_id, exp, iat;
	char *names;		/* "username\0domain\0role\0" (malloc) */
	uint32_t prev, next;	/* insertion order; next also links free entries */
	uint16_t names_len;
	bool used, cookie, force_reset;
};

struct pa_gate {
	const pa_config_t *cfg;
	struct entry *e;
	uint32_t *by_key, *by_session;	/* entry index + 1; 0 = empty slot */
	size_t max, cap, count, bytes, max_bytes;
	uint32_t head, tail, free;	/* oldest, newest, first free entry */
	bool offline;
	time_t offline_since, last_try;
};

/* Bytes an entry's names take, with the allocator's overhead. */
#define NAMES_COST(n) ((n) + 16)

pa_gate_t *
pa_gate_new(const pa_config_t *cfg)
{
	pa_gate_t *g = calloc(1, sizeof(*g));
	size_t cap = 16;

	if (g == NULL)
		return NULL;
	g->cfg = cfg;
	g->max = (size_t)cfg->gate_cache_size;
	g->max_bytes = (size_t)cfg->gate_cache_memory << 20;
	while (cap < g->max * 2)	/* load factor at most 1/2 */
		cap *= 2;
	g->cap = cap;
	g->e = calloc(g->max ? g->max : 1, sizeof(*g->e));
	g->by_key = calloc(cap, sizeof(*g->by_key));
	g->by_session = calloc(cap, sizeof(*g->by_session));
	if (g->e == NULL || g->by_key == NULL || g->by_session == NULL) {
		pa_gate_free(g);
		return NULL;
	}
	pa_gate_flush(g);
	return g;
}

void
pa_gate_flush(pa_gate_t *g)
{
	for (size_t i = 0; i < g->max; i++) {
		free(g->e[i].names);
		g->e[i] = (struct entry){ .next = i + 1 < g->max ? (uint32_t)(i + 1) : NIL };
	}
	memset(g->by_key, 0, g->cap * sizeof(*g->by_key));
	memset(g->by_session, 0, g->cap * sizeof(*g->by_session));
	g->count = g->bytes = 0;
	g->head = g->tail = NIL;
	g->free = g->max ? 0 : NIL;
}

void
pa_gate_free(pa_gate_t *g)
{
	if (g == NULL)
		return;
	if (g->e != NULL && g->by_key != NULL && g->by_session != NULL)
		pa_gate_flush(g);
	free(g->e);
	free(g->by_key);
	free(g->by_session);
	free(g);
}

static size_t
key_home(const pa_gate_t *g, const unsigned char *key)
{
	uint64_t h;

	memcpy(&h, key, sizeof(h));	/* a SHA-256 is uniform already */
	return (size_t)h & (g->cap - 1);
}

static size_t
session_home(const pa_gate_t *g, long long id)
{
	return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ULL) >> 20) & (g->cap - 1);
}

static size_t
home_of(const pa_gate_t *g, const uint32_t *table, uint32_t idx)
{
	const struct entry *e = &g->e[idx];

	return table == g->by_key ? key_home(g, e->key) : session_home(g, e->session_id);
}

/* Removes the slot holding idx from table, shifting later slots of the run back. */
static void
table_remove(pa_gate_t *g, uint32_t *table, size_t start, uint32_t idx)
{
	size_t hole = start, i;

	while (table[hole] != idx + 1)
		hole = (hole + 1) & (g->cap - 1);
	table[hole] = 0;
	for (i = (hole + 1) & (g->cap - 1); table[i] != 0; i = (i + 1) & (g->cap - 1)) {
		size_t home = home_of(g, table, table[i] - 1);

		/* Move it if its home is not in the cyclic range (hole, i]. */
		if (hole <= i ? (home <= hole || home > i) : (home <= hole && home > i)) {
			table[hole] = table[i];
			table[i] = 0;
			hole = i;
		}
	}
}

static void
table_insert(pa_gate_t *g, uint32_t *table, size_t home, uint32_t idx)
{
	size_t i = home;

	while (table[i] != 0)
		i = (i + 1) & (g->cap - 1);
	table[i] = idx + 1;
}

static void
drop(pa_gate_t *g, uint32_t idx)
{
	struct entry *e = &g->e[idx];

	table_remove(g, g->by_key, key_home(g, e->key), idx);
	table_remove(g, g->by_session, session_home(g, e->session_id), idx);
	if (e->prev != NIL)
		g->e[e->prev].next = e->next;
	else
		g->head = e->next;
	if (e->next != NIL)
		g->e[e->next].prev = e->prev;
	else
		g->tail = e->prev;
	g->bytes -= NAMES_COST(e->names_len);
	g->count--;
	free(e->names);
	*e = (struct entry){ .next = g->free };
	g->free = idx;
}

static uint32_t
find(const pa_gate_t *g, const unsigned char *key)
{
	for (size_t i = key_home(g, key); g->by_key[i] != 0; i = (i + 1) & (g->cap - 1))
		if (memcmp(g->e[g->by_key[i] - 1].key, key, PA_SHA256_LEN) == 0)
			return g->by_key[i] - 1;
	return NIL;
}

static void
drop_session(pa_gate_t *g, long long id)
{
	size_t i = session_home(g, id);

	while (g->by_session[i] != 0) {
		uint32_t idx = g->by_session[i] - 1;

		if (g->e[idx].session_id == id)
			drop(g, idx);	/* shifts the run: look at slot i again */
		else
			i = (i + 1) & (g->cap - 1);
	}
}

/* Drops every entry for which the predicate holds (users and tenants: rare). */
static void
drop_where(pa_gate_t *g, bool (*pred)(const struct entry *, const void *), const void *arg)
{
	uint32_t idx = g->head;

	while (idx != NIL) {
		uint32_t next = g->e[idx].next;

		if (pred(&g->e[idx], arg))
			drop(g, idx);
		idx = next;
	}
}

static bool
of_user(const struct entry *e, const void *arg)
{
	return e->user_id == *(const long long *)arg;
}

static bool
of_tenant(const struct entry *e, const void *arg)
{
	const char *domain = e->names + strlen(e->names) + 1;

	return strcasecmp(domain, arg) == 0;
}

/* A positive decimal id, or -1. */
static long long
parse_id(const char *s)
{
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return -1;
	v = strtoll(s, &end, 10);
	return *end == '\0' && v > 0 ? v : -1;
}

void
pa_gate_invalidate(pa_gate_t *g, const char *payload)
{
	long long id;

	if (strncmp(payload, "session ", 8) == 0 && (id = parse_id(payload + 8)) > 0)
		drop_session(g, id);
	else if (strncmp(payload, "user ", 5) == 0 && (id = parse_id(payload + 5)) > 0)
		drop_where(g, of_user, &id);
	else if (strncmp(payload, "tenant ", 7) == 0)
		drop_where(g, of_tenant, payload + 7);
	else
		pa_gate_flush(g);
}

void
pa_gate_offline(pa_gate_t *g, bool offline)
{
	if (offline && !g->offline)
		g->offline_since = time(NULL);
	g->offline = offline;
}

/* Keeps row 0 of r under key; when full, the oldest entries go first. */
static void
insert(pa_gate_t *g, const unsigned char *key, bool cookie, const pa_gate_who_t *w)
{
	size_t ul = strlen(w->username), dl = strlen(w->domain), rl = strlen(w->role);
	size_t n = ul + dl + rl + 3;
	struct entry *e;
	uint32_t idx;
	char *names;

	if (g->max == 0 || n > UINT16_MAX || NAMES_COST(n) > g->max_bytes ||
	    (names = malloc(n)) == NULL)
		return;		/* not cached: the next request asks PostgreSQL again */
	memcpy(names, w->username, ul + 1);
	memcpy(names + ul + 1, w->domain, dl + 1);
	memcpy(names + ul + dl + 2, w->role, rl + 1);
	while (g->count >= g->max || g->bytes + NAMES_COST(n) > g->max_bytes) {
		drop(g, g->head);
		pa_metrics_inc(PA_M_TOKEN_CACHE_EVICT);
	}
	idx = g->free;
	e = &g->e[idx];
	g->free = e->next;
	*e = (struct entry){ .session_id = w->session_id, .user_id = w->user_id, .exp = w->exp,
		.iat = w->iat, .names = names, .names_len = (uint16_t)n, .prev = g->tail, .next = NIL,
		.used = true, .cookie = cookie, .force_reset = w->force_reset };
	memcpy(e->key, key, PA_SHA256_LEN);
	if (g->tail != NIL)
		g->e[g->tail].next = idx;
	else
		g->head = idx;
	g->tail = idx;
	table_insert(g, g->by_key, key_home(g, key), idx);
	table_insert(g, g->by_session, session_home(g, w->session_id), idx);
	g->count++;
	g->bytes += NAMES_COST(n);
}

static long long
to_ll(const char *s)
{
	return s ? strtoll(s, NULL, 10) : 0;
}

/* Fills out from a PA_COL_GATE_* row; the strings stay with the result. */
static void
from_row(const pa_db_res_t *r, pa_gate_who_t *out)
{
	const char *d = pa_db_value(r, 0, PA_COL_GATE_DOMAIN);

	out->session_id = to_ll(pa_db_value(r, 0, PA_COL_GATE_SESSION_ID));
	out->user_id = to_ll(pa_db_value(r, 0, PA_COL_GATE_USER_ID));
	out->exp = to_ll(pa_db_value(r, 0, PA_COL_GATE_EXP));
	out->iat = to_ll(pa_db_value(r, 0, PA_COL_GATE_IAT));
	out->username = pa_db_value(r, 0, PA_COL_GATE_USERNAME);
	out->domain = d ? d : "";
	out->role = pa_db_value(r, 0, PA_COL_GATE_ROLE);
	out->force_reset = pa_db_bool(r, 0, PA_COL_GATE_FORCE_RESET);
}

/*
 * Whether a cached entry may answer now.  While offline past
 * gate_offline_ttl it may not; once a second a hit while offline tries to
 * reconnect, and a new connection empties the cache (notifications may have
 * been missed).
 */
static bool
cache_usable(pa_gate_t *g, pa_db_t *db, time_t now)
{
	if (!g->offline)
		return true;
	if (g->last_try != now) {
		g->last_try = now;
		if (pa_db_connect(db) == PA_OK) {
			pa_gate_flush(g);
			g->offline = false;
			return false;
		}
	}
	return now - g->offline_since < (time_t)g->cfg->gate_offline_ttl;
}

enum pa_err
pa_gate_check(pa_gate_t *g, pa_db_t *db, pa_arena_t *a, const char *token, bool cookie,
    pa_gate_who_t *out)
{
	unsigned char key[PA_SHA256_LEN];
	char hex[PA_SHA256_HEX_LEN + 1];
	const char *params[1] = { hex };
	time_t now = time(NULL);
	pa_db_res_t *r;
	uint32_t idx;
	enum pa_err rv;

	if (!pa_token_valid(token, strlen(token)))
		return PA_ENOTFOUND;
	if ((rv = pa_sha256(token, strlen(token), key)) != PA_OK)
		return rv;
	if ((idx = find(g, key)) != NIL && g->e[idx].exp <= now) {
		drop(g, idx);
		idx = NIL;
	}
	if (idx != NIL && cache_usable(g, db, now) && (idx = find(g, key)) != NIL) {
		const struct entry *e = &g->e[idx];
		const char *u = e->names, *d = u + strlen(u) + 1, *role = d + strlen(d) + 1;

		if (e->cookie != cookie)
			return PA_ENOTFOUND;
		pa_metrics_inc(PA_M_TOKEN_CACHE_HIT);
		*out = (pa_gate_who_t){ e->session_id, e->user_id, e->exp, e->iat,
			pa_strdup(a, u), pa_strdup(a, d), pa_strdup(a, role), e->force_reset };
		return out->username && out->domain && out->role ? PA_OK : PA_ENOMEM;
	}
	pa_metrics_inc(PA_M_TOKEN_CACHE_MISS);
	for (size_t i = 0; i < PA_SHA256_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	rv = pa_db_exec(db, a, cookie ? PA_STMT_GATE_COOKIE : PA_STMT_GATE_ACCESS, params, &r);
	if (rv != PA_OK)
		return rv;
	if (pa_db_rows(r) != 1)
		return PA_ENOTFOUND;
	from_row(r, out);
	if (out->username == NULL || out->role == NULL)
		return PA_ENOTFOUND;
	if (!g->offline && find(g, key) == NIL)
		insert(g, key, cookie, out);
	return PA_OK;
}

void
pa_gate_stats(const pa_gate_t *g, size_t *entries, size_t *bytes)
{
	*entries = g->count;
	*bytes = g->bytes;
}
