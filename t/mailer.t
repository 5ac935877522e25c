#!/usr/bin/perl

# The mailer child of pbx-authd, with rows queued in mail_outbox by psql and
# an SMTP sink on loopback: the message form (RFC 5322 headers, RFC 2047
# subject, dot-stuffing), CR/LF in a recipient or subject, delivery after the
# sink was down and across a daemon restart (exactly once), a SIGKILLed
# mailer mid-queue, retries with backoff ending in 'failed', STARTTLS
# required and optional, AUTH with the password file, the clean-up of
# expired rows, and the smtp_* configuration checks.

use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";

use Encode qw(encode);
use Test::More;
binmode(Test::More->builder->$_, ':encoding(UTF-8)') for qw(output failure_output todo_output);
use Time::HiRes qw(sleep time);

use Test::PbxAuth;
use Test::PbxAuth::Smtp;

my $t = Test::PbxAuth->new;
my $smtp = Test::PbxAuth::Smtp->new($t);
my %base = ($smtp->config, smtp_from_name => encode('UTF-8', "PBX Démo"), smtp_retry_base => 1,
    smtp_max_attempts => 4, smtp_connect_timeout => 3, smtp_timeout => 10, workers => 1,
    smtp_user => undef, smtp_password_file => undef, smtp_ca_file => undef);
$t->write_config(%base);
# Failures are the point of several cases below.
$t->allow_log_errors(qr/mail failed id=\d+|did not stop|STARTTLS|authentication|smtp_password_file/);

$smtp->start;
$t->start_pg;
$t->start_daemon;

sub q_lit {
	my ($s) = @_;
	$s = encode('UTF-8', $s);
	$s =~ s/'/''/g;
	return "'$s'";
}

# Queues one message; returns its id.
sub queue {
	my ($rcpt, $subject, $body, $extra) = @_;
	my $cols = $extra ? ", $extra->[0]" : '';
	my $vals = $extra ? ", $extra->[1]" : '';
	return $t->psql("INSERT INTO mail_outbox (kind, recipient, subject, body$cols) VALUES"
	    . " ('test', " . q_lit($rcpt) . ', ' . q_lit($subject) . ', ' . q_lit($body)
	    . "$vals) RETURNING id");
}

