#!/usr/bin/perl

# Throttling of POST /api/auth/sign_in, with short windows so that blocks
# expire within the test. The client address is always 127.0.0.1 here, so
# the per-account limit is observed with the per-address limit off, the
# per-address limit with the per-account limit off (the daemon is restarted
# with another configuration), and then both together.
#
# Covered: N failures -> 429 TOO_MANY_REQUESTS with Retry-After (integer
# seconds, 0 < s <= block), even with the right password; the account key is
# the lower-case domain and username, so spelling variants share one count;
# failures against unknown users and tenants count; blocked attempts are not
# counted; the block expires; a success clears the account's count (not the
# address's); the address block applies across accounts; the throttle table
# holds the keys; lockout and blocked audit rows.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);

use Test::PbxAuth;

my $ACCOUNT_N = 3;      # failures per account
my $ACCOUNT_BLOCK = 4;  # seconds
my $IP_N = 4;           # failures per address
my $IP_BLOCK = 4;

my $t = Test::PbxAuth->new(need_nginx => 1);
my %BASE = (
	password_hash_cost      => 1,
	throttle_ip_window      => 60,
	throttle_account_window => 60,
	throttle_ip_block       => $IP_BLOCK,
	throttle_account_block  => $ACCOUNT_BLOCK,
);
$t->write_config(%BASE, throttle_ip_failures => 0, throttle_account_failures => $ACCOUNT_N);
$t->start_pg->start_daemon->start_nginx;

my $JSON = JSON::PP->new->canonical->utf8;

###############################################################################
# helpers

sub ctl_ok {
	my (@args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, 'pbx-authctl ' . join(' ', grep { !ref } @args)) or diag($err);
	return $out;
}

my %PW;
sub add_user {
	my ($domain, $name, $pw) = @_;
	$PW{$name} = $pw;
	ctl_ok('user', 'add', (defined $domain ? ('--domain', $domain) : ()), $name,
	    { stdin => "$pw\n" });
}

sub sign_in {
	my ($domain, $user, $pw) = @_;
	my %b = (username => $user, password => $pw);
	$b{domain} = $domain if defined $domain;
	return $t->request('POST', '/api/auth/sign_in',
	    headers => { 'Content-Type' => 'application/json' }, body => $JSON->encode(\%b));
}

