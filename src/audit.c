/*
 * Audit rows and their log lines.
 */
#include "autoconfig.h"

#include "audit.h"
#include "log.h"
#include "metrics.h"

void
pa_audit_log(const pa_audit_t *e)
{
	const char *d = e->domain ? e->domain : "-", *u = e->username ? e->username : "-",
		*addr = e->client_addr && *e->client_addr ? e->client_addr : "-";

	pa_metrics_audit(e->event, e->outcome, e->detail);
	/* log.c escapes every value; the keys are in the format, so two formats. */
	if (e->detail != NULL)
		pa_log_info("audit event=%s outcome=%s domain=%s user=%s addr=%s detail=%s",
		    e->event, e->outcome, d, u, addr, e->detail);
	else
		pa_log_info("audit event=%s outcome=%s domain=%s user=%s addr=%s", e->event,
		    e->outcome, d, u, addr);
}

enum pa_err
pa_audit(pa_db_t *db, pa_arena_t *a, const pa_audit_t *e)
{
	const char *params[7] = { e->domain, e->username, e->user_id, e->client_addr, e->event,
		e->outcome, e->detail };
	pa_db_res_t *r;
	enum pa_err rv;

	if ((rv = pa_db_exec(db, a, PA_STMT_AUDIT, params, &r)) != PA_OK)
		return rv;
	pa_audit_log(e);
	return PA_OK;
}
