/*
 * libpq connection, statement table, reconnect and LISTEN/NOTIFY polling.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "db.h"
#include "log.h"
#include "metrics.h"

struct stmt {
	const char *name, *sql;
	int nparams;		/* parameters the code fills ($1..$n) */
	int ncols;		/* result columns the code reads (0: none) */
	bool idempotent;	/* safe to run again after a lost connection */
};

/* The PA_COL_USER_* columns of a tenant user u of tenant t. */
#define TENANT_USER_COLUMNS \
	"u.id, u.password_hash, u.role, u.enabled AND t.enabled, u.two_factor," \
	" u.password_force_reset, u.password_verified, t.domain, u.username"
/* A timestamptz column as RFC 3339 UTC text: 2026-11-28T10:00:00Z. */
#define PA_RFC3339(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The PA_COL_GATE_* columns, given the SQL of EXP and IAT, and the joins. */
#define GATE_COLUMNS(EXP, IAT) \
	"s.id, s.user_id, u.role, u.password_force_reset, t.domain, u.username," \
	" floor(extract(epoch FROM " EXP "))::bigint, floor(extract(epoch FROM " IAT "))::bigint" \
	" FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN tenants t ON t.id = u.tenant_id"
/* A session not revoked, not past EXPIRY, of an enabled user of an enabled tenant. */
#define GATE_LIVE(EXPIRY) \
	"s.revoked_at IS NULL AND " EXPIRY " > now() AND s.refresh_expires_at > now()" \
	" AND u.enabled AND (u.tenant_id IS NULL OR t.enabled)"

