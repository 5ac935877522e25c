-- 0004: Microsoft 365 sign-in: tenant settings, account binding, OpenID
-- Connect flows.
--
-- Apply with `pbx-authctl migrate`, or by hand with
--   psql -v ON_ERROR_STOP=1 --single-transaction -f 0004_ms365.sql

-- The application registered in the tenant's directory.  Its credential is a
-- client secret or a certificate and private key, each in a file readable by
-- pbx-authd only: the database holds the paths, never the secrets.
ALTER TABLE tenants
    ADD COLUMN ms365_application_id      text,
    ADD COLUMN ms365_client_secret_file  text,
    ADD COLUMN ms365_certificate_file    text,
    ADD COLUMN ms365_private_key_file    text,
    ADD CONSTRAINT tenants_ms365_credential CHECK (
        (ms365_certificate_file IS NULL) = (ms365_private_key_file IS NULL)
        AND NOT (ms365_client_secret_file IS NOT NULL AND ms365_certificate_file IS NOT NULL));

-- A user's Microsoft account: the object id (oid) once known, and a user
-- principal name an operator bound, matched on the first sign-in.
ALTER TABLE users
    ADD COLUMN ms365_oid  text,
    ADD COLUMN ms365_upn  text CHECK (length(ms365_upn) BETWEEN 1 AND 254);
CREATE UNIQUE INDEX users_ms365_oid_key ON users (tenant_id, lower(ms365_oid))
    WHERE ms365_oid IS NOT NULL;
CREATE UNIQUE INDEX users_ms365_upn_key ON users (tenant_id, lower(ms365_upn))
    WHERE ms365_upn IS NOT NULL;

-- OpenID Connect flows: token_hash is the SHA-256 of `state`; the nonce and
-- the PKCE verifier are sent to Microsoft later, so they are kept as they are
-- until the flow is spent.  A cookie flow is bound to the browser that
-- started it (RFC 9700 section 4.7): browser_hash is the SHA-256 of the
-- random value set in that browser's cookie, which the callback must present.
ALTER TABLE auth_flows DROP CONSTRAINT auth_flows_kind_check;
ALTER TABLE auth_flows ADD CONSTRAINT auth_flows_kind_check
    CHECK (kind IN ('two_factor', 'password_reset', 'oidc'));
ALTER TABLE auth_flows
    ADD COLUMN tenant_id      bigint REFERENCES tenants (id) ON DELETE CASCADE,
    ADD COLUMN nonce          text,
    ADD COLUMN pkce_verifier  text,
    ADD COLUMN destination    text,
    ADD COLUMN browser_hash   bytea CHECK (octet_length(browser_hash) = 32),
    ADD CONSTRAINT auth_flows_oidc_browser CHECK (
        kind <> 'oidc' OR (flavour IS NOT DISTINCT FROM 'cookie') = (browser_hash IS NOT NULL));

INSERT INTO schema_migrations (version, name) VALUES (4, '0004_ms365.sql');
