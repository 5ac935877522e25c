-- 0008: the id of the request that queued a message (nginx's $request_id),
-- so that the mailer's lines about it can be tied to that request.
--
-- Apply with `pbx-authctl migrate`, or by hand with
--   psql -v ON_ERROR_STOP=1 --single-transaction -f 0008_request_id.sql

ALTER TABLE mail_outbox ADD COLUMN request_id text;

INSERT INTO schema_migrations (version, name) VALUES (8, '0008_request_id.sql');