static const struct stmt stmts[PA_STMT__MAX] = {
	[PA_STMT_SYSTEM_INFO] = { "system_info",
	    "SELECT web_domain, private_ipv4, public_ipv4, enable_ipv6, private_ipv6, public_ipv6,"
	    " primary_dns_server, secondary_dns_server, enable_dataflow, public_base_url"
	    " FROM system_settings WHERE id", 0, 10, true },
	[PA_STMT_TENANT_INFO] = { "tenant_info",
	    "SELECT name, domain, website, avatar_url, " PA_DB_MS365_READY("tenants") ","
	    " ms365_directory_id, ms365_national_cloud FROM tenants"
	    " WHERE lower(domain) = lower($1) AND enabled", 1, 7, true },
	/* The cache's fill (meta.c): keyset pages along tenants_domain_key. */
	[PA_STMT_TENANT_INFO_CHUNK] = { "tenant_info_chunk",
	    "SELECT name, domain, website, avatar_url, " PA_DB_MS365_READY("tenants") ","
	    " ms365_directory_id, ms365_national_cloud, lower(domain) FROM tenants"
	    " WHERE lower(domain) > $1 AND enabled ORDER BY lower(domain) LIMIT $2::int",
	    2, 8, true },
	[PA_STMT_CALLBACK_PREFIXES] = { "callback_prefixes",
	    "SELECT unnest(callback_prefixes) FROM tenants"
	    " WHERE lower(domain) = lower($1) AND enabled"
	    " UNION ALL SELECT 'https://' || web_domain FROM system_settings"
	    " WHERE id AND web_domain <> ''", 1, 1, true },

	/*
	 * Sign-in.  A tenant user is found through the tenant, so an unknown
	 * tenant and an unknown user cost the same index lookups.
	 */
	[PA_STMT_USER_TENANT] = { "user_tenant",
	    "SELECT " TENANT_USER_COLUMNS
	    " FROM tenants t JOIN users u ON u.tenant_id = t.id AND lower(u.username) = lower($2)"
	    " WHERE lower(t.domain) = lower($1)", 2, 9, true },
	[PA_STMT_USER_SYSTEM] = { "user_system",
	    "SELECT u.id, u.password_hash, u.role, u.enabled, u.two_factor,"
	    " u.password_force_reset, u.password_verified, NULL::text, u.username"
	    " FROM users u WHERE u.tenant_id IS NULL AND lower(u.username) = lower($1)", 1, 9, true },
	/* Only if nobody changed the hash meanwhile. */
	[PA_STMT_USER_REHASH] = { "user_rehash",
	    "UPDATE users SET password_hash = $2, updated_at = now()"
	    " WHERE id = $1 AND password_hash = $3", 3, 0, true },
	/*
	 * A new session, with its audit row and the account's throttle count
	 * cleared, atomically.  $1 user id, $2 flavour, $3 access hash, $4
	 * access ttl, $5 refresh hash, $6 refresh ttl, $7 client address, $8
	 * signed in with the password, $9 account throttle key or NULL, $10
	 * audit detail, $11 refresh token family (bearer) or NULL.
	 */
	[PA_STMT_SESSION_CREATE] = { "session_create",
	    "WITH s AS (INSERT INTO sessions (user_id, flavour, access_hash, access_expires_at,"
	    "  refresh_hash, refresh_expires_at, client_addr, refresh_family)"
	    "  VALUES ($1, $2, decode($3, 'hex'), now() + $4::int * interval '1 second',"
	    "  decode($5, 'hex'), now() + $6::int * interval '1 second', $7, $11)"
	    "  RETURNING id, access_expires_at),"
	    " u AS (UPDATE users SET last_sign_in_at = now(),"
	    "  password_verified = password_verified OR $8::boolean WHERE id = $1"
	    "  RETURNING tenant_id, username),"
	    " t AS (DELETE FROM throttle WHERE key = $9),"
	    " a AS (INSERT INTO audit_log (tenant_domain, username, user_id, client_addr, event,"
	    "  outcome, detail) SELECT (SELECT domain FROM tenants WHERE id = u.tenant_id),"
	    "  u.username, $1, $7, 'sign_in', 'success', $10 FROM u)"
	    " SELECT id, " PA_RFC3339("access_expires_at") " FROM s", 11, 2, false },
	/* $1 user id, $2 flavour, $3 token hash, $4 ttl, $5 address, $6 throttle key, $7 detail. */
	[PA_STMT_FLOW_CREATE] = { "flow_create",
	    "WITH f AS (INSERT INTO auth_flows (kind, token_hash, user_id, flavour, client_addr,"
	    "  expires_at) VALUES ('two_factor', decode($3, 'hex'), $1, $2, $5,"
	    "  now() + $4::int * interval '1 second') RETURNING id),"
	    " t AS (DELETE FROM throttle WHERE key = $6),"
	    " a AS (INSERT INTO audit_log (tenant_domain, username, user_id, client_addr, event,"
	    "  outcome, detail) SELECT t.domain, u.username, u.id, $5, 'sign_in', 'two_factor', $7"
	    "  FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1)"
	    " SELECT id FROM f", 7, 1, false },
	/*
	 * Rotation: the UPDATE locks the session row; concurrent refreshes with
	 * the same token wait for it, then find the hash changed and match
	 * nothing.  The spent token becomes prev_refresh_hash; no row per spent
	 * token (0006).  A session from before 0006 adopts the family of the
	 * token presented.  $1 old refresh hash, $2 access hash, $3 access
	 * ttl, $4 refresh hash, $5 refresh ttl, $6 family.
	 */
	[PA_STMT_SESSION_REFRESH] = { "session_refresh",
	    "UPDATE sessions s SET access_hash = decode($2, 'hex'),"
	    " access_expires_at = now() + $3::int * interval '1 second',"
	    " refresh_hash = decode($4, 'hex'),"
	    " refresh_expires_at = now() + $5::int * interval '1 second', refreshed_at = now(),"
	    " prev_refresh_hash = s.refresh_hash, prev_retryable = false, prev_disputed_at = NULL,"
	    " rotated_by = pg_backend_pid(), refresh_family = $6"
	    " FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id"
	    " WHERE s.refresh_hash = decode($1, 'hex') AND s.flavour = 'bearer'"
	    " AND s.revoked_at IS NULL AND s.refresh_expires_at > now()"
	    " AND u.id = s.user_id AND u.enabled AND (u.tenant_id IS NULL OR t.enabled)"
	    " RETURNING s.id", 6, 1, false },
	/*
	 * A refresh token that did not rotate.  A token of a live session's
	 * family that is not its current one was spent.  If it is the one the
	 * last rotation spent, within the retry window: marked retryable (that
	 * rotation's answer was lost), it rotates again from it and the
	 * undelivered successor is replaced; unmarked, while the connection
	 * that committed the rotation is gone (its answer may have been lost and
	 * the mark may still come; within the grace too, as a retry right after
	 * a database restart comes early), the verdict waits: no
	 * revocation, the caller answers 503, for $10 seconds from the first
	 * such presentation.  Otherwise, within the grace period after the
	 * session's last rotation (two clients racing) it is only refused;
	 * later the session is revoked as stolen, with an audit row.  Tokens
	 * spent before 0006 are found in spent_refresh_tokens.  $1 hash, $2
	 * family, $3 grace, $4 address, $5 access hash, $6 access ttl, $7
	 * refresh hash, $8 refresh ttl, $9 retry window, $10 wait -> PA_FB_* row.
	 */
	[PA_STMT_REFRESH_FALLBACK] = { "refresh_fallback",
	    "WITH g AS (SELECT s.id, s.refreshed_at > now() - $3::int * interval '1 second'"
	    "  AS in_grace, s.prev_refresh_hash = decode($1, 'hex')"
	    "  AND s.refreshed_at > now() - $9::int * interval '1 second' AS recent,"
	    "  s.prev_retryable, s.prev_disputed_at, s.rotated_by"
	    "  FROM sessions s WHERE s.refresh_family = $2 AND s.flavour = 'bearer'"
	    "  AND s.refresh_hash <> decode($1, 'hex') AND s.revoked_at IS NULL"
	    "  AND s.refresh_expires_at > now()),"
	    " f AS (SELECT id, in_grace, recent AND prev_retryable AS retry,"
	    "  recent AND NOT prev_retryable"
	    "  AND coalesce(prev_disputed_at > now() - $10::int * interval '1 second', true)"
	    "  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = g.rotated_by)"
	    "  AS wait FROM g),"
	    " d AS (UPDATE sessions s SET prev_disputed_at = coalesce(s.prev_disputed_at, now())"
	    "  FROM f WHERE s.id = f.id AND f.wait),"
	    " rt AS (UPDATE sessions s SET access_hash = decode($5, 'hex'),"
	    "  access_expires_at = now() + $6::int * interval '1 second',"
	    "  refresh_hash = decode($7, 'hex'),"
	    "  refresh_expires_at = now() + $8::int * interval '1 second', refreshed_at = now(),"
	    "  prev_retryable = false, prev_disputed_at = NULL, rotated_by = pg_backend_pid()"
	    "  FROM f, users u LEFT JOIN tenants t ON t.id = u.tenant_id"
	    "  WHERE s.id = f.id AND f.retry AND s.prev_retryable"
	    "  AND s.prev_refresh_hash = decode($1, 'hex') AND s.revoked_at IS NULL"
	    "  AND u.id = s.user_id AND u.enabled AND (u.tenant_id IS NULL OR t.enabled)"
	    "  RETURNING s.id),"
	    " sp AS (SELECT id, in_grace FROM f WHERE NOT retry AND NOT wait"
	    "  UNION ALL SELECT session_id, spent_at > now() - $3::int * interval '1 second'"
	    "  FROM spent_refresh_tokens WHERE token_hash = decode($1, 'hex')),"
	    " r AS (UPDATE sessions s SET revoked_at = now(), revoke_reason = 'refresh token reuse'"
	    "  FROM sp WHERE s.id = sp.id AND NOT sp.in_grace AND s.revoked_at IS NULL"
	    "  RETURNING s.id, s.user_id),"
	    " who AS (SELECT r.id, u.id AS user_id, t.domain, u.username FROM r"
	    "  JOIN users u ON u.id = r.user_id LEFT JOIN tenants t ON t.id = u.tenant_id),"
	    " a AS (INSERT INTO audit_log (tenant_domain, username, user_id, client_addr, event,"
	    "  outcome, detail) SELECT domain, username, user_id, $4, 'refresh_reuse', 'revoked',"
	    "  'session ' || id FROM who)"
	    " SELECT true, false, false, false, NULL::bigint, NULL::text, NULL::text FROM rt"
	    " UNION ALL SELECT false, false, false, true, NULL, NULL, NULL FROM f WHERE wait"
	    " UNION ALL SELECT false, sp.in_grace, who.id IS NOT NULL, false, who.user_id,"
	    " who.domain, who.username FROM sp LEFT JOIN who ON true", 10, 7, false },
	/*
	 * After a rotation's answer was lost: its spent token $1 may be
	 * presented again, if the successor $2 is still current (never used)
	 * and the rotation is younger than $3 seconds.
	 */
	[PA_STMT_REFRESH_RETRYABLE] = { "refresh_retryable",
	    "UPDATE sessions SET prev_retryable = true WHERE refresh_hash = decode($2, 'hex')"
	    " AND prev_refresh_hash = decode($1, 'hex') AND revoked_at IS NULL"
	    " AND refreshed_at > now() - $3::int * interval '1 second'", 3, 0, true },
	[PA_STMT_SESSION_ACCESS] = { "session_access",
	    "SELECT s.id, s.user_id, s.flavour, u.role, u.password_verified,"
	    " u.password_force_reset, t.domain, u.username"
	    " FROM sessions s JOIN users u ON u.id = s.user_id"
	    " LEFT JOIN tenants t ON t.id = u.tenant_id"
	    " WHERE s.access_hash = decode($1, 'hex') AND s.revoked_at IS NULL"
	    " AND s.access_expires_at > now() AND s.refresh_expires_at > now()"
	    " AND u.enabled AND (u.tenant_id IS NULL OR t.enabled)", 1, 8, true },
	/* $1 access hash, $2 address -> id, user id, domain, username, flavour. */
	[PA_STMT_SESSION_SIGN_OUT] = { "session_sign_out",
	    "WITH r AS (UPDATE sessions s SET revoked_at = now(), revoke_reason = 'signed out'"
	    "  FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id"
	    "  WHERE s.access_hash = decode($1, 'hex') AND s.revoked_at IS NULL"
	    "  AND s.access_expires_at > now() AND s.refresh_expires_at > now()"
	    "  AND u.id = s.user_id AND u.enabled AND (u.tenant_id IS NULL OR t.enabled)"
	    "  RETURNING s.id, s.flavour, u.id AS user_id, t.domain, u.username),"
	    " a AS (INSERT INTO audit_log (tenant_domain, username, user_id, client_addr, event,"
	    "  outcome, detail) SELECT domain, username, user_id, $2, 'sign_out', 'success',"
	    "  flavour FROM r)"
	    " SELECT id, user_id, domain, username, flavour FROM r", 2, 5, false },
	[PA_STMT_SESSION_COOKIE] = { "session_cookie",
	    "SELECT s.id, s.access_gen, " PA_RFC3339("s.access_expires_at") ","
	    " floor(extract(epoch FROM s.access_expires_at - now()))::bigint, u.role"
	    " FROM sessions s JOIN users u ON u.id = s.user_id"
	    " LEFT JOIN tenants t ON t.id = u.tenant_id"
	    " WHERE s.refresh_hash = decode($1, 'hex') AND s.flavour = 'cookie'"
	    " AND s.revoked_at IS NULL AND s.refresh_expires_at > now()"
	    " AND u.enabled AND (u.tenant_id IS NULL OR t.enabled)", 1, 5, true },
	/* The next derived access token; only if nobody rotated meanwhile. */
	[PA_STMT_SESSION_COOKIE_ROTATE] = { "session_cookie_rotate",
	    "UPDATE sessions SET access_gen = access_gen + 1, access_hash = decode($3, 'hex'),"
	    " access_expires_at = now() + $4::int * interval '1 second'"
	    " WHERE id = $1 AND access_gen = $2 AND revoked_at IS NULL"
	    " RETURNING " PA_RFC3339("access_expires_at") ","
	    " floor(extract(epoch FROM access_expires_at - now()))::bigint", 4, 2, false },
	/* $1 cookie hash, $2 address. */
	[PA_STMT_SESSION_LOGOUT] = { "session_logout",
	    "WITH r AS (UPDATE sessions s SET revoked_at = now(), revoke_reason = 'logged out'"
	    "  FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id"
	    "  WHERE s.refresh_hash = decode($1, 'hex') AND s.flavour = 'cookie'"
	    "  AND s.revoked_at IS NULL AND u.id = s.user_id"
	    "  RETURNING s.id, u.id AS user_id, t.domain, u.username),"
	    " a AS (INSERT INTO audit_log (tenant_domain, username, user_id, client_addr, event,"
	    "  outcome, detail) SELECT domain, username, user_id, $2, 'sign_out', 'success',"
	    "  'cookie' FROM r)"
	    " SELECT id, user_id, domain, username FROM r", 2, 4, false },
	/*
	 * Reserves a sign-in attempt before the password is verified
	 * (0007_throttle_reserve.sql): $1-$4 address key (NULL: no limit),
	 * limit, window, block; $5-$8 the same for the account -> seconds
	 * blocked (NULL: the attempt may go on), whether it blocked the
	 * address, whether it blocked the account.
	 */
	[PA_STMT_THROTTLE_RESERVE] = { "throttle_reserve",
	    "SELECT retry_after, ip_blocked, account_blocked FROM throttle_reserve($1::text,"
	    " $2::int, $3::int, $4::int, $5::text, $6::int, $7::int, $8::int)", 8, 3, false },
	/* A success gives the address's reservation back: $1 key, $2 limit. */
	[PA_STMT_THROTTLE_RELEASE] = { "throttle_release",
	    "SELECT throttle_release($1::text, $2::int)", 2, 1, false },
	/*
	 * One failed sign-in (already counted by its reservation): its audit
	 * row, and a lockout row for each key the reservation blocked.  $1
	 * domain, $2 username, $3 user id, $4 address, $5 detail, $6 address
	 * blocked, $7 account blocked.
	 */
	[PA_STMT_SIGN_IN_FAILED] = { "sign_in_failed",
	    "INSERT INTO audit_log (tenant_domain, username, user_id, client_addr, event,"
	    " outcome, detail)"
	    " SELECT $1, $2, $3::bigint, $4, 'sign_in', 'failure', $5"
	    " UNION ALL SELECT $1, $2, $3::bigint, $4, 'lockout', 'ip', NULL WHERE $6::boolean"
	    " UNION ALL SELECT $1, $2, $3::bigint, $4, 'lockout', 'account', NULL"
	    " WHERE $7::boolean", 7, 0, false },
	[PA_STMT_AUDIT] = { "audit",
	    "INSERT INTO audit_log (tenant_domain, username, user_id, client_addr, event, outcome,"
	    " detail) VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, 0, false },

	/* Microsoft 365 sign-in (ms365.c). */
	[PA_STMT_MS365_TENANT] = { "ms365_tenant",
	    "SELECT t.id, t.domain, t.name, " PA_DB_MS365_READY("t") ", t.ms365_directory_id,"
	    " t.ms365_application_id, t.ms365_national_cloud, t.ms365_client_secret_file,"
	    " t.ms365_certificate_file, t.ms365_private_key_file"
	    " FROM tenants t WHERE lower(t.domain) = lower($1) AND t.enabled", 1, 10, true },
	/*
	 * $1 tenant id, $2 hex SHA-256 of state, $3 nonce, $4 PKCE verifier,
	 * $5 flavour, $6 destination, $7 ttl, $8 client address, $9 hex SHA-256
	 * of the browser binding (cookie flows; NULL for bearer flows).
	 */
	[PA_STMT_MS365_FLOW_CREATE] = { "ms365_flow_create",
	    "INSERT INTO auth_flows (kind, token_hash, tenant_id, nonce, pkce_verifier, flavour,"
	    " destination, client_addr, expires_at, browser_hash) VALUES ('oidc', decode($2, 'hex'),"
	    " $1::bigint, $3, $4, $5, $6, $8, now() + $7::int * interval '1 second',"
	    " decode($9, 'hex'))", 9, 0, false },
	/*
	 * Spends a flow ($1 hex SHA-256 of state) and returns what it held; the
	 * nonce and the verifier are not kept once spent.  The inner SELECT
	 * locks the row: a concurrent spend waits, then finds spent_at set and
	 * matches nothing, so exactly one callback gets the flow.
	 */
	[PA_STMT_MS365_FLOW_SPEND] = { "ms365_flow_spend",
	    "UPDATE auth_flows f SET spent_at = now(), nonce = NULL, pkce_verifier = NULL"
	    " FROM (SELECT id, nonce, pkce_verifier FROM auth_flows"
	    "  WHERE token_hash = decode($1, 'hex') AND kind = 'oidc' AND spent_at IS NULL"
	    "  AND expires_at > now() FOR UPDATE) o"
	    " WHERE f.id = o.id AND f.spent_at IS NULL"
	    " RETURNING f.tenant_id, (SELECT domain FROM tenants WHERE id = f.tenant_id),"
	    " o.nonce, o.pkce_verifier, f.destination, f.flavour, f.client_addr,"
	    " encode(f.browser_hash, 'hex')", 1, 8, false },
	/*
	 * Binds a bearer flow ($1 hex SHA-256 of state) to the browser that
	 * opens its start URL ($2 hex SHA-256 of the binding), once; the same
	 * columns as PA_STMT_MS365_FLOW_SPEND.
	 */
	[PA_STMT_MS365_FLOW_BIND] = { "ms365_flow_bind",
	    "UPDATE auth_flows f SET browser_hash = decode($2, 'hex')"
	    " WHERE token_hash = decode($1, 'hex') AND kind = 'oidc' AND flavour = 'bearer'"
	    " AND spent_at IS NULL AND expires_at > now() AND browser_hash IS NULL"
	    " RETURNING f.tenant_id, (SELECT domain FROM tenants WHERE id = f.tenant_id),"
	    " f.nonce, f.pkce_verifier, f.destination, f.flavour, f.client_addr,"
	    " encode(f.browser_hash, 'hex')", 2, 8, false },
	/*
	 * A Microsoft account to a user of tenant $1: by the bound oid $2; else
	 * by the operator-bound UPN matching the upn claim $3 (preferred) or
	 * preferred_username $4 of a user without an oid, whose oid is then
	 * recorded (audited).  A concurrent first sign-in of the same account
	 * finds the oid already recorded and still matches.  Never by email.
	 */
	[PA_STMT_MS365_USER_MAP] = { "ms365_user_map",
	    "WITH b AS (SELECT id FROM users"
	    "  WHERE tenant_id = $1::bigint AND lower(ms365_oid) = lower($2::text)),"
	    " n AS (UPDATE users u SET ms365_oid = lower($2::text), updated_at = now()"
	    "  WHERE NOT EXISTS (SELECT 1 FROM b)"
	    "  AND u.id = (SELECT id FROM users WHERE tenant_id = $1::bigint"
	    "   AND ms365_oid IS NULL AND lower(ms365_upn) IN (lower($3::text), lower($4::text))"
	    "   ORDER BY lower(ms365_upn) = lower($3::text) DESC NULLS LAST LIMIT 1)"
	    "  AND (u.ms365_oid IS NULL OR lower(u.ms365_oid) = lower($2::text))"
	    "  RETURNING u.id, u.username, u.ms365_upn),"
	    " a AS (INSERT INTO audit_log (tenant_domain, username, user_id, event, outcome,"
	    "  detail) SELECT (SELECT domain FROM tenants WHERE id = $1::bigint), n.username, n.id,"
	    "  'ms365_link', 'success', 'oid ' || lower($2::text) || ' by upn ' || n.ms365_upn"
	    "  FROM n),"
	    " m AS (SELECT id FROM b UNION ALL SELECT id FROM n)"
	    " SELECT " TENANT_USER_COLUMNS
	    " FROM m JOIN users u ON u.id = m.id JOIN tenants t ON t.id = u.tenant_id", 4, 9, false },
	/*
	 * Password reset (flows.c).  A tenant user is found through the tenant,
	 * as for sign-in.  usable: the user and the tenant are enabled and the
	 * account has a password.
	 */
	[PA_STMT_RESET_USER] = { "reset_user",
	    "SELECT u.id, u.email, t.name, t.domain, u.username,"
	    " u.enabled AND t.enabled AND u.password_hash IS NOT NULL"
	    " FROM tenants t JOIN users u ON u.tenant_id = t.id AND lower(u.username) = lower($2)"
	    " WHERE lower(t.domain) = lower($1)", 2, 6, true },
	/*
	 * A reset request, in one statement whether or not it sends anything:
	 * unless the account's last reset email is younger than the rate
	 * interval (the conditional UPDATE decides, so concurrent requests
	 * cannot both send), older reset tokens are voided, the new flow and its
	 * message are queued; the audit row is always written.  $1 user id
	 * (NULL: send nothing), $2 token hash, $3 ttl, $4 rate interval, $5
	 * address, $6 recipient, $7 subject, $8 body, $9 domain, $10 username,
	 * $11 audit user id, $12 audit outcome when nothing is queued.
	 */
	[PA_STMT_RESET_REQUEST] = { "reset_request",
	    "WITH u AS (UPDATE users SET reset_sent_at = now()"
	    "  WHERE id = $1::bigint AND email = $6::text AND enabled AND (reset_sent_at IS NULL"
	    "  OR reset_sent_at <= now() - $4::int * interval '1 second') RETURNING id),"
	    " v AS (UPDATE auth_flows SET spent_at = now() WHERE kind = 'password_reset'"
	    "  AND spent_at IS NULL AND user_id IN (SELECT id FROM u)),"
	    " f AS (INSERT INTO auth_flows (kind, token_hash, user_id, client_addr, expires_at)"
	    "  SELECT 'password_reset', decode($2, 'hex'), id, $5::text,"
	    "  now() + $3::int * interval '1 second' FROM u),"
	    " m AS (INSERT INTO mail_outbox (kind, user_id, recipient, subject, body, request_id)"
	    "  SELECT 'password_reset', id, $6::text, $7::text, $8::text, $13::text FROM u),"
	    " a AS (INSERT INTO audit_log (tenant_domain, username, user_id, client_addr, event,"
	    "  outcome, detail) SELECT $9::text, $10::text, $11::bigint, $5::text, 'reset_request',"
	    "  CASE WHEN EXISTS (SELECT 1 FROM u) THEN 'queued' ELSE $12::text END, NULL)"
	    " SELECT count(*) FROM u", 13, 1, false },
	[PA_STMT_RESET_CHECK] = { "reset_check",
	    "SELECT 1 FROM auth_flows f JOIN users u ON u.id = f.user_id"
	    " WHERE f.token_hash = decode($1, 'hex') AND f.kind = 'password_reset'"
	    " AND f.spent_at IS NULL AND f.expires_at > now() AND u.enabled", 1, 1, true },
	/*
	 * Spends a reset token and, in the same statement, sets the new hash,
	 * clears password_force_reset, revokes every session and voids the
	 * user's other flows, clears the account's sign-in throttle count (the
	 * key as throttle.c writes it) and writes the audit row.  $1 token hash,
	 * $2 new password hash, $3 address -> user id, domain, username,
	 * sessions revoked.
	 */
	[PA_STMT_RESET_SPEND] = { "reset_spend",
	    "WITH f AS (UPDATE auth_flows SET spent_at = now()"
	    "  WHERE token_hash = decode($1, 'hex') AND kind = 'password_reset'"
	    "  AND spent_at IS NULL AND expires_at > now() RETURNING id, user_id),"
	    " u AS (UPDATE users u SET password_hash = $2, password_force_reset = false,"
	    "  updated_at = now() FROM f WHERE u.id = f.user_id AND u.enabled"
	    "  AND (u.tenant_id IS NULL OR EXISTS (SELECT 1 FROM tenants t"
	    "  WHERE t.id = u.tenant_id AND t.enabled)) RETURNING u.id, u.tenant_id, u.username),"
	    " who AS (SELECT u.id, t.domain, u.username FROM u"
	    "  LEFT JOIN tenants t ON t.id = u.tenant_id),"
	    " s AS (UPDATE sessions SET revoked_at = now(), revoke_reason = 'password reset'"
	    "  WHERE user_id IN (SELECT id FROM u) AND revoked_at IS NULL RETURNING id),"
	    " o AS (UPDATE auth_flows SET spent_at = now() WHERE user_id IN (SELECT id FROM u)"
	    "  AND spent_at IS NULL AND kind IN ('two_factor', 'password_reset')"
	    "  AND id NOT IN (SELECT id FROM f)),"
	    " th AS (DELETE FROM throttle WHERE key IN (SELECT 'account '"
	    "  || lower(coalesce(domain, '')) || ' ' || lower(username) FROM who)),"
	    " a AS (INSERT INTO audit_log (tenant_domain, username, user_id, client_addr, event,"
	    "  outcome, detail) SELECT domain, username, id, $3::text, 'password_reset', 'success',"
	    "  (SELECT count(*) FROM s) || ' sessions revoked' FROM who)"
	    " SELECT id, domain, username, (SELECT count(*) FROM s) FROM who", 3, 4, false },

	/*
	 * Email one-time codes of the two-factor step (flows.c).  $1 token
	 * hash, $2 resend interval, $3 max attempts -> the flow, its user, and
	 * the seconds until a code may be sent again (0: now).  {tenant} of a
	 * system-level account is the web domain.
	 */
	[PA_STMT_OTP_FLOW] = { "otp_flow",
	    "SELECT f.id, u.id, u.email, coalesce(t.name, nullif((SELECT web_domain"
	    " FROM system_settings WHERE id), ''), 'PBX'), t.domain, u.username, f.flavour,"
	    " greatest(0, coalesce(ceil(extract(epoch FROM f.code_sent_at"
	    " + $2::int * interval '1 second' - now())), 0))::int"
	    " FROM auth_flows f JOIN users u ON u.id = f.user_id"
	    " LEFT JOIN tenants t ON t.id = u.tenant_id"
	    " WHERE f.token_hash = decode($1, 'hex') AND f.kind = 'two_factor'"
	    " AND f.spent_at IS NULL AND f.expires_at > now() AND f.attempts < $3::int"
	    " AND u.enabled AND (u.tenant_id IS NULL OR t.enabled)", 3, 8, true },
	/*
	 * A new code replaces the last one unless that was sent less than the
	 * resend interval ago; its message is queued and audited in the same
	 * statement.  $1 flow id, $2 HMAC of the code, $3 code ttl, $4 resend
	 * interval, $5 max attempts, $6 recipient, $7 subject, $8 body, $9
	 * address -> user id.
	 */
	[PA_STMT_OTP_SEND] = { "otp_send",
	    "WITH f AS (UPDATE auth_flows SET code_hash = decode($2, 'hex'),"
	    "  code_expires_at = now() + $3::int * interval '1 second', code_sent_at = now()"
	    "  WHERE id = $1 AND spent_at IS NULL AND expires_at > now() AND attempts < $5::int"
	    "  AND (code_sent_at IS NULL OR code_sent_at <= now() - $4::int * interval '1 second')"
	    "  RETURNING user_id, flavour),"
	    " who AS (SELECT u.id, t.domain, u.username, f.flavour FROM f"
	    "  JOIN users u ON u.id = f.user_id LEFT JOIN tenants t ON t.id = u.tenant_id),"
	    " m AS (INSERT INTO mail_outbox (kind, user_id, recipient, subject, body, request_id)"
	    "  SELECT 'otp', id, $6::text, $7::text, $8::text, $10::text FROM who),"
	    " a AS (INSERT INTO audit_log (tenant_domain, username, user_id, client_addr, event,"
	    "  outcome, detail) SELECT domain, username, id, $9::text, 'otp_send', 'success',"
	    "  flavour FROM who)"
	    " SELECT id FROM who", 10, 1, false },
	/*
	 * Counts an attempt before the code is compared (in C, in constant
	 * time), so concurrent guesses cannot exceed the limit.  $1 token hash,
	 * $2 max attempts -> PA_COL_OTP_RESERVE_* row.
	 */
	[PA_STMT_OTP_RESERVE] = { "otp_reserve",
	    "UPDATE auth_flows f SET attempts = f.attempts + 1"
	    " FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id"
	    " WHERE f.token_hash = decode($1, 'hex') AND f.kind = 'two_factor'"
	    " AND f.spent_at IS NULL AND f.expires_at > now() AND f.attempts < $2::int"
	    " AND u.id = f.user_id AND u.enabled AND (u.tenant_id IS NULL OR t.enabled)"
	    " RETURNING f.id, f.user_id, f.flavour, encode(f.code_hash, 'hex'),"
	    " coalesce(f.code_expires_at > now(), false), f.attempts, u.role, t.domain, u.username", 2, 9, false },
	/* The right code: the flow is spent (once).  $1 flow id, $2 address -> user id. */
	[PA_STMT_OTP_SPEND] = { "otp_spend",
	    "WITH f AS (UPDATE auth_flows SET spent_at = now() WHERE id = $1 AND spent_at IS NULL"
	    "  AND expires_at > now() AND code_expires_at > now() RETURNING user_id, flavour),"
	    " who AS (SELECT u.id, t.domain, u.username, f.flavour FROM f"
	    "  JOIN users u ON u.id = f.user_id LEFT JOIN tenants t ON t.id = u.tenant_id),"
	    " a AS (INSERT INTO audit_log (tenant_domain, username, user_id, client_addr, event,"
	    "  outcome, detail) SELECT domain, username, id, $2::text, 'otp_verify', 'success',"
	    "  flavour FROM who)"
	    " SELECT id FROM who", 2, 1, false },
	/*
	 * A wrong (or expired) code: audited; the attempt that reaches the
	 * limit voids the flow.  $1 flow id, $2 max attempts, $3 address ->
	 * voided.
	 */
	[PA_STMT_OTP_FAILED] = { "otp_failed",
	    "WITH f AS (UPDATE auth_flows SET spent_at = CASE WHEN attempts >= $2::int"
	    "  THEN now() END WHERE id = $1 AND spent_at IS NULL"
	    "  RETURNING user_id, flavour, attempts, spent_at IS NOT NULL AS voided),"
	    " who AS (SELECT u.id, t.domain, u.username, f.attempts, f.voided FROM f"
	    "  JOIN users u ON u.id = f.user_id LEFT JOIN tenants t ON t.id = u.tenant_id),"
	    " a AS (INSERT INTO audit_log (tenant_domain, username, user_id, client_addr, event,"
	    "  outcome, detail) SELECT domain, username, id, $3::text, 'otp_verify',"
	    "  CASE WHEN voided THEN 'voided' ELSE 'failure' END, 'attempt ' || attempts FROM who)"
	    " SELECT voided FROM who", 3, 1, false },

	/*
	 * The mailer (mailer.c).  A message is claimed with its row locked for
	 * the transaction that sends it and records the outcome; other mailers
	 * skip it meanwhile.
	 */
	[PA_STMT_MAIL_STATS] = { "mail_stats",
	    "SELECT count(*) FILTER (WHERE status = 'queued'),"
	    " count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'failed'),"
	    " coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'queued')),"
	    " 0)::bigint FROM mail_outbox", 0, 4, true },
	[PA_STMT_HEALTH_PING] = { "health_ping", "SELECT 1", 0, 1, true },
	[PA_STMT_HEALTH_MIGRATIONS] = { "health_migrations",
	    "SELECT version, checksum FROM schema_migrations ORDER BY version", 0, 2, true },
	[PA_STMT_MAIL_CLAIM] = { "mail_claim",
	    "SELECT id, recipient, subject, coalesce(body, ''), attempts,"
	    " (extract(epoch FROM created_at) * 1000000)::bigint, request_id FROM mail_outbox"
	    " WHERE status = 'queued' AND next_attempt_at <= now()"
	    " ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED", 0, 7, false },
	/*
	 * $1 id, $2 'sent', 'retry' or 'failed', $3 the server's reply, $4
	 * backoff base and $5 attempts allowed.  A retry waits base * 2^(n-1)
	 * seconds after the nth attempt (at most an hour); the last allowed
	 * attempt fails the message.  Once sent or failed, the body (it carries
	 * a token) is dropped.  -> status, seconds until the next attempt.
	 */
	[PA_STMT_MAIL_RESULT] = { "mail_result",
	    "UPDATE mail_outbox SET attempts = attempts + 1,"
	    " status = CASE WHEN $2 = 'sent' THEN 'sent'"
	    "  WHEN $2 = 'retry' AND attempts + 1 < $5::int THEN 'queued' ELSE 'failed' END,"
	    " last_error = CASE WHEN $2 = 'sent' THEN NULL ELSE $3 END,"
	    " sent_at = CASE WHEN $2 = 'sent' THEN now() END,"
	    " body = CASE WHEN $2 = 'retry' AND attempts + 1 < $5::int THEN body END,"
	    " next_attempt_at = CASE WHEN $2 = 'retry' AND attempts + 1 < $5::int"
	    "  THEN now() + least($4::int * 2 ^ attempts, 3600) * interval '1 second'"
	    "  ELSE next_attempt_at END"
	    " WHERE id = $1 RETURNING status,"
	    " greatest(0, ceil(extract(epoch FROM next_attempt_at - now())))::int", 5, 2, false },
	[PA_STMT_MAIL_NEXT] = { "mail_next",
	    "SELECT ceil(extract(epoch FROM min(next_attempt_at) - now()))::int FROM mail_outbox"
	    " WHERE status = 'queued'", 0, 1, true },
	/*
	 * Expired rows go in batches of $1, $2 seconds after they expired (an
	 * operator looking at a failed sign-in still finds them for a while).
	 * Spent refresh tokens go with their sessions (ON DELETE CASCADE).
	 */
	[PA_STMT_CLEAN_FLOWS] = { "clean_flows",
	    "DELETE FROM auth_flows WHERE id IN (SELECT id FROM auth_flows"
	    " WHERE expires_at < now() - $2::int * interval '1 second' LIMIT $1)", 2, 0, true },
	[PA_STMT_CLEAN_SESSIONS] = { "clean_sessions",
	    "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions"
	    " WHERE refresh_expires_at < now() - $2::int * interval '1 second' LIMIT $1)", 2, 0, true },
	/* $2 the longest throttle window, $3 the grace. */
	[PA_STMT_CLEAN_THROTTLE] = { "clean_throttle",
	    "DELETE FROM throttle WHERE key IN (SELECT key FROM throttle"
	    " WHERE window_start < now() - ($2::int + $3::int) * interval '1 second'"
	    " AND (blocked_until IS NULL OR blocked_until < now() - $3::int * interval '1 second')"
	    " LIMIT $1)", 3, 0, true },
	/* $2 days after it was sent (or queued, for failed mail). */
	[PA_STMT_CLEAN_MAIL] = { "clean_mail",
	    "DELETE FROM mail_outbox WHERE id IN (SELECT id FROM mail_outbox"
	    " WHERE status <> 'queued' AND coalesce(sent_at, created_at)"
	    " < now() - $2::int * interval '1 day' LIMIT $1)", 2, 0, true },
	/* $2 days after it was written; audit_keep_days 0 keeps every row. */
	[PA_STMT_CLEAN_AUDIT] = { "clean_audit",
	    "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log"
	    " WHERE $2::int > 0 AND at < now() - $2::int * interval '1 day' LIMIT $1)", 2, 0, true },

	/*
	 * The gate: who holds a live access token or session cookie.  EXP is
	 * the earlier of the token's and the session's end.
	 */
	[PA_STMT_GATE_ACCESS] = { "gate_access",
	    "SELECT " GATE_COLUMNS("least(s.access_expires_at, s.refresh_expires_at)",
	    "coalesce(s.refreshed_at, s.created_at)")
	    " WHERE s.access_hash = decode($1, 'hex') AND " GATE_LIVE("s.access_expires_at"), 1, PA_COL_GATE__MAX, true },
	[PA_STMT_GATE_COOKIE] = { "gate_cookie",
	    "SELECT " GATE_COLUMNS("s.refresh_expires_at", "s.created_at")
	    " WHERE s.refresh_hash = decode($1, 'hex') AND s.flavour = 'cookie' AND "
	    GATE_LIVE("s.refresh_expires_at"), 1, PA_COL_GATE__MAX, true },
	[PA_STMT_CLIENT_SECRET] = { "client_secret",
	    "SELECT encode(secret_hash, 'hex') FROM introspection_clients WHERE name = $1", 1, 1, true },
};

struct pa_db {
	PGconn *conn;
	char *conninfo, *appname;
	int flags;
	bool down;		/* the last connection attempt failed (logged once) */
	bool fresh;		/* connected since the last pa_db_poll or pa_db_notifies */
	bool in_tx;		/* between pa_db_begin and commit/rollback */
	bool unknown;		/* the last pa_db_exec lost the connection in flight */
	char errmsg[512];
};

#define RES(r) ((PGresult *)(r))

pa_db_t *
pa_db_new(const char *conninfo, const char *application_name, int flags)
{
	pa_db_t *db = calloc(1, sizeof(*db));

	if (db == NULL)
		return NULL;
	db->conninfo = strdup(conninfo);
	db->appname = strdup(application_name);
	if (db->conninfo == NULL || db->appname == NULL) {
		pa_db_free(db);
		return NULL;
	}
	db->flags = flags;
	return db;
}

void
pa_db_free(pa_db_t *db)
{
	if (db == NULL)
		return;
	if (db->conn != NULL)
		PQfinish(db->conn);
	free(db->conninfo);
	free(db->appname);
	free(db);
}

const char *
pa_db_error(pa_db_t *db)
{
	return db->errmsg;
}

/*
 * Copies libpq's message for pa_db_error as one line of single spaces:
 * libpq writes "ERROR:  text" and "FATAL:  text", two spaces, and a DETAIL
 * or HINT on lines of their own, all of which would end the message part
 * of a logfmt line early.
 */
static void
set_error(pa_db_t *db, const char *msg)
{
	const unsigned char *p = (const unsigned char *)(msg ? msg : "unknown error");
	size_t n = 0;

	while (*p != '\0' && n < sizeof(db->errmsg) - 1) {
		if (isspace(*p)) {
			while (isspace(*p))
				p++;
			if (n > 0 && *p != '\0')
				db->errmsg[n++] = ' ';
		} else {
			db->errmsg[n++] = (char)*p++;
		}
	}
	while (n > 0 && db->errmsg[n - 1] == ' ')
		n--;
	db->errmsg[n] = '\0';
}

static void
disconnect(pa_db_t *db)
{
	if (db->conn != NULL) {
		PQfinish(db->conn);
		db->conn = NULL;
	}
}

/* Server notices ("relation already exists, skipping") go to the debug log. */
static void
on_notice(void *arg, const char *msg)
{
	(void)arg;
	pa_log_debug("PostgreSQL notice: %s", msg);
}

/*
 * Session settings the code relies on, applied after connecting so that an
 * operator's options= (or PGOPTIONS) cannot replace them: statements cut at
 * 10 s (daemon only: migrations may take longer), UTF-8 text (the JSON we
 * write), and READ COMMITTED, the isolation the statements are written for.
 */
static const char session_sql[] = "SET client_encoding = 'UTF8';"
	" SET default_transaction_isolation = 'read committed'";
static const char daemon_sql[] = "SET statement_timeout = '10s'";

/* One setup command (SET, LISTEN) of a new connection; errors are logged. */
static enum pa_err
run_setup_sql(pa_db_t *db, const char *sql)
{
	PGresult *r = PQexec(db->conn, sql);
	enum pa_err rv = PA_OK;

	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		set_error(db, PQresultErrorMessage(r));
		pa_log_error("cannot set up the session (%s): %s", sql, db->errmsg);
		rv = PA_EDB;
	}
	PQclear(r);
	return rv;
}

