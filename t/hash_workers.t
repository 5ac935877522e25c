#!/usr/bin/perl

# The two worker classes: nginx sends the password routes to the hashing
# workers (own socket, own count, nice hash_nice) and everything else to the
# request workers; while every hashing worker is busy and sign-ins queue,
# /api/info and refresh_token are still answered; once hash_queue_max
# sign-ins wait, the next one is refused at once with the JSON 503 and
# Retry-After, and nothing else is; a request sent to the other class's
# socket is still served; the master respawns, reloads and stops both
# classes. A hashing worker is held busy deterministically: a FastCGI
# request sent up to its parameters, whose body comes only when the test
# says so.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Errno qw(EAGAIN EINPROGRESS);
use HTTP::Tiny;
use IO::Socket::UNIX;
use JSON::PP ();
use POSIX ();
use Socket qw(SOCK_STREAM);
use Test::More;

use Test::PbxAuth;

my $QUEUE = 2;
my $NICE = 7;
my $PASSWORD = 'hash-workers-password-1';

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->write_config(workers => 2, hash_workers => 1, hash_queue_max => $QUEUE,
    hash_nice => $NICE, throttle_ip_failures => 0, throttle_account_failures => 0,
    password_hash_cost => 1);
$t->start_pg->start_daemon->start_nginx;

my $HASH = $t->hash_listen;
is($HASH, $t->dir . '/fcgi-hash.sock', 'hash_listen derived from listen');
ok(-S $HASH, 'the hash socket exists');

my ($rc, undef, $err) = $t->ctl('tenant', 'add', 'hw.pbx.test', '--name', 'HW');
is($rc, 0, 'tenant add') or diag($err);
($rc, undef, $err) = $t->ctl('user', 'add', '--domain', 'hw.pbx.test', 'alice',
    { stdin => "$PASSWORD\n" });
is($rc, 0, 'user add') or diag($err);

my $JSON = JSON::PP->new->canonical->utf8;
my $SIGN_IN = $JSON->encode({ username => 'alice', password => $PASSWORD,
    domain => 'hw.pbx.test' });
my %JSON_CT = ('Content-Type' => 'application/json');

sub sign_in { $t->request('POST', '/api/auth/sign_in', body => $SIGN_IN, headers => {%JSON_CT}) }

sub refresh {
	my ($token) = @_;
	return $t->request('POST', '/api/auth/refresh_token',
	    body => $JSON->encode({ refresh_token => $token }), headers => {%JSON_CT});
}

# Field $n of /proc/PID/stat (1-based, as proc(5) counts them).
sub stat_field {
	my ($pid, $n) = @_;
	my ($rest) = $t->read_file("/proc/$pid/stat") =~ /\) (.*)$/s or return undef;
	return (split ' ', $rest)[$n - 3];
}

# The nice value of a process (field 19).
sub nice_of { stat_field($_[0], 19) }

# The session id of a process (field 6).
sub session_of { stat_field($_[0], 6) }

# A process's autogroup and its nice value ("/autogroup-42 nice 10").
sub autogroup_of {
	my ($pid) = @_;
	my ($name, $nice) = $t->read_file("/proc/$pid/autogroup") =~ /^(\S+) nice (-?\d+)$/m
	    or return ();
	return ($name, $nice);
}
my $AUTOGROUPS = -e '/proc/self/autogroup';

# A hashing worker runs in a session of its own, whose autogroup has
# $nice (the kernel shares CPU time between autogroups first: without
# one of its own, its nice value would weigh only against the daemon's
# processes, not against nginx and PostgreSQL).
sub own_autogroup_ok {
	my ($pid, $nice, $what) = @_;
	is(session_of($pid), $pid, "$what: $pid leads a session of its own");
	my ($group, $gnice) = autogroup_of($pid);
	my ($dgroup) = autogroup_of($t->daemon_pid);
	isnt($group, $dgroup, "$what: $pid is not in the daemon's autogroup");
	is($gnice, $nice, "$what: ${pid}'s autogroup runs at nice $nice");
}

# Waits for worker $pid to say it started: it has set its priorities
# then (a worker the master just forked may not have yet).
sub started_ok {
	my ($pid, $what) = @_;
	ok($t->wait_until(sub { $t->daemon_log =~ /pbx-authd\[$pid\]: worker started/ }, 10),
	    "$what: worker $pid started");
}

