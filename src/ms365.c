/*
 * Microsoft 365 sign-in rows: a tenant's settings, the one-time OpenID
 * Connect flows (only SHA-256(state) and SHA-256(browser binding) are
 * stored) and mapping a Microsoft account to a user.  Each is one prepared
 * statement of db.c.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "log.h"
#include "ms365.h"

/* The longest state accepted from a callback; ours are far shorter. */
#define STATE_MAX 512

enum pa_err
pa_ms365_tenant(pa_db_t *db, pa_arena_t *a, const char *domain, pa_ms365_tenant_t *out)
{
	const char *params[1] = { domain };
	pa_db_res_t *r;
	enum pa_err rv;

	memset(out, 0, sizeof(*out));
	if ((rv = pa_db_exec(db, a, PA_STMT_MS365_TENANT, params, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) != 1)
		return PA_ENOTFOUND;
	out->tenant_id = pa_db_value(r, 0, PA_COL_MS365_TENANT_TENANT_ID);
	out->domain = pa_db_value(r, 0, PA_COL_MS365_TENANT_DOMAIN);
	out->name = pa_db_value(r, 0, PA_COL_MS365_TENANT_NAME);
	out->enabled = pa_db_bool(r, 0, PA_COL_MS365_TENANT_READY);
	out->directory_id = pa_db_value(r, 0, PA_COL_MS365_TENANT_DIRECTORY);
	out->application_id = pa_db_value(r, 0, PA_COL_MS365_TENANT_APPLICATION);
	out->cloud = pa_db_value(r, 0, PA_COL_MS365_TENANT_CLOUD);
	out->client_secret_file = pa_db_value(r, 0, PA_COL_MS365_TENANT_SECRET_FILE);
	out->certificate_file = pa_db_value(r, 0, PA_COL_MS365_TENANT_CERT_FILE);
	out->private_key_file = pa_db_value(r, 0, PA_COL_MS365_TENANT_KEY_FILE);
	/* A half-set certificate is no credential (the statement says the same). */
	if (out->certificate_file == NULL || out->private_key_file == NULL)
		out->certificate_file = out->private_key_file = NULL;
	return PA_OK;
}

const char *
pa_ms365_authority(const pa_config_t *cfg, const char *cloud)
{
	return cloud != NULL && strcmp(cloud, "CHINA") == 0 ? cfg->ms365_authority_china :
	    cfg->ms365_authority_global;
}

void
pa_ms365_authorize_endpoint(pa_buf_t *b, const pa_config_t *cfg, const char *cloud,
    const char *dir)
{
	pa_buf_printf(b, "%s/%s/oauth2/v2.0/authorize", pa_ms365_authority(cfg, cloud), dir);
}

enum pa_err
pa_ms365_flow_create(pa_db_t *db, pa_arena_t *a, const char *tenant_id, const char *state,
    const char *nonce, const char *verifier, pa_flavour_t f, const char *destination, int ttl,
    const char *addr, const char *browser)
{
	char h[PA_SHA256_HEX_LEN + 1], bh[PA_SHA256_HEX_LEN + 1], sttl[16];
	const char *params[9];
	pa_db_res_t *r;
	enum pa_err rv;

	if ((rv = pa_sha256_hex(state, strlen(state), h)) != PA_OK ||
	    (browser != NULL && (rv = pa_sha256_hex(browser, strlen(browser), bh)) != PA_OK))
		return rv;
	snprintf(sttl, sizeof(sttl), "%d", ttl);
	params[0] = tenant_id;
	params[1] = h;
	params[2] = nonce;
	params[3] = verifier;
	params[4] = pa_flavour_name(f);
	params[5] = destination;
	params[6] = sttl;
	params[7] = addr;
	params[8] = browser != NULL ? bh : NULL;
	return pa_db_exec(db, a, PA_STMT_MS365_FLOW_CREATE, params, &r);
}

/* The columns PA_STMT_MS365_FLOW_SPEND and PA_STMT_MS365_FLOW_BIND share, into *out. */
static enum pa_err
flow_row(const pa_db_res_t *r, pa_ms365_flow_t *out)
{
	if (pa_db_rows(r) != 1)
		return PA_ENOTFOUND;
	out->tenant_id = pa_db_value(r, 0, PA_COL_MS365_FLOW_TENANT_ID);
	out->domain = pa_db_value(r, 0, PA_COL_MS365_FLOW_DOMAIN);
	out->nonce = pa_db_value(r, 0, PA_COL_MS365_FLOW_NONCE);
	out->verifier = pa_db_value(r, 0, PA_COL_MS365_FLOW_VERIFIER);
	out->destination = pa_db_value(r, 0, PA_COL_MS365_FLOW_DESTINATION);
	out->flavour = pa_flavour_parse(pa_db_value(r, 0, PA_COL_MS365_FLOW_FLAVOUR));
	out->client_addr = pa_db_value(r, 0, PA_COL_MS365_FLOW_ADDR);
	out->browser_hash = pa_db_value(r, 0, PA_COL_MS365_FLOW_BROWSER);
	if (out->tenant_id == NULL || out->domain == NULL || out->nonce == NULL ||
	    out->verifier == NULL) {
		pa_log_error("OpenID Connect flow without its tenant, nonce or verifier");
		return PA_ENOTFOUND;
	}
	return PA_OK;
}

enum pa_err
pa_ms365_flow_bind(pa_db_t *db, pa_arena_t *a, const char *state, const char *browser,
    pa_ms365_flow_t *out)
{
	char h[PA_SHA256_HEX_LEN + 1], bh[PA_SHA256_HEX_LEN + 1];
	const char *params[2] = { h, bh };
	pa_db_res_t *r;
	enum pa_err rv;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (state == NULL || (n = strnlen(state, STATE_MAX + 1)) == 0 || n > STATE_MAX)
		return PA_ENOTFOUND;
	if ((rv = pa_sha256_hex(state, n, h)) != PA_OK ||
	    (rv = pa_sha256_hex(browser, strlen(browser), bh)) != PA_OK ||
	    (rv = pa_db_exec(db, a, PA_STMT_MS365_FLOW_BIND, params, &r)) != PA_OK)
		return rv;
	return flow_row(r, out);
}

enum pa_err
pa_ms365_flow_spend(pa_db_t *db, pa_arena_t *a, const char *state, pa_ms365_flow_t *out)
{
	char h[PA_SHA256_HEX_LEN + 1];
	const char *params[1] = { h };
	pa_db_res_t *r;
	enum pa_err rv;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (state == NULL || (n = strnlen(state, STATE_MAX + 1)) == 0 || n > STATE_MAX)
		return PA_ENOTFOUND;
	if ((rv = pa_sha256_hex(state, n, h)) != PA_OK ||
	    (rv = pa_db_exec(db, a, PA_STMT_MS365_FLOW_SPEND, params, &r)) != PA_OK)
		return rv;
	return flow_row(r, out);
}

bool
pa_ms365_flow_browser_ok(const pa_ms365_flow_t *fl, const char *browser)
{
	char h[PA_SHA256_HEX_LEN + 1];

	if (fl->browser_hash == NULL || strlen(fl->browser_hash) != PA_SHA256_HEX_LEN ||
	    browser == NULL || pa_sha256_hex(browser, strlen(browser), h) != PA_OK)
		return false;
	return pa_ct_equal(h, fl->browser_hash, PA_SHA256_HEX_LEN);
}

enum pa_err
pa_ms365_user_map(pa_db_t *db, pa_arena_t *a, const char *tenant_id, const char *oid,
    const char *upn, const char *preferred_username, pa_user_t *out)
{
	const char *params[4] = { tenant_id, oid, upn, preferred_username };
	pa_db_res_t *r;
	enum pa_err rv;

	memset(out, 0, sizeof(*out));
	/* Without an oid nothing can be recorded, so nothing is matched. */
	if (tenant_id == NULL || oid == NULL || !pa_ms365_guid(oid))
		return PA_ENOTFOUND;
	if (upn != NULL && !pa_ms365_upn(upn))
		params[2] = NULL;
	if (preferred_username != NULL && !pa_ms365_upn(preferred_username))
		params[3] = NULL;
	rv = pa_db_exec(db, a, PA_STMT_MS365_USER_MAP, params, &r);
	if (rv == PA_ECONFLICT) {
		/* Another user of the tenant got this oid meanwhile. */
		pa_log_warn("Microsoft account is bound to another user of the tenant oid=%s"
		    " tenant=%s", oid, tenant_id);
		return PA_ENOTFOUND;
	}
	if (rv != PA_OK)
		return rv;
	if (pa_db_rows(r) != 1)
		return PA_ENOTFOUND;
	pa_user_from_row(r, out);
	return PA_OK;
}

bool
pa_ms365_guid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (s == NULL || strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i] != '\0'; i++)
		if (shape[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* A DNS name of at least two labels: letters, digits and inner hyphens; not all digits. */
static bool
dns_name(const char *s, size_t n)
{
	size_t label = 0, labels = 1;
	bool alpha = false;

	if (n == 0 || n > 253 || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			labels++;
			continue;
		}
		if (!isalnum(c) && !(c == '-' && label > 0))
			return false;
		if (isalpha(c))
			alpha = true;
		if (++label > 63)
			return false;
	}
	return labels >= 2 && s[n - 1] != '-' && alpha;
}

bool
pa_ms365_directory(const char *s)
{
	return s != NULL && (pa_ms365_guid(s) || dns_name(s, strlen(s)));
}

bool
pa_ms365_upn(const char *s)
{
	const char *at;
	size_t n;

	if (s == NULL || (n = strlen(s)) < 3 || n > 254 || (at = strchr(s, '@')) == NULL ||
	    at == s || at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c == 0x7f)
			return false;
	}
	return true;
}