/*
 * The statement table is the contract between C and SQL: the code fills
 * nparams parameters by position and reads ncols columns by the
 * PA_COL_<STATEMENT>_<COLUMN> enums of db.h.  After preparing, each
 * statement's description (PQdescribePrepared) must say the same, or the
 * connection is refused with one log line per drifting statement: a worker
 * then answers 503 instead of reading the wrong columns.  override (NULL:
 * none) replaces one statement's expected counts, for the contract test.
 */
enum pa_err
pa_db_check_statements(pa_db_t *db, const pa_db_expect_t *override)
{
	enum pa_err rv = PA_OK;

	if (db->conn == NULL)
		return PA_EDB;
	for (int i = 0; i < PA_STMT__MAX; i++) {
		bool o = override != NULL && (int)override->id == i;
		int np = o ? override->nparams : stmts[i].nparams;
		int nc = o ? override->ncols : stmts[i].ncols;
		PGresult *r = PQdescribePrepared(db->conn, stmts[i].name);

		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			/* (a lost connection leaves the result's message empty) */
			set_error(db, *PQresultErrorMessage(r) ? PQresultErrorMessage(r) :
			    PQerrorMessage(db->conn));
			pa_log_error("cannot describe statement %s: %s", stmts[i].name,
			    *db->errmsg ? db->errmsg : "no answer");
			PQclear(r);
			return PA_EDB;	/* the rest would fail the same way */
		} else if (PQnparams(r) != np || PQnfields(r) != nc) {
			pa_log_error("statement %s drifted from the code: the database describes %d"
			    " parameters and %d columns, the code expects %d and %d; refusing to"
			    " serve", stmts[i].name, PQnparams(r), PQnfields(r), np, nc);
			set_error(db, "a prepared statement does not match the code");
			rv = PA_EDB;
		}
		PQclear(r);
	}
	return rv;
}