sub ok_200 {
	my ($r, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($r->{status}, 200, "$name: 200") or diag($r->{content});
	$t->has_common_headers($r, $name);
	like($r->{json}{access_token} // '', qr/^[A-Za-z0-9_-]{43}$/, "$name: tokens");
}

sub fail_401 {
	my ($r, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$t->is_error($r, 401, 'AUTHENTICATION_FAILED', $name);
}

# 429 with Retry-After: whole seconds, 0 < s <= $max. Returns the seconds.
sub blocked {
	my ($r, $max, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$t->is_error($r, 429, 'TOO_MANY_REQUESTS', $name);
	my $ra = $r->{headers}{'retry-after'};
	like($ra // '', qr/^[0-9]+$/, "$name: Retry-After is whole seconds")
	    or return 0;
	ok($ra > 0 && $ra <= $max, "$name: 0 < Retry-After ($ra) <= $max");
	return $ra;
}

# failures and whether it is blocked now, of a throttle key: "3|t", or ''.
sub throttle_row {
	my ($key) = @_;
	$key =~ s/'/''/g;
	return $t->psql("SELECT failures, coalesce(blocked_until > now(), false) "
	    . "FROM throttle WHERE key = '$key'");
}

sub audit_count {
	my ($where) = @_;
	return $t->psql("SELECT count(*) FROM audit_log WHERE $where");
}

sub restart {
	my (%conf) = @_;
	$t->stop_daemon;
	$t->psql('DELETE FROM throttle');
	$t->write_config(%BASE, %conf);
	$t->start_daemon;
}

# Sleep until $secs seconds after $since (a time()).
sub sleep_until {
	my ($since, $secs) = @_;
	my $left = $since + $secs - time;
	sleep($left) if $left > 0;
}

###############################################################################
# fixtures

ctl_ok('tenant', 'add', 't1.test', '--name', 'Tenant One');
add_user('t1.test', 'alice', 'Alice-throttle-1');
add_user('t1.test', 'bob', 'Bob-throttle-22');
add_user('t1.test', 'carol', 'Carol-throttle-3');
add_user('t1.test', 'dave', 'Dave-throttle-44');
add_user('t1.test', 'erin', 'Erin-throttle-55');
add_user(undef, 'sysop', 'Sysop-throttle-6');
my $WRONG = 'Wrong-password-0';

###############################################################################
# per account (per-address limit off)

for my $i (1 .. $ACCOUNT_N) {
	fail_401(sign_in('t1.test', 'alice', $WRONG), "alice failure $i of $ACCOUNT_N");
}
my $t_block = time;
is(throttle_row('account t1.test alice'), "$ACCOUNT_N|t",
    "alice: throttle row 'account t1.test alice' with $ACCOUNT_N failures, blocked");
is(throttle_row('ip 127.0.0.1'), '', 'per-address limit off: no ip row');

my $ra = blocked(sign_in('t1.test', 'alice', $PW{alice}), $ACCOUNT_BLOCK,
    'alice blocked, right password');
blocked(sign_in('t1.test', 'alice', $WRONG), $ACCOUNT_BLOCK, 'alice blocked, wrong password');
blocked(sign_in('T1.TEST', 'ALICE', $PW{alice}), $ACCOUNT_BLOCK,
    'alice blocked, upper-case spelling');
blocked(sign_in('t1.Test', 'Alice', $PW{alice}), $ACCOUNT_BLOCK,
    'alice blocked, mixed-case spelling');
is(throttle_row('account t1.test alice'), "$ACCOUNT_N|t",
    'blocked attempts are not counted');
is(audit_count("event = 'lockout' AND outcome = 'account' AND tenant_domain = 't1.test' "
    . "AND lower(username) = 'alice'"), 1, 'one lockout audit row (outcome account)');
cmp_ok(audit_count("event = 'sign_in' AND outcome = 'blocked' AND lower(username) = 'alice' "
    . "AND client_addr = '127.0.0.1'"), '>=', 4, 'sign_in blocked audit rows');

# other accounts are not affected
ok_200(sign_in('t1.test', 'bob', $PW{bob}), 'bob signs in while alice is blocked');

# Retry-After counts down; the block expires
sleep_until($t_block, 1.2);
my $ra2 = blocked(sign_in('t1.test', 'alice', $PW{alice}), $ACCOUNT_BLOCK,
    'alice still blocked after 1.2 s');
cmp_ok($ra2, '<=', $ACCOUNT_BLOCK - 1, 'Retry-After went down');
sleep_until($t_block, $ACCOUNT_BLOCK + 0.5);
ok_200(sign_in('t1.test', 'alice', $PW{alice}), 'alice signs in after the block');
is(throttle_row('account t1.test alice'), '', 'the success deleted the account row');

# spelling variants share one count
fail_401(sign_in('t1.test', 'Carol', $WRONG), 'Carol@t1.test failure');
fail_401(sign_in('T1.TEST', 'CAROL', $WRONG), 'CAROL@T1.TEST failure');
is(throttle_row('account t1.test carol'), '2|f', "variants counted on 'account t1.test carol'");
fail_401(sign_in('t1.TEST', 'carol', $WRONG), 'carol@t1.TEST failure');
blocked(sign_in('t1.test', 'carol', $PW{carol}), $ACCOUNT_BLOCK,
    'carol blocked after three spellings failed');

# unknown users, unknown tenants and system accounts count like any other
for my $i (1 .. $ACCOUNT_N) {
	fail_401(sign_in('t1.test', 'Ghost', $WRONG), "unknown user failure $i");
	fail_401(sign_in('Nosuch.Test', 'x-user', $WRONG), "unknown tenant failure $i");
	fail_401(sign_in(undef, 'SysOp', $WRONG), "system account failure $i");
}
blocked(sign_in('t1.test', 'ghost', $WRONG), $ACCOUNT_BLOCK, 'unknown user blocked');
blocked(sign_in('nosuch.test', 'X-User', $WRONG), $ACCOUNT_BLOCK, 'unknown tenant blocked');
blocked(sign_in(undef, 'sysop', $PW{sysop}), $ACCOUNT_BLOCK,
    'system account blocked, right password');
is(throttle_row('account t1.test ghost'), "$ACCOUNT_N|t", "key 'account t1.test ghost'");
is(throttle_row('account nosuch.test x-user'), "$ACCOUNT_N|t",
    "key 'account nosuch.test x-user'");
is(throttle_row('account  sysop'), "$ACCOUNT_N|t",
    "key 'account  sysop' (empty domain of a system account)");

# a success clears the account's count
for my $i (1 .. $ACCOUNT_N - 1) {
	fail_401(sign_in('t1.test', 'dave', $WRONG), "dave failure $i (first round)");
}
ok_200(sign_in('t1.test', 'dave', $PW{dave}), 'dave signs in below the limit');
is(throttle_row('account t1.test dave'), '', 'dave: count cleared by the success');
for my $i (1 .. $ACCOUNT_N - 1) {
	fail_401(sign_in('t1.test', 'dave', $WRONG), "dave failure $i (second round)");
}
ok_200(sign_in('t1.test', 'dave', $PW{dave}), 'dave not blocked: the success had cleared his count');

is(audit_count("event = 'lockout' AND outcome = 'account'"), 5,
    'lockout rows: alice, carol, ghost, x-user, sysop');

###############################################################################
# a failure window that ends

restart(throttle_ip_failures => 0, throttle_account_failures => $ACCOUNT_N,
    throttle_account_window => 2);
for my $i (1 .. $ACCOUNT_N - 1) {
	fail_401(sign_in('t1.test', 'erin', $WRONG), "erin failure $i");
}
sleep 2.5;
fail_401(sign_in('t1.test', 'erin', $WRONG), 'erin failure after the window');
like(throttle_row('account t1.test erin'), qr/^1\|f$/, 'a new window starts at 1 failure');
ok_200(sign_in('t1.test', 'erin', $PW{erin}), 'erin not blocked: older failures expired');

###############################################################################
# per address (per-account limit off)

restart(throttle_ip_failures => $IP_N, throttle_account_failures => 0);
my @who = ([ 't1.test', 'alice' ], [ 't1.test', 'nobody' ], [ 'other.test', 'bob' ],
    [ undef, 'sysop' ]);
for my $i (0 .. $IP_N - 1) {
	my ($d, $u) = @{$who[$i % @who]};
	fail_401(sign_in($d, $u, $WRONG), 'address failure ' . ($i + 1) . " ($u)");
}
$t_block = time;
is(throttle_row('ip 127.0.0.1'), "$IP_N|t", "key 'ip 127.0.0.1' with $IP_N failures, blocked");
is($t->psql("SELECT count(*) FROM throttle WHERE key LIKE 'account %'"), 0,
    'per-account limit off: no account rows');
blocked(sign_in('t1.test', 'bob', $PW{bob}), $IP_BLOCK,
    'address blocked: bob (no failure of his own), right password');
blocked(sign_in(undef, 'sysop', $PW{sysop}), $IP_BLOCK, 'address blocked: system account');
blocked(sign_in('t1.test', 'carol', $WRONG), $IP_BLOCK, 'address blocked: wrong password');
is(throttle_row('ip 127.0.0.1'), "$IP_N|t", 'blocked attempts are not counted on the address');
is(audit_count("event = 'lockout' AND outcome = 'ip' AND client_addr = '127.0.0.1'"), 1,
    'one lockout audit row (outcome ip)');
sleep_until($t_block, $IP_BLOCK + 0.5);
ok_200(sign_in('t1.test', 'bob', $PW{bob}), 'bob signs in after the address block');
unlike(throttle_row('ip 127.0.0.1'), qr/\|t$/,
    'the address is no longer blocked (a success below the limit keeps its count: see both)');

###############################################################################
# both limits: the account one is lower

restart(throttle_ip_failures => $IP_N, throttle_account_failures => 2);
fail_401(sign_in('t1.test', 'alice', $WRONG), 'both: alice failure 1');
is(throttle_row('ip 127.0.0.1'), '1|f', 'both: a failure counts on the address');
is(throttle_row('account t1.test alice'), '1|f', 'both: and on the account');
fail_401(sign_in('t1.test', 'alice', $WRONG), 'both: alice failure 2');
blocked(sign_in('t1.test', 'alice', $PW{alice}), $ACCOUNT_BLOCK, 'both: alice blocked');
is(throttle_row('ip 127.0.0.1'), '2|f', 'both: the blocked attempt did not count on the address');
ok_200(sign_in('t1.test', 'carol', $PW{carol}), 'both: carol signs in');
is(throttle_row('ip 127.0.0.1'), '2|f', "both: carol's success left the address count");
fail_401(sign_in('t1.test', 'bob', $WRONG), 'both: bob failure 1');
fail_401(sign_in('t1.test', 'nobody', $WRONG), 'both: nobody failure 1');
is(throttle_row('ip 127.0.0.1'), "$IP_N|t", 'both: the address is blocked');
blocked(sign_in('t1.test', 'dave', $PW{dave}), $IP_BLOCK, 'both: dave blocked by the address');
is($t->psql("SELECT string_agg(key, ',' ORDER BY key) FROM throttle"),
    'account t1.test alice,account t1.test bob,account t1.test nobody,ip 127.0.0.1',
    'both: the throttle keys');

###############################################################################
# bursts: the attempt is reserved before the password is verified, so no
# burst of simultaneous sign-ins gets more guesses than the limit

# eight workers, so that many attempts really are in flight at once
restart(throttle_ip_failures => 5, throttle_account_failures => 0, workers => 8);
$t->psql("DELETE FROM audit_log");
my @burst = $t->concurrently(30, '/api/auth/sign_in',
    $JSON->encode({ username => 'bob', password => $WRONG, domain => 't1.test' }));
is(scalar(grep { $_->[0] == 401 } @burst), 5,
    'burst of 30 from one address: exactly 5 passwords evaluated (401)');
is(scalar(grep { $_->[0] == 429 } @burst), 25, 'burst from one address: 25 blocked (429)');
is(audit_count("event = 'sign_in' AND outcome = 'failure'"), 5,
    'burst from one address: 5 failure audit rows');
is(throttle_row('ip 127.0.0.1'), '5|t', 'burst from one address: the address counted 5, blocked');
is(audit_count("event = 'lockout' AND outcome = 'ip'"), 1, 'burst: one ip lockout row');

restart(throttle_ip_failures => 5, throttle_account_failures => 10, workers => 8);
$t->psql("DELETE FROM audit_log");
@burst = $t->concurrently(30, '/api/auth/sign_in',
    $JSON->encode({ username => 'carol', password => $WRONG, domain => 't1.test' }),
    local_address => sub { '127.0.0.' . (10 + $_[0]) });
is(scalar(grep { $_->[0] == 401 } @burst), 10,
    'burst of 30 at one account from 30 addresses: exactly 10 evaluated (401)');
is(scalar(grep { $_->[0] == 429 } @burst), 20, 'burst at one account: 20 blocked (429)');
is(audit_count("event = 'sign_in' AND outcome = 'failure'"), 10,
    'burst at one account: 10 failure audit rows');
is(audit_count("event = 'sign_in' AND outcome = 'blocked' AND client_addr LIKE '127.0.0.%'"
    . " AND client_addr <> '127.0.0.1'"), 20, 'burst at one account: blocked from 20 addresses');
is(throttle_row('account t1.test carol'), '10|t', 'burst at one account: counted 10, blocked');

# a success gives its reservation back on the address
restart(throttle_ip_failures => 3, throttle_account_failures => 0);
fail_401(sign_in('t1.test', 'bob', $WRONG), 'give back: bob failure');
ok_200(sign_in('t1.test', 'dave', $PW{dave}), 'give back: dave signs in');
ok_200(sign_in('t1.test', 'dave', $PW{dave}), 'give back: dave signs in again');
is(throttle_row('ip 127.0.0.1'), '1|f', 'give back: successes leave the address count at 1');

###############################################################################

is($t->psql("SELECT count(*) FROM audit_log WHERE event = 'lockout' "
    . "AND (client_addr IS NULL OR client_addr NOT LIKE '127.0.0.%')"), 0,
    'lockout rows carry the client address');

my @five = grep { $_->[1] >= 500 } $t->responses;
is(scalar @five, 0, 'no 5xx response') or diag(explain \@five);
$t->log_format_ok;

$t->done_testing;
