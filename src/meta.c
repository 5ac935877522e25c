/*
 * The /api/info cache: an open-addressing hash table from lower-cased domain
 * to the tenant's part of the body (or a not-found mark), plus the system
 * metadata every body starts with.  Each entry is one allocation: the key,
 * its NUL, then the tenant's fields (",\"name\":…}"): with its two slots
 * about 250 bytes resident per tenant (bench/run, 100,000 tenants), where
 * whole bodies of 434 bytes and a key in two allocations took more.
 *
 * The fill: while the cache is not full, each GET /api/info leaves for
 * after its answer (pa_meta_fill) the loading of the next FILL_CHUNK
 * enabled tenants in lower(domain) order.  A worker's cache is warm after a
 * hundred requests for 100,000 tenants instead of after a miss for each
 * tenant in each worker (with random traffic, about a million requests per
 * worker before nearly all were hits).
 */
#include "autoconfig.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "meta.h"
#include "ms365.h"
#include "valid.h"

#define FILL_CHUNK 1000

struct entry {
	char *key;		/* NULL: empty slot; else the key, NUL, then the body part */
	uint32_t len;		/* of the body part */
	bool found;		/* false: no such enabled tenant */
};

struct pa_meta {
	const pa_config_t *cfg;
	pa_buf_t system;	/* "{"web_domain":…,"enable_dataflow":…" without the closing brace */
	bool have_system;
	pa_buf_t plain;		/* the body without a domain */
	struct entry *slots;
	size_t cap, count, max;
	size_t hand;		/* where the next eviction of a full cache starts */
	bool filled;		/* the fill has loaded every tenant, or the cache is full */
	char *fill_after;	/* the fill's position: the last lower(domain) loaded */
};