static enum pa_err
setup(pa_db_t *db)
{
	PGresult *r;

	if (run_setup_sql(db, session_sql) != PA_OK ||
	    ((db->flags & PA_DB_PREPARE) && run_setup_sql(db, daemon_sql) != PA_OK))
		return PA_EDB;

	/*
	 * The tables live in the schema pbx_auth (0005).  pbx-authctl also sees
	 * public, where databases migrated before 0005 keep them until it runs.
	 */
	if (run_setup_sql(db, (db->flags & PA_DB_PREPARE) ? "SET search_path = pbx_auth" :
	    "SET search_path = pbx_auth, public") != PA_OK)
		return PA_EDB;

	if (db->flags & PA_DB_PREPARE)
		for (int i = 0; i < PA_STMT__MAX; i++) {
			r = PQprepare(db->conn, stmts[i].name, stmts[i].sql, stmts[i].nparams, NULL);
			if (PQresultStatus(r) != PGRES_COMMAND_OK) {
				set_error(db, PQresultErrorMessage(r));
				pa_log_error("cannot prepare statement %s: %s", stmts[i].name, db->errmsg);
				PQclear(r);
				return PA_EDB;
			}
			PQclear(r);
		}
	if ((db->flags & PA_DB_PREPARE) && pa_db_check_statements(db, NULL) != PA_OK)
		return PA_EDB;
	if ((db->flags & PA_DB_LISTEN_MAIL) &&
	    run_setup_sql(db, "LISTEN " PA_DB_MAIL_CHANNEL) != PA_OK)
		return PA_EDB;
	if ((db->flags & PA_DB_LISTEN) && run_setup_sql(db, "LISTEN " PA_DB_CACHE_CHANNEL) != PA_OK)
		return PA_EDB;
	return PA_OK;
}

