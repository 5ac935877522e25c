#!/usr/bin/perl

# PostgreSQL going away and coming back: 503 SERVICE_UNAVAILABLE with
# Retry-After from the configuration (or its PBX_AUTH_RETRY_AFTER override)
# while it is down, 200 again on the very next requests once it is back,
# without restarting pbx-authd and without any worker exiting.  The same
# for every sign-in endpoint, whose sessions survive the outage.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->write_config(retry_after => 7, workers => 2, password_hash_cost => 1,
    cookie_secure => 'off');
$t->start_pg->start_daemon->start_nginx;

# Database failures are expected in this test; the daemon may log them at
# level error. Only lines about the database connection are tolerated.
$t->allow_log_errors(qr/database|postgres|connect|server|socket|db|sql|libpq/i);

my ($rc, undef, $err) = $t->ctl('tenant', 'add', 'demo.pbx.test', '--name', 'Demo');
is($rc, 0, 'tenant add') or diag($err);

my @paths = ('/api/info', '/api/info?domain=demo.pbx.test');

# Several requests per round so that both workers are exercised.
sub all_ok {
	my ($name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my @bad;
	for my $i (1 .. 8) {
		my $r = $t->get($paths[$i % 2]);
		push @bad, "$r->{request}: $r->{status} $r->{content}"
		    unless $r->{status} == 200;
	}
	is(scalar @bad, 0, "$name: every request 200") or diag(join "\n", @bad);
}

sub all_503 {
	my ($retry, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	for my $i (1 .. 6) {
		my $r = $t->get($paths[$i % 2]);
		$t->is_error($r, 503, 'SERVICE_UNAVAILABLE', "$name #$i $r->{request}")
		    or next;
		is($r->{headers}{'retry-after'}, $retry, "$name #$i: Retry-After: $retry");
		unlike($r->{content}, qr{/tmp|\.c\b|SELECT|FATAL|psql|PGSQL|socket}i,
		    "$name #$i: no internals in the body");
	}
}

all_ok('before the outage');
my $master = $t->daemon_pid;
my @workers = $t->worker_pids;
is(scalar @workers, 2, 'two workers');

$t->stop_pg;
all_503(7, 'PostgreSQL stopped');

$t->start_pg;
all_ok('PostgreSQL started again');
is($t->daemon_pid, $master, 'same master');
ok(kill(0, $master), 'master still running');
is_deeply([ $t->worker_pids ], \@workers, 'same worker pids');
unlike($t->daemon_log, qr/worker exited/, 'no worker exited');

# A second outage: the recovery must not be a one-off.
$t->stop_pg;
all_503(7, 'second outage');
$t->start_pg;
all_ok('after the second outage');
is_deeply([ $t->worker_pids ], \@workers, 'same worker pids after the second outage');

# Sign-in endpoints: 503 while PostgreSQL is down, never a 401 or a 500
# (an outage must not look like bad credentials), and the sessions made
# before the outage work after it.
($rc, undef, $err) = $t->ctl('user', 'add', '--domain', 'demo.pbx.test', 'alice',
    { stdin => "Outage-pass-1\n" });
is($rc, 0, 'user add') or diag($err);
my %json = (headers => { 'Content-Type' => 'application/json' });
my $creds = JSON::PP::encode_json({ domain => 'demo.pbx.test', username => 'alice',
    password => 'Outage-pass-1' });
my $tok = $t->request('POST', '/api/auth/sign_in', %json, body => $creds)->{json} // {};
my $login = $t->request('POST', '/api/login', %json, body => $creds);
my ($cookie) = ($login->{headers}{'set-cookie'} // '') =~ /^([^;]+)/;
ok($tok->{access_token} && $cookie, 'signed in with both flavours before the outage');

my @auth_requests = (
	[ 'POST', '/api/auth/sign_in', %json, body => $creds ],
	[ 'POST', '/api/login', %json, body => $creds ],
	[ 'POST', '/api/auth/refresh_token', %json,
	    body => JSON::PP::encode_json({ refresh_token => $tok->{refresh_token} }) ],
	[ 'GET', '/api/auth/user', headers => { Authorization => "Bearer $tok->{access_token}" } ],
	[ 'POST', '/api/auth/sign_out', headers => { Authorization => "Bearer $tok->{access_token}" } ],
	[ 'GET', '/api/login', headers => { Cookie => $cookie } ],
	[ 'POST', '/api/logout', headers => { Cookie => $cookie } ],
);
$t->stop_pg;
for my $req (@auth_requests) {
	my $r = $t->request(@$req);
	$t->is_error($r, 503, 'SERVICE_UNAVAILABLE', "PostgreSQL down: $req->[0] $req->[1]");
	is($r->{headers}{'retry-after'}, 7, "$req->[1]: Retry-After: 7");
	ok(!defined $r->{headers}{'set-cookie'}, "$req->[1]: no cookie set or cleared");
}
$t->start_pg;
my $r = $t->get('/api/auth/user', headers => { Authorization => "Bearer $tok->{access_token}" });
is($r->{status}, 200, 'the bearer session made before the outage still works');
$r = $t->get('/api/login', headers => { Cookie => $cookie });
is($r->{status}, 200, 'the cookie session made before the outage still works');
$r = $t->request(@{$auth_requests[2]});
is($r->{status}, 200, 'its refresh token was not spent by the failed refresh');

# PBX_AUTH_RETRY_AFTER overrides the file.
is($t->stop_daemon, 0, 'pbx-authd stopped with status 0');
$t->start_daemon(env => { PBX_AUTH_RETRY_AFTER => 11 });
all_ok('daemon with PBX_AUTH_RETRY_AFTER=11');
$t->stop_pg;
all_503(11, 'PBX_AUTH_RETRY_AFTER=11');
$t->start_pg;
all_ok('after the outage with the override');

# A server that stops just after a connection's startup sends its FATAL
# message behind ReadyForQuery, in the same packet: libpq hands it to the
# notice processor while still connecting.  It must reach pbx-authd's log as
# a log line (or not at all), never raw on stderr.  A fake server answers
# every startup so, and counts them.
{
	my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	    Proto => 'tcp', Listen => 16, ReuseAddr => 1) or die "listen: $!";
	my $port = $srv->sockport;
	my $count = $t->dir . '/fake-pg-startups';
	my $kid = fork() // die "fork: $!";
	if ($kid == 0) {
		$SIG{TERM} = 'DEFAULT';	# not the test's handler, which cleans up
		local $SIG{ALRM} = sub { POSIX::_exit(0) };
		alarm 30;
		while (my $c = $srv->accept) {
			my $started = 0;
			while (!$started) {
				last unless read($c, my $head, 8) == 8;
				my ($len, $code) = unpack('NN', $head);
				if ($code == 80877103 || $code == 80877104) {	# SSL, GSS: no
					syswrite($c, 'N');
					next;
				}
				read($c, my $rest, $len - 8) if $len > 8;
				$started = 1;
			}
			next unless $started;
			my $fields = "SFATAL\0VFATAL\0C57P01\0M"
			    . "terminating connection due to administrator command\0\0";
			my $ps = "server_version\0" . "15.0\0";
			syswrite($c, 'R' . pack('NN', 8, 0) . 'S' . pack('N', 4 + length $ps) . $ps
			    . 'K' . pack('NNN', 12, 4242, 4242) . 'Z' . pack('N', 5) . 'I'
			    . 'E' . pack('N', 4 + length $fields) . $fields);
			open my $fh, '>>', $count or POSIX::_exit(1);
			print $fh "startup\n";
			close $fh;
			close $c;
		}
		POSIX::_exit(0);
	}
	close $srv;
	my $p = $t->peer('fake', database => "host=127.0.0.1 port=$port dbname=x user=x",
	    workers => 1);
	$p->start_daemon;
	ok($t->wait_until(sub { -s $count }, 10), 'the fake server answered a startup');
	ok($t->wait_until(sub { $p->daemon_log =~ /cannot set up the session/ }, 10),
	    '... and pbx-authd found the connection closed');
	unlike($p->daemon_log, qr/^FATAL:/m,
	    "... its FATAL message is not printed raw in pbx-authd's log");
	is($p->stop_daemon, 0, 'that pbx-authd stops with status 0');
	kill 'TERM', $kid;
	waitpid($kid, 0);
}

my @five = grep { $_->[1] >= 500 && $_->[1] != 503 } $t->responses;
is(scalar @five, 0, 'no 5xx other than 503') or diag(explain \@five);

$t->done_testing;