# The pid that logged the access line of "METHOD path" from log offset $off
# (written just after the response: waited for).
sub served_by {
	my ($method, $path, $off) = @_;
	my $line = $t->wait_for_log(qr/ request method=\Q$method\E path=\Q$path\E /, 5, $off)
	    // '';
	my ($pid) = $line =~ /pbx-authd\[(\d+)\]:/;
	return $pid // 0;
}

# The listening socket's line of `ss -xl`: (queued connections, backlog).
sub queue_of {
	my ($path) = @_;
	my ($rc, $out) = $t->run(['ss', '-Hxl', 'src', $path]);
	my ($recvq, $sendq) = $out =~ /^\S+\s+LISTEN\s+(\d+)\s+(\d+)\s+\Q$path\E\s/m;
	return ($recvq // -1, $sendq // -1);
}

###############################################################################
# processes: counts, names, nice values

my @hash = $t->hash_worker_pids;
my @req = $t->worker_pids;
is(scalar @hash, 1, 'one hashing worker (hash_workers = 1)');
is(scalar @req, 2, 'two request workers (workers = 2)');
started_ok($_, 'at start') for @hash, @req;
# hash_nice is added to the daemon's own nice value (prove may run under nice).
my $BASE = nice_of($t->daemon_pid);
my $HASH_NICE = $BASE + $NICE > 19 ? 19 : $BASE + $NICE;
is(nice_of($_), $HASH_NICE, "hashing worker $_ runs at nice $HASH_NICE (hash_nice $NICE)")
    for @hash;
is(nice_of($_), $BASE, "request worker $_ runs at the daemon's nice $BASE") for @req;
# The same increment on the hashing worker's autogroup, over the daemon's.
my ($DGROUP, $DGNICE) = $AUTOGROUPS ? autogroup_of($t->daemon_pid) : ();
my $GROUP_NICE = $AUTOGROUPS ? ($DGNICE + $NICE > 19 ? 19 : $DGNICE + $NICE) : undef;
if ($AUTOGROUPS) {
	own_autogroup_ok($_, $GROUP_NICE, 'hashing worker') for @hash;
	for my $pid (@req) {
		is(session_of($pid), session_of($t->daemon_pid),
		    "request worker $pid stays in the daemon's session");
		is((autogroup_of($pid))[0], $DGROUP, "request worker $pid shares the daemon's autogroup");
	}
} else {
	is(session_of($_), session_of($t->daemon_pid),
	    "no autogroups: hashing worker $_ stays in the daemon's session") for @hash;
}
like($t->daemon_log, qr/pbx-authd\[$hash[0]\]: worker started class=hash/,
    'the hashing worker logged its class');
like($t->daemon_log, qr/master started workers=2 listen=\S+ hash_workers=1 hash_listen=\Q$HASH\E/,
    'master started line names both classes');
is((queue_of($HASH))[1], $QUEUE, "the hash socket's backlog is hash_queue_max ($QUEUE)");

###############################################################################
# nginx routes by class

{
	my %hash_pid = map { $_ => 1 } @hash;
	my %req_pid = map { $_ => 1 } @req;
	my $off = $t->log_offset;
	my $r = sign_in();
	is($r->{status}, 200, 'sign-in through nginx');
	my $off2 = $t->log_offset;
	ok($hash_pid{served_by('POST', '/api/auth/sign_in', $off)},
	    'POST /api/auth/sign_in served by the hashing worker');
	is($t->get('/api/info')->{status}, 200, 'GET /api/info');
	ok($req_pid{served_by('GET', '/api/info', $off2)}, 'GET /api/info served by a request worker');
	$t->get('/api/login');
	ok($req_pid{served_by('GET', '/api/login', $off2)},
	    'GET /api/login (no password) served by a request worker');
	$t->request('POST', '/api/login', body => '{}', headers => {%JSON_CT});
	ok($hash_pid{served_by('POST', '/api/login', $off2)},
	    'POST /api/login served by the hashing worker');
	$t->request('POST', '/api/auth/reset_password', body => '{}', headers => {%JSON_CT});
	ok($hash_pid{served_by('POST', '/api/auth/reset_password', $off2)},
	    'POST /api/auth/reset_password served by the hashing worker');
	unlike($t->daemon_log($off), qr/reached a/, 'no route reached the wrong class');
}

###############################################################################
# a busy hashing worker and a full hash queue

# Sign-ins through nginx in the background: each child writes its status to
# a file when its answer arrives.
sub bg_sign_in {
	my ($name) = @_;
	my $file = $t->dir . "/bg-$name";
	my $url = $t->url('/api/auth/sign_in');
	my $pid = fork() // die "fork: $!";
	if ($pid == 0) {
		my $r = HTTP::Tiny->new(timeout => 30, keep_alive => 0)->request('POST', $url,
		    { content => $SIGN_IN, headers => {%JSON_CT} });
		open my $fh, '>', "$file.tmp" or POSIX::_exit(1);
		print $fh "$r->{status}\n";
		close $fh;
		rename "$file.tmp", $file;
		POSIX::_exit(0);
	}
	return { pid => $pid, file => $file };
}

sub bg_done { -e $_[0]{file} }

sub bg_wait {
	my ($bg) = @_;
	waitpid($bg->{pid}, 0);
	my ($status) = $t->read_file($bg->{file}) =~ /^(\d+)/;
	return $status // 0;
}

# A connection to the hash socket that only waits in its queue.
sub raw_connect {
	my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM) or die "socket: $!";
	$s->blocking(0);
	my $addr = Socket::pack_sockaddr_un($HASH);
	return connect($s, $addr) || $! == EINPROGRESS ? $s : undef;
}

