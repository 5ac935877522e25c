/*
 * Password reset and email one-time codes: the requests' logic between the
 * handlers (password.c, otp.c) and their statements (db.c), and the
 * rendering of the messages they queue.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "buf.h"
#include "flows.h"
#include "log.h"
#include "valid.h"

/* The placeholders a message text may use (config.c checks the same list). */
static const char *const placeholders[] = { "tenant", "domain", "username", "link", "code",
	"minutes" };

/* Appends v with control characters (C0, DEL, C1) replaced by spaces. */
static void
put_value(pa_buf_t *b, const char *v)
{
	const unsigned char *u = (const unsigned char *)v;

	for (size_t i = 0; u[i] != '\0'; i++) {
		if (u[i] < 0x20 || u[i] == 0x7f) {
			pa_buf_putc(b, ' ');
		} else if (u[i] == 0xc2 && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f) {
			pa_buf_putc(b, ' ');	/* U+0080..U+009F, NEL among them */
			i++;
		} else {
			pa_buf_putc(b, (char)u[i]);
		}
	}
}

char *
pa_mail_render(pa_arena_t *a, const char *text, const pa_mail_var_t *vars, size_t n)
{
	pa_buf_t b = PA_BUF_INIT;
	char *out = NULL;

	for (const char *p = text; *p != '\0';) {
		size_t len = p[0] == '{' ? strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_") : 0;
		bool known = false;

		if (len > 0 && p[1 + len] == '}') {
			for (size_t i = 0; i < PA_NELEM(placeholders); i++)
				known |= strlen(placeholders[i]) == len &&
				    strncmp(placeholders[i], p + 1, len) == 0;
		}
		if (!known) {
			pa_buf_putc(&b, *p++);
			continue;
		}
		for (size_t i = 0; i < n; i++)
			if (strlen(vars[i].name) == len && strncmp(vars[i].name, p + 1, len) == 0 &&
			    vars[i].value != NULL) {
				put_value(&b, vars[i].value);
				break;
			}
		p += len + 2;
	}
	pa_buf_putc(&b, '\0');
	if (!pa_buf_failed(&b))
		out = pa_strndup(a, b.p, b.len - 1);
	pa_buf_free(&b);
	return out;
}

char *
pa_reset_link(pa_arena_t *a, const char *url, const char *token)
{
	size_t base = strcspn(url, "#");
	const char *sep = "?";
	pa_buf_t b = PA_BUF_INIT;
	char *out = NULL;

	if (memchr(url, '?', base) != NULL)
		sep = base > 0 && (url[base - 1] == '?' || url[base - 1] == '&') ? "" : "&";
	pa_buf_append(&b, url, base);
	pa_buf_puts(&b, sep);
	pa_buf_puts(&b, "token=");
	pa_buf_puts(&b, token);	/* base64url: nothing to escape */
	pa_buf_puts(&b, url + base);
	if (!pa_buf_failed(&b))
		out = pa_strndup(a, b.p, b.len);
	pa_buf_free(&b);
	return out;
}

enum pa_err
pa_otp_code(char out[PA_OTP_DIGITS + 1])
{
	/* The largest multiple of 10^6 below 2^32: values from it on would favour low codes. */
	const uint32_t limit = 4294000000u;
	uint32_t v;
	enum pa_err rv;

	do {
		if ((rv = pa_random(&v, sizeof(v))) != PA_OK)
			return rv;
	} while (v >= limit);
	snprintf(out, PA_OTP_DIGITS + 1, "%06u", (unsigned)(v % 1000000u));
	return PA_OK;
}

static enum pa_err
token_hash(const char *token, char out[PA_SHA256_HEX_LEN + 1])
{
	return pa_sha256_hex(token, strlen(token), out);
}

