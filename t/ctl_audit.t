#!/usr/bin/perl

# The audit trail of operator changes: every pbx-authctl change (tenant
# add/set/enable/disable, user add/set/passwd/bind-ms365/unbind-ms365,
# ms365 set, system set, session revoke) writes its audit row in the same
# transaction, naming the operator (the Unix user, and SUDO_USER when set)
# and what changed (old -> new, never a hash or a secret); set, enable and
# disable say what changed; `audit` filters by user, event and outcome and
# prints JSON; input errors never show PostgreSQL's wording; the mailer's
# cleanup deletes rows older than audit_keep_days.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new();
$t->write_config(audit_keep_days => 30, cleanup_interval => 1);
$t->start_pg;

my $PW = 'correct horse battery';
my $ME = getpwuid($>);
my $OP = "operator=$ME";

sub ok_ctl {
	my (@args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, 'pbx-authctl ' . join(' ', grep { !ref } @args) . ': exit 0') or diag($err);
	return $out;
}

sub row { return $t->psql($_[0]) }

# The newest audit row: event|domain|username|detail|operator
sub last_audit {
	return row("SELECT event || '|' || coalesce(tenant_domain, '-') || '|'"
	    . " || coalesce(username, '-') || '|' || coalesce(detail, '-') || '|'"
	    . " || coalesce(operator, '-') FROM audit_log ORDER BY id DESC LIMIT 1");
}

