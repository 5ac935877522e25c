#!/usr/bin/perl

# Scale-out and failover, on loopback: two pbx-authd instances (A = $t,
# B = peer) behind one nginx upstream rendered from the shipped files, one
# PostgreSQL primary and one streaming standby (pg_basebackup -R), both
# daemons connected with a libpq multi-host string (target_session_attrs=
# read-write).  Shown:
#  - throttling, sessions and the refresh race are shared (straight to each
#    instance's FastCGI socket, so that we know which one answered);
#  - instance B stopped under a request stream: SIGTERM costs no request;
#    SIGKILL of B's master and workers at once (a crash) costs no GET (nginx
#    passes a request to the next server on `error`), and at most one POST
#    per client, the one that was in B's hands: `fastcgi_next_upstream error
#    timeout` without non_idempotent never resends a POST that reached an
#    instance; that answer is the JSON 503 with Retry-After, and the client's
#    retry of the same refresh token succeeds (API.md: retryable refresh);
#    shown for certain with requests held by B's stopped workers when it dies;
#  - the primary crashed (pg_ctl stop -m immediate) and the standby promoted
#    under a request stream: only 503 with Retry-After while there is no
#    primary, /api/health/ready 503 then, every request answered again within
#    seconds of the promotion without restarting pbx-authd, the mailer
#    delivering and the tenant cache invalidated (LISTEN) on the new primary;
#  - with synchronous_commit = on and the standby in synchronous_standby_names
#    no token issued before the crash is lost; the asynchronous figure (old
#    primary rebuilt as a standby of the new one, crash, promote) is printed.
# Figures are printed with diag().

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use HTTP::Tiny;
use JSON::PP ();
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

use Test::PbxAuth;
use Test::PbxAuth::Smtp;

my $T0 = time;
my $t = Test::PbxAuth->new(need_nginx => 1);
my $smtp = Test::PbxAuth::Smtp->new($t);
my $dir = $t->dir;
my ($p1, $p2) = ($t->pgport, Test::PbxAuth::free_port());
my $multi = "host=$dir,$dir port=$p1,$p2 dbname=pbxauth target_session_attrs=read-write";
$t->write_config($smtp->config, workers => 2, hash_workers => 1, password_hash_cost => 1,
    retry_after => 2, smtp_retry_base => 1, smtp_user => undef, smtp_password_file => undef,
    smtp_ca_file => undef, throttle_ip_failures => 0, throttle_account_failures => 3,
    throttle_account_window => 60, throttle_account_block => 60,
    database => "$multi user=pbx_auth_runtime", ctl_database => "$multi user=postgres");
# The outages are the point: the connection errors they log are expected.
$t->allow_log_errors(qr/PostgreSQL|database|connect|server|socket|recovery|read-only|query/i);
$smtp->start;
$t->start_pg;
my $s = $t->standby('standby1', pgport => $p2);
my $pb = $t->peer('b');
$t->start_daemon;
$pb->start_daemon;
$t->start_nginx;

is($s->psql('SELECT pg_is_in_recovery()', db => 'postgres'), 't', 'the standby is in recovery');
is($t->psql("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'standby1'"
    . " AND state = 'streaming'", db => 'postgres'), 1, 'the standby streams from the primary');

$t->ctl_ok('tenant', 'add', 'so.test', '--name', 'Scale', '--callback-prefix', 'https://so.test/');
for my $u (qw(alice bob carol dave)) {
	$t->ctl_ok('user', 'add', '--domain', 'so.test', $u, '--email', "$u\@so.test",
	    { stdin => "Scale-pass-1\n" });
}

my $J = JSON::PP->new->utf8->canonical;

# A JSON request straight to instance $i's FastCGI socket (the hashing one
# for the password routes), as nginx would pass it.
sub fcgi {
	my ($i, $method, $path, $body, $token) = @_;
	my $data = defined $body ? $J->encode($body) : '';
	my $p = $i->fcgi_params(method => $method, path => $path,
	    content_type => length $data ? 'application/json' : '', content_length => length $data);
	$p->{HTTP_AUTHORIZATION} = "Bearer $token" if $token;
	return $i->fcgi_request(params => $p, stdin => $data,
	    $path eq '/api/auth/sign_in' ? (listen => $i->hash_listen) : ());
}