# { status, attempts, last_error, body_null, sent } of a row.
sub row {
	my ($id) = @_;
	my $r = $t->psql("SELECT status, attempts, coalesce(last_error, ''), body IS NULL,"
	    . " sent_at IS NOT NULL FROM mail_outbox WHERE id = $id");
	my @f = split /\|/, $r, 5;
	return { status => $f[0] // '', attempts => $f[1], last_error => $f[2],
	    body_null => ($f[3] // '') eq 't', sent => ($f[4] // '') eq 't' };
}

sub wait_row {
	my ($id, $cond, $timeout) = @_;
	my $r;
	$t->wait_until(sub { $r = row($id); $cond->($r) }, $timeout // 15, 0.2);
	return $r;
}

# The messages whose Message-ID names outbox row $id.
sub messages_of {
	my ($sink, $id) = @_;
	return grep { ($_->{header}{'message-id'} // '') =~ /^<pbx-auth\.\Q$id\E\.\d+\@/ }
	    $sink->messages;
}

sub reload_daemon {
	my (%conf) = @_;
	$t->write_config(%base, %conf);
	my $off = $t->log_offset;
	$t->signal('HUP');
	ok($t->wait_for_log(qr/mailer started/, 15, $off), 'SIGHUP: a new mailer started')
	    or diag($t->daemon_log($off));
}

###############################################################################
# the process

my $mailer = $t->mailer_pid;
ok($mailer, 'pbx-authd runs a mailer child') or diag(join ' ', $t->children_of($t->daemon_pid));
is(scalar $t->worker_pids, 1, 'the mailer is not counted as a worker');
ok($t->wait_for_log(qr/mailer started smtp=smtp:\/\/127\.0\.0\.1:\d+ starttls=off auth=no/, 10),
    'the mailer logs where it sends');

###############################################################################
# delivery and the message form

my $body = "Hello Alice,\n\n.a line that starts with a dot\n.\n..two dots\nlast line\n";
my $t0 = time;
my $id = queue('alice@example.com', 'Password reset for Demo', $body);
my @m = $smtp->wait_messages(1, 15);
is(scalar @m, 1, 'one message delivered');
ok(time - $t0 < 8, 'woken by NOTIFY: delivered within seconds (the idle poll is 60 s)');
my $msg = $m[0] // {};
my $h = $msg->{header} || {};
like($h->{date} // '', qr/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000$/,
    'Date: RFC 5322 date-time');
like($h->{'message-id'} // '', qr/^<pbx-auth\.$id\.\d+\@pbx\.test>$/,
    'Message-ID: derived from the row id, at the sender domain');
is($msg->{from}, 'PBX Démo <noreply@pbx.test>', 'From: display name (decoded) and address');
like($h->{from} // '', qr/^=\?UTF-8\?B\?[A-Za-z0-9+\/=]+\?= <noreply\@pbx\.test>$/,
    'From: a non-ASCII display name is an encoded-word');
is($h->{to}, '<alice@example.com>', 'To: the recipient');
is($h->{subject}, 'Password reset for Demo', 'Subject: ASCII as it is');
is($h->{'content-type'}, 'text/plain; charset=utf-8', 'Content-Type: text/plain; charset=utf-8');
is($h->{'mime-version'}, '1.0', 'MIME-Version: 1.0');
is($h->{'auto-submitted'}, 'auto-generated', 'Auto-Submitted: auto-generated');
is($h->{'content-transfer-encoding'}, '7bit', 'ASCII body: 7bit');
is($msg->{body}, $body, 'body intact: dot lines were stuffed on the wire and the lone "." did'
    . ' not end the message');
is($msg->{mail_from}, 'noreply@pbx.test', 'envelope sender: smtp_from');
is_deeply($msg->{rcpt_to}, ['alice@example.com'], 'envelope recipient');
unlike($msg->{raw} // '', qr/(?<!\r)\n/, 'CRLF line ends only');
my $r = row($id);
is($r->{status}, 'sent', 'row: status sent');
is($r->{attempts}, 1, 'row: one attempt');
ok($r->{sent}, 'row: sent_at set');
ok($r->{body_null}, 'row: body dropped once sent');
is($r->{last_error}, '', 'row: no last_error');
like($t->daemon_log, qr/mail sent id=$id domain=example\.com attempt=1 reply="250 2\.0\.0 queued"/,
    'log: id, recipient domain, attempt and reply');
unlike($t->daemon_log, qr/alice\@example\.com/, 'log: not the full address');

# RFC 2047 subject, non-ASCII body
$smtp->clear;
my $subject = 'Réinitialisation du mot de passe — 日本語のテスト, a rather long subject'
    . ' that has to be folded over several lines';
my $body8 = "Grüße, Ünïcödé\n" . ('x' x 1200) . "\nend\n";
$id = queue('bob@example.com', $subject, $body8);
@m = $smtp->wait_messages(1, 15);
$msg = $m[0] // {};
is($msg->{subject}, $subject, 'non-ASCII subject arrives intact (RFC 2047 decoded)');
like($msg->{header}{subject} // '', qr/^=\?UTF-8\?B\?/, 'Subject: encoded-words');
my @long = grep { length > 78 } split /\r\n/, $msg->{head} // '';
is(scalar @long, 0, 'no header line longer than 78 characters') or diag(join "\n", @long);
unlike($msg->{head} // '', qr/[^\x00-\x7f]/, 'headers are ASCII');
is($msg->{header}{'content-transfer-encoding'}, 'quoted-printable', '8-bit body: quoted-printable');
is($msg->{body}, $body8, 'non-ASCII body and a 1200-character line arrive intact');
my @body_long = grep { length > 78 } split /\r\n/, $msg->{body_bytes} // '';
is(scalar @body_long, 0, 'no body line longer than 78 characters on the wire');

###############################################################################
# CR/LF in a recipient or a subject

$smtp->clear;
my $before = $smtp->transcript;
my @evil = (
	"victim\@example.com\r\nRCPT TO:<evil\@attacker.test>",
	"victim\@example.com>\r\nRSET\r\nMAIL FROM:<evil\@attacker.test>",
	"victim\@example.com\nBcc: evil\@attacker.test",
	"victim\@example.com\rDATA",
	"<victim\@example.com>",
	"victim\@exam ple.com",
);
my @evil_ids = map { queue($_, 'Injected?', 'body') } @evil;
for my $i (0 .. $#evil) {
	my $e = $evil[$i];
	(my $name = $e) =~ s/\r/\\r/g;
	$name =~ s/\n/\\n/g;
	my $rr = wait_row($evil_ids[$i], sub { $_[0]{status} ne 'queued' });
	is($rr->{status}, 'failed', "recipient '$name': failed at once");
	is($rr->{attempts}, 1, "recipient '$name': one attempt");
	like($rr->{last_error}, qr/invalid recipient/, "recipient '$name': last_error says why");
}
is($smtp->transcript, $before, 'no SMTP command was sent for any of them');
unlike($smtp->transcript, qr/attacker|RSET/, 'no smuggled command ever reached the server');
like($t->daemon_log, qr/mail failed id=$evil_ids[0] domain="\(invalid address\)" attempt=1/,
    'log: the invalid address is not logged');

$id = queue('carol@example.com', "Hello\r\nBcc: evil\@attacker.test\r\n\r\nInjected body",
    'the real body');
@m = $smtp->wait_messages(1, 15);
$msg = $m[0] // {};
is_deeply([ map { lc $_->[0] } @{$msg->{headers} || []} ],
    [qw(date from to subject message-id mime-version content-type content-transfer-encoding
    auto-submitted)], 'CR/LF in the subject: the same nine headers, no Bcc');
is_deeply($msg->{rcpt_to}, ['carol@example.com'], 'CR/LF in the subject: no extra recipient');
is($msg->{body}, "the real body\n", 'CR/LF in the subject: no injected body');
is($msg->{subject}, 'Hello  Bcc: evil@attacker.test    Injected body',
    'CR/LF in the subject became spaces');

###############################################################################
# the sink is down for a while, and pbx-authd restarts meanwhile

$smtp->clear;
$smtp->stop;
$id = queue('dave@example.com', 'Down for a while', "queued while the server was down\n");
$r = wait_row($id, sub { $_[0]{attempts} >= 2 }, 20);
is($r->{status}, 'queued', 'server down: still queued after two attempts');
like($r->{last_error}, qr/connect/i, 'server down: last_error says it could not connect');
like($t->daemon_log, qr/mail deferred id=$id domain=example\.com attempt=1 retry_in=1 /,
    'log: deferred, first retry after smtp_retry_base seconds');
is($t->stop_daemon, 0, 'pbx-authd stops with status 0 while mail is queued');
$smtp->start;
$t->start_daemon;
@m = $smtp->wait_messages(1, 20);
is(scalar(messages_of($smtp, $id)), 1, 'delivered once the server is back, after a restart');
$r = wait_row($id, sub { $_[0]{status} eq 'sent' }, 10);
is($r->{status}, 'sent', 'row: sent');
sleep 3;
is(scalar(messages_of($smtp, $id)), 1, 'exactly once (nothing more after 3 s)');

###############################################################################
# retries exhausted; a permanent refusal

$smtp->clear;
$smtp->set(reply_rcpt => '451 4.3.0 mailbox busy, try later');
my $off = $t->log_offset;
$id = queue('erin@example.com', 'Busy', "never delivered\n");
$r = wait_row($id, sub { $_[0]{status} ne 'queued' }, 40);
is($r->{status}, 'failed', 'temporary failures: failed after smtp_max_attempts');
is($r->{attempts}, 4, 'four attempts');
is($r->{last_error}, '451 4.3.0 mailbox busy, try later', "last_error: the server's last reply");
ok($r->{body_null}, 'failed: body dropped');
my @delays = $t->daemon_log($off) =~ /mail deferred id=$id .* retry_in=(\d+) /g;
is("@delays", '1 2 4', 'exponential backoff: 1, 2, 4 s');
like($t->daemon_log($off), qr/mail failed id=$id domain=example\.com attempt=4 reply="451 4\.3\.0/,
    'log: failed, with the reply');
is(scalar $smtp->messages, 0, 'nothing delivered');

$smtp->set(reply_rcpt => '550 5.1.1 no such user');
$id = queue('frank@example.com', 'Unknown', "never delivered\n");
$r = wait_row($id, sub { $_[0]{status} ne 'queued' }, 15);
is($r->{status}, 'failed', 'permanent refusal (5xx): failed at once');
is($r->{attempts}, 1, 'one attempt');
is($r->{last_error}, '550 5.1.1 no such user', "last_error: the server's reply");

$smtp->set(reply_end => '554 5.7.1 rejected as spam');
$id = queue('frank@example.com', 'Spam?', "never delivered\n");
$r = wait_row($id, sub { $_[0]{status} ne 'queued' }, 15);
is($r->{status}, 'failed', '5xx after the message: failed at once');
is($r->{last_error}, '554 5.7.1 rejected as spam', "last_error: the server's reply");

# 5xx before the recipient (sender, TLS or AUTH required) is the operator's to fix
$smtp->set(reply_mail => '530 5.7.0 authentication required');
$id = queue('frank@example.com', 'Config', "delivered later\n");
$r = wait_row($id, sub { $_[0]{attempts} >= 1 }, 15);
is($r->{status}, 'queued', '5xx to MAIL FROM: deferred, not failed');
is($r->{last_error}, '530 5.7.0 authentication required', "last_error: the server's reply");
$smtp->set;
@m = $smtp->wait_messages(1, 15);
is(scalar(messages_of($smtp, $id)), 1, 'delivered once the server accepts the sender');

###############################################################################
# the mailer is killed mid-queue

$smtp->clear;
$smtp->set(delay_end => 0.4);
my $first = $t->psql("INSERT INTO mail_outbox (kind, recipient, subject, body)"
    . " SELECT 'test', 'user' || i || '\@example.com', 'Batch ' || i, 'message ' || i"
    . " FROM generate_series(1, 10) i RETURNING id");
my @batch = split /\n/, $first;
is(scalar @batch, 10, 'ten messages queued');
$smtp->wait_messages(3, 20);
my $old = $t->mailer_pid;
ok($old && kill('KILL', $old), 'mailer SIGKILLed mid-queue');
ok($t->wait_until(sub { my $p = $t->mailer_pid; $p && $p != $old }, 10),
    'the master starts a new mailer');
my $ids = join ',', @batch;
ok($t->wait_until(sub {
	$t->psql("SELECT count(*) FROM mail_outbox WHERE id IN ($ids) AND status = 'sent'") == 10
}, 40, 0.3), 'every message of the batch is sent');
my %seen;
for my $mm ($smtp->messages) {
	my ($mid) = ($mm->{header}{'message-id'} // '') =~ /^<pbx-auth\.(\d+)\./;
	$seen{$mid}++ if defined $mid;
}
is(scalar(grep { $seen{$_} } @batch), 10, 'nothing lost: every row arrived');
my $dups = grep { ($seen{$_} // 0) > 1 } @batch;
ok($dups <= 1, "at most the message in flight arrived twice ($dups)");
$smtp->set;

###############################################################################
# two daemons (two hosts) on one database share the queue: each message once

{
	my $log2 = $t->dir . '/second-authd.log';
	my $conf2 = $t->write_file('second.conf',
	    $t->config_text(%base, listen => $t->dir . '/fcgi2.sock'));
	my $h2 = $t->spawn([$t->authd_bin, '-f', '-c', $conf2], stdout_file => $log2,
	    stderr_file => $log2, append => 1);
	ok($t->wait_until(sub { $t->read_file($log2) =~ /mailer started/ }, 15),
	    'a second pbx-authd with its own mailer');
	$smtp->clear;
	$smtp->set(delay_end => 0.2);
	my @ids = split /\n/, $t->psql("INSERT INTO mail_outbox (kind, recipient, subject, body)"
	    . " SELECT 'test', 'two' || i || '\@example.com', 'Two mailers ' || i, 'body ' || i"
	    . " FROM generate_series(1, 12) i RETURNING id");
	my $list = join ',', @ids;
	ok($t->wait_until(sub {
		$t->psql("SELECT count(*) FROM mail_outbox WHERE id IN ($list)"
		    . " AND status = 'sent'") == 12
	}, 40, 0.3), 'two mailers: all twelve sent');
	my %n;
	for my $mm ($smtp->messages) {
		my ($mid) = ($mm->{header}{'message-id'} // '') =~ /^<pbx-auth\.(\d+)\./;
		$n{$mid}++ if defined $mid;
	}
	is(join(',', map { $n{$_} // 0 } @ids), join(',', (1) x 12),
	    'two mailers: every message exactly once');
	my $second = () = $t->read_file($log2) =~ /mail sent id=/g;
	note("the second mailer sent $second of 12");
	kill 'TERM', $h2->{pid};
	$h2->{keep} = 1;    # the log stays for check_logs
	my ($rc) = $t->wait_cmd($h2, 30);
	is($rc, 0, 'the second pbx-authd stops with status 0');
	unlike($t->read_file($log2), qr/AddressSanitizer|runtime error:| error /,
	    'the second pbx-authd logged no error');
	$smtp->set;
}

###############################################################################
# STARTTLS and AUTH

# required against a server without STARTTLS: deferred, nothing in plaintext
reload_daemon(smtp_starttls => 'required');
$smtp->clear;
$before = $smtp->transcript;
$id = queue('gina@example.com', 'TLS or nothing', "secret reset link\n");
$r = wait_row($id, sub { $_[0]{attempts} >= 1 }, 15);
is($r->{status}, 'queued', 'STARTTLS required, not offered: not sent');
like($r->{last_error}, qr/STARTTLS/i, 'last_error names STARTTLS');
my $new = substr($smtp->transcript, length $before);
unlike($new, qr/^\d+ > (MAIL|RCPT|DATA)/m, 'no MAIL, RCPT or DATA in plaintext');
is(scalar $smtp->messages, 0, 'nothing delivered');

# optional: delivered in plaintext by the same server
reload_daemon(smtp_starttls => 'optional');
@m = $smtp->wait_messages(1, 20);
is(scalar(messages_of($smtp, $id)), 1, 'STARTTLS optional: delivered without TLS');
is($m[0]{tls}, 0, 'in plaintext');

# a server with STARTTLS (self-signed certificate) and AUTH
my $password = 'smtp-Pa55-word-' . int(rand(1e9));
my $tls = Test::PbxAuth::Smtp->new($t, name => 'smtps', tls => 1, auth => ['mailer', $password]);
$tls->set(require_tls => 1);
$tls->start;
reload_daemon($tls->config);
like($t->daemon_log, qr/starttls=required auth=yes/, 'log: STARTTLS required, AUTH on');
$id = queue('hank@example.com', 'Over TLS', "body over TLS\n");
@m = $tls->wait_messages(1, 20);
$msg = (messages_of($tls, $id))[0] // {};
is($msg->{tls}, 1, 'STARTTLS with smtp_ca_file: delivered over TLS');
is($msg->{auth}, 'mailer', 'AUTH with the user and the password from smtp_password_file');
like($tls->transcript, qr/^\d+ > STARTTLS$/m, 'STARTTLS was issued');

# a wrong password: deferred (the operator's to fix), never failed at once
$tls->clear;
$tls->set(require_tls => 1, auth_password => 'another-password');
$id = queue('ivan@example.com', 'Wrong password', "body\n");
$r = wait_row($id, sub { $_[0]{attempts} >= 1 }, 15);
is($r->{status}, 'queued', 'AUTH refused: still queued');
like($r->{last_error}, qr/^535 /, 'last_error: the 535 reply');
$tls->set(require_tls => 1);
@m = $tls->wait_messages(1, 20);
is(scalar(messages_of($tls, $id)), 1, 'delivered once the password is accepted');
$tls->stop;

# an unreadable password file: nothing is sent until it can be read (reload)
reload_daemon(smtp_user => 'mailer', smtp_password_file => $t->dir . '/no-such-file');
like($t->daemon_log, qr/smtp_password_file .*no-such-file: No such file/,
    'an unreadable password file is logged (with its path)');
$smtp->clear;
$id = queue('kate@example.com', 'Waiting for the password', "body\n");
sleep 2;
$r = row($id);
is($r->{attempts}, 0, 'without its password the mailer does not try');
reload_daemon();
@m = $smtp->wait_messages(1, 20);
is(scalar(messages_of($smtp, $id)), 1, 'delivered after the reload');

###############################################################################
# a server that is down pauses the queue instead of costing every message an
# attempt

reload_daemon(smtp_retry_base => 3);
$smtp->stop;
$smtp->clear;
my @down = split /\n/, $t->psql("INSERT INTO mail_outbox (kind, recipient, subject, body)"
    . " SELECT 'test', 'paused' || i || '\@example.com', 'Paused ' || i, 'body ' || i"
    . " FROM generate_series(1, 5) i RETURNING id");
my $down = join ',', @down;
my $sum = sub { $t->psql("SELECT sum(attempts) FROM mail_outbox WHERE id IN ($down)") };
ok($t->wait_until(sub { $sum->() >= 1 }, 15, 0.1), 'server down: one message tried');
sleep 0.5;
is($sum->(), 1, 'server down: the others wait (deliveries pause)');
$smtp->start;
ok($t->wait_until(sub {
	$t->psql("SELECT count(*) FROM mail_outbox WHERE id IN ($down) AND status = 'sent'") == 5
}, 30, 0.3), 'server back: all five sent');
is($sum->(), 6, 'one failed attempt in all, then one each');
reload_daemon();

###############################################################################
# clean-up of expired rows

# (one transaction: a mailer cleaning up meanwhile sees all of it or none)
$off = $t->log_offset;
$t->psql(<<'SQL');
BEGIN;
INSERT INTO users (username, role, email) VALUES ('cleanup-user', 'Dealer', 'c@example.com');
INSERT INTO auth_flows (kind, token_hash, user_id, flavour, expires_at) SELECT 'two_factor',
    '\x01', id, 'bearer', now() - interval '2 hours' FROM users WHERE username = 'cleanup-user';
INSERT INTO auth_flows (kind, token_hash, user_id, flavour, expires_at) SELECT 'two_factor',
    '\x02', id, 'bearer', now() + interval '5 minutes' FROM users WHERE username = 'cleanup-user';
INSERT INTO sessions (user_id, flavour, access_hash, access_expires_at, refresh_hash,
    refresh_expires_at) SELECT id, 'bearer', '\x11', now() - interval '3 days', '\x12',
    now() - interval '2 hours' FROM users WHERE username = 'cleanup-user';
INSERT INTO spent_refresh_tokens (token_hash, session_id)
    SELECT '\x13', id FROM sessions WHERE access_hash = '\x11';
INSERT INTO sessions (user_id, flavour, access_hash, access_expires_at, refresh_hash,
    refresh_expires_at) SELECT id, 'bearer', '\x21', now() - interval '3 days', '\x22',
    now() + interval '1 day' FROM users WHERE username = 'cleanup-user';
INSERT INTO throttle (key, failures, window_start, blocked_until) VALUES
    ('ip old', 3, now() - interval '3 days', NULL),
    ('ip blocked', 5, now() - interval '3 days', now() + interval '1 hour'),
    ('ip recent', 1, now() - interval '1 minute', NULL);
INSERT INTO mail_outbox (kind, recipient, subject, body, status, sent_at, created_at) VALUES
    ('test', 'old@example.com', 'old sent', NULL, 'sent', now() - interval '10 days',
     now() - interval '10 days'),
    ('test', 'new@example.com', 'new sent', NULL, 'sent', now() - interval '1 day',
     now() - interval '1 day'),
    ('test', 'fail@example.com', 'old failed', NULL, 'failed', NULL, now() - interval '10 days');
INSERT INTO mail_outbox (kind, recipient, subject, body, created_at, next_attempt_at) VALUES
    ('test', 'later@example.com', 'old but queued', 'b', now() - interval '10 days',
     now() + interval '1 day');
COMMIT;
SQL
reload_daemon();    # a new mailer cleans up when it starts
ok($t->wait_for_log(qr/cleanup deleted flows=1 sessions=1 throttle=1 mail=\d+/, 15, $off),
    'cleanup: logged what it deleted') or diag($t->daemon_log($off));
is($t->psql("SELECT string_agg(encode(token_hash, 'hex'), ',') FROM auth_flows"), '02',
    'cleanup: the expired flow is gone, the live one stays');
is($t->psql("SELECT string_agg(encode(access_hash, 'hex'), ',') FROM sessions"), '21',
    'cleanup: the session past its refresh expiry is gone, the live one stays');
is($t->psql("SELECT count(*) FROM spent_refresh_tokens"), 0,
    'cleanup: spent refresh tokens of the gone session too');
is($t->psql("SELECT string_agg(key, ',' ORDER BY key) FROM throttle"), 'ip blocked,ip recent',
    'cleanup: throttle rows whose window and block are over are gone');
is($t->psql("SELECT string_agg(subject, ',' ORDER BY subject) FROM mail_outbox"
    . " WHERE subject IN ('old sent', 'new sent', 'old failed', 'old but queued')"),
    'new sent,old but queued', 'cleanup: sent and failed mail older than mail_keep_days is gone,'
    . ' queued mail stays');

###############################################################################
# configuration checks

{
	my %bad = (
		'smtp_url not smtp'  => [ { smtp_url => 'http://127.0.0.1:25' }, qr/smtp_url|smtp:\/\// ],
		'smtp_url user info' => [ { smtp_url => 'smtp://u:p@127.0.0.1' }, qr/user information/ ],
		'no smtp_from'       => [ { smtp_from => undef }, qr/smtp_from/ ],
		'bad smtp_from'      => [ { smtp_from => 'PBX <noreply@pbx.test>' }, qr/smtp_from/ ],
		'user without file'  => [ { smtp_user => 'u' }, qr/smtp_password_file/ ],
		'plaintext AUTH'     => [ { smtp_url => 'smtp://mail.example.com:587', smtp_user => 'u',
		    smtp_password_file => '/dev/null', smtp_starttls => 'optional' }, qr/smtp_starttls/ ],
		'bad smtp_starttls'  => [ { smtp_starttls => 'maybe' }, qr/smtp_starttls/ ],
		'smtp_timeout 60'    => [ { smtp_timeout => 60 }, qr/smtp_timeout/ ],
	);
	for my $case (sort keys %bad) {
		my ($o, $re) = @{$bad{$case}};
		(my $n = $case) =~ s/\W+/_/g;
		my $file = $t->write_file("bad_$n.conf", $t->config_text(%base, %$o));
		my ($rc, $out, $err) = $t->authd('--check-config', '-c', $file);
		is($rc, 1, "--check-config, $case: refused");
		like($err, $re, "--check-config, $case: says why") or diag($err);
	}
	my $file = $t->write_file('good_smtps.conf', $t->config_text(%base,
	    smtp_url => 'smtps://mail.example.com:465/pbx.example', smtp_user => 'u',
	    smtp_password_file => '/dev/null', smtp_starttls => 'off'));
	my ($rc, $out, $err) = $t->authd('--check-config', '-c', $file);
	is($rc, 0, 'smtps:// with AUTH is fine') or diag($err);
}

###############################################################################
# SIGTERM

$smtp->set(delay_end => 3);
$id = queue('judy@example.com', 'In flight at SIGTERM', "body\n");
sleep 1;
$t0 = time;
is($t->stop_daemon, 0, 'SIGTERM with a message in flight: exit status 0');
ok(time - $t0 < 12, 'stopped within smtp_timeout');
$r = row($id);
ok($r->{status} eq 'sent' || $r->{status} eq 'queued', "the message in flight is $r->{status},"
    . ' not lost');
$smtp->set;

# the mailer dies with the master, even when the master is killed outright
$t->start_daemon;
# the master forks the mailer beside the workers: it may not be there yet
ok($t->wait_until(sub { $mailer = $t->mailer_pid }, 15), 'a mailer again');
ok($t->wait_for_log(qr/\[$mailer\]: mailer started/, 10), 'it has started');
my @children = $t->children_of($t->daemon_pid);
$t->stop_daemon(signal => 'KILL');
ok($t->wait_gone($mailer, 10), 'master SIGKILLed: the mailer exits too');
# (and the workers, before PostgreSQL stops at the end)
ok($t->wait_until(sub { !grep { !$t->wait_gone($_, 0) } @children }, 15),
    'master SIGKILLed: every child exits');

$t->log_format_ok;
$t->done_testing;
