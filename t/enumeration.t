#!/usr/bin/perl

# Enumeration resistance of POST /api/auth/sign_in: unknown tenant, unknown
# user, disabled user and wrong password give byte-identical 401 bodies and,
# over 200 tries each (interleaved round-robin, never in blocks), median
# times within 10% of the overall median. The password hash cost is the
# default (0), so the dummy verification has the real cost; throttling is
# off. One keep-alive connection to nginx; Time::HiRes around each request.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;
use Time::HiRes qw(time);

use Test::PbxAuth;

my $TRIES = $ENV{PA_ENUM_TRIES} || 200;
my $TOLERANCE = 0.10;

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->write_config(throttle_ip_failures => 0, throttle_account_failures => 0);
$t->start_pg->start_daemon->start_nginx;

sub ctl_ok {
	my (@args) = @_;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, 'pbx-authctl ' . join(' ', grep { !ref } @args)) or diag($err);
}

ctl_ok('tenant', 'add', 't1.test', '--name', 'Tenant One');
ctl_ok('user', 'add', '--domain', 't1.test', 'alice', { stdin => "Alice-enum-pass1\n" });
ctl_ok('user', 'add', '--domain', 't1.test', 'carol', { stdin => "Carol-enum-pass2\n" });
ctl_ok('user', 'set', '--domain', 't1.test', 'carol', 'enabled=false');
like($t->psql("SELECT password_hash FROM users WHERE username = 'alice'"),
    qr/^\$y\$j9T\$/, "alice's hash: yescrypt at libxcrypt's default cost");

my $JSON = JSON::PP->new->canonical->utf8;
my $WRONG = 'Wrong-enum-pass9';
my @CASES = (
	[ 'unknown tenant', { domain => 'nosuch.test', username => 'alice', password => $WRONG } ],
	[ 'unknown user', { domain => 't1.test', username => 'nobody', password => $WRONG } ],
	[ 'disabled user', { domain => 't1.test', username => 'carol', password => 'Carol-enum-pass2' } ],
	[ 'wrong password', { domain => 't1.test', username => 'alice', password => $WRONG } ],
);

sub attempt {
	my ($body) = @_;
	my $t0 = time;
	my $r = $t->request('POST', '/api/auth/sign_in', keep_alive => 1,
	    headers => { 'Content-Type' => 'application/json' }, body => $body);
	return ($r, time - $t0);
}

# the right password works (the comparison is with a real verification)
my ($ok) = attempt($JSON->encode({ domain => 't1.test', username => 'alice',
    password => 'Alice-enum-pass1' }));
is($ok->{status}, 200, 'alice signs in with the right password') or diag($ok->{content});

my @bodies = map { $JSON->encode($_->[1]) } @CASES;

# warm up: every worker, connection and cache
for (1 .. 5) { attempt($_) for @bodies }

my (@times, %contents, %statuses);
for my $round (0 .. $TRIES - 1) {
	for my $k (0 .. $#CASES) {
		my $i = ($round + $k) % @CASES;    # rotate the order every round
		my ($r, $dt) = attempt($bodies[$i]);
		push @{$times[$i]}, $dt;
		$contents{$r->{content} // ''}++;
		$statuses{$r->{status}}++;
	}
}

is_deeply(\%statuses, { 401 => $TRIES * @CASES }, 'every attempt is a 401')
    or diag(explain \%statuses);
is(scalar keys %contents, 1, 'all ' . $TRIES * @CASES . ' bodies are byte-identical')
    or diag(explain [ keys %contents ]);
is((keys %contents)[0], '{"errors":[{"code":"AUTHENTICATION_FAILED",'
    . '"message":"Authentication Error","detail":null}]}', 'the contract body');

sub median {
	my @s = sort { $a <=> $b } @_;
	return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

my @med = map { median(@{$times[$_]}) } 0 .. $#CASES;
my $overall = median(map { @$_ } @times);
diag(sprintf '%-15s median %.2f ms', $CASES[$_][0], $med[$_] * 1000) for 0 .. $#CASES;
diag(sprintf '%-15s median %.2f ms (%d tries each)', 'overall', $overall * 1000, $TRIES);
for my $i (0 .. $#CASES) {
	my $dev = ($med[$i] - $overall) / $overall;
	ok(abs($dev) <= $TOLERANCE, sprintf('%s: median within %d%% of the overall median '
	    . '(%+.1f%%)', $CASES[$i][0], $TOLERANCE * 100, $dev * 100));
}
# a real verification was paid for: not a fast path
cmp_ok($overall, '>', 0.005, 'the median includes a password hash verification (> 5 ms)');

my @five = grep { $_->[1] >= 500 } $t->responses;
is(scalar @five, 0, 'no 5xx response') or diag(explain \@five);

$t->done_testing;
