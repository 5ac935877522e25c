#!/usr/bin/perl

# Health, metrics and request-level logs through nginx: /api/health/live and
# /ready (a tampered migration checksum makes it 503), /api/metrics validated
# by promtool with counters that move as requests are driven, X-Request-Id
# equal to the request_id of the access line, the audit line and the mailer's
# line about the mail the request queued, control characters in every logged
# request value escaped, and log_format = json lines that parse as JSON.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);

use Test::PbxAuth;
use Test::PbxAuth::Smtp;

my $t = Test::PbxAuth->new(need_nginx => 1);
my $smtp = Test::PbxAuth::Smtp->new($t);
$t->write_config(password_hash_cost => 1, throttle_ip_failures => 0, $smtp->config);
$smtp->start;
$t->start_pg->start_daemon->start_nginx;
my $JSON = JSON::PP->new->canonical->utf8;

sub ctl_ok {
	my (@args) = @_;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, "pbx-authctl @{[grep { !ref } @args]}") or diag($out . $err);
}

sub post {
	my ($path, $body) = @_;
	return $t->request('POST', $path, headers => { 'Content-Type' => 'application/json' },
	    body => $JSON->encode($body));
}

sub scrape {
	my $r = $t->get('/api/metrics');
	is($r->{status}, 200, 'metrics: 200') or diag($r->{content});
	like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'metrics: content type');
	my %m;
	for (split /\n/, $r->{content} // '') {
		next if /^#/;
		$m{$1} = $2 if /^(\S+) (\S+)$/;
	}
	return ($r->{content}, \%m);
}

ctl_ok('tenant', 'add', 't1.test', '--name', 'Tenant One');
ctl_ok('tenant', 'set', 't1.test', 'callback_prefixes=https://app.test/reset');
ctl_ok('user', 'add', '--domain', 't1.test', 'alice', '--email', 'alice@x.test',
    { stdin => "Alice-pass-1\n" });

###############################################################################
# health

my $r = $t->get('/api/health/live');
is($r->{status}, 200, 'live: 200');
is($r->{content}, '{"status":"ok"}', 'live: body');
$r = $t->get('/api/health/ready');
is($r->{status}, 200, 'ready: 200') or diag($r->{content});
is_deeply($r->{json}, { status => 'ok', checks => { database => 'up', migrations => 'ok' } },
    'ready: database up, migrations ok');
my $sum = $t->psql('SELECT checksum FROM schema_migrations WHERE version = 8');
$t->psql("UPDATE schema_migrations SET checksum = 'x' WHERE version = 8");
sleep 1.1;    # a worker checks again at most once a second
my $seen503;
$t->wait_until(sub {
	$r = $t->get('/api/health/ready');
	$seen503 = $r;
	return $r->{status} == 503;
}, 5);
is($seen503->{status}, 503, 'ready: 503 after a migration checksum changed');
is_deeply($seen503->{json}, { status => 'unavailable', checks => { database => 'up',
    migrations => '0008_request_id.sql checksum mismatch' } }, 'ready: names the migration');
{
	my ($rc, $out) = $t->ctl('status');
	is($rc, 1, 'status: exit 1 when a migration does not match');
	like($out, qr/^migrations: 0008_request_id\.sql checksum mismatch$/m, 'status: names it');
	like($out, qr/^ready: no$/m, 'status: not ready');
}
$t->psql("UPDATE schema_migrations SET checksum = '$sum' WHERE version = 8");
ok($t->wait_until(sub { $t->get('/api/health/ready')->{status} == 200 }, 10),
    'ready: 200 again once it matches');
my $off = $t->log_offset;
$t->get('/api/health/live') for 1 .. 3;
unlike($t->daemon_log($off), qr/path=\/api\/health/, 'health probes: no info access line');

###############################################################################
# metrics