pa_meta_t *
pa_meta_new(const pa_config_t *cfg)
{
	pa_meta_t *m = calloc(1, sizeof(*m));
	size_t cap = 16;

	if (m == NULL)
		return NULL;
	m->cfg = cfg;
	m->max = (size_t)cfg->tenant_cache_size;
	while (cap < m->max * 2)	/* load factor at most 1/2 */
		cap *= 2;
	m->cap = cap;
	if ((m->slots = calloc(cap, sizeof(*m->slots))) == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

static void
clear_tenants(pa_meta_t *m)
{
	if (m->count > 0)
		for (size_t i = 0; i < m->cap; i++) {
			free(m->slots[i].key);
			m->slots[i] = (struct entry){ 0 };
		}
	m->count = 0;
	m->filled = false;
	free(m->fill_after);
	m->fill_after = NULL;
}

void
pa_meta_flush(pa_meta_t *m)
{
	clear_tenants(m);
	m->have_system = false;
	pa_buf_reset(&m->system);
	pa_buf_reset(&m->plain);
}

void
pa_meta_free(pa_meta_t *m)
{
	if (m == NULL)
		return;
	pa_meta_flush(m);
	pa_buf_free(&m->system);
	pa_buf_free(&m->plain);
	free(m->slots);
	free(m);
}

static uint64_t
hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct entry *
slot(pa_meta_t *m, const char *key)
{
	size_t i = (size_t)hash(key) & (m->cap - 1);

	while (m->slots[i].key != NULL && strcmp(m->slots[i].key, key) != 0)
		i = (i + 1) & (m->cap - 1);
	return &m->slots[i];
}

/*
 * Removes the entry of key, if any, by backward-shift deletion: later
 * entries of the probe run move up so lookups never meet a hole early.
 */
static void
evict(pa_meta_t *m, const char *key)
{
	struct entry *e = slot(m, key);
	size_t hole, i;

	if (e->key == NULL)
		return;
	free(e->key);
	*e = (struct entry){ 0 };
	m->count--;
	hole = (size_t)(e - m->slots);
	for (i = (hole + 1) & (m->cap - 1); m->slots[i].key != NULL; i = (i + 1) & (m->cap - 1)) {
		size_t home = (size_t)hash(m->slots[i].key) & (m->cap - 1);

		/* Move it if its home is not in the cyclic range (hole, i]. */
		if (hole <= i ? (home <= hole || home > i) : (home <= hole && home > i)) {
			m->slots[hole] = m->slots[i];
			m->slots[i] = (struct entry){ 0 };
			hole = i;
		}
	}
}

/*
 * Makes room in a full cache by evicting one entry: the next one from the
 * hand, which sweeps the slots.  Not everything at once: with more tenants
 * than entries (say 100,000 tenants, 65,536 entries), clearing the whole
 * cache made every worker start over after each 65,536 misses.  The sweep order
 * is unrelated to how often an entry is used, so with random traffic the
 * hit rate is about max / tenants.
 */
static void
make_room(pa_meta_t *m)
{
	size_t i = m->hand & (m->cap - 1);

	while (m->slots[i].key == NULL)
		i = (i + 1) & (m->cap - 1);
	m->hand = i + 1;
	evict(m, m->slots[i].key);
}

void
pa_meta_invalidate(pa_meta_t *m, const char *payload)
{
	char key[PA_DOMAIN_MAX + 1];
	size_t n;

	if (strncmp(payload, "tenant ", 7) != 0 || (n = strlen(payload + 7)) > PA_DOMAIN_MAX) {
		pa_meta_flush(m);
		return;
	}
	for (size_t i = 0; i <= n; i++)
		key[i] = (char)tolower((unsigned char)payload[7 + i]);
	evict(m, key);
}

static void
json_bool(pa_buf_t *b, bool v)
{
	pa_buf_puts(b, v ? "true" : "false");
}

/*
 * A string column: "" when unset (API.md: the OpenAPI types these as string,
 * and clients generated from it reject null).
 */
static void
json_text(pa_buf_t *b, const char *v)
{
	pa_buf_json_str(b, v != NULL ? v : "", v != NULL ? strlen(v) : 0);
}

static enum pa_err
load_system(pa_meta_t *m, pa_db_t *db, pa_arena_t *a)
{
	static const char *const names[PA_COL_SYSTEM_INFO__MAX] = {
		[PA_COL_SYSTEM_INFO_WEB_DOMAIN] = "web_domain", [PA_COL_SYSTEM_INFO_PRIVATE_IPV4] = "private_ipv4",
		[PA_COL_SYSTEM_INFO_PUBLIC_IPV4] = "public_ipv4", [PA_COL_SYSTEM_INFO_ENABLE_IPV6] = "enable_ipv6",
		[PA_COL_SYSTEM_INFO_PRIVATE_IPV6] = "private_ipv6", [PA_COL_SYSTEM_INFO_PUBLIC_IPV6] = "public_ipv6",
		[PA_COL_SYSTEM_INFO_PRIMARY_DNS] = "primary_dns_server",
		[PA_COL_SYSTEM_INFO_SECONDARY_DNS] = "secondary_dns_server",
		[PA_COL_SYSTEM_INFO_ENABLE_DATAFLOW] = "enable_dataflow",
	};
	pa_db_res_t *r;
	enum pa_err rv;

	if ((rv = pa_db_exec(db, a, PA_STMT_SYSTEM_INFO, NULL, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) != 1) {
		pa_log_error("system_settings has %d rows, expected 1 (run pbx-authctl migrate)",
		    pa_db_rows(r));
		return PA_EDB;
	}
	pa_buf_reset(&m->system);
	pa_buf_putc(&m->system, '{');
	for (int c = 0; c < PA_COL_SYSTEM_INFO__MAX; c++) {
		if (names[c] == NULL)	/* not public metadata */
			continue;
		if (c > 0)
			pa_buf_putc(&m->system, ',');
		pa_buf_json_str(&m->system, names[c], strlen(names[c]));
		pa_buf_putc(&m->system, ':');
		if (c == PA_COL_SYSTEM_INFO_ENABLE_IPV6 || c == PA_COL_SYSTEM_INFO_ENABLE_DATAFLOW)
			json_bool(&m->system, pa_db_bool(r, 0, c));
		else
			json_text(&m->system, pa_db_value(r, 0, c));
	}
	pa_buf_reset(&m->plain);
	pa_buf_append(&m->plain, m->system.p, m->system.len);
	pa_buf_putc(&m->plain, '}');
	if (pa_buf_failed(&m->system) || pa_buf_failed(&m->plain))
		return PA_ENOMEM;
	m->have_system = true;
	return PA_OK;
}

/* Renders the tenant's part of the body, from row i of r, into b. */
static void
render_tenant(pa_meta_t *m, const pa_db_res_t *r, int i, pa_buf_t *b)
{
	const char *dir = pa_db_value(r, i, PA_COL_TENANT_INFO_MS365_DIRECTORY);
	const char *cloud = pa_db_value(r, i, PA_COL_TENANT_INFO_MS365_CLOUD);
	/* On only when complete: the statement checks application and credential too. */
	bool ms365 = pa_db_bool(r, i, PA_COL_TENANT_INFO_MS365_ENABLED) && dir != NULL && *dir != '\0';

	pa_buf_puts(b, ",\"name\":");
	json_text(b, pa_db_value(r, i, PA_COL_TENANT_INFO_NAME));
	pa_buf_puts(b, ",\"domain\":");
	json_text(b, pa_db_value(r, i, PA_COL_TENANT_INFO_DOMAIN));
	pa_buf_puts(b, ",\"website\":");
	json_text(b, pa_db_value(r, i, PA_COL_TENANT_INFO_WEBSITE));
	pa_buf_puts(b, ",\"avatar_url\":");
	json_text(b, pa_db_value(r, i, PA_COL_TENANT_INFO_AVATAR_URL));
	pa_buf_puts(b, ",\"enable_ms365_integration\":");
	json_bool(b, ms365);
	pa_buf_puts(b, ",\"ms365_authorization_endpoint\":");
	if (ms365) {
		pa_buf_t url = PA_BUF_INIT;

		pa_ms365_authorize_endpoint(&url, m->cfg, cloud, dir);
		if (pa_buf_failed(&url))
			b->failed = true;
		else
			pa_buf_json_str(b, url.p, url.len);
		pa_buf_free(&url);
	} else {
		json_text(b, NULL);
	}
	pa_buf_putc(b, '}');
}

/*
 * Stores key's entry in its empty slot e: the body part of b (rendered)
 * or, with b NULL, the not-found mark.  The caller has made room.
 */
static enum pa_err
store(pa_meta_t *m, struct entry *e, const char *key, const pa_buf_t *b)
{
	size_t klen = strlen(key), len = b != NULL ? b->len : 0;

	if (len > UINT32_MAX || (e->key = malloc(klen + 1 + len)) == NULL)
		return PA_ENOMEM;
	memcpy(e->key, key, klen + 1);
	if (len > 0)
		memcpy(e->key + klen + 1, b->p, len);
	e->len = (uint32_t)len;
	e->found = b != NULL;
	m->count++;
	return PA_OK;
}

bool
pa_meta_filling(const pa_meta_t *m)
{
	return !m->filled && m->count < m->max;
}

void
pa_meta_fill(pa_meta_t *m, pa_db_t *db, pa_arena_t *a)
{
	char limit[16];
	const char *params[2] = { m->fill_after != NULL ? m->fill_after : "", limit };
	pa_buf_t b = PA_BUF_INIT;
	pa_db_res_t *r;
	int rows;

	if (!pa_meta_filling(m))
		return;
	snprintf(limit, sizeof(limit), "%d", FILL_CHUNK);
	if (pa_db_exec(db, a, PA_STMT_TENANT_INFO_CHUNK, params, &r) != PA_OK)
		return;	/* logged; the next request tries again */
	rows = pa_db_rows(r);
	for (int i = 0; i < rows && m->count < m->max; i++) {
		const char *domain = pa_db_value(r, i, PA_COL_TENANT_INFO_DOMAIN);
		char *key = pa_strdup_lower(a, domain != NULL ? domain : "");
		struct entry *e;

		if (key == NULL)
			break;
		e = slot(m, key);
		if (e->key != NULL)
			continue;	/* a lookup was first; notifications keep it current */
		pa_buf_reset(&b);
		render_tenant(m, r, i, &b);
		if (pa_buf_failed(&b) || store(m, e, key, &b) != PA_OK) {
			pa_log_error("out of memory filling the /api/info cache");
			break;
		}
	}
	pa_buf_free(&b);
	if (rows < FILL_CHUNK || m->count >= m->max) {
		m->filled = true;
	} else {
		const char *last = pa_db_value(r, rows - 1, PA_COL_TENANT_INFO_CHUNK_CURSOR);
		char *next = last != NULL ? strdup(last) : NULL;

		if (next == NULL)
			return;	/* the same page again next time */
		free(m->fill_after);
		m->fill_after = next;
	}
}

enum pa_err
pa_meta_info(pa_meta_t *m, pa_db_t *db, pa_arena_t *a, const char *domain, const char **body,
    size_t *len)
{
	struct entry *e;
	pa_db_res_t *r;
	enum pa_err rv;
	char *key, *out;
	size_t klen;

	if (!m->have_system && (rv = load_system(m, db, a)) != PA_OK)
		return rv;
	if (domain == NULL) {
		*body = m->plain.p;
		*len = m->plain.len;
		return PA_OK;
	}
	if ((key = pa_strdup_lower(a, domain)) == NULL)
		return PA_ENOMEM;
	e = slot(m, key);
	pa_metrics_inc(e->key == NULL ? PA_M_INFO_CACHE_MISS : PA_M_INFO_CACHE_HIT);
	if (e->key == NULL) {
		const char *params[1] = { domain };
		pa_buf_t b = PA_BUF_INIT;

		if ((rv = pa_db_exec(db, a, PA_STMT_TENANT_INFO, params, &r)) != PA_OK)
			return rv;
		if (pa_db_rows(r) > 0)
			render_tenant(m, r, 0, &b);
		if (m->count >= m->max) {
			pa_metrics_inc(PA_M_INFO_CACHE_EVICT);
			make_room(m);
			e = slot(m, key);	/* entries may have moved */
		}
		rv = pa_buf_failed(&b) ? PA_ENOMEM : store(m, e, key, pa_db_rows(r) > 0 ? &b : NULL);
		pa_buf_free(&b);
		if (rv != PA_OK)
			return rv;
	}
	if (!e->found)
		return PA_ENOTFOUND;
	/* The system part as it is now, then the tenant's. */
	klen = strlen(e->key);
	if ((out = pa_alloc(a, m->system.len + e->len)) == NULL)
		return PA_ENOMEM;
	memcpy(out, m->system.p, m->system.len);
	memcpy(out + m->system.len, e->key + klen + 1, e->len);
	*body = out;
	*len = m->system.len + e->len;
	return PA_OK;
}
