/*
 * Sign-in lookups, sessions and their tokens.  Each state change is one
 * statement (db.c) that also writes its audit row, so nothing is left
 * half-done when the database fails in between.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "log.h"
#include "metrics.h"
#include "sessions.h"

static const char *const flavours[] = { "bearer", "cookie" };

/*
 * Every refresh token of a bearer session starts with the session's family:
 * its first 12 characters, 9 of the 32 random bytes (base64url turns 3
 * bytes into 4 characters, so the other 23 bytes encode on their own).  A
 * family alone opens nothing; only holders of a token of the session know
 * it, so a presented token of a known family that is not the current one
 * is a spent token of that session (reuse detection without a row per
 * spent token).
 */
#define FAMILY_LEN 12

/*
 * Rotations this worker sent whose outcome it could not learn (the
 * connection broke): the spent token's and the successor's hashes, until
 * the database has marked the spent token retryable or the retry window
 * has passed.  At most LOST_MAX (the oldest goes first).
 */
#define LOST_MAX 64
static struct lost {
	char spent[PA_SHA256_HEX_LEN + 1], next[PA_SHA256_HEX_LEN + 1];
	time_t at;
} lost[LOST_MAX];
static size_t nlost;

const char *
pa_flavour_name(pa_flavour_t f)
{
	return flavours[f];
}

pa_flavour_t
pa_flavour_parse(const char *name)
{
	return name != NULL && strcmp(name, pa_flavour_name(PA_FLAVOUR_COOKIE)) == 0 ?
	    PA_FLAVOUR_COOKIE : PA_FLAVOUR_BEARER;
}

/* The hex SHA-256 of a token, as the statements take it. */
static enum pa_err
token_hash(const char *token, char out[PA_SHA256_HEX_LEN + 1])
{
	return pa_sha256_hex(token, strlen(token), out);
}

/*
 * The access token number gen of a cookie session: HMAC-SHA256 keyed with
 * the cookie, so only the cookie's holder (and not the database) can
 * compute it, and every tab computes the same one.
 */
static enum pa_err
cookie_access(const char *cookie, long gen, char out[PA_TOKEN_LEN + 1])
{
	unsigned char mac[PA_SHA256_LEN];
	char msg[64];
	int n = snprintf(msg, sizeof(msg), "pbx-auth access %ld", gen);
	enum pa_err rv;

	if ((rv = pa_hmac_sha256(cookie, strlen(cookie), msg, (size_t)n, mac)) != PA_OK)
		return rv;
	pa_base64url(mac, sizeof(mac), out);
	return PA_OK;
}

static const char *
dup_value(pa_arena_t *a, pa_db_res_t *r, int row, int col)
{
	const char *v = pa_db_value(r, row, col);

	return v ? pa_strdup(a, v) : NULL;
}

enum pa_err
pa_user_find(pa_db_t *db, pa_arena_t *a, const char *domain, const char *username,
    pa_user_t *out)
{
	const char *params[2] = { domain ? domain : username, username };
	pa_db_res_t *r;
	enum pa_err rv;

	memset(out, 0, sizeof(*out));
	rv = pa_db_exec(db, a, domain ? PA_STMT_USER_TENANT : PA_STMT_USER_SYSTEM, params, &r);
	if (rv != PA_OK)
		return rv;
	if (pa_db_rows(r) != 1)
		return PA_ENOTFOUND;
	pa_user_from_row(r, out);
	return PA_OK;
}

void
pa_user_from_row(const pa_db_res_t *r, pa_user_t *out)
{
	out->id = pa_db_value(r, 0, PA_COL_USER_ID);
	out->password_hash = pa_db_value(r, 0, PA_COL_USER_HASH);
	out->role = pa_db_value(r, 0, PA_COL_USER_ROLE);
	out->enabled = pa_db_bool(r, 0, PA_COL_USER_ENABLED);
	out->two_factor = pa_db_bool(r, 0, PA_COL_USER_TWO_FACTOR);
	out->force_reset = pa_db_bool(r, 0, PA_COL_USER_FORCE_RESET);
	out->verified = pa_db_bool(r, 0, PA_COL_USER_VERIFIED);
	out->domain = pa_db_value(r, 0, PA_COL_USER_DOMAIN);
	out->username = pa_db_value(r, 0, PA_COL_USER_NAME);
}