/* The connection's connect_timeout in ms (libpq's rules: 0 or none is no limit, at least 2 s). */
static int
connect_timeout_ms(PGconn *conn)
{
	PQconninfoOption *opts = PQconninfo(conn);
	int ms = -1;

	for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, "connect_timeout") == 0 && o->val != NULL) {
			int s = atoi(o->val);

			ms = s <= 0 ? -1 : (s < 2 ? 2 : s > 3600 ? 3600 : s) * 1000;
		}
	PQconninfoFree(opts);
	return ms;
}

/*
 * PQconnectdbParams, with our notice processor on the connection from the
 * start: a server stopping just after the startup sends its FATAL message
 * behind ReadyForQuery, and libpq hands it to the notice processor while
 * still connecting (the default one prints it raw on stderr, in the middle
 * of the log).  connect_timeout bounds the whole attempt (libpq applies it
 * to each host).  *why is set when the failure is not libpq's own (its
 * error message then says nothing).
 */
static PGconn *
connect_params(const char *const *kw, const char *const *val, const char **why)
{
	PGconn *conn = PQconnectStartParams(kw, val, 1);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	struct timespec t0, t;
	int limit;

	*why = NULL;
	if (conn == NULL || PQstatus(conn) == CONNECTION_BAD)
		return conn;
	PQsetNoticeProcessor(conn, on_notice, NULL);
	limit = connect_timeout_ms(conn);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		struct pollfd p = { PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0 };
		int left = -1, n;

		if (limit >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			left = limit - (int)((t.tv_sec - t0.tv_sec) * 1000 +
			    (t.tv_nsec - t0.tv_nsec) / 1000000);
			if (left <= 0) {
				*why = "timeout expired";
				break;
			}
		}
		if ((n = poll(&p, 1, left)) < 0 && errno != EINTR) {
			*why = strerror(errno);
			break;
		}
		if (n > 0)
			st = PQconnectPoll(conn);
	}
	return conn;
}

