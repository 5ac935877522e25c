/*
 * Throttle keys, the block check, and failure counting with lockouts.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "throttle.h"
#include "valid.h"

enum pa_err
pa_throttle_keys(pa_arena_t *a, const pa_config_t *cfg, const char *addr, const char *domain,
    const char *username, pa_throttle_keys_t *keys)
{
	char *d, *u;
	size_t n;

	keys->ip = keys->account = NULL;
	/* throttle_exempt: never blocked per address; the account limit still applies. */
	if (cfg->throttle_ip_failures > 0 &&
	    !pa_cidr_match(cfg->throttle_exempt_nets, cfg->throttle_exempt_n, addr)) {
		n = strlen(addr) + 4;
		if ((d = pa_alloc(a, n)) == NULL)
			return PA_ENOMEM;
		snprintf(d, n, "ip %s", addr);
		keys->ip = d;
	}
	if (cfg->throttle_account_failures > 0) {
		/* Domains and usernames are ASCII (valid.h), so this is the whole folding. */
		d = pa_strdup_lower(a, domain ? domain : "");
		u = pa_strdup_lower(a, username);
		if (d == NULL || u == NULL)
			return PA_ENOMEM;
		n = strlen(d) + strlen(u) + 10;
		if ((keys->account = pa_alloc(a, n)) == NULL)
			return PA_ENOMEM;
		snprintf((char *)keys->account, n, "account %s %s", d, u);
	}
	return PA_OK;
}

enum pa_err
pa_throttle_reserve(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg,
    const pa_throttle_keys_t *keys, pa_throttle_res_t *res)
{
	/* Each key is followed by its limit, window and block ($1-$8). */
	const int limits[6] = { cfg->throttle_ip_failures, cfg->throttle_ip_window,
		cfg->throttle_ip_block, cfg->throttle_account_failures,
		cfg->throttle_account_window, cfg->throttle_account_block };
	char num[6][16];
	const char *params[8] = { keys->ip, num[0], num[1], num[2], keys->account, num[3],
		num[4], num[5] };
	const char *v;
	pa_db_res_t *r;
	enum pa_err rv;

	memset(res, 0, sizeof(*res));
	if (keys->ip == NULL && keys->account == NULL)
		return PA_OK;
	for (size_t i = 0; i < PA_NELEM(limits); i++)
		snprintf(num[i], sizeof(num[i]), "%d", limits[i]);
	if ((rv = pa_db_exec(db, a, PA_STMT_THROTTLE_RESERVE, params, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) != 1)
		return PA_OK;
	if ((v = pa_db_value(r, 0, 0)) != NULL) {
		long n = strtol(v, NULL, 10);

		res->retry_after = n < 1 ? 1 : n > 604800 ? 604800 : (int)n;
	}
	res->ip_blocked = pa_db_bool(r, 0, 1);
	res->account_blocked = pa_db_bool(r, 0, 2);
	return PA_OK;
}

enum pa_err
pa_throttle_release(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg,
    const pa_throttle_keys_t *keys)
{
	char limit[16];
	const char *params[2] = { keys->ip, limit };
	pa_db_res_t *r;

	if (keys->ip == NULL)
		return PA_OK;
	snprintf(limit, sizeof(limit), "%d", cfg->throttle_ip_failures);
	return pa_db_exec(db, a, PA_STMT_THROTTLE_RELEASE, params, &r);
}

enum pa_err
pa_throttle_failure(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg,
    const pa_throttle_res_t *res, const pa_audit_t *e)
{
	const char *params[7] = { e->domain, e->username, e->user_id, e->client_addr, e->detail,
		res->ip_blocked ? "t" : "f", res->account_blocked ? "t" : "f" };
	pa_audit_t lock = *e;
	pa_db_res_t *r;
	enum pa_err rv;

	if ((rv = pa_db_exec(db, a, PA_STMT_SIGN_IN_FAILED, params, &r)) != PA_OK)
		return rv;
	pa_audit_log(e);
	lock.event = "lockout";
	lock.detail = NULL;
	if (res->ip_blocked) {
		lock.outcome = "ip";
		pa_audit_log(&lock);
		pa_log_warn("client address blocked for %d s after %d failed sign-ins addr=%s",
		    cfg->throttle_ip_block, cfg->throttle_ip_failures, e->client_addr);
	}
	if (res->account_blocked) {
		lock.outcome = "account";
		pa_audit_log(&lock);
		pa_log_warn("account blocked for %d s after %d failed sign-ins domain=%s user=%s",
		    cfg->throttle_account_block, cfg->throttle_account_failures,
		    e->domain ? e->domain : "-", e->username);
	}
	return PA_OK;
}
