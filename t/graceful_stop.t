#!/usr/bin/perl

# A graceful stop loses nothing.  Two pbx-authd instances (same database,
# own sockets) behind one nginx upstream, several clients each following
# its own refresh token chain (POSTs: nginx never resends a POST it already
# sent).  Instance B is made to hold connections in its backlog: both its
# workers are busy with a request whose body has not arrived yet, so every
# client's next request routed to B waits in B's listen queue.  Then B's
# master gets SIGTERM, the two busy requests complete, and B must answer
# every queued request before it exits, while new connections go to A.
# Expected: no 5xx at all, every refresh answered 200, every chain goes on
# (each client's final token still refreshes), B exits 0, its socket gone.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

use Test::PbxAuth;

my $CLIENTS = 6;

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->write_config(workers => 2, password_hash_cost => 1);
$t->start_pg;
my $b = $t->peer('b');
$t->start_daemon;
$b->start_daemon;
$t->start_nginx;

my ($rc, undef, $err) = $t->ctl('tenant', 'add', 'stop.test', '--name', 'Stop');
is($rc, 0, 'tenant add') or diag($err);
($rc, undef, $err) = $t->ctl('user', 'add', '--domain', 'stop.test', 'carol',
    { stdin => "Stop-pass-1\n" });
is($rc, 0, 'user add') or diag($err);

my %json = (headers => { 'Content-Type' => 'application/json' });
my @tokens;
for my $i (1 .. $CLIENTS) {
	my $r = $t->request('POST', '/api/auth/sign_in', %json, body => JSON::PP::encode_json(
	    { domain => 'stop.test', username => 'carol', password => 'Stop-pass-1' }));
	is($r->{status}, 200, "client $i signed in") or diag($r->{content});
	push @tokens, $r->{json}{refresh_token};
}

my @held = ($b->fcgi_begin, $b->fcgi_begin);
ok($t->wait_until(sub { ($b->fcgi_backlog // -1) == 0 }, 10),
    "both of B's workers took a held request");

# The clients: refresh in a loop until the stop file exists, then three more.
my $stop = $t->dir . '/stop-clients';
my @kids;
for my $i (0 .. $CLIENTS - 1) {
	my $out = $t->dir . "/client$i.json";
	my $pid = fork() // die "fork: $!";
	if ($pid == 0) {
		my $http = HTTP::Tiny->new(timeout => 60, keep_alive => 0);
		my ($token, $n, $after, @bad) = ($tokens[$i], 0, 0);
		while (1) {
			$after++ if -e $stop;
			last if $after > 3;
			my $r = $http->request('POST', $t->url('/api/auth/refresh_token'),
			    { content => JSON::PP::encode_json({ refresh_token => $token }),
			    headers => { 'Content-Type' => 'application/json' } });
			$n++;
			my $j = eval { JSON::PP::decode_json($r->{content}) };
			if ($r->{status} == 200 && $j && $j->{refresh_token}) {
				$token = $j->{refresh_token};
			} else {
				push @bad, $r->{status};
			}
		}
		open my $fh, '>', $out or POSIX::_exit(1);
		print $fh JSON::PP::encode_json({ n => $n, bad => \@bad, token => $token });
		close $fh;
		POSIX::_exit(0);
	}
	push @kids, [ $pid, $out ];
}

# Each client ends up waiting in B's backlog (round robin sends every other
# request there and B's workers are busy).
ok($t->wait_until(sub { ($b->fcgi_backlog // 0) >= $CLIENTS }, 20),
    "all $CLIENTS clients wait in B's backlog")
    or diag('backlog: ' . ($b->fcgi_backlog // 'none'));

my $bpid = $b->daemon_pid;
$b->signal('TERM');
# The stop closes the door first: B's socket name disappears at once.
ok($t->wait_until(sub { !-e $b->fcgi_sock }, 5), "SIGTERM: B's socket is unlinked at once");
my @done = map { [ $b->fcgi_end($_) ] } @held;
is_deeply([ map { $_->[0] } @done ], [ 1, 1 ], 'the two requests in flight were completed');

ok($t->wait_gone($bpid, 20), 'B stopped after serving its backlog');
is($b->stop_daemon, 0, 'B exited with status 0');

# A's workers serve the rest; let every client make a few more refreshes.
$t->write_file($stop, '');
my (@bad, $total);
for my $k (@kids) {
	waitpid($k->[0], 0);
	my $res = eval { JSON::PP::decode_json($t->read_file($k->[1])) } // { bad => ['no result'] };
	$total += $res->{n} // 0;
	push @bad, @{$res->{bad}};
	$t->secret($res->{token}, 'a client chain token');
	my $r = $t->request('POST', '/api/auth/refresh_token', %json,
	    body => JSON::PP::encode_json({ refresh_token => $res->{token} // '' }));
	is($r->{status}, 200, "client $k->[0]: its chain goes on after the stop");
}
is(scalar @bad, 0, "every one of $total refreshes was answered 200")
    or diag('statuses: ' . join(' ', @bad));

my $ng = $t->read_file($t->dir . '/nginx/error.log');
unlike($ng, qr/reset by peer/, 'nginx saw no connection reset');
like($ng, qr/\Q@{[ $b->fcgi_sock ]}\E failed \(2: No such file/,
    'nginx found B gone and moved on to A') or diag($ng);

$t->done_testing;