enum pa_err
pa_db_connect(pa_db_t *db)
{
	/*
	 * Our defaults come first so that the connection string, expanded from
	 * "dbname", can override them (libpq processes keywords in order). A
	 * request must not wait forever on a database that stopped answering:
	 * TCP notices a silent peer; setup() bounds the statements.
	 */
	const char *const kw[] = { "application_name", "connect_timeout", "tcp_user_timeout",
		"keepalives_idle", "dbname", NULL };
	const char *const val[] = { db->appname, "5", "10000", "30", db->conninfo, NULL };
	const char *why;

	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		return PA_OK;
	disconnect(db);
	db->conn = connect_params(kw, val, &why);
	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
		set_error(db, db->conn == NULL ? "out of memory" : why != NULL ? why :
		    PQerrorMessage(db->conn));
		if (!db->down)
			pa_log_error("cannot connect to PostgreSQL: %s", db->errmsg);
		else
			pa_log_debug("still cannot connect to PostgreSQL: %s", db->errmsg);
		db->down = true;
		disconnect(db);
		return PA_EDB;
	}
	if (setup(db) != PA_OK) {
		db->down = true;
		disconnect(db);
		return PA_EDB;
	}
	if (db->down) {
		pa_log_info("connected to PostgreSQL again");
		pa_metrics_inc(PA_M_DB_RECONNECT);
	}
	db->down = false;
	db->fresh = true;
	return PA_OK;
}

