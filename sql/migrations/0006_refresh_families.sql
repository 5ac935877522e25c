-- 0006: refresh token families instead of one row per spent token, and the
-- retry of a rotation whose answer was lost.
--
-- Apply with `pbx-authctl migrate`, or by hand with
--   psql -v ON_ERROR_STOP=1 --single-transaction -f 0006_refresh_families.sql
--
-- Every refresh token of a bearer session starts with the same 12
-- characters (9 of its 32 random bytes), the session's refresh_family; the
-- other 23 bytes are new at each rotation.  A presented token whose family
-- is a live session's but which is not its current token is a spent one of
-- that session: reuse detection needs no row per spent token, so
-- spent_refresh_tokens gets no new rows.  It keeps the tokens spent before
-- this migration, which go with their sessions (ON DELETE CASCADE).
--
-- prev_refresh_hash is the token the last rotation spent (set again by
-- each rotation, refreshed_at its time, rotated_by the pid of the backend that
-- committed it).  A worker that lost its connection with a rotation in
-- flight (committed or not: unknown) sets prev_retryable once it reaches
-- the database again, if the successor it created is still the current
-- token; a presentation of that previous token within refresh_retry_window
-- is then a retry, not a theft.  If that token comes back unmarked while
-- the committing connection is gone (its answer may have been lost, and
-- the mark may still be on its way), the verdict waits: prev_disputed_at
-- records the first such presentation.

ALTER TABLE sessions
    ADD COLUMN refresh_family     text CHECK (length(refresh_family) = 12),
    ADD COLUMN prev_refresh_hash  bytea,
    ADD COLUMN prev_retryable     boolean NOT NULL DEFAULT false,
    ADD COLUMN prev_disputed_at   timestamptz,
    ADD COLUMN rotated_by         integer;
CREATE UNIQUE INDEX sessions_refresh_family_key ON sessions (refresh_family);

INSERT INTO schema_migrations (version, name) VALUES (6, '0006_refresh_families.sql');
