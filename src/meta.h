/*
 * System and tenant metadata for GET /api/info, cached per worker as JSON:
 * the system part once, each tenant's part in an entry.  The cache holds
 * found and not-found answers and is bounded by tenant_cache_size; while it
 * is not full, pa_meta_fill loads the enabled tenants page by page.
 * Triggers on tenants and system_settings notify changes: a tenant's change
 * drops its entry, a change of the system settings (or a lost connection)
 * drops everything, and the fill starts over.
 */
#ifndef PA_META_H
#define PA_META_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "config.h"
#include "db.h"
#include "pa.h"

typedef struct pa_meta pa_meta_t;

/* cfg must outlive the cache.  NULL when out of memory. */
pa_meta_t *pa_meta_new(const pa_config_t *cfg);
void pa_meta_free(pa_meta_t *m);
void pa_meta_flush(pa_meta_t *m);
/*
 * Applies one cache notification: "tenant <lower-case domain>" drops that
 * tenant's entry; anything else ("all") drops everything.
 */
void pa_meta_invalidate(pa_meta_t *m, const char *payload);

/*
 * The /api/info body for domain (NULL: system metadata only).  *body stays
 * valid until the next call.  Returns PA_OK, PA_ENOTFOUND (no enabled tenant
 * by that name), PA_EDB or PA_ENOMEM.
 */
enum pa_err pa_meta_info(pa_meta_t *m, pa_db_t *db, pa_arena_t *a, const char *domain,
    const char **body, size_t *len) PA_MUSTCHECK;

/*
 * True while the fill has pages left to load.  pa_meta_fill loads the next
 * page (up to 1000 tenants, never more than the cache holds); meant for
 * after an answer has left.  A database error is logged and leaves the
 * page for the next call.
 */
bool pa_meta_filling(const pa_meta_t *m);
void pa_meta_fill(pa_meta_t *m, pa_db_t *db, pa_arena_t *a);

#endif
