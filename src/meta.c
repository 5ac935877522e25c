/*
 * The /api/info cache: an open-addressing hash table from lower-cased domain
 * to a rendered body (or a not-found mark), plus the system metadata.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "meta.h"
#include "ms365.h"
#include "valid.h"

struct entry {
	char *key;		/* NULL: empty slot */
	char *body;		/* NULL: no such enabled tenant */
	size_t len;
};

struct pa_meta {
	const pa_config_t *cfg;
	pa_buf_t system;	/* "{"web_domain":…,"enable_dataflow":…" without the closing brace */
	bool have_system;
	pa_buf_t plain;		/* the body without a domain */
	struct entry *slots;
	size_t cap, count, max;
	size_t hand;		/* where the next eviction of a full cache starts */
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
			free(m->slots[i].body);
			m->slots[i] = (struct entry){ 0 };
		}
	m->count = 0;
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
	free(e->body);
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
 * than entries (100,000 tenants, 65,536 entries), clearing the whole cache
 * made every worker start over after each 65,536 misses.  The sweep order
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

/* Renders the whole body for one tenant row into b. */
static void
render_tenant(pa_meta_t *m, const pa_db_res_t *r, pa_buf_t *b)
{
	const char *dir = pa_db_value(r, 0, PA_COL_TENANT_INFO_MS365_DIRECTORY);
	const char *cloud = pa_db_value(r, 0, PA_COL_TENANT_INFO_MS365_CLOUD);
	/* On only when complete: the statement checks application and credential too. */
	bool ms365 = pa_db_bool(r, 0, PA_COL_TENANT_INFO_MS365_ENABLED) && dir != NULL && *dir != '\0';

	pa_buf_append(b, m->system.p, m->system.len);
	pa_buf_puts(b, ",\"name\":");
	json_text(b, pa_db_value(r, 0, PA_COL_TENANT_INFO_NAME));
	pa_buf_puts(b, ",\"domain\":");
	json_text(b, pa_db_value(r, 0, PA_COL_TENANT_INFO_DOMAIN));
	pa_buf_puts(b, ",\"website\":");
	json_text(b, pa_db_value(r, 0, PA_COL_TENANT_INFO_WEBSITE));
	pa_buf_puts(b, ",\"avatar_url\":");
	json_text(b, pa_db_value(r, 0, PA_COL_TENANT_INFO_AVATAR_URL));
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

enum pa_err
pa_meta_info(pa_meta_t *m, pa_db_t *db, pa_arena_t *a, const char *domain, const char **body,
    size_t *len)
{
	pa_buf_t b = PA_BUF_INIT;
	struct entry *e;
	pa_db_res_t *r;
	enum pa_err rv;
	char *key;

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

		if ((rv = pa_db_exec(db, a, PA_STMT_TENANT_INFO, params, &r)) != PA_OK)
			return rv;
		if (pa_db_rows(r) > 0) {
			render_tenant(m, r, &b);
			if (pa_buf_failed(&b)) {
				pa_buf_free(&b);
				return PA_ENOMEM;
			}
		}
		if (m->count >= m->max) {
			pa_metrics_inc(PA_M_INFO_CACHE_EVICT);
			make_room(m);
			e = slot(m, key);	/* entries may have moved */
		}
		if ((e->key = strdup(key)) == NULL) {
			pa_buf_free(&b);
			return PA_ENOMEM;
		}
		e->body = b.p;	/* ownership moves to the cache */
		e->len = b.len;
		m->count++;
	}
	if (e->body == NULL)
		return PA_ENOTFOUND;
	*body = e->body;
	*len = e->len;
	return PA_OK;
}
