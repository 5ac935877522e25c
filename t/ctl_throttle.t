#!/usr/bin/perl

# pbx-authctl throttle list/clear and throttle_exempt, over the real sign-in
# path. Blocks last an hour here, so only `throttle clear` can lift them
# within the test: a blocked address and a blocked account sign in again at
# once after their clear, each clear writes an audit row naming the
# operator, and an exempt address is never blocked per address while its
# accounts still are. The client address is always 127.0.0.1.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new(need_nginx => 1);
my %BASE = (
	password_hash_cost        => 1,
	throttle_ip_failures      => 3,
	throttle_ip_window        => 600,
	throttle_ip_block         => 3600,
	throttle_account_failures => 3,
	throttle_account_window   => 600,
	throttle_account_block    => 3600,
);
$t->write_config(%BASE);
$t->start_pg->start_daemon->start_nginx;

my $JSON = JSON::PP->new->canonical->utf8;
my $OP = 'operator=' . getpwuid($>);

sub ctl_ok {
	my (@args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, 'pbx-authctl ' . join(' ', grep { !ref } @args)) or diag($err);
	return $out;
}

sub sign_in {
	my ($user, $pw) = @_;
	return $t->request('POST', '/api/auth/sign_in',
	    headers => { 'Content-Type' => 'application/json' },
	    body => $JSON->encode({ domain => 't1.test', username => $user, password => $pw }));
}

sub status_of { return sign_in(@_)->{status} }

sub row { return $t->psql($_[0]) }

ctl_ok('tenant', 'add', 't1.test', '--name', 'Tenant One');
ctl_ok('user', 'add', '--domain', 't1.test', $_, { stdin => "Pass-$_-1234\n" })
    for qw(alice bob carol);

###############################################################################
# a blocked address, lifted by clear ip

is(status_of("nobody$_", 'Wrong-password-0'), 401, "unknown user $_: 401") for 1 .. 3;
is(status_of('alice', 'Pass-alice-1234'), 429, 'the address is blocked: even alice gets 429');

my $out = ctl_ok('throttle', 'list');
like($out, qr/^ip 127\.0\.0\.1\t3\t\S+Z\t\S+Z$/m, 'throttle list: the address, failures, blocked until');
my $j = $JSON->decode(ctl_ok('throttle', 'list', '--json'));
my ($ip) = grep { $_->{key} eq 'ip 127.0.0.1' } @$j;
is($ip->{failures}, '3', 'throttle list --json: failures');
like($ip->{blocked_until}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'throttle list --json: blocked_until');
my ($acct) = grep { $_->{key} eq 'account t1.test nobody1' } @$j;
is($acct->{blocked_until}, undef, 'throttle list --json: an account not blocked: null');

is(ctl_ok('throttle', 'clear', 'ip', '127.0.0.1'), "cleared ip 127.0.0.1\n", 'throttle clear ip');
is(status_of('alice', 'Pass-alice-1234'), 200, 'cleared: alice signs in at once');
like(row("SELECT detail || '|' || operator FROM audit_log WHERE event = 'throttle_clear'"
    . " ORDER BY id DESC LIMIT 1"),
    qr/^ip 127\.0\.0\.1: failures 3, blocked until \S+Z \(lifted\)\|\Q$OP\E$/,
    'throttle clear: audit row with the failures, the block and the operator');
is(ctl_ok('throttle', 'clear', 'ip', '::1'), "no throttle counter for ip ::1: nothing to clear\n",
    'throttle clear of an address without a counter');

###############################################################################
# a blocked account, lifted by clear account (case-insensitive names)

ctl_ok('throttle', 'clear', '--all');
is(status_of('bob', 'Wrong-password-0'), 401, "bob: wrong password $_") for 1 .. 3;
is(status_of('bob', 'Pass-bob-1234'), 429, 'bob is blocked');
ctl_ok('throttle', 'clear', 'ip', '127.0.0.1');
is(status_of('bob', 'Pass-bob-1234'), 429, 'with the address cleared, the account block stays');
is(status_of('carol', 'Pass-carol-1234'), 200, '... and other accounts sign in');
ctl_ok('throttle', 'clear', 'account', 'T1.test', 'BOB');
is(status_of('bob', 'Pass-bob-1234'), 200, 'account cleared: bob signs in at once');
is(row("SELECT tenant_domain || '|' || username || '|' || detail FROM audit_log"
    . " WHERE event = 'throttle_clear' ORDER BY id DESC LIMIT 1") =~ s/ \(lifted\)$//r
    =~ s/, blocked until \S+Z//r, 't1.test|bob|account t1.test bob: failures 3',
    'throttle clear account: audit row names the account');

is(status_of('carol', 'Wrong-password-0'), 401, 'a failure');
like(ctl_ok('throttle', 'clear', '--all'), qr/^cleared [1-9][0-9]* throttle counters?$/,
    'throttle clear --all');
is(row('SELECT count(*) FROM throttle'), 0, 'throttle clear --all: the table is empty');

###############################################################################
# refusals

for my $c ([[1], qr/not an IPv4 or IPv6 address/, 'clear', 'ip', '300.1.2.3'],
    [[1], qr/not a valid domain/, 'clear', 'account', 'bad domain', 'bob'],
    [[1], qr/not a valid username/, 'clear', 'account', 't1.test', 'a b'],
    [[2], qr/takes ip ADDRESS/, 'clear'],
    [[2], qr/takes ip ADDRESS/, 'clear', 'everything'],
    [[2], qr/unknown subcommand 'frob' of throttle/, 'frob']) {
	my ($codes, $re, @args) = @$c;
	my ($rc, $o, $err) = $t->ctl('throttle', @args);
	ok((grep { $rc == $_ } @$codes), "throttle @args: exit @$codes (got $rc)");
	like($err, $re, "throttle @args: message");
}

###############################################################################
# throttle_exempt: never blocked per address; the account limit still applies

for my $bad ('10.0.0.1/8', '300.0.0.0/8', '10.0.0.0/33', 'example.com') {
	my ($rc, $o, $err) = $t->authd('--check-config', '-c',
	    $t->write_file('bad.conf', $t->config_text(throttle_exempt => $bad)));
	is($rc, 1, "throttle_exempt = $bad: refused at load") or diag($err);
	like($err, qr/throttle_exempt/, "throttle_exempt = $bad: names the key");
}

$t->stop_daemon;
$t->write_config(%BASE, throttle_exempt => '192.0.2.0/24, 127.0.0.0/8 ::1');
$t->start_daemon;
is(status_of("ghost$_", 'Wrong-password-0'), 401, "exempt address: failure $_ is a 401")
    for 1 .. 5;
is(row("SELECT count(*) FROM throttle WHERE key LIKE 'ip %'"), 0,
    'exempt address: no per-address counter');
is(status_of('alice', 'Pass-alice-1234'), 200, 'exempt address: never blocked per address');
is(status_of('carol', 'Wrong-password-0'), 401, "carol: failure $_") for 1 .. 3;
is(status_of('carol', 'Pass-carol-1234'), 429, 'exempt address: the account limit still applies');

$t->done_testing;
