/*
 * System and tenant metadata for GET /api/info, cached per worker as
 * ready-to-send JSON bodies.  The cache holds found and not-found answers and
 * is bounded by tenant_cache_size.  Triggers on tenants and system_settings
 * notify changes: a tenant's change drops its entry, a change of the system
 * settings (or a lost connection) drops everything.
 */
#ifndef PA_META_H
#define PA_META_H

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

#endif
