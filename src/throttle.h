/*
 * Failed sign-in throttling, per client address and per account, kept in
 * PostgreSQL so every worker and host shares the counts (API.md "Security
 * behaviour").  A key is NULL when its limit is turned off.
 */
#ifndef PA_THROTTLE_H
#define PA_THROTTLE_H

#include <stdbool.h>

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

/* What a reservation found and did. */
typedef struct {
	int retry_after;	/* > 0: blocked, the attempt may not be made; nothing counted */
	bool ip_blocked;	/* this attempt reached the address's limit */
	bool account_blocked;	/* this attempt reached the account's limit */
} pa_throttle_res_t;

/*
 * Reserves the attempt before the password is verified, atomically on both
 * keys (0007_throttle_reserve.sql): unless a key is blocked, the attempt
 * counts as a failure at once, so concurrent attempts never get more guesses
 * than the limit.  PA_OK or PA_EDB.
 */
enum pa_err pa_throttle_reserve(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg,
    const pa_throttle_keys_t *keys, pa_throttle_res_t *res) PA_MUSTCHECK;

/*
 * A successful sign-in gives the address's reservation back (the account's
 * row is deleted with the new session).  PA_OK or PA_EDB.
 */
enum pa_err pa_throttle_release(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg,
    const pa_throttle_keys_t *keys) PA_MUSTCHECK;

/*
 * Writes a failed sign-in's audit row (e) and the lockout rows of the keys
 * its reservation blocked, in one statement, and logs the lockouts.  PA_OK or
 * PA_EDB.
 */
enum pa_err pa_throttle_failure(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg,
    const pa_throttle_res_t *res, const pa_audit_t *e) PA_MUSTCHECK;

#endif
