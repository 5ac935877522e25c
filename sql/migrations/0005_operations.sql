-- 0005: the operator's and the DBA's side: the schema pbx_auth, the runtime
-- role's privileges, and who ran each pbx-authctl change.
--
-- Apply with `pbx-authctl migrate`, or by hand with
--   psql -v ON_ERROR_STOP=1 --single-transaction -f 0005_operations.sql
-- connected as the owner role (the one that owns the tables: it ran the
-- earlier migrations).  The runtime role, the one pbx-authd connects as, is
-- pbx_auth_runtime unless the setting pbx_auth.runtime_role names another:
--   PGOPTIONS='-c pbx_auth.runtime_role=pbxauthd' pbx-authctl migrate
--   psql ... -c "SET pbx_auth.runtime_role = 'pbxauthd'" -f 0005_operations.sql
-- A missing runtime role is created NOLOGIN (a DBA then grants it to the
-- login role pbx-authd uses, or makes it LOGIN); that needs CREATEROLE,
-- otherwise create the role first.  Running the grants again changes
-- nothing: they are the whole set, revoked and granted in one transaction.

-- The service's tables live in their own schema, so that the service can
-- share a database with the rest of the PBX.  pbx-authctl migrate creates
-- the schema before 0001 on a new database; here everything still in
-- public (databases migrated before 0005, or by hand) moves over, with its
-- indexes, identity sequences, constraints and triggers.
DO $$
DECLARE
    t text;
BEGIN
    -- (not CREATE SCHEMA IF NOT EXISTS: that needs CREATE on the database
    -- even when a DBA created the schema for the owner beforehand)
    IF to_regnamespace('pbx_auth') IS NULL THEN
        CREATE SCHEMA pbx_auth;
    END IF;
    FOREACH t IN ARRAY ARRAY['schema_migrations', 'system_settings', 'tenants', 'users',
        'sessions', 'spent_refresh_tokens', 'auth_flows', 'throttle', 'audit_log',
        'mail_outbox'] LOOP
        IF to_regclass('public.' || t) IS NOT NULL
            AND to_regclass('pbx_auth.' || t) IS NULL THEN
            EXECUTE format('ALTER TABLE public.%I SET SCHEMA pbx_auth', t);
        END IF;
    END LOOP;
    FOREACH t IN ARRAY ARRAY['pbx_auth_notify_tenant', 'pbx_auth_notify_all',
        'pbx_auth_notify_mail'] LOOP
        IF to_regprocedure('public.' || t || '()') IS NOT NULL
            AND to_regprocedure('pbx_auth.' || t || '()') IS NULL THEN
            EXECUTE format('ALTER FUNCTION public.%I() SET SCHEMA pbx_auth', t);
        END IF;
    END LOOP;
END;
$$;

-- pbx-authctl sets pbx_auth.operator on its connection ("operator=root
-- sudo_user=alice"), so every audit row it writes names the Unix user who
-- ran it, in the same statement as the change.  The daemon leaves it NULL.
ALTER TABLE pbx_auth.audit_log ADD COLUMN operator text
    DEFAULT nullif(current_setting('pbx_auth.operator', true), '');
CREATE INDEX audit_log_event_idx ON pbx_auth.audit_log (event, at);

-- The runtime role: exactly what pbx-authd's statements (src/db.c) need.
-- No DDL (it owns nothing and has no CREATE on the schema), no TRUNCATE,
-- nothing on schema_migrations; users only read and the columns sign-in
-- and password flows write; tenants and system settings read only.  Foreign
-- keys cascade as the tables' owner, so deleting a session needs nothing on
-- spent_refresh_tokens.
DO $$
DECLARE
    r text := coalesce(nullif(current_setting('pbx_auth.runtime_role', true), ''),
        'pbx_auth_runtime');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    END IF;
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA pbx_auth FROM %I', r);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA pbx_auth FROM %I', r);
    EXECUTE format('REVOKE CREATE ON SCHEMA pbx_auth FROM %I', r);
    EXECUTE format('GRANT USAGE ON SCHEMA pbx_auth TO %I', r);
    EXECUTE format('GRANT SELECT ON pbx_auth.system_settings, pbx_auth.tenants TO %I', r);
    EXECUTE format('GRANT SELECT, UPDATE (password_hash, password_verified,'
        ' password_force_reset, last_sign_in_at, reset_sent_at, ms365_oid, updated_at)'
        ' ON pbx_auth.users TO %I', r);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON pbx_auth.sessions,'
        ' pbx_auth.auth_flows, pbx_auth.throttle, pbx_auth.mail_outbox TO %I', r);
    EXECUTE format('GRANT SELECT, INSERT ON pbx_auth.spent_refresh_tokens TO %I', r);
    EXECUTE format('GRANT INSERT, SELECT (id, at), DELETE ON pbx_auth.audit_log TO %I', r);
END;
$$;

INSERT INTO pbx_auth.schema_migrations (version, name) VALUES (5, '0005_operations.sql');