sub creds { my ($u, $pw) = @_; return { domain => 'so.test', username => $u, password => $pw } }

###############################################################################
# shared state

for my $n (1 .. 3) {
	is(fcgi($t, 'POST', '/api/auth/sign_in', creds('alice', 'wrong-pass'))->{status}, 401,
	    "A: alice wrong password $n");
}
my $r = fcgi($pb, 'POST', '/api/auth/sign_in', creds('alice', 'Scale-pass-1'));
is($r->{status}, 429, 'blocked at A, blocked at B (right password)');
ok(($r->{headers}{'retry-after'} // 0) > 0, 'B: 429 with Retry-After');

$r = fcgi($t, 'POST', '/api/auth/sign_in', creds('bob', 'Scale-pass-1'));
is($r->{status}, 200, 'A: bob signed in') or diag($r->{content});
my $bob = $r->{json} || {};
$r = fcgi($pb, 'GET', '/api/auth/user', undef, $bob->{access_token});
is($r->{status}, 200, "B accepts A's access token") or diag($r->{content});

# The refresh race: the same refresh token at A and at B at once.
my @race;
for my $i ($t, $pb) {
	pipe(my $rd, my $wr) or die "pipe: $!";
	my $pid = fork() // die "fork: $!";
	if ($pid == 0) {
		close $rd;
		my $x = fcgi($i, 'POST', '/api/auth/refresh_token',
		    { refresh_token => $bob->{refresh_token} });
		print $wr "$x->{status}\n";
		close $wr;
		POSIX::_exit(0);
	}
	close $wr;
	push @race, [ $pid, $rd ];
}
my @st = map { my $fh = $_->[1]; my $l = <$fh> // 0; waitpid($_->[0], 0); chomp $l; $l } @race;
is(scalar(grep { $_ == 200 } @st), 1, "refresh race across A and B: one winner (@st)");
is(scalar(grep { $_ >= 400 && $_ < 500 } @st), 1, 'the other one is refused (4xx)');

###############################################################################
# request streams through nginx

my $stop = "$dir/stop-stream";

# One request of a client: 'get' (GET /api/auth/user with access token $token)
# or 'refresh' (POST /api/auth/refresh_token with refresh token $token).
sub call {
	my ($http, $kind, $token) = @_;
	return $kind eq 'get'
	    ? $http->get($t->url('/api/auth/user'), { headers => { Authorization => "Bearer $token" } })
	    : $http->post($t->url('/api/auth/refresh_token'),
		{ content => $J->encode({ refresh_token => $token }),
		headers => { 'Content-Type' => 'application/json' } });
}

# Forks a client that sends requests one after another until $stop exists,
# logging "start end status retry-after method" per request to $file.
# kind 'get': GET /api/auth/user with $token; 'refresh': a refresh chain from
# $token (a failed refresh is retried with the same token).
sub stream {
	my ($kind, $token, $file) = @_;
	my $pid = fork() // die "fork: $!";
	return $pid if $pid;
	my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
	open my $fh, '>', $file or POSIX::_exit(1);
	$fh->autoflush(1);
	while (!-e $stop) {
		my $t0 = time;
		my $x = call($http, $kind, $token);
		my $j = eval { $J->decode($x->{content}) };
		$token = $j->{refresh_token} if $kind eq 'refresh' && $x->{status} == 200 && $j;
		printf $fh "%.3f %.3f %d %s %s\n", $t0, time, $x->{status},
		    $x->{headers}{'retry-after'} // '-', $kind;
		sleep 0.005;
	}
	print $fh "final $token\n";
	close $fh;
	POSIX::_exit(0);
}

# Runs the GET and refresh streams around $during->(); returns the records
# [start, end, status, retry-after, kind] and the refresh chain's last token.
sub under_stream {
	my ($name, $during) = @_;
	unlink $stop;
	# two sessions: a refresh rotates its session's access token too
	my $access = signin('carol')->{access_token};
	my $refresh = signin('carol')->{refresh_token};
	my @pids = (stream('get', $access, "$dir/$name-get"),
	    stream('refresh', $refresh, "$dir/$name-refresh"));
	sleep 0.5;
	$during->();
	sleep 0.5;
	$t->write_file($stop, '');
	waitpid($_, 0) for @pids;
	my (@rec, $final);
	for my $f ("$dir/$name-get", "$dir/$name-refresh") {
		for (split /\n/, $t->read_file($f)) {
			if (/^final (\S+)/) { my $tk = $1; $final = $tk if $f =~ /refresh$/; next }
			push @rec, [ split ' ' ];
		}
	}
	return (\@rec, $final);
}

sub signin {
	my ($u) = @_;
	my $x = $t->request('POST', '/api/auth/sign_in', body => $J->encode(creds($u, 'Scale-pass-1')),
	    headers => { 'Content-Type' => 'application/json' });
	is($x->{status}, 200, "$u signed in through nginx") or diag($x->{content});
	return $x->{json} || {};
}

sub refresh_works {
	my ($token, $name) = @_;
	my $x = $t->request('POST', '/api/auth/refresh_token', body => $J->encode(
	    { refresh_token => $token }), headers => { 'Content-Type' => 'application/json' });
	is($x->{status}, 200, $name) or diag($x->{content});
}

# B stopped by SIGTERM (graceful): nothing lost.
my ($rec, $final) = under_stream('term', sub {
	is($pb->stop_daemon, 0, 'B stopped by SIGTERM, exit 0');
	sleep 0.5;
});
my @bad = grep { $_->[2] != 200 } @$rec;
is(scalar @bad, 0, 'SIGTERM of B: every request answered 200')
    or diag(join "\n", map { "@$_" } @bad);
diag(sprintf 'SIGTERM of instance B: %d requests sent, %d failed', scalar @$rec, scalar @bad);
refresh_works($final, 'SIGTERM of B: the refresh chain goes on');

# B crashed: SIGKILL to its master and every child at once.
$pb->start_daemon;
($rec, $final) = under_stream('kill', sub {
	my $pid = $pb->daemon_pid;
	kill 'KILL', $pid, $pb->children_of($pid);
	$pb->stop_daemon(timeout => 5);
	sleep 0.5;
});
my @badget = grep { $_->[4] eq 'get' && $_->[2] != 200 } @$rec;
my @badpost = grep { $_->[4] eq 'refresh' && $_->[2] != 200 } @$rec;
is(scalar @badget, 0, 'SIGKILL of B: every GET answered 200 (nginx passed it to A)')
    or diag(join "\n", map { "@$_" } @badget);
ok(@badpost <= 1, 'SIGKILL of B: at most the one POST in flight on B failed');
is(scalar(grep { $_->[2] != 503 || $_->[3] eq '-' } @badpost), 0,
    'a POST lost with B is answered 503 with Retry-After, never replayed');
diag(sprintf 'SIGKILL of instance B: %d requests sent, %d failed (%d GET, %d POST)',
    scalar @$rec, @badget + @badpost, scalar @badget, scalar @badpost);
refresh_works($final, 'SIGKILL of B: the refresh chain goes on (a lost one was retried)');
$pb->start_daemon;

# What nginx does with a request B already holds when B dies: B's request
# workers are stopped (SIGSTOP), so what nginx sends there waits unanswered;
# two GETs then two POSTs (refreshes) are sent 0.2 s apart, and nginx's round
# robin gives each pair one of A and one of B.  Then B is killed.  The GET
# held at B is passed to A (`error`: the connection closed before a header);
# the POST held at B is not (nginx resends no non-idempotent request it has
# sent, without `non_idempotent`): its client gets the JSON 503 with
# Retry-After and retries the same refresh token, which works (B never read
# it; one B had read would be a lost answer: retryable, refresh_retry_window).
# B's failure above (max_fails=1) keeps it out for fail_timeout (10 s): a new
# nginx forgets it
$t->stop_nginx;
$t->start_nginx;
my @held;
for my $kind (qw(get get refresh refresh)) {
	my $x = signin('carol');
	my $tok = $kind eq 'get' ? $x->{access_token} : $x->{refresh_token};
	push @held, [ $kind, $tok ];
}
kill 'STOP', $pb->worker_pids;
my @hk;
for my $h (@held) {
	pipe(my $rd, my $wr) or die "pipe: $!";
	my $pid = fork() // die "fork: $!";
	if ($pid == 0) {
		close $rd;
		my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
		my $x = call($http, @$h);
		print $wr "$x->{status} " . ($x->{headers}{'retry-after'} // '-') . "\n";
		close $wr;
		POSIX::_exit(0);
	}
	close $wr;
	push @hk, [ $pid, $rd ];
	sleep 0.2;
}
sleep 0.5;
{
	my $pid = $pb->daemon_pid;
	kill 'KILL', $pid, $pb->children_of($pid);
	$pb->stop_daemon(timeout => 5);
}
my @ans = map { my $fh = $_->[1]; my $l = <$fh> // '0 -'; waitpid($_->[0], 0); chomp $l; [ split ' ', $l ] } @hk;
is_deeply([ map { $_->[0] } @ans[0, 1] ], [ 200, 200 ],
    'GETs held by a killed instance: both answered 200 (the one at B by A)');
is_deeply([ sort map { "$_->[0] $_->[1]" } @ans[2, 3] ], [ '200 -', '503 5' ],
    'POSTs: the one held by the killed B is answered 503 with Retry-After, not replayed');
refresh_works($held[$_][1], 'the client retries its refresh after the 503: it works')
    for grep { $ans[$_][0] == 503 } 2, 3;
$pb->start_daemon;

###############################################################################
# primary crash, standby promoted; synchronous standby: nothing lost

$t->psql("ALTER SYSTEM SET synchronous_standby_names = 'standby1'", db => 'postgres');
$t->psql('ALTER SYSTEM SET synchronous_commit = on', db => 'postgres');
$t->psql('SELECT pg_reload_conf()', db => 'postgres');
ok($t->wait_until(sub { $t->psql("SELECT sync_state FROM pg_stat_replication"
    . " WHERE application_name = 'standby1'", db => 'postgres') eq 'sync' }, 10),
    'standby1 is the synchronous standby');

# Tokens issued right up to the crash: four clients sign in over and over
# (each answer 200 is a token the client holds) while the primary is
# crashed under them; returns the tokens whose answer arrived.
sub tokens_then_crash {
	my ($primary) = @_;
	my $halt = "$dir/halt-signins";
	unlink $halt;
	my @kids;
	for my $i (1 .. 4) {
		my $pid = fork() // die "fork: $!";
		if ($pid == 0) {
			my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
			open my $fh, '>', "$dir/tokens$i" or POSIX::_exit(1);
			$fh->autoflush(1);
			while (!-e $halt) {
				my $x = $http->post($t->url('/api/auth/sign_in'), { content => $J->encode(
				    creds($i % 2 ? 'bob' : 'dave', 'Scale-pass-1')),
				    headers => { 'Content-Type' => 'application/json' } });
				last if $x->{status} != 200;
				my $j = eval { $J->decode($x->{content}) } or next;
				print $fh "$j->{access_token}\n";
			}
			close $fh;
			POSIX::_exit(0);
		}
		push @kids, $pid;
	}
	sleep 1;
	$primary->crash_pg;
	$t->write_file($halt, '');
	waitpid($_, 0) for @kids;
	my @tok = map { split /\n/, $t->read_file("$dir/tokens$_") } 1 .. 4;
	$t->secret($_, 'an access token issued before a crash') for @tok;
	return @tok;
}

sub lost {
	my (@tok) = @_;
	my $n = 0;
	for my $tk (@tok) {
		my $x = $t->request('GET', '/api/auth/user', headers => { Authorization => "Bearer $tk" });
		$n++ if $x->{status} == 401;
		diag("token check: $x->{status}") unless $x->{status} == 200 || $x->{status} == 401;
	}
	return $n;
}

my ($crash_at, $promoting_at, $promoted_at, @tok);
($rec) = under_stream('failover', sub {
	@tok = tokens_then_crash($t);
	$crash_at = time;
	sleep 1.5;
	my $ready = $t->get('/api/health/ready');
	is($ready->{status}, 503, '/api/health/ready: 503 while there is no primary')
	    or diag($ready->{content});
	like($ready->{content} // '', qr/"database":"down"/, '/api/health/ready: database down');
	# pg_ctl promote -w notices the promotion up to 0.1 s after it took
	# effect: the window without a primary ends when it is asked for.
	$promoting_at = time;
	$s->promote;
	$promoted_at = time;
	$t->wait_until(sub { $t->get('/api/health/ready')->{status} == 200 }, 10);
	sleep 1;
});
# A refresh whose answer the crash lost is retried with the same token
# (API.md); its verdict right after the promotion is issue 18's (it may be
# refused once within the grace period): only the answers given while there
# was no primary are asserted here.
my @down = grep { $_->[2] != 200 } @$rec;
my @nopri = grep { $_->[1] > $crash_at && $_->[1] < $promoting_at } @$rec;
is(scalar(grep { $_->[2] != 503 || $_->[3] eq '-' } @nopri), 0,
    'without a primary: only 503 with Retry-After (' . scalar(@nopri) . ' requests)')
    or diag(join "\n", map { "@$_" } grep { $_->[2] != 503 || $_->[3] eq '-' } @nopri);
diag(join "\n", 'after the promotion, not 200:', map { "@$_" } grep { $_->[0] >= $promoted_at } @down)
    if grep { $_->[0] >= $promoted_at } @down;
my ($first_ok) = sort { $a <=> $b } map { $_->[1] } grep { $_->[2] == 200 && $_->[0] >= $promoted_at } @$rec;
my @late = grep { $_->[2] != 200 && $_->[0] > $promoted_at + 3 } @$rec;
is(scalar @late, 0, 'every request started 3 s after the promotion answered 200');
ok(defined $first_ok, 'answers again after the promotion, pbx-authd not restarted');
diag(sprintf 'primary crash: %d requests during the failover, %d answered 503; '
    . 'no primary for %.2f s (crash to promotion); first good answer %.2f s after the promotion',
    scalar @$rec, scalar @down, $promoted_at - $crash_at, ($first_ok // $promoted_at) - $promoted_at);
is($t->get('/api/health/ready')->{status}, 200, '/api/health/ready: 200 on the new primary');

my ($lost_sync, $n_sync) = (lost(@tok), scalar @tok);
is($lost_sync, 0, 'synchronous standby: no token issued before the crash is lost ('
    . scalar(@tok) . ' issued)');

# The mailer and the LISTEN connections follow the new primary.
$smtp->clear;
$r = $t->request('POST', '/api/auth/forget_password', body => $J->encode({ domain => 'so.test',
    username => 'dave', callback_url => 'https://so.test/reset' }),
    headers => { 'Content-Type' => 'application/json' });
is($r->{status}, 200, 'forget_password after the failover') or diag($r->{content});
my @m = $smtp->wait_messages(1, 15);
ok(@m >= 1, 'the reset mail is delivered from the new primary\'s queue');

is($t->get('/api/info?domain=so.test')->{json}{name}, 'Scale', '/api/info before the change');
$t->ctl_ok('tenant', 'set', 'so.test', 'name=Scaled');
my $seen = $t->wait_until(sub {
	# every worker of both instances (a few rounds over nginx's round robin)
	!grep { ($t->get('/api/info?domain=so.test')->{json}{name} // '') ne 'Scaled' } 1 .. 8
}, 1, 0.05);
ok($seen, 'a tenant change on the new primary reaches /api/info within a second');

###############################################################################
# asynchronous standby: the old primary rebuilt as a standby of the new one

my $s2 = $s->standby('standby2', pgport => $p1);
is($s2->psql('SELECT pg_is_in_recovery()', db => 'postgres'), 't',
    'the old primary\'s port now serves a standby of the new primary');
@tok = tokens_then_crash($s);
$s2->promote;
ok($t->wait_until(sub { $t->get('/api/health/ready')->{status} == 200 }, 10),
    'ready again on the promoted standby2');
my $lost_async = lost(@tok);
diag("tokens lost in an immediate crash: synchronous standby $lost_sync of $n_sync, "
    . "asynchronous $lost_async of " . scalar @tok);
diag(sprintf 't/scale_out.t: %.1f s before teardown', time - $T0);

$t->done_testing;
