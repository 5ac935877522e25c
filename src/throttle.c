/*
 * Throttle keys, the block check, and failure counting with lockouts.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "throttle.h"

static char *
lower_dup(pa_arena_t *a, const char *s)
{
	char *p = pa_strdup(a, s);

	for (char *q = p; q != NULL && *q != '\0'; q++)
		*q = (char)tolower((unsigned char)*q);
	return p;
}

enum pa_err
pa_throttle_keys(pa_arena_t *a, const pa_config_t *cfg, const char *addr, const char *domain,
    const char *username, pa_throttle_keys_t *keys)
{
	char *d, *u;
	size_t n;

	keys->ip = keys->account = NULL;
	if (cfg->throttle_ip_failures > 0) {
		n = strlen(addr) + 4;
		if ((d = pa_alloc(a, n)) == NULL)
			return PA_ENOMEM;
		snprintf(d, n, "ip %s", addr);
		keys->ip = d;
	}
	if (cfg->throttle_account_failures > 0) {
		/* Domains and usernames are ASCII (valid.h), so this is the whole folding. */
		d = lower_dup(a, domain ? domain : "");
		u = lower_dup(a, username);
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
pa_throttle_check(pa_db_t *db, pa_arena_t *a, const pa_throttle_keys_t *keys, int *retry_after)
{
	const char *params[2] = { keys->ip, keys->account };
	const char *v;
	pa_db_res_t *r;
	enum pa_err rv;

	*retry_after = 0;
	if (keys->ip == NULL && keys->account == NULL)
		return PA_OK;
	if ((rv = pa_db_exec(db, a, PA_STMT_THROTTLE_CHECK, params, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) == 1 && (v = pa_db_value(r, 0, 0)) != NULL) {
		long n = strtol(v, NULL, 10);

		*retry_after = n < 1 ? 1 : n > 604800 ? 604800 : (int)n;
	}
	return PA_OK;
}

enum pa_err
pa_throttle_failure(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg,
    const pa_throttle_keys_t *keys, const pa_audit_t *e)
{
	char num[6][16];
	const char *params[13];
	pa_db_res_t *r;
	enum pa_err rv;

	snprintf(num[0], sizeof(num[0]), "%d", cfg->throttle_ip_failures);
	snprintf(num[1], sizeof(num[1]), "%d", cfg->throttle_ip_window);
	snprintf(num[2], sizeof(num[2]), "%d", cfg->throttle_ip_block);
	snprintf(num[3], sizeof(num[3]), "%d", cfg->throttle_account_failures);
	snprintf(num[4], sizeof(num[4]), "%d", cfg->throttle_account_window);
	snprintf(num[5], sizeof(num[5]), "%d", cfg->throttle_account_block);
	params[0] = keys->ip;
	params[1] = num[0];
	params[2] = num[1];
	params[3] = num[2];
	params[4] = keys->account;
	params[5] = num[3];
	params[6] = num[4];
	params[7] = num[5];
	params[8] = e->domain;
	params[9] = e->username;
	params[10] = e->user_id;
	params[11] = e->client_addr;
	params[12] = e->detail;
	if ((rv = pa_db_exec(db, a, PA_STMT_SIGN_IN_FAILED, params, &r)) != PA_OK)
		return rv;
	pa_audit_log(e);
	if (pa_db_rows(r) == 1) {
		pa_audit_t lock = *e;

		lock.event = "lockout";
		lock.detail = NULL;
		if (pa_db_bool(r, 0, 0)) {
			lock.outcome = "ip";
			pa_audit_log(&lock);
			pa_log_warn("client address blocked for %d s after %d failed sign-ins addr=%s",
			    cfg->throttle_ip_block, cfg->throttle_ip_failures, e->client_addr);
		}
		if (pa_db_bool(r, 0, 1)) {
			lock.outcome = "account";
			pa_audit_log(&lock);
			pa_log_warn("account blocked for %d s after %d failed sign-ins domain=%s user=%s",
			    cfg->throttle_account_block, cfg->throttle_account_failures,
			    e->domain ? e->domain : "-", e->username);
		}
	}
	return PA_OK;
}