my ($text0, $m0) = scrape();
my $promtool = '/usr/bin/promtool';
ok(-x $promtool, 'promtool is installed (Debian package prometheus)');
{
	my ($rc, $out, $err) = $t->run([$promtool, 'check', 'metrics'], stdin => $text0);
	is($rc, 0, 'promtool check metrics: no problems') or diag($out . $err);
	is($out . $err, '', 'promtool check metrics: no lint warnings') or diag($out . $err);
}
like($text0, qr/^pbx_auth_build_info\{version="[^"]+"\} 1$/m, 'build info');
$t->get('/api/info') for 1 .. 3;
post('/api/auth/sign_in', { domain => 't1.test', username => 'alice', password => 'wrong' });
post('/api/auth/sign_in', { domain => 't1.test', username => 'alice', password => 'Alice-pass-1' });
my ($text1, $m1) = scrape();
my $info = 'pbx_auth_http_requests_total{method="GET",route="/api/info",code="2xx"}';
is($m1->{$info} - ($m0->{$info} // 0), 3, 'three more GET /api/info 2xx');
my $hist = 'pbx_auth_http_request_duration_seconds_count{method="GET",route="/api/info"}';
is($m1->{$hist} - ($m0->{$hist} // 0), 3, 'histogram count moved by three');
for my $o (qw(success failure)) {
	my $k = qq{pbx_auth_sign_ins_total{flavour="bearer",outcome="$o"}};
	is($m1->{$k} - $m0->{$k}, 1, "one more bearer sign-in $o");
}
ok($m1->{'pbx_auth_info_cache_requests_total{result="miss"}'} +
    $m1->{'pbx_auth_info_cache_requests_total{result="hit"}'} >= 0, 'info cache counters present');
# A killed worker's counts stay (its slot is folded by the master).
my ($victim) = $t->worker_pids;
kill 'KILL', $victim;
$t->wait_gone($victim, 5);
$t->allow_log_errors(qr/worker exited/);
ok($t->wait_until(sub { scalar($t->worker_pids) == 2 }, 10), 'the worker was replaced');
my ($text2, $m2) = scrape();
cmp_ok($m2->{$info}, '>=', $m1->{$info}, 'counters do not go down when a worker dies');
is($m2->{'pbx_auth_child_restarts_total{kind="worker"}'}, 1, 'one worker restart counted');

###############################################################################
# pbx-authctl status

{
	my ($rc, $out);
	$t->wait_until(sub {
		($rc, $out) = $t->ctl('status');
		return $out =~ /^workers connected: 4$/m;
	}, 10);
	is($rc, 0, 'status: exit 0 when ready') or diag($out);
	like($out, qr/^database: up$/m, 'status: database up');
	like($out, qr/^migrations: ok \(\d+ known, all applied\)$/m, 'status: migrations ok');
	# two request workers and the harness's two hashing workers
	like($out, qr/^workers connected: 4$/m, 'status: every worker connected');
	like($out, qr/^mailer connected: yes$/m, 'status: the mailer connected');
	like($out, qr/^mail queued: \d+ \(oldest \d+ s\)$/m, 'status: mail queue');
	like($out, qr/^active sessions: 1$/m, 'status: the one session signed in above');
	like($out, qr/^blocked addresses: 0$/m, 'status: no block');
}

###############################################################################
# request ids: access line, audit line, the mailer's line about queued mail

$off = $t->log_offset;
$r = post('/api/auth/forget_password', { domain => 't1.test', username => 'alice',
    callback_url => 'https://app.test/reset' });
is($r->{status}, 200, 'forget_password: 200') or diag($r->{content});
my $rid = $r->{headers}{'x-request-id'} // '';
like($rid, qr/^[0-9a-f]{32}$/, 'X-Request-Id: nginx\'s $request_id');
my $sent = $t->wait_for_log(qr/mail sent .*request_id=\Q$rid\E/, 15, $off);
ok($sent, 'the mailer\'s line carries the request id of the request that queued the mail')
    or diag($t->daemon_log($off));
my @recs = grep { defined && ($_->{request_id} // '') eq $rid } $t->log_records($off);
ok((grep { $_->{msg} eq 'request' && $_->{path} eq '/api/auth/forget_password' } @recs),
    'access line with the request id');
ok((grep { $_->{msg} eq 'audit' && $_->{event} eq 'reset_request' } @recs),
    'audit line with the request id') or diag(explain \@recs);
$r = post('/api/auth/sign_in', { domain => 't1.test', username => 'alice',
    password => 'Alice-pass-1' });
$rid = $r->{headers}{'x-request-id'};
my $uid = $t->psql("SELECT id FROM users WHERE username = 'alice'");
ok($t->wait_for_log(qr/ request method=POST path=\/api\/auth\/sign_in status=200 .*user=$uid request_id=$rid/, 5),
    'access line after sign-in: the user id');

###############################################################################
# control characters in every logged request value

$off = $t->log_offset;
my @evil = ('%1B%5B31m', '%0D%0Aaudit%20event=forged', '%C2%85', '%E2%80%A8', '%08%0B%7F',
    '%22q%22');
$t->get("/api/x$_") for @evil;
$t->raw_http("BR\x1bEW /api/info HTTP/1.0\r\n\r\n");
post('/api/auth/sign_in', { domain => 't1.test', username => "al\x1bice\r\nx",
    password => 'x' });
my $log = $t->daemon_log($off);
unlike($log, qr/[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]/,
    'no raw control character, C1 control or U+2028/2029 in the log');
unlike($log, qr/^\S+ \S+ \S+: audit event=forged/m, 'CR LF cannot start a forged line');
like($log, qr{path="/api/x\\u001b\[31m"}, 'ESC escaped as \\u001b');
like($log, qr{path="/api/x\\r\\naudit event=forged"}, 'CR LF escaped, inside quotes');
like($log, qr{path="/api/x\\u0085"}, 'NEL escaped');
like($log, qr{path="/api/x\\u2028"}, 'U+2028 escaped');
like($log, qr{path="/api/x\\"q\\""}, 'quotes escaped');
is(scalar(grep { !defined } $t->log_records($off)), 0, 'every line parses');

###############################################################################
# log_format = json

$t->write_config(log_format => 'json');
$t->signal('HUP');
ok($t->wait_until(sub { $t->daemon_log =~ /^\{.*"msg":"worker started"/m }, 10),
    'after reload: JSON lines');
$off = $t->log_offset;
$t->get("/api/x$_") for @evil;
$r = $t->get('/api/info');
$rid = $r->{headers}{'x-request-id'};
$t->wait_for_log(qr/"request_id":"$rid"/, 5, $off);
my @lines = split /\n/, $t->daemon_log($off);
my @objs = map { eval { JSON::PP->new->decode($_) } } @lines;
is(scalar(@objs), scalar(@lines), 'every line is one JSON object');
ok((grep { $_->{msg} eq 'request' && $_->{path} eq "/api/x\x{1b}[31m" } @objs),
    'JSON: the escaped path decodes to the bytes sent');
ok((grep { ($_->{request_id} // '') eq $rid && $_->{status} eq '200' } @objs),
    'JSON: the access line carries the request id');

###############################################################################
# PostgreSQL down: ready says so, status exits 1

$t->allow_log_errors(qr/PostgreSQL|connect|server|socket/i);
$t->stop_pg;
sleep 1.1;
$r = $t->get('/api/health/ready');
is($r->{status}, 503, 'ready: 503 with PostgreSQL down');
is_deeply($r->{json}, { status => 'unavailable', checks => { database => 'down' } },
    'ready: names the database');
is($t->get('/api/health/live')->{status}, 200, 'live: still 200');
{
	my ($rc, $out) = $t->ctl('status');
	is($rc, 1, 'status: exit 1 with PostgreSQL down');
	like($out, qr/^database: down/m, 'status: database down');
}

$t->done_testing;
