#!/usr/bin/perl

# The prefork master: a killed worker is replaced, SIGHUP reloads the
# configuration without failing requests (and keeps the old one when the new
# file is broken), SIGTERM stops everything with status 0; and the
# command line: --check-config, --version, PBX_AUTH_* overrides.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use HTTP::Tiny;
use IO::Socket::UNIX;
use POSIX ();
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(sleep time);

use Test::PbxAuth;

my $DIR = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->write_config(workers => 2, ms365_authority_global => 'https://login-a.test');
$t->start_pg;

# Killing a worker and reloading with a broken file are expected to be
# logged; nothing else may be an error.
$t->allow_log_errors(qr/worker exited|signal|killed|bogus_key|configuration|config/i);

###############################################################################
# command line

{
	my ($rc, $out, $err) = $t->authd('--version');
	is($rc, 0, '--version exits 0');
	like($out, qr/^pbx-authd \d+\.\d+\.\d+\n?\z/, '--version prints pbx-authd X.Y.Z');

	($rc, $out, $err) = $t->authd('--check-config', '-c', $t->conf_file);
	is($rc, 0, '--check-config on a good file exits 0') or diag($err);
	is($out, "pbx-authd: configuration OK\n", '--check-config prints configuration OK');

	my $base = $t->config_text;
	my $n = () = $base =~ /\n/g;

	my $good = $t->write_file('good.conf', "# a comment\n\n$base\n# trailing comment\n"
	    . "ms365_authority_global = http://127.0.0.1:8080\n");
	($rc, $out, $err) = $t->authd('--check-config', '-c', $good);
	is($rc, 0, 'comments, blank lines and a loopback http authority are OK')
	    or diag($err);

	my %bad = (
		'unknown key'            => ['bogus_key = 1', 'bogus_key'],
		'workers not a number'   => ['workers = many', 'workers'],
		'retry_after not a number' => ['retry_after = soon', 'retry_after'],
		'log_level unknown'      => ['log_level = loud', 'log_level'],
		'listen_mode not octal'  => ['listen_mode = 0999', 'listen_mode'],
		'plain http authority'   => ['ms365_authority_global = http://login.example.com',
		    'ms365_authority_global'],
		'line without ='         => ['workers 2', undef],
	);
	for my $case (sort keys %bad) {
		my ($line, $key) = @{$bad{$case}};
		(my $name = $case) =~ s/\W+/_/g;
		my $file = $t->write_file("bad_$name.conf", $base . "$line\n");
		($rc, $out, $err) = $t->authd('--check-config', '-c', $file);
		is($rc, 1, "--check-config, $case: exit 1");
		is($out, '', "--check-config, $case: nothing on stdout");
		like($err, qr/bad_\Q$name\E\.conf/, "--check-config, $case: names the file");
		like($err, qr/\b@{[ $n + 1 ]}\b/, "--check-config, $case: names line "
		    . ($n + 1)) or diag($err);
		like($err, qr/\Q$key\E/, "--check-config, $case: names $key") if $key;
	}

	my $nodb = $t->write_file('nodb.conf', $t->config_text(database => undef));
	($rc, $out, $err) = $t->authd('--check-config', '-c', $nodb);
	is($rc, 1, '--check-config without database: exit 1');
	like($err, qr/database/, '--check-config without database: says so');

	($rc, $out, $err) = $t->authd('--check-config', '-c', $t->conf_file,
	    { env => { PBX_AUTH_RETRY_AFTER => 'soon' } });
	is($rc, 1, 'PBX_AUTH_RETRY_AFTER=soon: exit 1');
	like($err, qr/retry_after/i, 'PBX_AUTH_RETRY_AFTER=soon: names the key');

	($rc, $out, $err) = $t->authd('--check-config', '-c', $t->conf_file,
	    { env => { PBX_AUTH_RETRY_AFTER => '9' } });
	is($rc, 0, 'PBX_AUTH_RETRY_AFTER=9: exit 0') or diag($err);

	($rc, $out, $err) = $t->authd('--check-config', '-c', $t->conf_file,
	    { env => { PBX_AUTH_LOG_LEVEL => 'loud' } });
	is($rc, 1, 'PBX_AUTH_LOG_LEVEL=loud: exit 1');
	like($err, qr/log_level/i, 'PBX_AUTH_LOG_LEVEL=loud: names the key');

}

