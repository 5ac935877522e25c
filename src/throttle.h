/*
 * Failed sign-in throttling, per client address and per account, kept in
 * PostgreSQL so every worker and host shares the counts (API.md "Security
 * behaviour").  A key is NULL when its limit is turned off.
 */
#ifndef PA_THROTTLE_H
#define PA_THROTTLE_H

#include "arena.h"
#include "audit.h"
#include "config.h"
#include "db.h"
#include "pa.h"

typedef struct {
	const char *ip;		/* "ip <address>", or NULL */
	const char *account;	/* "account <domain> <username>" lower-cased, or NULL */
} pa_throttle_keys_t;

/* Fills keys for a sign-in attempt (domain NULL: system-level).  PA_OK or PA_ENOMEM. */
enum pa_err pa_throttle_keys(pa_arena_t *a, const pa_config_t *cfg, const char *addr,
    const char *domain, const char *username, pa_throttle_keys_t *keys) PA_MUSTCHECK;

/* *retry_after: seconds until the attempt may be made, 0 when not blocked.  PA_OK or PA_EDB. */
enum pa_err pa_throttle_check(pa_db_t *db, pa_arena_t *a, const pa_throttle_keys_t *keys,
    int *retry_after) PA_MUSTCHECK;

/*
 * Counts a failed sign-in on both keys, blocking those that reach their
 * limit, and writes the failure's audit row (e) and any lockout rows, in one
 * statement.  PA_OK or PA_EDB.
 */
enum pa_err pa_throttle_failure(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg,
    const pa_throttle_keys_t *keys, const pa_audit_t *e) PA_MUSTCHECK;

#endif
