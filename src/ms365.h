/*
 * Microsoft 365 sign-in in PostgreSQL: a tenant's settings, the one-time
 * OpenID Connect flows, and mapping a Microsoft account to a user.  The
 * relying-party logic (discovery, keys, tokens) is oidc.c's; this module owns
 * the rows.
 */
#ifndef PA_MS365_H
#define PA_MS365_H

#include <stdbool.h>

#include "arena.h"
#include "buf.h"
#include "config.h"
#include "db.h"
#include "pa.h"
#include "sessions.h"

/* A tenant's Microsoft 365 settings (strings in the arena; NULL when unset). */
typedef struct {
	const char *tenant_id, *domain, *name;
	bool enabled;		/* tenant enabled, ms365_enabled, directory, application
				   and a credential all set */
	const char *directory_id, *application_id;
	const char *cloud;	/* "GLOBAL" or "CHINA" */
	const char *client_secret_file;			/* or: */
	const char *certificate_file, *private_key_file;
} pa_ms365_tenant_t;

/* The tenant `domain`'s settings.  PA_OK, PA_ENOTFOUND (unknown or disabled tenant), PA_EDB. */
enum pa_err pa_ms365_tenant(pa_db_t *db, pa_arena_t *a, const char *domain,
    pa_ms365_tenant_t *out) PA_MUSTCHECK;

/* The authority (scheme://host[:port]) of a national cloud: "CHINA", else GLOBAL. */
const char *pa_ms365_authority(const pa_config_t *cfg, const char *cloud);
/*
 * Appends the authorization endpoint of directory dir at the cloud's
 * authority, <authority>/<dir>/oauth2/v2.0/authorize: what /api/info
 * reports and where sign-ins go.
 */
void pa_ms365_authorize_endpoint(pa_buf_t *b, const pa_config_t *cfg, const char *cloud,
    const char *dir);

/* A stored flow, as the callback needs it. */
typedef struct {
	const char *tenant_id, *domain;
	const char *nonce, *verifier;	/* sent to the IdP / checked in the ID token */
	const char *destination;	/* callback_url (bearer); NULL for cookie flows */
	pa_flavour_t flavour;
	const char *client_addr;	/* of the request that started the flow */
	const char *browser_hash;	/* hex SHA-256 of the browser binding; NULL
					   for a bearer flow no browser started */
} pa_ms365_flow_t;

/*
 * Stores a flow valid ttl seconds; only SHA-256(state) is kept.  browser is
 * the value that binds a cookie flow to the browser that started it (set in
 * its cookie); only its SHA-256 is kept.  It is required for cookie flows;
 * a bearer flow starts with NULL and is bound when a browser opens the
 * start URL (pa_ms365_flow_bind).  PA_OK, PA_EDB.
 */
enum pa_err pa_ms365_flow_create(pa_db_t *db, pa_arena_t *a, const char *tenant_id,
    const char *state, const char *nonce, const char *verifier, pa_flavour_t f,
    const char *destination, int ttl, const char *addr, const char *browser) PA_MUSTCHECK;

/*
 * Spends the flow of state (one UPDATE … RETURNING: of concurrent callbacks
 * exactly one gets it).  PA_OK with *out; PA_ENOTFOUND for an unknown,
 * expired or spent state; PA_EDB.
 */
enum pa_err pa_ms365_flow_spend(pa_db_t *db, pa_arena_t *a, const char *state,
    pa_ms365_flow_t *out) PA_MUSTCHECK;

/*
 * Binds the bearer flow of state to the browser that opens its start URL:
 * only once, while the flow is unspent and unexpired.  Fills *out (nonce,
 * verifier, domain, destination; browser_hash unset).  PA_OK; PA_ENOTFOUND
 * (unknown, expired, spent or already bound); PA_EDB.
 */
enum pa_err pa_ms365_flow_bind(pa_db_t *db, pa_arena_t *a, const char *state,
    const char *browser, pa_ms365_flow_t *out) PA_MUSTCHECK;

/*
 * True when browser (the binding the callback's request presented; NULL when
 * it had none) is the one fl was created with: their SHA-256 compared in
 * constant time.  False for a flow bound to no browser.
 */
bool pa_ms365_flow_browser_ok(const pa_ms365_flow_t *fl, const char *browser);

/*
 * The user of tenant_id that the Microsoft account (oid, and the upn and
 * preferred_username claims, either may be NULL) maps to: the user whose
 * bound oid matches; failing that, the user whose operator-bound UPN matches
 * upn or preferred_username (case-insensitively), whose oid is then recorded
 * in the same statement.  Never by email.  PA_OK with *out filled as
 * pa_user_find does (out->enabled false for a disabled user or tenant);
 * PA_ENOTFOUND; PA_EDB.
 */
enum pa_err pa_ms365_user_map(pa_db_t *db, pa_arena_t *a, const char *tenant_id,
    const char *oid, const char *upn, const char *preferred_username, pa_user_t *out)
	PA_MUSTCHECK;

/*
 * Syntax checks shared by pbx-authctl and the endpoints (no database).
 * pa_ms365_guid: 8-4-4-4-12 hexadecimal digits (an object, application or
 * directory id).  pa_ms365_directory: a directory (tenant) id as Microsoft
 * accepts it in its endpoints: a GUID, or a domain name of the directory
 * (contoso.onmicrosoft.com); not common, organizations or consumers, which
 * are no directory.  pa_ms365_upn: a user principal name, 3-254 characters
 * name@domain without spaces or control characters.
 */
bool pa_ms365_guid(const char *s);
bool pa_ms365_directory(const char *s);
bool pa_ms365_upn(const char *s);

#endif
