-- 0001: migration bookkeeping, system settings, tenants.
--
-- Apply with `pbx-authctl migrate`, or by hand with
--   psql -v ON_ERROR_STOP=1 --single-transaction -f 0001_init.sql
-- The file records itself in schema_migrations; `pbx-authctl migrate` adds
-- the checksum of a file that was applied by hand the next time it runs.

CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text,                       -- SHA-256 of the file, hex
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- Exactly one row: the PBX's system metadata (GET /api/info).
CREATE TABLE system_settings (
    id                    boolean PRIMARY KEY DEFAULT true CHECK (id),
    web_domain            text,
    private_ipv4          text,
    public_ipv4           text,
    enable_ipv6           boolean NOT NULL DEFAULT false,
    private_ipv6          text,
    public_ipv6           text,
    primary_dns_server    text,
    secondary_dns_server  text,
    enable_dataflow       boolean NOT NULL DEFAULT false,
    public_base_url       text,                 -- where /api/ is reachable from browsers
    updated_at            timestamptz NOT NULL DEFAULT now()
);
INSERT INTO system_settings (id) VALUES (true);

CREATE TABLE tenants (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain                text NOT NULL CHECK (length(domain) BETWEEN 1 AND 280),
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 1024),
    website               text CHECK (length(website) <= 255),
    avatar_url            text,
    enabled               boolean NOT NULL DEFAULT true,
    -- URL prefixes a sign-in flow may redirect to (callback_url allow-list)
    callback_prefixes     text[] NOT NULL DEFAULT '{}',
    ms365_enabled         boolean NOT NULL DEFAULT false,
    ms365_directory_id    text,
    ms365_national_cloud  text NOT NULL DEFAULT 'GLOBAL'
                          CHECK (ms365_national_cloud IN ('GLOBAL', 'CHINA')),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
-- SIP domains are compared case-insensitively.
CREATE UNIQUE INDEX tenants_domain_key ON tenants (lower(domain));

-- pbx-authd workers cache system and tenant metadata and LISTEN on the
-- channel pbx_auth_cache; any change, by pbx-authctl or by hand, reaches them.
-- Payload 'tenant <lower(domain)>' drops one tenant's entry, 'all' everything.
CREATE FUNCTION pbx_auth_notify_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('pbx_auth_cache', 'tenant ' || lower(OLD.domain));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('pbx_auth_cache', 'tenant ' || lower(NEW.domain));
    END IF;
    RETURN NULL;
END;
$$;
CREATE FUNCTION pbx_auth_notify_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pbx_auth_cache', 'all');
    RETURN NULL;
END;
$$;
CREATE TRIGGER tenants_notify_cache
    AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION pbx_auth_notify_tenant();
CREATE TRIGGER tenants_notify_cache_truncate
    AFTER TRUNCATE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION pbx_auth_notify_all();
CREATE TRIGGER system_settings_notify_cache
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON system_settings
    FOR EACH STATEMENT EXECUTE FUNCTION pbx_auth_notify_all();

INSERT INTO schema_migrations (version, name) VALUES (1, '0001_init.sql');
