-- 0002: users, sessions and their tokens, sign-in flows, throttling, audit.
--
-- Apply with `pbx-authctl migrate`, or by hand with
--   psql -v ON_ERROR_STOP=1 --single-transaction -f 0002_users_sessions.sql
--
-- Secrets are never stored: tokens as their SHA-256 (bytea, 32 bytes),
-- passwords as libxcrypt hashes.

-- Tenant users, and system-level accounts (tenant_id NULL).  Usernames are
-- unique per tenant, compared case-insensitively; API.md "Field rules".
CREATE TABLE users (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id             bigint REFERENCES tenants (id) ON DELETE CASCADE,
    username              text NOT NULL
                          CHECK (username ~ '^[A-Za-z0-9_''-]([A-Za-z0-9_.''-]{0,62}[A-Za-z0-9_''-])?$'),
    email                 text CHECK (length(email) BETWEEN 3 AND 254),
    password_hash         text,                 -- libxcrypt; NULL: no password sign-in
    role                  text NOT NULL CHECK (role IN ('SystemAdmin', 'Dealer', 'Admin',
                              'StandardUser', 'StandardInternationalUser', 'QueueManager')),
    enabled               boolean NOT NULL DEFAULT true,
    two_factor            boolean NOT NULL DEFAULT false,
    password_force_reset  boolean NOT NULL DEFAULT false,
    -- the user has proved knowledge of the current password (signed in with it)
    password_verified     boolean NOT NULL DEFAULT false,
    last_sign_in_at       timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    -- System roles belong to system-level accounts, tenant roles to tenant users.
    CONSTRAINT users_role_scope CHECK ((tenant_id IS NULL) = (role IN ('SystemAdmin', 'Dealer'))),
    -- admin, system, administrator, root: the system administrator's names only.
    CONSTRAINT users_reserved_names CHECK (lower(username) NOT IN
        ('admin', 'system', 'administrator', 'root') OR (tenant_id IS NULL AND role = 'SystemAdmin'))
);
CREATE UNIQUE INDEX users_tenant_username_key ON users (tenant_id, lower(username))
    WHERE tenant_id IS NOT NULL;
CREATE UNIQUE INDEX users_system_username_key ON users (lower(username))
    WHERE tenant_id IS NULL;

-- A signed-in session.  Bearer sessions hold an access and a refresh token;
-- cookie sessions hold the cookie's hash in refresh_hash and derive their
-- access tokens from the cookie (access_gen counts them).  Rotation replaces
-- both hashes in one UPDATE; spent refresh tokens go to spent_refresh_tokens.
CREATE TABLE sessions (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id               bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    flavour               text NOT NULL CHECK (flavour IN ('bearer', 'cookie')),
    access_hash           bytea NOT NULL UNIQUE,
    access_expires_at     timestamptz NOT NULL,
    access_gen            integer NOT NULL DEFAULT 0,
    refresh_hash          bytea NOT NULL UNIQUE,
    refresh_expires_at    timestamptz NOT NULL,
    client_addr           text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    refreshed_at          timestamptz,
    revoked_at            timestamptz,
    revoke_reason         text
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expiry_idx ON sessions (refresh_expires_at);

-- Refresh tokens already rotated away: a second use within the grace period
-- is refused quietly, later it revokes the session (reuse detection).
CREATE TABLE spent_refresh_tokens (
    token_hash            bytea PRIMARY KEY,
    session_id            bigint NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    spent_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX spent_refresh_tokens_session_idx ON spent_refresh_tokens (session_id);

-- One-time flows: the two-factor step after a password sign-in (and later the
-- password reset and OpenID Connect flows).
CREATE TABLE auth_flows (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                  text NOT NULL CHECK (kind IN ('two_factor')),
    token_hash            bytea NOT NULL UNIQUE,
    user_id               bigint REFERENCES users (id) ON DELETE CASCADE,
    flavour               text NOT NULL CHECK (flavour IN ('bearer', 'cookie')),
    client_addr           text,
    attempts              integer NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    expires_at            timestamptz NOT NULL,
    spent_at              timestamptz
);
CREATE INDEX auth_flows_expiry_idx ON auth_flows (expires_at);

-- Failed sign-in counters, per client address ('ip <addr>') and per account
-- ('account <lower(domain)> <lower(username)>'; domain '' for system
-- accounts).  Fixed windows starting at the first failure.
CREATE TABLE throttle (
    key                   text PRIMARY KEY,
    failures              integer NOT NULL,
    window_start          timestamptz NOT NULL,
    blocked_until         timestamptz
);

-- Who signed in, failed, signed out, was locked out.  Names are copied so the
-- trail outlives deleted users and tenants.  Never a password or a token.
CREATE TABLE audit_log (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                    timestamptz NOT NULL DEFAULT now(),
    tenant_domain         text,                 -- NULL: system-level
    username              text,
    user_id               bigint,
    client_addr           text,
    event                 text NOT NULL,        -- sign_in, sign_out, refresh_reuse, lockout, ...
    outcome               text NOT NULL,        -- success, failure, blocked, ...
    detail                text
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_domain_idx ON audit_log (lower(tenant_domain), at);

INSERT INTO schema_migrations (version, name) VALUES (2, '0002_users_sessions.sql');
