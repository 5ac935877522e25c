#!/usr/bin/perl

# Least privilege in the database: the tables live in the schema pbx_auth;
# migration 0005 grants the runtime role (pbx_auth_runtime, or the name in
# pbx_auth.runtime_role) exactly what pbx-authd's statements need, so
# connected as that role DDL, TRUNCATE, role or tenant changes and
# schema_migrations are refused while the statements the service runs work
# (the whole suite runs pbx-authd as that role; here its connections are
# seen to use it).  A database migrated before 0005 has its tables moved
# out of public.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Copy qw(copy);
use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new();
$t->start_pg;

sub row { return $t->psql($_[0]) }
sub as_rt {
	my ($sql) = @_;
	return $t->psql($sql, user => 'pbx_auth_runtime', allow_error => 1);
}

is(row("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables"
    . " WHERE schemaname = 'pbx_auth'"),
    'audit_log,auth_flows,mail_outbox,schema_migrations,sessions,spent_refresh_tokens,'
    . 'system_settings,tenants,throttle,users', 'every table is in the schema pbx_auth');
is(row("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), 0, 'none in public');
row("INSERT INTO tenants (domain, name) VALUES ('acme.example', 'Acme');"
    . " INSERT INTO users (tenant_id, username, role) SELECT id, 'bob', 'StandardUser'"
    . " FROM tenants");

###############################################################################
# refused

for my $c (
    [ 'CREATE TABLE pbx_auth.evil (id int)', 'DDL in pbx_auth' ],
    [ 'CREATE TABLE public.evil (id int)', 'DDL in public' ],
    [ 'ALTER TABLE pbx_auth.users ADD COLUMN evil int', 'ALTER TABLE' ],
    [ 'DROP TABLE pbx_auth.throttle', 'DROP TABLE' ],
    [ 'TRUNCATE pbx_auth.throttle', 'TRUNCATE throttle' ],
    [ 'TRUNCATE pbx_auth.sessions', 'TRUNCATE sessions' ],
    [ 'CREATE INDEX evil ON pbx_auth.sessions (id)', 'CREATE INDEX' ],
    [ "UPDATE pbx_auth.users SET role = 'Admin'", 'changing a role' ],
    [ 'UPDATE pbx_auth.users SET enabled = true', 'enabling a user' ],
    [ 'DELETE FROM pbx_auth.users', 'deleting users' ],
    [ "INSERT INTO pbx_auth.tenants (domain, name) VALUES ('x.example', 'x')", 'adding a tenant' ],
    [ 'UPDATE pbx_auth.tenants SET enabled = false', 'changing a tenant' ],
    [ 'UPDATE pbx_auth.system_settings SET web_domain = NULL', 'changing the system settings' ],
    [ 'SELECT * FROM pbx_auth.schema_migrations', 'reading schema_migrations beyond version and checksum' ],
    [ 'DELETE FROM pbx_auth.schema_migrations', 'deleting from schema_migrations' ],
    [ 'SELECT detail FROM pbx_auth.audit_log', 'reading the audit trail' ],
    [ 'UPDATE pbx_auth.audit_log SET detail = NULL', 'rewriting the audit trail' ],
    [ 'DELETE FROM pbx_auth.spent_refresh_tokens', 'deleting spent refresh tokens' ],
    ) {
	my ($sql, $what) = @$c;
	is(as_rt($sql), undef, "runtime role: $what refused");
	like($t->{psql_err}, qr/permission denied|must be owner/, "runtime role: $what: permission")
	    or diag($t->{psql_err});
}

###############################################################################
# allowed: what db.c's statements do

for my $c (
    [ 'SELECT count(*) FROM tenants', 'reading tenants (search_path pbx_auth)' ],
    [ 'SELECT web_domain FROM system_settings', 'reading system settings' ],
    [ "UPDATE users SET last_sign_in_at = now(), password_verified = true,"
      . " updated_at = now() WHERE username = 'bob'", 'recording a sign-in' ],
    [ "INSERT INTO sessions (user_id, flavour, access_hash, access_expires_at, refresh_hash,"
      . " refresh_expires_at) SELECT id, 'bearer', sha256('a'::bytea), now(),"
      . " sha256('r'::bytea), now() FROM users", 'a new session (identity column)' ],
    [ "INSERT INTO spent_refresh_tokens (token_hash, session_id) SELECT sha256('s'::bytea),"
      . " id FROM sessions", 'a spent refresh token' ],
    [ 'DELETE FROM sessions', 'deleting sessions (spent tokens cascade)' ],
    [ "INSERT INTO throttle (key, failures, window_start) VALUES ('ip 192.0.2.1', 1, now())",
      'counting a failure' ],
    [ "INSERT INTO audit_log (event, outcome) VALUES ('sign_in', 'failure')", 'an audit row' ],
    [ "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log"
      . " WHERE at < now() - interval '1 day')", 'the audit cleanup' ],
    [ "INSERT INTO mail_outbox (kind, recipient, subject) VALUES ('otp', 'a\@b.c', 's')",
      'queueing mail' ],
    [ 'SELECT version, checksum FROM schema_migrations', 'the readiness check (0009)' ],
    ) {
	my ($sql, $what) = @$c;
	isnt(as_rt($sql), undef, "runtime role: $what") or diag($t->{psql_err});
}

###############################################################################
# pbx-authd connects as the runtime role

$t->start_daemon;
ok($t->wait_until(sub { row("SELECT count(*) FROM pg_stat_activity"
    . " WHERE application_name LIKE 'pbx-authd%'") >= 2 }, 20), 'pbx-authd is connected');
is(row("SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity"
    . " WHERE application_name LIKE 'pbx-authd%'"), 'pbx_auth_runtime',
    'every pbx-authd connection uses the runtime role');
$t->stop_daemon;

###############################################################################
# another runtime role name; an older database moves to pbx_auth

$t->create_db('custom');
my $conf = $t->write_file('custom.conf', $t->config_text(database => $t->conninfo('custom')));
my ($rc, $out, $err) = $t->ctl('migrate', { conf => $conf,
    env => { PGOPTIONS => '-c pbx_auth.runtime_role=pbxauthd_custom' } });
is($rc, 0, 'migrate with pbx_auth.runtime_role') or diag($err);
is(row("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'pbxauthd_custom'"), 'f',
    'the named runtime role is created, NOLOGIN');
is(row_in('custom', "SELECT has_table_privilege('pbxauthd_custom', 'pbx_auth.sessions', 'INSERT'),"
    . " has_table_privilege('pbxauthd_custom', 'pbx_auth.tenants', 'INSERT'),"
    . " has_table_privilege('pbxauthd_custom', 'pbx_auth.throttle', 'TRUNCATE')"),
    't|f|f', 'the named runtime role got the grants');

$t->create_db('old');
my $old = $t->dir . '/mig_old';
mkdir $old;
copy($t->migrations_dir . "/$_", "$old/$_") or die "$_: $!"
    for map { s{.*/}{}r } grep { m{/000[1-4]_} } glob($t->migrations_dir . '/*.sql');
# as an older pbx-authctl did: no schema pbx_auth yet, every table in public
$t->psql("SET search_path = public;\n" . $t->read_file("$old/$_"), db => 'old')
    for map { s{.*/}{}r } sort glob("$old/*.sql");
row_in('old', "INSERT INTO public.tenants (domain, name) VALUES ('kept.example', 'Kept')");
$conf = $t->write_file('old.conf', $t->config_text(database => $t->conninfo('old')));
($rc, $out, $err) = $t->ctl('migrate', { conf => $conf });
is($rc, 0, 'migrating a database from before 0005') or diag($err);
like($out, qr/^applied 0005_operations\.sql$/m, '0005 applied');
is(row_in('old', "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), 0,
    'older database: nothing left in public');
is(row_in('old', 'SELECT name FROM pbx_auth.tenants'), 'Kept', 'older database: rows moved along');
($rc, $out) = $t->ctl('migrate', '--status', { conf => $conf });
is($rc, 0, 'older database: up to date afterwards');

sub row_in { my ($db, $sql) = @_; return $t->psql($sql, db => $db) }

$t->done_testing;
