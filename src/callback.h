/*
 * The callback_url allow-list: where a sign-in, reset or Microsoft flow may
 * send the browser.  A URL is allowed when it is a valid callback URL
 * (valid.h) and starts with one of the tenant's callback prefixes or the
 * system's https://<web_domain> origin; the service is never an open
 * redirector.
 */
#ifndef PA_CALLBACK_H
#define PA_CALLBACK_H

#include "arena.h"
#include "db.h"
#include "pa.h"

#define PA_CALLBACK_URL_MAX 2048	/* bytes of a callback_url */

/*
 * Checks url (1..PA_CALLBACK_URL_MAX bytes) for the enabled tenant `domain` (NULL: system-level, only the
 * web_domain origin).  PA_OK when allowed; PA_EINPUT with *why set (a rule
 * fit for a 400 detail) when not; PA_EDB.
 */
enum pa_err pa_callback_check(pa_db_t *db, pa_arena_t *a, const char *domain, const char *url,
    const char **why) PA_MUSTCHECK;

#endif