bool
pa_db_connected(const pa_db_t *db)
{
	return db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK;
}

/*
 * Only the channels this connection listens to arrive.  Drained even when
 * nothing new was readable: a notification that came with the result of
 * this connection's own statement (its own revocation, say) sits in libpq's
 * buffer already.
 */
bool
pa_db_notifies(pa_db_t *db, pa_db_notify_fn *fn, void *arg)
{
	bool fresh = db->fresh;
	PGnotify *n;

	db->fresh = false;
	if (db->conn == NULL)
		return false;
	while ((n = PQnotifies(db->conn)) != NULL) {
		fn(arg, n->extra);
		PQfreemem(n);
	}
	return !fresh;
}

bool
pa_db_poll(pa_db_t *db, pa_db_notify_fn *fn, void *arg)
{
	struct pollfd p;

	/*
	 * One poll(2) says whether anything arrived.  POLLRDHUP matters: after
	 * a server shutdown the socket holds a FATAL message and then EOF, and
	 * PQconsumeInput would read the message and report the connection
	 * fine until the next call.  A connection dropped here makes
	 * pa_db_notifies answer false.
	 */
	p.fd = db->conn != NULL ? PQsocket(db->conn) : -1;
	p.events = POLLIN | POLLRDHUP;
	if (p.fd >= 0 && poll(&p, 1, 0) > 0) {
		if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
			pa_log_warn("lost the PostgreSQL connection");
			disconnect(db);
		} else if ((p.revents & POLLIN) &&
		    (!PQconsumeInput(db->conn) || PQstatus(db->conn) != CONNECTION_OK)) {
			set_error(db, PQerrorMessage(db->conn));
			pa_log_warn("lost the PostgreSQL connection: %s", db->errmsg);
			disconnect(db);
		}
	}
	return pa_db_notifies(db, fn, arg);
}