enum pa_err
pa_user_rehash(pa_db_t *db, pa_arena_t *a, const pa_user_t *u, const char *new_hash)
{
	const char *params[3] = { u->id, new_hash, u->password_hash };
	pa_db_res_t *r;
	enum pa_err rv;

	if ((rv = pa_db_exec(db, a, PA_STMT_USER_REHASH, params, &r)) != PA_OK)
		return rv;
	if (pa_db_affected(r) == 1)
		pa_log_info("password hash upgraded to the preferred method domain=%s user=%s",
		    u->domain ? u->domain : "-", u->username);
	return PA_OK;
}

/* The audit detail of a sign-in: the flavour, after "microsoft " for Microsoft. */
static const char *
via_detail(pa_flavour_t f, pa_via_t via)
{
	static const char *const ms[] = { [PA_FLAVOUR_BEARER] = "microsoft bearer",
		[PA_FLAVOUR_COOKIE] = "microsoft cookie" };

	return via == PA_VIA_MICROSOFT ? ms[f] : flavours[f];
}

enum pa_err
pa_session_create(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg, const pa_user_t *u,
    pa_flavour_t f, const char *addr, const char *account_key, pa_via_t via,
    pa_tokens_t *out)
{
	char ah[PA_SHA256_HEX_LEN + 1], rh[PA_SHA256_HEX_LEN + 1], ttl[16], rttl[16];
	char family[FAMILY_LEN + 1];
	const char *params[11];
	pa_db_res_t *r;
	enum pa_err rv;

	memset(out, 0, sizeof(*out));
	if ((rv = pa_token_new(out->refresh)) != PA_OK)
		return rv;
	memcpy(family, out->refresh, FAMILY_LEN);
	family[FAMILY_LEN] = '\0';
	if (f == PA_FLAVOUR_COOKIE)
		rv = cookie_access(out->refresh, 0, out->access);
	else
		rv = pa_token_new(out->access);
	if (rv != PA_OK || (rv = token_hash(out->access, ah)) != PA_OK ||
	    (rv = token_hash(out->refresh, rh)) != PA_OK)
		return rv;
	snprintf(ttl, sizeof(ttl), "%d", cfg->access_token_ttl);
	snprintf(rttl, sizeof(rttl), "%d", cfg->refresh_token_ttl);
	params[0] = u->id;
	params[1] = flavours[f];
	params[2] = ah;
	params[3] = ttl;
	params[4] = rh;
	params[5] = rttl;
	params[6] = addr;
	params[7] = via == PA_VIA_PASSWORD ? "true" : "false";
	params[8] = account_key;
	params[9] = via_detail(f, via);
	params[10] = f == PA_FLAVOUR_BEARER ? family : NULL;
	if ((rv = pa_db_exec(db, a, PA_STMT_SESSION_CREATE, params, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) != 1)
		return PA_EDB;
	out->expires_at = dup_value(a, r, 0, 1);
	out->expires_in = cfg->access_token_ttl;
	pa_audit_log(&(pa_audit_t){ u->domain, u->username, u->id, addr, "sign_in", "success",
	    via_detail(f, via) });
	return out->expires_at ? PA_OK : PA_ENOMEM;
}

enum pa_err
pa_session_two_factor(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg, const pa_user_t *u,
    pa_flavour_t f, const char *addr, const char *account_key, pa_via_t via,
    char token[PA_TOKEN_LEN + 1])
{
	char th[PA_SHA256_HEX_LEN + 1], ttl[16];
	const char *params[7];
	pa_db_res_t *r;
	enum pa_err rv;

	if ((rv = pa_token_new(token)) != PA_OK || (rv = token_hash(token, th)) != PA_OK)
		return rv;
	snprintf(ttl, sizeof(ttl), "%d", cfg->two_factor_ttl);
	params[0] = u->id;
	params[1] = flavours[f];
	params[2] = th;
	params[3] = ttl;
	params[4] = addr;
	params[5] = account_key;
	params[6] = via_detail(f, via);
	if ((rv = pa_db_exec(db, a, PA_STMT_FLOW_CREATE, params, &r)) != PA_OK)
		return rv;
	pa_audit_log(&(pa_audit_t){ u->domain, u->username, u->id, addr, "sign_in", "two_factor",
	    via_detail(f, via) });
	return PA_OK;
}

/* Remembers a rotation whose answer was lost (see lost[]). */
static void
remember_lost(const char *spent, const char *next)
{
	if (nlost == LOST_MAX) {
		memmove(&lost[0], &lost[1], (LOST_MAX - 1) * sizeof(lost[0]));
		nlost--;
	}
	memcpy(lost[nlost].spent, spent, sizeof(lost[nlost].spent));
	memcpy(lost[nlost].next, next, sizeof(lost[nlost].next));
	lost[nlost].at = time(NULL);
	nlost++;
	pa_log_warn("a refresh token rotation was lost with the database connection;"
	    " its token may be retried once the database is back");
}

bool
pa_session_lost_pending(void)
{
	return nlost > 0;
}

void
pa_session_mark_lost(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg)
{
	char window[16];
	time_t now = time(NULL);
	size_t i = 0;

	snprintf(window, sizeof(window), "%d", cfg->refresh_retry_window);
	while (i < nlost) {
		const char *params[3] = { lost[i].spent, lost[i].next, window };
		pa_db_res_t *r;

		if (now - lost[i].at <= cfg->refresh_retry_window) {
			if (pa_db_exec(db, a, PA_STMT_REFRESH_RETRYABLE, params, &r) != PA_OK)
				return;		/* still unreachable: next time */
			if (pa_db_affected(r) == 1)
				pa_log_info("a refresh token whose rotation was lost may be retried");
		}
		memmove(&lost[i], &lost[i + 1], (nlost - i - 1) * sizeof(lost[0]));
		nlost--;
	}
}

enum pa_err
pa_session_refresh(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg, const char *refresh,
    const char *addr, pa_tokens_t *out)
{
	char oh[PA_SHA256_HEX_LEN + 1], ah[PA_SHA256_HEX_LEN + 1], rh[PA_SHA256_HEX_LEN + 1];
	char ttl[16], rttl[16], grace[16], window[16], wait[16], family[FAMILY_LEN + 1];
	const char *params[10];
	pa_db_res_t *r;
	enum pa_err rv;

	memset(out, 0, sizeof(*out));
	if (!pa_token_valid(refresh, strlen(refresh)))
		return PA_ENOTFOUND;
	/* The new refresh token keeps the family of the one it replaces. */
	memcpy(family, refresh, FAMILY_LEN);
	family[FAMILY_LEN] = '\0';
	if ((rv = pa_token_new(out->access)) != PA_OK || (rv = pa_token_new(out->refresh)) != PA_OK)
		return rv;
	memcpy(out->refresh, family, FAMILY_LEN);
	if ((rv = token_hash(refresh, oh)) != PA_OK || (rv = token_hash(out->access, ah)) != PA_OK ||
	    (rv = token_hash(out->refresh, rh)) != PA_OK)
		return rv;
	snprintf(ttl, sizeof(ttl), "%d", cfg->access_token_ttl);
	snprintf(rttl, sizeof(rttl), "%d", cfg->refresh_token_ttl);
	snprintf(grace, sizeof(grace), "%d", cfg->refresh_reuse_grace);
	snprintf(window, sizeof(window), "%d", cfg->refresh_retry_window);
	/* Two Retry-After periods: a lost rotation's mark comes within about one. */
	snprintf(wait, sizeof(wait), "%d", 2 * cfg->retry_after);
	params[0] = oh;
	params[1] = ah;
	params[2] = ttl;
	params[3] = rh;
	params[4] = rttl;
	params[5] = family;
	rv = pa_db_exec(db, a, PA_STMT_SESSION_REFRESH, params, &r);
	if (rv == PA_OK && pa_db_rows(r) == 1) {
		pa_metrics_inc(PA_M_REFRESH);
		out->expires_in = cfg->access_token_ttl;
		return PA_OK;
	}
	if (rv != PA_OK)
		goto failed;

	/* Not rotated: unknown, expired, revoked, spent, or a retry. */
	params[1] = family;
	params[2] = grace;
	params[3] = addr;
	params[4] = ah;
	params[5] = ttl;
	params[6] = rh;
	params[7] = rttl;
	params[8] = window;
	params[9] = wait;
	if ((rv = pa_db_exec(db, a, PA_STMT_REFRESH_FALLBACK, params, &r)) != PA_OK)
		goto failed;
	if (pa_db_rows(r) == 1 && pa_db_bool(r, 0, PA_FB_WAIT)) {
		/* Not a database failure, but the same answer: try again later. */
		pa_log_info("a spent refresh token whose rotation may have lost its answer:"
		    " no verdict yet, answered 503");
		return PA_EDB;
	}
	if (pa_db_rows(r) == 1 && pa_db_bool(r, 0, PA_FB_RETRIED)) {
		pa_log_info("a refresh whose answer was lost was retried: rotated again");
		out->expires_in = cfg->access_token_ttl;
		return PA_OK;
	}
	if (pa_db_rows(r) == 1 && pa_db_bool(r, 0, PA_FB_REVOKED)) {
		pa_audit_t e = { pa_db_value(r, 0, PA_FB_DOMAIN), pa_db_value(r, 0, PA_FB_USERNAME),
			pa_db_value(r, 0, PA_FB_USER_ID), addr, "refresh_reuse", "revoked", NULL };

		pa_audit_log(&e);
		pa_log_warn("a spent refresh token was presented again: session revoked"
		    " domain=%s user=%s addr=%s", e.domain ? e.domain : "-", e.username, addr);
	}
	return PA_ENOTFOUND;
failed:
	/* The rotation may have committed: its token may come back as a retry. */
	if (rv == PA_EDB && pa_db_outcome_unknown(db) && cfg->refresh_retry_window > 0)
		remember_lost(oh, rh);
	return rv;
}

enum pa_err
pa_session_by_access(pa_db_t *db, pa_arena_t *a, const char *access, pa_principal_t *out)
{
	char h[PA_SHA256_HEX_LEN + 1];
	const char *params[1] = { h };
	pa_db_res_t *r;
	enum pa_err rv;

	memset(out, 0, sizeof(*out));
	if (!pa_token_valid(access, strlen(access)))
		return PA_ENOTFOUND;
	if ((rv = token_hash(access, h)) != PA_OK ||
	    (rv = pa_db_exec(db, a, PA_STMT_SESSION_ACCESS, params, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) != 1)
		return PA_ENOTFOUND;
	out->session_id = pa_db_value(r, 0, PA_COL_SESSION_ACCESS_ID);
	out->user_id = pa_db_value(r, 0, PA_COL_SESSION_ACCESS_USER_ID);
	out->role = pa_db_value(r, 0, PA_COL_SESSION_ACCESS_ROLE);
	out->verified = pa_db_bool(r, 0, PA_COL_SESSION_ACCESS_VERIFIED);
	out->force_reset = pa_db_bool(r, 0, PA_COL_SESSION_ACCESS_FORCE_RESET);
	out->domain = pa_db_value(r, 0, PA_COL_SESSION_ACCESS_DOMAIN);
	out->username = pa_db_value(r, 0, PA_COL_SESSION_ACCESS_USERNAME);
	return PA_OK;
}

enum pa_err
pa_session_sign_out(pa_db_t *db, pa_arena_t *a, const char *access, const char *addr)
{
	char h[PA_SHA256_HEX_LEN + 1];
	const char *params[2] = { h, addr };
	pa_db_res_t *r;
	enum pa_err rv;

	if (!pa_token_valid(access, strlen(access)))
		return PA_ENOTFOUND;
	if ((rv = token_hash(access, h)) != PA_OK ||
	    (rv = pa_db_exec(db, a, PA_STMT_SESSION_SIGN_OUT, params, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) != 1)
		return PA_ENOTFOUND;
	pa_audit_log(&(pa_audit_t){ pa_db_value(r, 0, 2), pa_db_value(r, 0, 3),
	    pa_db_value(r, 0, 1), addr, "sign_out", "success", pa_db_value(r, 0, 4) });
	return PA_OK;
}

enum pa_err
pa_session_cookie(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg, const char *cookie,
    pa_tokens_t *out, const char **role)
{
	char ch[PA_SHA256_HEX_LEN + 1], ah[PA_SHA256_HEX_LEN + 1], gen_s[24], ttl[16];
	/* Issue the next token this close to the end of the current one. */
	long margin = cfg->access_token_ttl / 10 < 60 ? cfg->access_token_ttl / 10 : 60;
	pa_db_res_t *r;
	enum pa_err rv;

	memset(out, 0, sizeof(*out));
	*role = NULL;
	if (!pa_token_valid(cookie, strlen(cookie)))
		return PA_ENOTFOUND;
	if ((rv = token_hash(cookie, ch)) != PA_OK)
		return rv;
	snprintf(ttl, sizeof(ttl), "%d", cfg->access_token_ttl);
	/* Another tab may rotate between the two statements: then look again. */
	for (int attempt = 0; attempt < 3; attempt++) {
		const char *params[4] = { ch };
		long gen, left;

		if ((rv = pa_db_exec(db, a, PA_STMT_SESSION_COOKIE, params, &r)) != PA_OK)
			return rv;
		if (pa_db_rows(r) != 1)
			return PA_ENOTFOUND;
		gen = strtol(pa_db_value(r, 0, PA_COL_SESSION_COOKIE_GEN), NULL, 10);
		left = strtol(pa_db_value(r, 0, PA_COL_SESSION_COOKIE_LEFT), NULL, 10);
		*role = pa_db_value(r, 0, PA_COL_SESSION_COOKIE_ROLE);
		if (left > margin) {
			out->expires_at = pa_db_value(r, 0, PA_COL_SESSION_COOKIE_EXPIRES_AT);
			out->expires_in = left;
			return cookie_access(cookie, gen, out->access);
		}
		if ((rv = cookie_access(cookie, gen + 1, out->access)) != PA_OK ||
		    (rv = token_hash(out->access, ah)) != PA_OK)
			return rv;
		snprintf(gen_s, sizeof(gen_s), "%ld", gen);
		params[0] = pa_db_value(r, 0, PA_COL_SESSION_COOKIE_ID);
		params[1] = gen_s;
		params[2] = ah;
		params[3] = ttl;
		if ((rv = pa_db_exec(db, a, PA_STMT_SESSION_COOKIE_ROTATE, params, &r)) != PA_OK)
			return rv;
		if (pa_db_rows(r) == 1) {
			out->expires_at = pa_db_value(r, 0, 0);
			out->expires_in = strtol(pa_db_value(r, 0, 1), NULL, 10);
			return PA_OK;
		}
		params[0] = ch;
	}
	return PA_ENOTFOUND;
}

enum pa_err
pa_session_logout(pa_db_t *db, pa_arena_t *a, const char *cookie, const char *addr)
{
	char h[PA_SHA256_HEX_LEN + 1];
	const char *params[2] = { h, addr };
	pa_db_res_t *r;
	enum pa_err rv;

	if (!pa_token_valid(cookie, strlen(cookie)))
		return PA_OK;
	if ((rv = token_hash(cookie, h)) != PA_OK ||
	    (rv = pa_db_exec(db, a, PA_STMT_SESSION_LOGOUT, params, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) == 1)
		pa_audit_log(&(pa_audit_t){ pa_db_value(r, 0, 2), pa_db_value(r, 0, 3),
		    pa_db_value(r, 0, 1), addr, "sign_out", "success", "cookie" });
	return PA_OK;
}