/* Lower-case hex of HMAC-SHA256(key = the two-factor token, code). */
static enum pa_err
code_hmac(const char *token, const char *code, char out[PA_SHA256_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[PA_SHA256_LEN];
	enum pa_err rv;

	if ((rv = pa_hmac_sha256(token, strlen(token), code, strlen(code), mac)) != PA_OK)
		return rv;
	for (size_t i = 0; i < sizeof(mac); i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	out[PA_SHA256_HEX_LEN] = '\0';
	return PA_OK;
}

/* Minutes of a lifetime in seconds, rounded up, as text. */
static void
minutes(int seconds, char out[16])
{
	snprintf(out, 16, "%d", (seconds + 59) / 60);
}

enum pa_err
pa_reset_request(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg, const char *domain,
    const char *username, const char *callback_url, const char *addr)
{
	char token[PA_TOKEN_LEN + 1], th[PA_SHA256_HEX_LEN + 1], ttl[16], rate[16], mins[16];
	const char *uid = NULL, *audit_uid = NULL, *outcome = "unknown_user", *email = NULL;
	const char *tenant = domain, *d = domain, *name = username, *link, *subject, *body;
	/* The request's id goes on the outbox row for the mailer's log lines. */
	const char *params[13] = { domain, username };
	pa_db_res_t *r;
	enum pa_err rv;

	if ((rv = pa_db_exec(db, a, PA_STMT_RESET_USER, params, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) == 1) {
		audit_uid = pa_db_value(r, 0, PA_COL_RESET_USER_ID);
		email = pa_db_value(r, 0, PA_COL_RESET_USER_EMAIL);
		tenant = pa_db_value(r, 0, PA_COL_RESET_USER_TENANT);
		d = pa_db_value(r, 0, PA_COL_RESET_USER_DOMAIN);
		name = pa_db_value(r, 0, PA_COL_RESET_USER_USERNAME);
		if (!pa_db_bool(r, 0, PA_COL_RESET_USER_USABLE)) {
			outcome = "not_allowed";
		} else if (email == NULL) {
			outcome = "no_email";
		} else if (!pa_valid_email(email)) {
			/* Only SQL by hand stores such an address; never put it in a message. */
			pa_log_warn("the stored email address cannot be used domain=%s user=%s", d, name);
			outcome = "bad_email";
		} else {
			uid = audit_uid;
			outcome = "rate_limited";	/* if the statement queues nothing */
		}
	}

	/* The same work whether or not a message goes out. */
	if ((rv = pa_token_new(token)) != PA_OK || (rv = token_hash(token, th)) != PA_OK)
		return rv;
	minutes(cfg->reset_token_ttl, mins);
	if ((link = pa_reset_link(a, callback_url, token)) == NULL)
		return PA_ENOMEM;
	{
		const pa_mail_var_t vars[] = { { "tenant", tenant }, { "domain", d },
			{ "username", name }, { "link", link }, { "minutes", mins } };

		subject = pa_mail_render(a, cfg->reset_mail_subject, vars, PA_NELEM(vars));
		body = pa_mail_render(a, cfg->reset_mail_body, vars, PA_NELEM(vars));
	}
	if (subject == NULL || body == NULL)
		return PA_ENOMEM;
	snprintf(ttl, sizeof(ttl), "%d", cfg->reset_token_ttl);
	snprintf(rate, sizeof(rate), "%d", cfg->mail_rate_interval);
	params[0] = uid;
	params[1] = th;
	params[2] = ttl;
	params[3] = rate;
	params[4] = addr;
	params[5] = email;
	params[6] = subject;
	params[7] = body;
	params[8] = d;
	params[9] = name;
	params[10] = audit_uid;
	params[11] = outcome;
	params[12] = pa_log_request_id();
	rv = pa_db_exec(db, a, PA_STMT_RESET_REQUEST, params, &r);
	explicit_bzero(token, sizeof(token));
	if (rv != PA_OK)
		return rv;
	if (pa_db_rows(r) == 1 && strcmp(pa_db_value(r, 0, 0), "0") != 0)
		outcome = "queued";
	pa_audit_log(&(pa_audit_t){ d, name, audit_uid, addr, "reset_request", outcome, NULL });
	return PA_OK;
}

enum pa_err
pa_reset_password(pa_db_t *db, pa_arena_t *a, const pa_passwd_t *pw, const char *token,
    const char *new_password, const char *addr)
{
	char th[PA_SHA256_HEX_LEN + 1], hash[PA_HASH_MAX];
	const char *params[3] = { th, hash, addr };
	pa_db_res_t *r;
	enum pa_err rv;

	if (!pa_token_valid(token, strlen(token)))
		goto invalid;
	if ((rv = token_hash(token, th)) != PA_OK ||
	    (rv = pa_db_exec(db, a, PA_STMT_RESET_CHECK, params, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) != 1)
		goto invalid;
	/* Hashing is the expensive part: only for a token that was usable a moment ago. */
	if ((rv = pa_passwd_hash(pw, new_password, hash)) != PA_OK)
		return rv;
	if ((rv = pa_db_exec(db, a, PA_STMT_RESET_SPEND, params, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) != 1)
		goto invalid;	/* spent or voided meanwhile */
	{
		char detail[48];

		snprintf(detail, sizeof(detail), "%s sessions revoked", pa_db_value(r, 0, 3));
		pa_audit_log(&(pa_audit_t){ pa_db_value(r, 0, 1), pa_db_value(r, 0, 2),
		    pa_db_value(r, 0, 0), addr, "password_reset", "success", detail });
	}
	return PA_OK;
invalid:
	if ((rv = pa_audit(db, a, &(pa_audit_t){ NULL, NULL, NULL, addr, "password_reset",
	    "invalid_token", NULL })) != PA_OK)
		return rv;
	return PA_ENOTFOUND;
}

enum pa_err
pa_otp_send(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg, const char *token,
    const char *addr, pa_otp_send_t *res, int *retry_after)
{
	char th[PA_SHA256_HEX_LEN + 1], ch[PA_SHA256_HEX_LEN + 1], code[PA_OTP_DIGITS + 1];
	char ttl[16], interval[16], max[16], mins[16];
	const char *params[9], *email, *subject, *body;
	pa_db_res_t *r;
	enum pa_err rv;
	long wait;

	*res = PA_OTP_NO_FLOW;
	*retry_after = 0;
	if (!pa_token_valid(token, strlen(token)))
		return PA_OK;
	snprintf(ttl, sizeof(ttl), "%d", cfg->otp_ttl);
	snprintf(interval, sizeof(interval), "%d", cfg->otp_resend_interval);
	snprintf(max, sizeof(max), "%d", cfg->otp_max_attempts);
	params[0] = th;
	params[1] = interval;
	params[2] = max;
	if ((rv = token_hash(token, th)) != PA_OK ||
	    (rv = pa_db_exec(db, a, PA_STMT_OTP_FLOW, params, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) != 1)
		return PA_OK;
	email = pa_db_value(r, 0, PA_COL_OTP_FLOW_EMAIL);
	if (email == NULL || !pa_valid_email(email)) {
		*res = PA_OTP_NO_EMAIL;
		return PA_OK;
	}
	wait = strtol(pa_db_value(r, 0, PA_COL_OTP_FLOW_WAIT), NULL, 10);
	if (wait > 0) {
		*res = PA_OTP_TOO_SOON;
		*retry_after = wait > 3600 ? 3600 : (int)wait;
		return PA_OK;
	}
	if ((rv = pa_otp_code(code)) != PA_OK || (rv = code_hmac(token, code, ch)) != PA_OK)
		return rv;
	minutes(cfg->otp_ttl, mins);
	{
		const pa_mail_var_t vars[] = { { "tenant", pa_db_value(r, 0, PA_COL_OTP_FLOW_TENANT) },
			{ "domain", pa_db_value(r, 0, PA_COL_OTP_FLOW_DOMAIN) },
			{ "username", pa_db_value(r, 0, PA_COL_OTP_FLOW_USERNAME) }, { "code", code },
			{ "minutes", mins } };

		subject = pa_mail_render(a, cfg->otp_mail_subject, vars, PA_NELEM(vars));
		body = pa_mail_render(a, cfg->otp_mail_body, vars, PA_NELEM(vars));
	}
	explicit_bzero(code, sizeof(code));
	if (subject == NULL || body == NULL)
		return PA_ENOMEM;
	{
		pa_audit_t e = { pa_db_value(r, 0, PA_COL_OTP_FLOW_DOMAIN), pa_db_value(r, 0, PA_COL_OTP_FLOW_USERNAME),
			pa_db_value(r, 0, PA_COL_OTP_FLOW_USER_ID), addr, "otp_send", "success",
			pa_db_value(r, 0, PA_COL_OTP_FLOW_FLAVOUR) };
		const char *sp[10] = { pa_db_value(r, 0, PA_COL_OTP_FLOW_ID), ch, ttl, interval, max, email,
			subject, body, addr, pa_log_request_id() };
		pa_db_res_t *s;

		if ((rv = pa_db_exec(db, a, PA_STMT_OTP_SEND, sp, &s)) != PA_OK)
			return rv;
		if (pa_db_rows(s) != 1) {
			/* Another request sent one in between. */
			*res = PA_OTP_TOO_SOON;
			*retry_after = cfg->otp_resend_interval > 0 ? cfg->otp_resend_interval : 1;
			return PA_OK;
		}
		pa_audit_log(&e);
	}
	*res = PA_OTP_SENT;
	return PA_OK;
}

enum pa_err
pa_otp_verify(pa_db_t *db, pa_arena_t *a, const pa_config_t *cfg, const char *token,
    const char *code, const char *addr, bool cookie_ok, pa_otp_verify_t *res,
    pa_otp_session_t *out)
{
	char th[PA_SHA256_HEX_LEN + 1], ch[PA_SHA256_HEX_LEN + 1], max[16];
	const char *params[3], *stored, *flavour;
	pa_user_t u;
	pa_db_res_t *r, *s;
	enum pa_err rv;
	bool match;

	*res = PA_OTP_INVALID;
	memset(out, 0, sizeof(*out));
	if (!pa_token_valid(token, strlen(token)))
		return PA_OK;
	snprintf(max, sizeof(max), "%d", cfg->otp_max_attempts);
	params[0] = th;
	params[1] = max;
	if ((rv = token_hash(token, th)) != PA_OK ||
	    (rv = pa_db_exec(db, a, PA_STMT_OTP_RESERVE, params, &r)) != PA_OK)
		return rv;
	if (pa_db_rows(r) != 1)
		return PA_OK;
	flavour = pa_db_value(r, 0, PA_COL_OTP_RESERVE_FLAVOUR);
	out->flavour = pa_flavour_parse(flavour);
	if (out->flavour == PA_FLAVOUR_COOKIE && !cookie_ok) {
		*res = PA_OTP_FORBIDDEN;
		return PA_OK;
	}
	if ((rv = code_hmac(token, code, ch)) != PA_OK)
		return rv;
	stored = pa_db_value(r, 0, PA_COL_OTP_RESERVE_CODE_HASH);
	match = stored != NULL && strlen(stored) == PA_SHA256_HEX_LEN &&
	    pa_ct_equal(stored, ch, PA_SHA256_HEX_LEN) && pa_db_bool(r, 0, PA_COL_OTP_RESERVE_CODE_LIVE);
	params[0] = pa_db_value(r, 0, PA_COL_OTP_RESERVE_ID);
	if (!match) {
		params[1] = max;
		params[2] = addr;
		if ((rv = pa_db_exec(db, a, PA_STMT_OTP_FAILED, params, &s)) != PA_OK)
			return rv;
		*res = pa_db_rows(s) == 1 && pa_db_bool(s, 0, 0) ? PA_OTP_VOIDED : PA_OTP_WRONG;
		pa_audit_log(&(pa_audit_t){ pa_db_value(r, 0, PA_COL_OTP_RESERVE_DOMAIN),
		    pa_db_value(r, 0, PA_COL_OTP_RESERVE_USERNAME), pa_db_value(r, 0, PA_COL_OTP_RESERVE_USER_ID), addr,
		    "otp_verify", *res == PA_OTP_VOIDED ? "voided" : "failure", flavour });
		return PA_OK;
	}
	params[1] = addr;
	if ((rv = pa_db_exec(db, a, PA_STMT_OTP_SPEND, params, &s)) != PA_OK)
		return rv;
	if (pa_db_rows(s) != 1)
		return PA_OK;	/* a concurrent request with the same code won */
	memset(&u, 0, sizeof(u));
	u.id = pa_db_value(r, 0, PA_COL_OTP_RESERVE_USER_ID);
	u.domain = pa_db_value(r, 0, PA_COL_OTP_RESERVE_DOMAIN);
	u.username = pa_db_value(r, 0, PA_COL_OTP_RESERVE_USERNAME);
	u.role = pa_db_value(r, 0, PA_COL_OTP_RESERVE_ROLE);
	u.enabled = true;
	pa_audit_log(&(pa_audit_t){ u.domain, u.username, u.id, addr, "otp_verify", "success",
	    flavour });
	/*
	 * The password was proved at the first step; the account's throttle
	 * count was cleared then.  The flow is already spent: should this
	 * statement fail, the user signs in again.
	 */
	if ((rv = pa_session_create(db, a, cfg, &u, out->flavour, addr, NULL, PA_VIA_PASSWORD,
	    &out->tokens)) != PA_OK)
		return rv;
	out->role = u.role;
	*res = PA_OTP_OK;
	return PA_OK;
}
