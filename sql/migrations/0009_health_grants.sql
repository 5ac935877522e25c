-- 0009: what the runtime role needs beyond 0005 for /api/health/ready:
-- the version and checksum of each applied migration (compared with the
-- ones the binary was built with).  Read only, and only those columns.
--
-- Apply with `pbx-authctl migrate`, or by hand with
--   psql -v ON_ERROR_STOP=1 --single-transaction -f 0009_health_grants.sql
-- connected as the owner role; the runtime role is named as for 0005
-- (the setting pbx_auth.runtime_role, default pbx_auth_runtime).

DO $$
DECLARE
    r text := coalesce(nullif(current_setting('pbx_auth.runtime_role', true), ''),
        'pbx_auth_runtime');
BEGIN
    EXECUTE format('GRANT SELECT (version, checksum) ON pbx_auth.schema_migrations TO %I', r);
END;
$$;

INSERT INTO pbx_auth.schema_migrations (version, name) VALUES (9, '0009_health_grants.sql');
