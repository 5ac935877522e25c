#!/usr/bin/perl

# pbx-authctl user delete and tenant delete: the user's sessions (and spent
# refresh tokens), flows, Microsoft 365 binding, queued mail and throttle
# count go with it, and no row anywhere points at a deleted user or tenant
# (checked with SQL); the audit trail keeps the names and gains a delete row
# naming the operator; tenant delete is refused while users exist unless
# --cascade, which asks for the domain to be typed again unless --yes.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new();
$t->start_pg;

my $OP = 'operator=' . getpwuid($>);
my $PW = 'Delete-me-12345';

sub ctl_ok {
	my (@args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, 'pbx-authctl ' . join(' ', grep { !ref } @args)) or diag($err);
	return $out;
}

sub fails {
	my ($code, $re, @args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, $code, 'pbx-authctl ' . join(' ', grep { !ref } @args) . ": exit $code");
	like($err, $re, 'pbx-authctl ' . join(' ', grep { !ref } @args) . ': message');
}

sub row { return $t->psql($_[0]) }

# Rows that point at a user or tenant that is gone (all zero when clean).
my $ORPHANS = join(' + ',
    '(SELECT count(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id))',
    '(SELECT count(*) FROM spent_refresh_tokens r WHERE NOT EXISTS'
    . ' (SELECT 1 FROM sessions s WHERE s.id = r.session_id))',
    '(SELECT count(*) FROM auth_flows f WHERE f.user_id IS NOT NULL AND NOT EXISTS'
    . ' (SELECT 1 FROM users u WHERE u.id = f.user_id))',
    '(SELECT count(*) FROM auth_flows f WHERE f.tenant_id IS NOT NULL AND NOT EXISTS'
    . ' (SELECT 1 FROM tenants t WHERE t.id = f.tenant_id))',
    '(SELECT count(*) FROM users u WHERE u.tenant_id IS NOT NULL AND NOT EXISTS'
    . ' (SELECT 1 FROM tenants t WHERE t.id = u.tenant_id))',
    '(SELECT count(*) FROM mail_outbox m WHERE m.user_id IS NOT NULL AND NOT EXISTS'
    . ' (SELECT 1 FROM users u WHERE u.id = m.user_id))');

# A user with a session, a spent refresh token, a reset flow, queued and
# sent mail, a Microsoft binding and a throttle count.
my $N = 0;
sub populate {
	my ($domain, $user) = @_;
	$N++;
	ctl_ok('user', 'add', (defined $domain ? ('--domain', $domain) : ()), $user,
	    '--email', "$user\@mail.example", { stdin => "$PW\n" });
	my $cond = "lower(username) = lower('$user') AND tenant_id "
	    . (defined $domain ? "= (SELECT id FROM tenants WHERE domain = '$domain')" : 'IS NULL');
	row(<<"SQL");
WITH u AS (SELECT id FROM users WHERE $cond),
s AS (INSERT INTO sessions (user_id, flavour, access_hash, access_expires_at, refresh_hash,
    refresh_expires_at) SELECT id, 'bearer', sha256('a$N'::bytea), now() + interval '1 hour',
    sha256('r$N'::bytea), now() + interval '1 day' FROM u RETURNING id)
INSERT INTO spent_refresh_tokens (token_hash, session_id) SELECT sha256('x$N'::bytea), id FROM s;
INSERT INTO auth_flows (kind, token_hash, user_id, expires_at)
    SELECT 'password_reset', sha256('f$N'::bytea), id, now() + interval '1 hour'
    FROM users WHERE $cond;
INSERT INTO mail_outbox (kind, user_id, recipient, subject, body, status)
    SELECT 'password_reset', id, '$user\@mail.example', 'reset', 'link', s
    FROM users, (VALUES ('queued'), ('sent')) v(s) WHERE $cond;
INSERT INTO throttle (key, failures, window_start)
    VALUES ('account ' || lower(coalesce('${\ ($domain // '')}', '')) || ' ' || lower('$user'), 2, now());
SQL
	ctl_ok('user', 'bind-ms365', '--domain', $domain, $user, "$user\@contoso.example")
	    if defined $domain;
}

ctl_ok('tenant', 'add', 'acme.example', '--name', 'Acme');
ctl_ok('tenant', 'add', 'empty.example', '--name', 'Empty');
populate('acme.example', 'alice');
populate('acme.example', 'bob');
populate(undef, 'sysop');
is(row("SELECT $ORPHANS"), 0, 'before: no orphans');

###############################################################################
# user delete

like(ctl_ok('user', 'delete', '--domain', 'acme.example', 'ALICE'),
    qr/^deleted user ALICE of tenant acme\.example \(deleted with 1 active session\)$/,
    'user delete (case-insensitive name)');
