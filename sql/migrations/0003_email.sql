-- 0003: the mail outbox, and the password-reset and email one-time-code flows.
--
-- Apply with `pbx-authctl migrate`, or by hand with
--   psql -v ON_ERROR_STOP=1 --single-transaction -f 0003_email.sql

-- Messages waiting for the mailer (a child of pbx-authd).  A request inserts
-- its message in the same transaction as the token the message carries; the
-- trigger below wakes the mailers.  A mailer claims a due row with
-- FOR UPDATE SKIP LOCKED, delivers it, and records the outcome in the same
-- transaction, so a mailer that dies mid-delivery leaves the row queued.
CREATE TABLE mail_outbox (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                  text NOT NULL,        -- password_reset, otp: for the operator
    user_id               bigint REFERENCES users (id) ON DELETE SET NULL,
    recipient             text NOT NULL CHECK (length(recipient) BETWEEN 3 AND 254),
    subject               text NOT NULL,        -- UTF-8, one line
    body                  text,                 -- UTF-8 plain text; NULL once sent
    status                text NOT NULL DEFAULT 'queued'
                          CHECK (status IN ('queued', 'sent', 'failed')),
    attempts              integer NOT NULL DEFAULT 0,
    next_attempt_at       timestamptz NOT NULL DEFAULT now(),
    last_error            text,                 -- the SMTP server's last reply
    created_at            timestamptz NOT NULL DEFAULT now(),
    sent_at               timestamptz
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE status = 'queued';

CREATE FUNCTION pbx_auth_notify_mail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pbx_auth_mail', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER mail_outbox_notify
    AFTER INSERT ON mail_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION pbx_auth_notify_mail();

-- Flows: password resets join the two-factor step.  A reset flow has no
-- flavour.  A two-factor flow's emailed code is stored as
-- HMAC-SHA256(key = the flow's token, code), so the hash alone cannot be
-- searched for the code without the token.
ALTER TABLE auth_flows DROP CONSTRAINT auth_flows_kind_check;
ALTER TABLE auth_flows ADD CONSTRAINT auth_flows_kind_check
    CHECK (kind IN ('two_factor', 'password_reset'));
ALTER TABLE auth_flows ALTER COLUMN flavour DROP NOT NULL;
ALTER TABLE auth_flows
    ADD COLUMN code_hash          bytea,
    ADD COLUMN code_expires_at    timestamptz,
    ADD COLUMN code_sent_at       timestamptz;
CREATE INDEX auth_flows_user_kind_idx ON auth_flows (user_id, kind);

-- When the last password-reset email of the account was queued: at most one
-- per mail_rate_interval (a conditional UPDATE of this column decides, so
-- concurrent requests cannot both send).
ALTER TABLE users ADD COLUMN reset_sent_at timestamptz;

INSERT INTO schema_migrations (version, name) VALUES (3, '0003_email.sql');