{
	my $tokens = sign_in()->{json};
	ok($tokens->{refresh_token}, 'a session to refresh while the hashing worker is busy');
	my (@bg, @raw, $refused_errno);
	my ($info, $refreshed, $busy, $busy_info, $busy_login, $queued_before);

	# The hashing worker accepts this request and waits for its body.
	my $held = $t->fcgi_request(listen => $HASH, stdin => $SIGN_IN, timeout => 60,
	    params => $t->fcgi_params(method => 'POST', path => '/api/auth/sign_in',
		content_type => 'application/json', content_length => length $SIGN_IN),
	    pause => sub {
		ok($t->wait_until(sub { (queue_of($HASH))[0] == 0 }, 5),
		    'the hashing worker took the held request off the queue');
		@bg = map { bg_sign_in($_) } 1 .. $QUEUE;
		ok($t->wait_until(sub { (queue_of($HASH))[0] == $QUEUE }, 10),
		    "$QUEUE sign-ins from nginx wait in the hash queue");

		# The request workers answer meanwhile.
		$info = $t->get('/api/info?domain=hw.pbx.test');
		$refreshed = refresh($tokens->{refresh_token});
		$queued_before = grep { bg_done($_) } @bg;

		# Fill the queue to its end: the kernel refuses the next connection.
		for (1 .. 10) {
			my $s = raw_connect();
			unless ($s) { $refused_errno = $! + 0; last }
			push @raw, $s;
		}
		$busy = sign_in();
		$busy_info = $t->get('/api/info?domain=hw.pbx.test');
		$busy_login = $t->get('/api/login');
		close $_ for @raw;
	});

	is($info->{status}, 200, 'GET /api/info answered while the sign-ins wait');
	is($info->{json}{domain}, 'hw.pbx.test', 'GET /api/info: the tenant');
	is($refreshed->{status}, 200, 'refresh_token answered while the sign-ins wait');
	ok($refreshed->{json}{access_token}, 'refresh_token: new tokens');
	is($queued_before, 0, 'no waiting sign-in had been answered before them');

	is($refused_errno, EAGAIN, 'a connection beyond the queue is refused (EAGAIN)');
	cmp_ok($QUEUE + @raw, '<=', $QUEUE + 1, 'the queue held at most hash_queue_max + 1 connections');
	$t->is_error($busy, 503, 'SERVICE_UNAVAILABLE', 'sign-in with the hash queue full');
	like($busy->{headers}{'retry-after'} // '', qr/^\d+$/, 'the 503 has Retry-After');
	is($busy_info->{status}, 200, 'GET /api/info is not refused with the hash queue full');
	is($busy_login->{status}, 401, 'GET /api/login is not refused either (401: no session)');

	ok($held->{complete}, 'the held request completes once its body arrives');
	is($held->{status}, 200, 'the held sign-in succeeds');
	$t->secret($held->{json}{$_}, "$_ of the held sign-in") for qw(access_token refresh_token);
	my @st = map { bg_wait($_) } @bg;
	is_deeply(\@st, [ (200) x $QUEUE ], 'the waiting sign-ins complete with 200 afterwards');
	is(sign_in()->{status}, 200, 'sign-in works again');
}

###############################################################################
# a request sent to the other class's socket is still served

{
	my $off = $t->log_offset;
	my $f = $t->fcgi_request(stdin => $SIGN_IN,
	    params => $t->fcgi_params(method => 'POST', path => '/api/auth/sign_in',
		content_type => 'application/json', content_length => length $SIGN_IN));
	is($f->{status}, 200, 'POST /api/auth/sign_in on the request socket: 200');
	ok($f->{json}{access_token}, 'POST /api/auth/sign_in on the request socket: tokens');
	$t->secret($f->{json}{$_}, "$_ of a misrouted sign-in") for qw(access_token refresh_token);
	ok($t->wait_for_log(qr/warn .*POST \/api\/auth\/sign_in \(a hash route\) reached a request worker/,
	    5, $off), 'the request worker warns about it');

	$f = $t->fcgi_request(listen => $HASH,
	    params => $t->fcgi_params(query => 'domain=hw.pbx.test'));
	is($f->{status}, 200, 'GET /api/info on the hash socket: 200');
	is($f->{json}{domain}, 'hw.pbx.test', 'GET /api/info on the hash socket: the tenant');
	ok($t->wait_for_log(qr/warn .*GET \/api\/info \(a request route\) reached a hash worker/,
	    5, $off), 'the hashing worker warns about it');
}

###############################################################################
# supervision: respawn, reload, stop

{
	my ($victim) = $t->hash_worker_pids;
	ok(kill('KILL', $victim), "SIGKILL the hashing worker $victim");
	my $new;
	ok($t->wait_until(sub { ($new) = grep { $_ != $victim } $t->hash_worker_pids; $new }, 5),
	    'a new hashing worker is started');
	started_ok($new, 'respawned hashing worker') if $new;
	is(nice_of($new), $HASH_NICE, 'the new hashing worker runs at hash_nice') if $new;
	own_autogroup_ok($new, $GROUP_NICE, 'respawned hashing worker') if $new && $AUTOGROUPS;
	is(sign_in()->{status}, 200, 'sign-in served by the new hashing worker');

	my @old = ($t->hash_worker_pids, $t->worker_pids);
	$t->write_config(hash_workers => 2, hash_nice => 3);
	my $off = $t->log_offset;
	$t->signal('HUP');
	ok($t->wait_for_log(qr/configuration reloaded workers=2 hash_workers=2/, 5, $off),
	    'SIGHUP: configuration reloaded with hash_workers = 2');
	ok($t->wait_until(sub {
		my %old = map { $_ => 1 } @old;
		my @h = $t->hash_worker_pids;
		@h == 2 && !grep { $old{$_} } @h, $t->worker_pids;
	}, 10), 'SIGHUP: two new hashing workers, new request workers');
	started_ok($_, 'SIGHUP') for $t->hash_worker_pids;
	my $want = $BASE + 3 > 19 ? 19 : $BASE + 3;
	is(nice_of($_), $want, "SIGHUP: hashing worker $_ at the new hash_nice")
	    for $t->hash_worker_pids;
	if ($AUTOGROUPS) {
		my $gwant = $DGNICE + 3 > 19 ? 19 : $DGNICE + 3;
		own_autogroup_ok($_, $gwant, 'SIGHUP') for $t->hash_worker_pids;
	}
	is(sign_in()->{status}, 200, 'SIGHUP: sign-in served');

	my @all = ($t->hash_worker_pids, $t->worker_pids);
	is($t->stop_daemon, 0, 'SIGTERM: the master exits 0');
	ok($t->wait_gone($_, 5), "SIGTERM: worker $_ gone") for @all;
	ok(!-e $HASH, 'SIGTERM: the hash socket is removed');
	ok(!-e $t->fcgi_sock, 'SIGTERM: the request socket is removed');
}

$t->log_format_ok;
$t->done_testing;
