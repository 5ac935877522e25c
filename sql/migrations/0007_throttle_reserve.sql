-- 0007: bearer-flavour Microsoft flows are bound to a browser too, and
-- sign-in throttling reserves the attempt before the password is
-- verified, in one call, so that a burst of simultaneous sign-ins gets no more
-- guesses than the limit (a check followed by a separate count let every
-- request in flight through).
--
-- Apply with `pbx-authctl migrate`, or by hand with
--   psql -v ON_ERROR_STOP=1 --single-transaction -f 0007_throttle_reserve.sql

-- Reserves one sign-in attempt on the address key and the account key (a NULL
-- key is not limited).  Both rows are locked in key order; if either is
-- blocked, nothing is counted and retry_after is the seconds left.
-- Otherwise the attempt counts on both keys (fixed windows from the first
-- failure; an expired window or block starts over), a key that reaches its
-- limit is blocked, and ip_blocked / account_blocked say that this attempt
-- blocked it.  A successful sign-in gives the address's count back
-- (throttle_release) and deletes the account's row.
CREATE FUNCTION throttle_reserve(ip_key text, ip_limit integer, ip_window integer,
    ip_block integer, account_key text, account_limit integer, account_window integer,
    account_block integer, OUT retry_after integer, OUT ip_blocked boolean,
    OUT account_blocked boolean)
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    ip_blocked := false;
    account_blocked := false;
    INSERT INTO throttle (key, failures, window_start)
        SELECT k, 0, now() FROM unnest(ARRAY[ip_key, account_key]) AS k
        WHERE k IS NOT NULL ORDER BY k
        ON CONFLICT (key) DO NOTHING;
    SELECT max(ceil(extract(epoch FROM l.blocked_until - now())))::integer
        INTO retry_after
        FROM (SELECT blocked_until FROM throttle WHERE key IN (ip_key, account_key)
              ORDER BY key FOR UPDATE) l
        WHERE l.blocked_until > now();
    IF retry_after IS NOT NULL THEN
        -- a row that holds no failure is the same as none (and leaves none)
        DELETE FROM throttle WHERE key IN (ip_key, account_key) AND failures = 0
            AND blocked_until IS NULL;
        RETURN;
    END IF;
    IF ip_key IS NOT NULL THEN
        UPDATE throttle SET
            failures = CASE WHEN window_start <= now() - ip_window * interval '1 second'
                OR blocked_until IS NOT NULL THEN 1 ELSE failures + 1 END,
            window_start = CASE WHEN window_start <= now() - ip_window * interval '1 second'
                OR blocked_until IS NOT NULL THEN now() ELSE window_start END,
            blocked_until = NULL
            WHERE key = ip_key RETURNING failures INTO n;
        IF n >= ip_limit THEN
            UPDATE throttle SET blocked_until = now() + ip_block * interval '1 second'
                WHERE key = ip_key;
            ip_blocked := true;
        END IF;
    END IF;
    IF account_key IS NOT NULL THEN
        UPDATE throttle SET
            failures = CASE WHEN window_start <= now() - account_window * interval '1 second'
                OR blocked_until IS NOT NULL THEN 1 ELSE failures + 1 END,
            window_start = CASE WHEN window_start <= now() - account_window * interval '1 second'
                OR blocked_until IS NOT NULL THEN now() ELSE window_start END,
            blocked_until = NULL
            WHERE key = account_key RETURNING failures INTO n;
        IF n >= account_limit THEN
            UPDATE throttle SET blocked_until = now() + account_block * interval '1 second'
                WHERE key = account_key;
            account_blocked := true;
        END IF;
    END IF;
END
$$;

-- Gives back the attempt a successful sign-in reserved on key: one failure
-- fewer, and no block unless the failures left still reach the limit; a row
-- left without failures goes (as if the attempt had never been reserved).
CREATE FUNCTION throttle_release(release_key text, release_limit integer) RETURNS void
LANGUAGE sql AS $$
    UPDATE throttle SET failures = greatest(failures - 1, 0),
        blocked_until = CASE WHEN failures - 1 < release_limit THEN NULL ELSE blocked_until END
        WHERE key = release_key;
    DELETE FROM throttle WHERE key = release_key AND failures = 0 AND blocked_until IS NULL;
$$;

-- Every Microsoft flow is bound to the browser that starts it (RFC 9700
-- section 4.7).  A cookie flow is bound when it is created; a bearer flow
-- when a browser opens the pbx-auth start URL that sign_in/microsoft answers,
-- so its browser_hash is NULL until then.
ALTER TABLE auth_flows DROP CONSTRAINT auth_flows_oidc_browser;
ALTER TABLE auth_flows ADD CONSTRAINT auth_flows_oidc_browser CHECK (
    kind <> 'oidc' OR flavour IS DISTINCT FROM 'cookie' OR browser_hash IS NOT NULL);

INSERT INTO schema_migrations (version, name) VALUES (7, '0007_throttle_reserve.sql');