sub audit_is {
	my ($expect, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is(last_audit(), "$expect|$OP", "$name: audit row with the operator");
}

###############################################################################
# tenants

like(ok_ctl('tenant', 'add', 'acme.example', '--name', 'Acme', '--website',
    'https://acme.example'), qr/added tenant acme\.example/, 'tenant add');
audit_is('tenant_add|acme.example|-|name: - -> Acme, website: - -> https://acme.example', 'tenant add');

is(ok_ctl('tenant', 'set', 'acme.example', 'name=Acme Inc', 'website='),
    "tenant acme.example: name: Acme -> Acme Inc, website: https://acme.example -> -\n",
    'tenant set says what changed');
audit_is('tenant_set|acme.example|-|name: Acme -> Acme Inc, website: https://acme.example -> -',
    'tenant set');
is(ok_ctl('tenant', 'set', 'acme.example', 'name=Acme Inc'),
    "tenant acme.example: nothing changed\n", 'tenant set to the same value: nothing changed');
is(ok_ctl('tenant', 'disable', 'acme.example'),
    "tenant acme.example: enabled: true -> false\n", 'tenant disable says what changed');
audit_is('tenant_disable|acme.example|-|enabled: true -> false', 'tenant disable');
ok_ctl('tenant', 'enable', 'acme.example');
audit_is('tenant_enable|acme.example|-|enabled: false -> true', 'tenant enable');

###############################################################################
# users

ok_ctl('user', 'add', '--domain', 'acme.example', 'bob', '--email', 'bob@acme.example',
    { stdin => "$PW\n" });
audit_is('user_add|acme.example|bob|role: - -> StandardUser, email: - -> bob@acme.example,'
    . ' two_factor: - -> false; password set', 'user add');
is(row("SELECT user_id = (SELECT id FROM users WHERE username = 'bob') FROM audit_log"
    . " ORDER BY id DESC LIMIT 1"), 't', 'user add: the row carries the user id');

is(ok_ctl('user', 'set', '--domain', 'acme.example', 'bob', 'role=Admin', 'two_factor=on',
    'email=', 'password_force_reset=true'),
    "user bob in tenant acme.example: role: StandardUser -> Admin, two_factor: false -> true,"
    . " email: bob\@acme.example -> -, password_force_reset: false -> true\n",
    'user set says what changed, in the order given');
audit_is('user_set|acme.example|bob|role: StandardUser -> Admin, two_factor: false -> true,'
    . ' email: bob@acme.example -> -, password_force_reset: false -> true', 'user set');
ok_ctl('user', 'set', '--domain', 'acme.example', 'bob', 'enabled=false');
audit_is('user_set|acme.example|bob|enabled: true -> false', 'user set enabled=false');
ok_ctl('user', 'set', '--domain', 'acme.example', 'bob', 'enabled=true');

ok_ctl('user', 'passwd', '--domain', 'acme.example', 'bob', { stdin => "another $PW\n" });
audit_is('password_set|acme.example|bob|pbx-authctl user passwd', 'user passwd');

ok_ctl('user', 'bind-ms365', '--domain', 'acme.example', 'bob', 'bob@acme.onmicrosoft.com');
audit_is('ms365_bind|acme.example|bob|pbx-authctl user bind-ms365 upn bob@acme.onmicrosoft.com',
    'user bind-ms365');
ok_ctl('user', 'unbind-ms365', '--domain', 'acme.example', 'bob');
audit_is('ms365_unbind|acme.example|bob|pbx-authctl user unbind-ms365', 'user unbind-ms365');

ok_ctl('user', 'add', 'sysop', { stdin => "$PW\n" });
audit_is('user_add|-|sysop|role: - -> SystemAdmin, two_factor: - -> false; password set',
    'user add, system level');

###############################################################################
# sessions, ms365, system

my $sid = row("INSERT INTO sessions (user_id, flavour, access_hash, access_expires_at,"
    . " refresh_hash, refresh_expires_at) SELECT id, 'bearer', sha256('a1'::bytea),"
    . " now() + interval '1 hour', sha256('r1'::bytea), now() + interval '1 day'"
    . " FROM users WHERE username = 'sysop' RETURNING id");
ok_ctl('session', 'revoke', $sid);
audit_is("session_revoke|-|sysop|session $sid", 'session revoke');

my $secret = $t->write_file('secret.txt', "not-a-real-secret-value\n");
chmod 0600, $secret;
my $APP = '11111111-2222-3333-4444-555555555555';
like(ok_ctl('ms365', 'set', 'acme.example', '--directory-id', 'acme.onmicrosoft.com',
    '--application-id', $APP, '--client-secret-file', $secret, '--enable'),
    qr/^changed: ms365_enabled: false -> true, ms365_directory_id: - -> acme\.onmicrosoft\.com,/m,
    'ms365 set says what changed');
audit_is("ms365_set|acme.example|-|ms365_enabled: false -> true, ms365_directory_id: - ->"
    . " acme.onmicrosoft.com, ms365_application_id: - -> $APP, ms365_client_secret_file: - ->"
    . " $secret", 'ms365 set (the file path, never its contents)');

is(ok_ctl('system', 'set', 'web_domain=pbx.example.com', 'enable_ipv6=true'),
    "system: web_domain: - -> pbx.example.com, enable_ipv6: false -> true\n",
    'system set says what changed');
audit_is('system_set|-|-|web_domain: - -> pbx.example.com, enable_ipv6: false -> true',
    'system set');

###############################################################################
# the operator: SUDO_USER, odd characters; a refused change leaves no row

my ($rc) = $t->ctl('system', 'set', 'web_domain=sudo.example.com',
    { env => { SUDO_USER => 'alice' } });
is($rc, 0, 'system set under sudo');
is(row('SELECT operator FROM audit_log ORDER BY id DESC LIMIT 1'), "$OP sudo_user=alice",
    'SUDO_USER is named too');
$t->ctl('system', 'set', 'web_domain=odd.example.com',
    { env => { SUDO_USER => "al ice;\e[31m" } });
is(row('SELECT operator FROM audit_log ORDER BY id DESC LIMIT 1'),
    "$OP sudo_user=al?ice???31m", 'SUDO_USER: odd characters replaced');

my $n = row('SELECT count(*) FROM audit_log');
($rc) = $t->ctl('user', 'set', '--domain', 'acme.example', 'bob', 'role=SystemAdmin');
isnt($rc, 0, 'a refused change fails');
is(row('SELECT count(*) FROM audit_log'), $n, 'a refused change writes no audit row');
($rc) = $t->ctl('tenant', 'add', 'acme.example', '--name', 'Again');
is($rc, 1, 'tenant add of an existing domain fails');
is(row('SELECT count(*) FROM audit_log'), $n, '... and writes no audit row');

is(row("SELECT count(*) FROM audit_log WHERE detail ~ '\\\$y\\\$|not-a-real-secret|$PW'"), 0,
    'no hash, secret or password in any audit row');
is(row("SELECT count(*) FROM audit_log WHERE operator IS NULL"), 0,
    'every row written by pbx-authctl names the operator');

###############################################################################
# pbx-authctl audit: filters, JSON, input errors

my @ev = map { (split /\t/)[4] } split /\n/, ok_ctl('audit', '--user', 'BOB');
is(join(',', @ev), 'user_add,user_set,user_set,user_set,password_set,ms365_bind,ms365_unbind',
    'audit --user (case-insensitive)');
@ev = map { (split /\t/)[2] } split /\n/, ok_ctl('audit', '--event', 'user_add');
is(join(',', @ev), 'bob,sysop', 'audit --event');
row("INSERT INTO audit_log (tenant_domain, username, event, outcome) VALUES"
    . " ('acme.example', 'bob', 'sign_in', 'failure')");
@ev = map { (split /\t/)[4] } split /\n/, ok_ctl('audit', '--outcome', 'failure');
is(join(',', @ev), 'sign_in', 'audit --outcome');
is(ok_ctl('audit', '--user', 'bob', '--event', 'sign_in', '--outcome', 'success'), '',
    'audit filters combine');

my $j = JSON::PP->new->decode(ok_ctl('audit', '--event', 'system_set', '--json'));
is(ref $j, 'ARRAY', 'audit --json: an array');
is($j->[0]{detail}, 'web_domain: - -> pbx.example.com, enable_ipv6: false -> true',
    'audit --json: detail');
is($j->[0]{operator}, $OP, 'audit --json: operator');
is($j->[0]{username}, undef, 'audit --json: null for none');
like($j->[0]{at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'audit --json: at');

for my $bad ('5x', '2026-02-30', '2026-11-28T25:00', 'yesterday') {
	my ($rc, $out, $err) = $t->ctl('audit', '--since', $bad);
	is($rc, 2, "audit --since $bad: exit 2");
	like($err, qr/--since '\Q$bad\E'/, "audit --since $bad: names the option");
	unlike($err, qr/SQLSTATE|invalid input syntax|timestamp with time zone|ERROR/,
	    "audit --since $bad: no PostgreSQL wording");
}
for my $bad (['--event', 'Sign In'], ['--outcome', "x'--"], ['--user', 'a b']) {
	my ($rc, $out, $err) = $t->ctl('audit', @$bad);
	is($rc, 2, "audit @$bad: exit 2");
}

###############################################################################
# retention: the mailer's cleanup deletes rows older than audit_keep_days

row("INSERT INTO audit_log (at, event, outcome, detail) VALUES"
    . " (now() - interval '31 days', 'sign_in', 'success', 'old'),"
    . " (now() - interval '29 days', 'sign_in', 'success', 'young')");
$t->start_daemon;
ok($t->wait_until(sub { row("SELECT count(*) FROM audit_log WHERE detail = 'old'") == 0 }, 20),
    'cleanup: the row older than audit_keep_days is gone');
is(row("SELECT count(*) FROM audit_log WHERE detail = 'young'"), 1,
    'cleanup: a younger row stays');
$t->stop_daemon;

$t->done_testing;