###############################################################################
# helpers: a child process that keeps requesting for a while

my $streams = 0;

sub stream_start {
	my ($secs, @paths) = @_;
	my $file = $t->dir . '/stream' . ++$streams;
	my $url = $t->url('');
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0) {
		my $http = HTTP::Tiny->new(timeout => 10, keep_alive => 0,
		    max_redirect => 0);
		open my $fh, '>', $file or POSIX::_exit(1);
		$fh->autoflush(1);
		my $end = time + $secs;
		my $i = 0;
		while (time < $end) {
			my $p = $paths[$i++ % @paths];
			my $start = time;
			my $r = $http->get($url . $p);
			(my $excerpt = $r->{status} == 200 ? ''
			    : substr($r->{content} // '', 0, 200)) =~ s/\s+/ /g;
			printf $fh "%.4f %.4f %d %s %s\n", $start, time, $r->{status}, $p,
			    $excerpt;
		}
		close $fh;
		POSIX::_exit(0);
	}
	return { pid => $pid, file => $file };
}

# Returns a list of [start, end, status, path, excerpt].
sub stream_wait {
	my ($s) = @_;
	waitpid($s->{pid}, 0);
	my @r;
	for (split /\n/, $t->read_file($s->{file})) {
		push @r, [ split / /, $_, 5 ];
	}
	return @r;
}

sub ms_endpoint {
	my $r = $t->get('/api/info?domain=ms.pbx.test');
	return $r->{status} == 200 ? $r->{json}{ms365_authorization_endpoint} // ''
	    : "status $r->{status}";
}

###############################################################################
# a killed worker is replaced

$t->start_daemon->start_nginx;

my ($rc, undef, $err) = $t->ctl('tenant', 'add', 'ms.pbx.test', '--name', 'MS');
is($rc, 0, 'tenant add') or diag($err);
my $secret = $t->write_file('ms365-secret.txt', "workers-client-secret\n");
chmod 0600, $secret;
($rc, undef, $err) = $t->ctl('ms365', 'set', 'ms.pbx.test', '--enable', '--directory-id', $DIR,
    '--application-id', '11111111-2222-4333-8444-555555555555', '--client-secret-file', $secret);
is($rc, 0, 'ms365 set') or diag($err);

is(ms_endpoint(), "https://login-a.test/$DIR/oauth2/v2.0/authorize",
    'authority from the configuration');

my $master = $t->daemon_pid;
my @before = $t->worker_pids;
is(sprintf('%04o', (stat $t->fcgi_sock)[2] & 07777), '0666', 'socket mode from listen_mode');
is(scalar @before, 2, 'two workers');
like($t->daemon_log, qr/ info pbx-authd\[$master\]: master started workers=2 listen=/,
    'master started line');
for my $w (@before) {
	like($t->daemon_log, qr/ pbx-authd\[$w\]: worker started/,
	    "worker $w logged its own start");
}

{
	my $s = stream_start(3, '/api/info', '/api/info?domain=ms.pbx.test');
	sleep 0.7;
	my $victim = $before[0];
	my $t_kill = time;
	ok(kill('KILL', $victim), "SIGKILL worker $victim");
	my ($new, $t_new);
	$t->wait_until(sub {
		my %old = map { $_ => 1 } @before;
		($new) = grep { !$old{$_} } $t->worker_pids;
		$t_new = time;
		defined $new;
	}, 3, 0.01);
	ok(defined $new, 'a new worker appeared');
	my $took = defined $new ? $t_new - $t_kill : 99;
	cmp_ok($took, '<=', 1.5, sprintf('replaced within ~1 s (%.2f s)', $took));

	my @r = stream_wait($s);
	cmp_ok(scalar @r, '>', 20, 'the request loop ran (' . scalar(@r) . ' requests)');
	my @late_bad = grep { $_->[0] > $t_new && $_->[2] != 200 } @r;
	is(scalar @late_bad, 0, 'every request after the replacement is 200')
	    or diag(explain \@late_bad);
	my @bad = grep { $_->[2] != 200 } @r;
	cmp_ok(scalar @bad, '<=', 1, 'at most the in-flight request failed')
	    or diag(explain \@bad);
	# nginx's 502 for the lost connection, which the shipped configuration
	# answers as 503 with the JSON error body
	ok(!grep({ $_->[2] != 503 } @bad), 'a failed request is only a 503 from nginx')
	    or diag(explain \@bad);

	is($t->daemon_pid, $master, 'same master');
	my @after = $t->worker_pids;
	is(scalar @after, 2, 'two workers again');
	ok(!grep({ $_ == $victim } @after), 'the killed worker is gone');
	like($t->daemon_log, qr/worker exited child_pid=$victim\b/, 'worker exited line');
	is(ms_endpoint(), "https://login-a.test/$DIR/oauth2/v2.0/authorize",
	    'requests served after the replacement');
}

###############################################################################
# SIGHUP reloads the configuration without failing requests

{
	my @old = $t->worker_pids;
	$t->write_config(ms365_authority_global => 'https://login-b.test');
	my $off = $t->log_offset;
	my $s = stream_start(3, '/api/info', '/api/info?domain=ms.pbx.test');
	sleep 0.5;
	ok($t->signal('HUP'), 'SIGHUP');
	my $want = "https://login-b.test/$DIR/oauth2/v2.0/authorize";
	ok($t->wait_until(sub { ms_endpoint() eq $want }, 5),
	    'new ms365_authority_global visible after SIGHUP');
	my @r = stream_wait($s);
	my @bad = grep { $_->[2] != 200 } @r;
	is(scalar @bad, 0, 'no failed request during the reload (' . scalar(@r)
	    . ' requests)') or diag(explain \@bad);

	ok($t->wait_for_log(qr/configuration reloaded/, 5, $off),
	    'configuration reloaded logged');
	my @mismatch = grep { ms_endpoint() ne $want } 1 .. 8;
	is(scalar @mismatch, 0, 'every worker uses the new authority');
	is($t->daemon_pid, $master, 'same master after SIGHUP');
	ok($t->wait_until(sub {
		my %old = map { $_ => 1 } @old;
		my @w = $t->worker_pids;
		@w == 2 && !grep { $old{$_} } @w;
	}, 10), 'old workers replaced by new ones') or diag("old @old, now @{[ $t->worker_pids ]}");
	for my $w (@old) {
		ok($t->wait_gone($w, 10), "old worker $w exited");
	}
}

###############################################################################
# A worker that a reload retires answers the connection it has accepted,
# even when the request's first bytes are still on their way: the stop
# signal must not cut a read inside libfcgi's accept short (EINTR), after
# which libfcgi drops the connection unanswered (nginx: 502 or 503, "writev()
# failed (32: Broken pipe)").

for my $bytes (0, 4, 40) {
	my @old = $t->worker_pids;
	my $what = $bytes ? "$bytes bytes of the request sent" : 'nothing sent yet';
	# POST /api/auth/refresh_token with a token that does not exist
	my $h = $t->fcgi_begin(undef, $bytes);
	ok($t->wait_until(sub { ($t->fcgi_backlog // -1) == 0 }, 5),
	    "$what: a worker has accepted the connection");
	sleep 0.2;		# and waits for the rest
	my $off = $t->log_offset;
	ok($t->signal('HUP'), "$what: SIGHUP");
	ok($t->wait_for_log(qr/configuration reloaded/, 5, $off), "$what: reloaded");
	# The other old worker has left; the one holding the connection waits.
	ok($t->wait_until(sub { grep({ $t->wait_gone($_, 0) } @old) >= 1 }, 5),
	    "$what: an old worker has exited") or diag("old @old");
	my ($end, $status) = $t->fcgi_end($h);
	ok($end, "$what: the request is answered to its end");
	# (libfcgi interrupted in the parameters went on without them: 404)
	is($status, 401, "$what: 401, from the handler, with the whole request");
	ok($t->wait_gone($_, 10), "$what: old worker $_ exited") for @old;
}

###############################################################################
# SIGHUP with a broken file keeps the old configuration

{
	$t->write_config(ms365_authority_global => 'https://login-c.test',
	    -raw => "bogus_key = 1\n");
	my $off = $t->log_offset;
	my $s = stream_start(2.5, '/api/info', '/api/info?domain=ms.pbx.test');
	sleep 0.3;
	ok($t->signal('HUP'), 'SIGHUP with a broken file');
	my $line = $t->wait_for_log(qr/bogus_key/, 5, $off);
	ok($line, 'the broken key is logged') and note($line);
	my @r = stream_wait($s);
	my @bad = grep { $_->[2] != 200 } @r;
	is(scalar @bad, 0, 'no failed request after the broken reload')
	    or diag(explain \@bad);
	unlike($t->daemon_log($off), qr/configuration reloaded/,
	    'no configuration reloaded line');
	my @ends = map { ms_endpoint() } 1 .. 8;
	is_deeply(\@ends, [ ("https://login-b.test/$DIR/oauth2/v2.0/authorize") x 8 ],
	    'old authority still served');
	is($t->daemon_pid, $master, 'same master after the broken reload');
	is(scalar($t->worker_pids), 2, 'still two workers');

	# and a good file after a broken one is taken again
	$t->write_config(-raw => '');
	$off = $t->log_offset;
	$t->signal('HUP');
	ok($t->wait_until(sub {
		ms_endpoint() eq "https://login-c.test/$DIR/oauth2/v2.0/authorize"
	}, 5), 'reload after a fixed file works');
	ok($t->wait_for_log(qr/configuration reloaded/, 5, $off),
	    'configuration reloaded logged after the fix');
}

###############################################################################
# SIGTERM

{
	my @w = $t->worker_pids;
	my $off = $t->log_offset;

	# A request in flight (parameters sent, body not yet) when SIGTERM
	# arrives is finished.
	my $f = $t->fcgi_request(stdin => '{}', params => $t->fcgi_params(
	    content_type => 'application/json', content_length => 2,
	    query => 'domain=ms.pbx.test'), pause => sub {
		sleep 0.3;
		$t->signal('TERM');
		sleep 0.5;
	});
	is($f->{status}, 200, 'SIGTERM: the request in flight is answered 200');
	ok($f->{complete}, 'SIGTERM: the request in flight is complete');
	is($f->{json}{domain}, 'ms.pbx.test', 'SIGTERM: with its full body');

	my $st = $t->stop_daemon(signal => 0);
	is($st, 0, 'SIGTERM: master exits with status 0');
	for my $pid (@w) {
		ok($t->wait_gone($pid, 5), "SIGTERM: worker $pid gone");
	}
	my $s = IO::Socket::UNIX->new(Peer => $t->fcgi_sock, Type => SOCK_STREAM);
	ok(!$s, 'SIGTERM: socket no longer accepts connections');
	my $r = $t->get('/api/info');
	$t->is_error($r, 503, 'SERVICE_UNAVAILABLE', 'SIGTERM: nginx gets no answer (its 502, as 503)');
	like($t->daemon_log($off), qr/ pbx-authd\[$master\]: master stopped/,
	    'master stopped logged');
}

###############################################################################
# PBX_AUTH_WORKERS overrides the file

{
	my $off = $t->log_offset;
	$t->start_daemon(env => { PBX_AUTH_WORKERS => 3 });
	ok($t->wait_until(sub { $t->worker_pids == 3 }, 5),
	    'PBX_AUTH_WORKERS=3: three workers') or diag("workers: @{[ $t->worker_pids ]}");
	like($t->daemon_log($off), qr/master started workers=3 /,
	    'PBX_AUTH_WORKERS=3: master started workers=3');
	is($t->get('/api/info')->{status}, 200, 'PBX_AUTH_WORKERS=3: serving');
	is($t->stop_daemon, 0, 'PBX_AUTH_WORKERS=3: stopped with status 0');
}

###############################################################################
# log_level and listen_mode through the environment

{
	my $off = $t->log_offset;
	$t->start_daemon(env => { PBX_AUTH_LOG_LEVEL => 'warn',
	    PBX_AUTH_LISTEN_MODE => '0640' });
	is(sprintf('%04o', (stat $t->fcgi_sock)[2] & 07777), '0640',
	    'PBX_AUTH_LISTEN_MODE=0640: socket mode');
	my $f = $t->fcgi_request;
	is($f->{status}, 200, 'log_level=warn: serving');
	is($t->stop_daemon, 0, 'log_level=warn: stopped with status 0');
	my @info = grep { / (?:info|debug) pbx-authd\[/ } split /\n/, $t->daemon_log($off);
	is(scalar @info, 0, 'PBX_AUTH_LOG_LEVEL=warn: no info or debug lines')
	    or diag(join "\n", @info[0 .. ($#info > 4 ? 4 : $#info)]);
}

$t->log_format_ok;

$t->done_testing;