is(row("SELECT count(*) FROM users WHERE username = 'alice'"), 0, 'the user is gone');
is(row("SELECT $ORPHANS"), 0, 'user delete: no orphan rows');
is(row("SELECT count(*) FROM sessions"), 2, 'user delete: only the others\' sessions stay');
is(row("SELECT count(*) FROM auth_flows"), 2, 'user delete: the flows went');
is(row("SELECT count(*) FROM mail_outbox WHERE recipient = 'alice\@mail.example'"
    . " AND status = 'queued'"), 0, 'user delete: queued mail to the user went');
is(row("SELECT count(*) FROM mail_outbox WHERE recipient = 'alice\@mail.example'"
    . " AND status = 'sent' AND user_id IS NULL"), 1, 'user delete: sent mail stays, unlinked');
is(row("SELECT count(*) FROM throttle WHERE key = 'account acme.example alice'"), 0,
    'user delete: the throttle count went');
is(row("SELECT count(*) FROM users WHERE lower(ms365_upn) = 'alice\@contoso.example'"), 0,
    'user delete: the binding went');
is(row("SELECT count(*) FROM audit_log WHERE username = 'alice' AND event = 'user_add'"), 1,
    'user delete: earlier audit rows keep the name');
is(row("SELECT tenant_domain || '|' || username || '|' || detail || '|' || operator"
    . " FROM audit_log WHERE event = 'user_delete'"),
    "acme.example|alice|role: StandardUser -> -, email: alice\@mail.example -> -;"
    . " deleted with 1 active session|$OP", 'user delete: audit row');
fails(1, qr/no such user 'alice' in tenant 'acme.example'/, 'user', 'delete', '--domain',
    'acme.example', 'alice');

ctl_ok('user', 'delete', 'sysop');
is(row("SELECT count(*) FROM users WHERE tenant_id IS NULL"), 0, 'system-level user deleted');
is(row("SELECT $ORPHANS"), 0, 'system-level delete: no orphans');
fails(2, qr/usage/, 'user', 'delete');

###############################################################################
# tenant delete

ctl_ok('tenant', 'delete', 'empty.example');
is(row("SELECT count(*) FROM tenants WHERE domain = 'empty.example'"), 0,
    'tenant without users: deleted without --cascade');
is(row("SELECT detail || '|' || operator FROM audit_log WHERE event = 'tenant_delete'"),
    "name: Empty -> -; deleted with 0 users|$OP", 'tenant delete: audit row');

fails(1, qr/tenant 'acme.example' has 1 user: delete them first, or give --cascade/,
    'tenant', 'delete', 'acme.example');
fails(1, qr/that is not 'acme\.example': nothing deleted/, 'tenant', 'delete',
    'acme.example', '--cascade', { stdin => "other.example\n" });
fails(1, qr/not confirmed/, 'tenant', 'delete', 'acme.example', '--cascade', { stdin => '' });
is(row("SELECT count(*) FROM tenants WHERE domain = 'acme.example'"), 1,
    'not confirmed: the tenant stays');
my ($rc, $out, $err) = $t->ctl('tenant', 'delete', 'acme.example', '--cascade',
    { stdin => "ACME.example\n" });
is($rc, 0, 'tenant delete --cascade, confirmed by typing the domain again') or diag($err);
like($err, qr/Type the domain again/, 'the question is asked on stderr');
is($out, "deleted tenant acme.example (deleted with 1 user)\n", 'tenant delete --cascade: output');
is(row("SELECT count(*) FROM users"), 0, 'tenant delete --cascade: its users went');
is(row("SELECT count(*) FROM sessions") + row("SELECT count(*) FROM auth_flows"), 0,
    'tenant delete --cascade: their sessions and flows went');
is(row("SELECT count(*) FROM mail_outbox WHERE status = 'queued'"), 0,
    'tenant delete --cascade: their queued mail went');
is(row("SELECT count(*) FROM throttle"), 0, 'tenant delete --cascade: throttle counts went');
is(row("SELECT $ORPHANS"), 0, 'tenant delete --cascade: no orphan rows');

ctl_ok('tenant', 'add', 'again.example', '--name', 'Again');
ctl_ok('user', 'add', '--domain', 'again.example', 'carol', { stdin => "$PW\n" });
ctl_ok('tenant', 'delete', 'again.example', '--cascade', '--yes', { stdin => '' });
is(row("SELECT count(*) FROM tenants"), 0, 'tenant delete --cascade --yes: no question');
is(row("SELECT count(*) FROM audit_log WHERE event = 'tenant_delete'"), 3,
    'one tenant_delete row per deleted tenant');
fails(1, qr/no such tenant 'nope.example'/, 'tenant', 'delete', 'nope.example');
fails(2, qr/usage|needs one DOMAIN/, 'tenant', 'delete');

$t->done_testing;
