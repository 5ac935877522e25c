-- 0010: the PBX gate (GET /api/auth/verify) and RFC 7662 introspection.
--
-- Apply with `pbx-authctl migrate`, or by hand with
--   psql -v ON_ERROR_STOP=1 --single-transaction -f 0010_gate.sql
-- connected as the owner role; the runtime role is named as for 0005
-- (the setting pbx_auth.runtime_role, default pbx_auth_runtime).
--
-- Workers keep verified access tokens (their SHA-256) in memory until they
-- expire.  These triggers tell them, on the channel pbx_auth_cache they
-- already LISTEN on, when a cached token may no longer be valid, whoever
-- changed the row (pbx-authd, pbx-authctl or a DBA's SQL):
--   'session <id>'  the session was revoked, rotated or deleted
--   'user <id>'     the account was disabled, deleted or changed
--   'all'           a TRUNCATE: drop everything
-- Tenants already notify 'tenant <lower(domain)>' on every change (0001).

CREATE FUNCTION pbx_auth.pbx_auth_notify_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.revoked_at IS DISTINCT FROM OLD.revoked_at
        OR NEW.access_hash IS DISTINCT FROM OLD.access_hash
        OR NEW.refresh_hash IS DISTINCT FROM OLD.refresh_hash
        OR NEW.access_expires_at < OLD.access_expires_at
        OR NEW.refresh_expires_at < OLD.refresh_expires_at
        OR NEW.user_id IS DISTINCT FROM OLD.user_id THEN
        PERFORM pg_notify('pbx_auth_cache', 'session ' || OLD.id);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER sessions_notify_cache
    AFTER UPDATE OR DELETE ON pbx_auth.sessions
    FOR EACH ROW EXECUTE FUNCTION pbx_auth.pbx_auth_notify_session();
CREATE TRIGGER sessions_notify_cache_truncate
    AFTER TRUNCATE ON pbx_auth.sessions
    FOR EACH STATEMENT EXECUTE FUNCTION pbx_auth.pbx_auth_notify_all();

-- Any change of what the gate reports or checks: enabled, role, names,
-- password flags, the password itself.  last_sign_in_at alone is not one.
CREATE FUNCTION pbx_auth.pbx_auth_notify_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.enabled IS DISTINCT FROM OLD.enabled
        OR NEW.role IS DISTINCT FROM OLD.role
        OR NEW.username IS DISTINCT FROM OLD.username
        OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id
        OR NEW.password_hash IS DISTINCT FROM OLD.password_hash
        OR NEW.password_force_reset IS DISTINCT FROM OLD.password_force_reset THEN
        PERFORM pg_notify('pbx_auth_cache', 'user ' || OLD.id);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER users_notify_cache
    AFTER UPDATE OR DELETE ON pbx_auth.users
    FOR EACH ROW EXECUTE FUNCTION pbx_auth.pbx_auth_notify_user();
CREATE TRIGGER users_notify_cache_truncate
    AFTER TRUNCATE ON pbx_auth.users
    FOR EACH STATEMENT EXECUTE FUNCTION pbx_auth.pbx_auth_notify_all();

-- Introspection clients (RFC 7662 section 2.1): services outside this
-- nginx that ask whether a token is active.  The secret is 256 random bits
-- shown once by `pbx-authctl client add`; only its SHA-256 is kept (a slow
-- password hash adds nothing to a secret that cannot be guessed).
CREATE TABLE pbx_auth.introspection_clients (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                  text NOT NULL UNIQUE
                          CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    secret_hash           bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at            timestamptz NOT NULL DEFAULT now()
);

-- pbx-authd only reads a client's secret hash; pbx-authctl (the owner) manages them.
DO $$
DECLARE
    r text := coalesce(nullif(current_setting('pbx_auth.runtime_role', true), ''),
        'pbx_auth_runtime');
BEGIN
    EXECUTE format('GRANT SELECT (name, secret_hash) ON pbx_auth.introspection_clients TO %I', r);
END;
$$;

INSERT INTO pbx_auth.schema_migrations (version, name) VALUES (10, '0010_gate.sql');