static void
res_cleanup(void *p)
{
	PQclear(p);
}

/*
 * Records a failed result's message: the primary text, the SQLSTATE, the
 * constraint and the hint, never the DETAIL, which can quote the row
 * (password and token hashes) and would reach logs and terminals.
 */
static void
set_result_error(pa_db_t *db, PGresult *r)
{
	const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *state, *cons, *hint;
	char buf[sizeof(db->errmsg)];

	if (msg == NULL) {
		set_error(db, r ? PQresultErrorMessage(r) : PQerrorMessage(db->conn));
		return;
	}
	state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	cons = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
	hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
	snprintf(buf, sizeof(buf), "%s (SQLSTATE %s%s%s)%s%s", msg, state ? state : "?",
	    cons ? ", constraint " : "", cons ? cons : "", hint ? " HINT: " : "", hint ? hint : "");
	set_error(db, buf);
}

/* Maps a result to a status; logs and records server errors. */
static enum pa_err
check_result(pa_db_t *db, PGresult *r, const char *what)
{
	const char *state;

	switch (PQresultStatus(r)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		return PA_OK;
	default:
		break;
	}
	set_result_error(db, r);
	state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (state != NULL && strcmp(state, "23505") == 0)
		return PA_ECONFLICT;
	if (PQstatus(db->conn) != CONNECTION_OK) {
		pa_log_warn("lost the PostgreSQL connection during %s: %s", what, db->errmsg);
		disconnect(db);
	} else {
		pa_log_error("%s failed: %s", what, db->errmsg);
	}
	return PA_EDB;
}

enum pa_err
pa_db_exec(pa_db_t *db, pa_arena_t *a, enum pa_stmt id, const char *const *params,
    pa_db_res_t **out)
{
	const struct stmt *st = &stmts[id];
	PGresult *r = NULL;
	enum pa_err rv;

	*out = NULL;
	db->unknown = false;
	if (db->in_tx && db->conn == NULL)	/* lost mid-transaction: no silent new one */
		return PA_EDB;
	for (int attempt = 0; attempt < 2; attempt++) {
		bool was_connected = db->conn != NULL;

		if ((rv = pa_db_connect(db)) != PA_OK)
			return rv;
		r = PQexecPrepared(db->conn, st->name, st->nparams, params, NULL, NULL, 0);
		rv = check_result(db, r, st->name);
		/* check_result drops a connection that broke: the answer is lost. */
		db->unknown = rv == PA_EDB && db->conn == NULL;
		if (rv == PA_OK)
			break;
		PQclear(r);
		r = NULL;
		/* A connection that died while idle: retry once on a fresh one. */
		if (rv != PA_EDB || db->conn != NULL || !was_connected || !st->idempotent ||
		    db->in_tx)
			return rv;
	}
	if (r == NULL)
		return PA_EDB;
	if (pa_arena_cleanup(a, res_cleanup, r) != 0)
		return PA_ENOMEM;
	*out = (pa_db_res_t *)r;
	return PA_OK;
}

enum pa_err
pa_db_query(pa_db_t *db, const char *sql, int nparams, const char *const *params,
    pa_db_res_t **out)
{
	PGresult *r;
	enum pa_err rv;

	if (out != NULL)
		*out = NULL;
	if ((rv = pa_db_connect(db)) != PA_OK)
		return rv;
	r = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if ((rv = check_result(db, r, "query")) != PA_OK || out == NULL)
		PQclear(r);
	else
		*out = (pa_db_res_t *)r;
	return rv;
}

bool
pa_db_outcome_unknown(const pa_db_t *db)
{
	return db->unknown;
}

int
pa_db_socket(pa_db_t *db)
{
	return db->conn != NULL ? PQsocket(db->conn) : -1;
}

enum pa_err
pa_db_begin(pa_db_t *db)
{
	PGresult *r;
	enum pa_err rv;

	db->in_tx = false;
	if ((rv = pa_db_connect(db)) != PA_OK)
		return rv;
	r = PQexec(db->conn, "BEGIN");
	if ((rv = check_result(db, r, "BEGIN")) == PA_OK)
		db->in_tx = true;
	PQclear(r);
	return rv;
}

enum pa_err
pa_db_commit(pa_db_t *db)
{
	PGresult *r;
	enum pa_err rv;

	if (!db->in_tx || db->conn == NULL) {
		db->in_tx = false;
		return PA_EDB;
	}
	db->in_tx = false;
	r = PQexec(db->conn, "COMMIT");
	if ((rv = check_result(db, r, "COMMIT")) == PA_OK && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		/* COMMIT of a failed transaction answers ROLLBACK. */
		pa_log_error("the transaction was rolled back");
		rv = PA_EDB;
	}
	PQclear(r);
	return rv;
}

void
pa_db_rollback(pa_db_t *db)
{
	db->in_tx = false;
	if (db->conn != NULL && PQtransactionStatus(db->conn) != PQTRANS_IDLE)
		PQclear(PQexec(db->conn, "ROLLBACK"));
}

enum pa_err
pa_db_script(pa_db_t *db, const char *sql)
{
	PGresult *r;
	enum pa_err rv;

	if ((rv = pa_db_connect(db)) != PA_OK)
		return rv;
	r = PQexec(db->conn, sql);
	rv = check_result(db, r, "script");
	PQclear(r);
	return rv;
}

int
pa_db_rows(const pa_db_res_t *r)
{
	return PQntuples(RES(r));
}

const char *
pa_db_value(const pa_db_res_t *r, int row, int col)
{
	if (PQgetisnull(RES(r), row, col))
		return NULL;
	return PQgetvalue(RES(r), row, col);
}

bool
pa_db_bool(const pa_db_res_t *r, int row, int col)
{
	const char *v = pa_db_value(r, row, col);

	return v != NULL && v[0] == 't';
}

long
pa_db_affected(const pa_db_res_t *r)
{
	return strtol(PQcmdTuples(RES(r)), NULL, 10);
}

void
pa_db_res_free(pa_db_res_t *r)
{
	PQclear(RES(r));
}
