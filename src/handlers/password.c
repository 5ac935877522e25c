/*
 * The forgotten password: POST /api/auth/forget_password emails a reset
 * link (or, for an unknown user or one without an email address, answers
 * the same way and sends nothing); POST /api/auth/reset_password sets the
 * new password with the emailed token (flows.c).
 *
 * forget_password answers before it looks the account up: what a queued
 * email costs (two inserts, the NOTIFY that wakes the mailer and every
 * listening backend, the mailer's work) took a third of a millisecond
 * more, enough to tell from outside which accounts exist and have an
 * address.  Only the validation and the tenant's allow-list (tenants are
 * public) come before the answer; the rest runs after it (pa_req_t.after).
 */
#include "autoconfig.h"

#include <string.h>

#include "callback.h"
#include "flows.h"
#include "handlers.h"
#include "log.h"
#include "valid.h"

/* What forget_password leaves for after its answer, copied into the arena. */
typedef struct {
	const char *domain, *username, *url, *addr;
} reset_job_t;

static void
reset_after(pa_ctx_t *ctx, pa_arena_t *a, void *arg)
{
	const reset_job_t *j = arg;

	/* db.c has logged a database failure; this says what it cost. */
	if (pa_reset_request(ctx->db, a, ctx->cfg, j->domain, j->username, j->url, j->addr) !=
	    PA_OK)
		pa_log_error("forget_password was answered but not carried out, no email"
		    " domain=%s user=%s", j->domain, j->username);
}

void
pa_handle_forget_password(pa_req_t *req, pa_ctx_t *ctx)
{
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	const char *domain, *username, *url, *why;
	size_t dlen, ulen, urllen;
	reset_job_t *j;
	enum pa_err rv;

	pa_body_string(req, &p, "domain", true, &domain, &dlen);
	pa_body_string(req, &p, "username", true, &username, &ulen);
	pa_body_string(req, &p, "callback_url", true, &url, &urllen);
	if (domain != NULL && (dlen < 1 || dlen > PA_DOMAIN_MAX))
		pa_json_problem(&p, "domain", "length 1..280");
	else if (domain != NULL && !pa_valid_domain(domain))
		pa_json_problem(&p, "domain", "an FQDN or an IP address");
	if (username != NULL) {
		if (!pa_valid_username(username, ulen))
			pa_json_problem(&p, "username", "1-64 letters, digits, _ - ' or ., not starting"
			    " or ending with .");
		else if (pa_username_reserved(username))
			pa_json_problem(&p, "username", "reserved for the system administrator");
	}
	if (p.n == 0) {
		/* The allow-list of the tenant asked for (tenants are public: GET /api/info). */
		rv = pa_callback_check(ctx->db, req->arena, domain, url, &why);
		if (rv == PA_EINPUT) {
			pa_json_problem(&p, "callback_url", why);
		} else if (rv != PA_OK) {	/* p holds nothing yet */
			pa_reply_failure(req, ctx, rv);
			return;
		}
	}
	if (p.n > 0) {
		pa_reply_problems(req, ctx, &p);
		return;
	}
	if ((j = pa_calloc(req->arena, 1, sizeof(*j))) == NULL ||
	    (j->domain = pa_strdup(req->arena, domain)) == NULL ||
	    (j->username = pa_strdup(req->arena, username)) == NULL ||
	    (j->url = pa_strdup(req->arena, url)) == NULL ||
	    (req->remote_addr != NULL &&
	    (j->addr = pa_strdup(req->arena, req->remote_addr)) == NULL)) {
		pa_reply_failure(req, ctx, PA_ENOMEM);
		return;
	}
	req->after = reset_after;
	req->after_arg = j;
	pa_http_reply(req, 200, NULL, 0);
}

void
pa_handle_reset_password(pa_req_t *req, pa_ctx_t *ctx)
{
	pa_json_problems_t p = { PA_BUF_INIT, 0 };
	const char *token, *password, *rule;
	size_t tlen, plen;
	char why[128];
	enum pa_err rv;

	pa_body_string(req, &p, "token", true, &token, &tlen);
	pa_body_string(req, &p, "new_password", true, &password, &plen);
	if (password != NULL && (rule = pa_valid_new_password(password, plen,
	    ctx->cfg->password_min_length, ctx->cfg->password_max_length, why,
	    sizeof(why))) != NULL)
		pa_json_problem(&p, "new_password", rule);
	if (p.n > 0) {
		pa_reply_problems(req, ctx, &p);
		return;
	}
	rv = pa_reset_password(ctx->db, req->arena, ctx->passwd, token, password,
	    req->remote_addr);
	if (rv == PA_ENOTFOUND)
		pa_reply_invalid_token(req, false);
	else if (rv != PA_OK)
		pa_reply_failure(req, ctx, rv);
	else
		pa_http_reply(req, 200, NULL, 0);
}
