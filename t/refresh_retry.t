#!/usr/bin/perl

# A refresh that commits as the database connection dies.  pbx-authd reaches
# PostgreSQL through a small TCP relay of this test which, when armed, lets
# the rotation statement through, holds back PostgreSQL's answer (the
# rotation has committed) and closes the connection instead: the worker
# cannot know the outcome and answers 503.  The client retries later with
# the same refresh token, after refresh_reuse_grace: it gets a new working
# pair, the session is not revoked and no theft is recorded.  The other
# side: a token whose rotation was answered, presented again after the
# grace, still revokes the session with a refresh_reuse audit row, and so
# does the retried token once its retry was answered.  And the race: the
# retry reaches another worker before the one that lost the answer could
# tell the database; while the committing connection is gone the verdict
# waits (503, nothing revoked) for two Retry-After periods, so a retry
# after the mark succeeds, and a token nobody marks is judged after that.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use JSON::PP ();
use POSIX ();
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(sleep);

use Test::PbxAuth;

my $GRACE = 1;
my $RETRY_AFTER = 2;

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->start_pg;

# The relay: every connection to it is passed on to PostgreSQL's unix
# socket.  While the file "cut" exists, the first Bind of the prepared
# statement session_refresh (the rotation) is forwarded, the server's
# answer up to ReadyForQuery (the statement has committed) is held back,
# and both sides are closed; "cut-done" records that it happened.  While
# "block" exists, new connections are closed at once (the worker that lost
# its connection cannot reach PostgreSQL; the other worker still can).
my $arm = $t->dir . '/cut';
my $relay = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16,
    ReuseAddr => 1) or die "relay: $!";
my $relay_port = $relay->sockport;
my $relay_pid = fork() // die "fork: $!";
if ($relay_pid == 0) {
	$SIG{$_} = 'DEFAULT' for qw(TERM INT HUP);
	my $pg = $t->dir . '/.s.PGSQL.' . $t->pgport;
	my $sel = IO::Select->new($relay);
	my (%peer, %cut, %held);
	my $drop = sub {
		my ($s) = @_;
		my $o = delete $peer{$s};
		for my $x (grep { defined } $s, $o) {
			$sel->remove($x);
			delete $cut{$x};
			delete $held{$x};
			delete $peer{$x};
			close $x;
		}
	};
	while (getppid() > 1) {
		for my $s ($sel->can_read(0.5)) {
			if ($s == $relay) {
				my $c = $relay->accept or next;
				if (-e $t->dir . '/block') { close $c; next }
				my $u = IO::Socket::UNIX->new(Peer => $pg, Type => SOCK_STREAM)
				    or do { close $c; next };
				@peer{$c, $u} = ($u, $c);
				$cut{$u} = 0;
				$sel->add($c, $u);
				next;
			}
			my $n = sysread($s, my $buf, 65536);
			if (!$n) { $drop->($s); next }
			my $o = $peer{$s};
			if (exists $cut{$s}) {              # from PostgreSQL
				if ($cut{$s}) {
					$held{$s} .= $buf;
					if ($held{$s} =~ /Z\0\0\0\x05[ITE]/) {
						$drop->($s);
						open my $fh, '>', $t->dir . '/cut-done';
						close $fh;
					}
					next;
				}
			} elsif (-e $arm && $buf =~ /\0session_refresh\0/) {
				unlink $arm;
				$cut{$o} = 1;
			}
			syswrite($o, $buf);
		}
	}
	POSIX::_exit(0);
}
close $relay;

# Sessions are made directly; only the daemon goes through the relay.
$t->write_config(workers => 2, password_hash_cost => 1, refresh_reuse_grace => $GRACE,
    retry_after => $RETRY_AFTER,
    database => "host=127.0.0.1 port=$relay_port dbname=pbxauth user=postgres");
$t->start_daemon->start_nginx;
# The cut connection is logged; nothing else may be an error.
$t->allow_log_errors(qr/connection|server closed|PostgreSQL/i);

my ($rc, undef, $err) = $t->ctl('tenant', 'add', 'retry.test', '--name', 'Retry');
is($rc, 0, 'tenant add') or diag($err);
($rc, undef, $err) = $t->ctl('user', 'add', '--domain', 'retry.test', 'dora',
    { stdin => "Retry-pass-1\n" });
is($rc, 0, 'user add') or diag($err);

my %json = (headers => { 'Content-Type' => 'application/json' });
sub sign_in {
	my $r = $t->request('POST', '/api/auth/sign_in', %json, body => JSON::PP::encode_json(
	    { domain => 'retry.test', username => 'dora', password => 'Retry-pass-1' }));
	is($r->{status}, 200, 'sign_in') or diag($r->{content});
	return $r->{json};
}
sub refresh {
	my ($token) = @_;
	return $t->request('POST', '/api/auth/refresh_token', %json,
	    body => JSON::PP::encode_json({ refresh_token => $token }));
}
sub user_ok {
	my ($access) = @_;
	return $t->get('/api/auth/user', headers => { Authorization => "Bearer $access" })
	    ->{status} == 200;
}
sub session_sql {
	my ($what, $token) = @_;
	return $t->psql("SELECT $what FROM sessions WHERE refresh_family = '"
	    . substr($token, 0, 12) . "'");
}
sub reuse_rows {
	return $t->psql("SELECT count(*) FROM audit_log WHERE event = 'refresh_reuse'");
}

###############################################################################
# the answer of a committed rotation is lost: the retry gets a new pair

my $s = sign_in();
my $t0 = $s->{refresh_token};
$t->write_file($arm, '');
my $r = refresh($t0);
$t->is_error($r, 503, 'SERVICE_UNAVAILABLE', 'the rotation whose answer was lost');
is($r->{headers}{'retry-after'}, $RETRY_AFTER, 'with Retry-After');
ok(-e $t->dir . '/cut-done', 'the relay cut the connection after the commit');
unlink $t->dir . '/cut-done';
is(session_sql("prev_refresh_hash = '\\x" . sha256_hex($t0) . "'", $t0), 't',
    'the rotation had committed: the presented token is spent');
ok($t->wait_until(sub { session_sql('prev_retryable', $t0) eq 't' }, 15),
    'the worker told the database, without waiting for a request, that it may be retried');

sleep($GRACE + 0.5);    # past the grace: a plain reuse would revoke the session
$r = refresh($t0);
is($r->{status}, 200, 'the retry with the same token after the grace: 200')
    or diag($r->{content});
my $p = $r->{json} // {};
is(session_sql('revoked_at IS NULL', $t0), 't', 'the session is not revoked');
is(reuse_rows(), 0, 'no refresh_reuse audit row');
ok(user_ok($p->{access_token} // ''), 'the new access token works');
ok(!user_ok($s->{access_token}), 'the first access token is spent');
my $r2 = refresh($p->{refresh_token} // '');
is($r2->{status}, 200, 'the new refresh token rotates: the chain goes on');

# Once the retry was answered, the token is an ordinary spent one again.
sleep($GRACE + 0.5);
is(refresh($t0)->{status}, 401, 'the retried token presented again after its answer: 401');
is(session_sql('revoked_at IS NOT NULL', $t0), 't', '... and the session is revoked');
is(reuse_rows(), 1, '... with a refresh_reuse audit row');

###############################################################################
# a rotation that was answered: reuse detection as before

my $u = sign_in();
my $u1 = refresh($u->{refresh_token});
is($u1->{status}, 200, 'an answered rotation');
sleep($GRACE + 0.5);
$r = refresh($u->{refresh_token});
is($r->{status}, 401, 'its spent token presented again after the grace: 401');
is(session_sql('revoked_at IS NOT NULL', $u->{refresh_token}), 't', 'the session is revoked');
is(reuse_rows(), 2, 'a refresh_reuse audit row');
ok(!user_ok($u1->{json}{access_token}), 'the thief-or-victim pair is dead');

###############################################################################
# the retry comes before the mark: no verdict until the mark can arrive

sub lose_answer {
	my ($token, $name) = @_;
	my $from = $t->log_offset;
	$t->write_file($t->dir . '/block', '');
	$t->write_file($arm, '');
	my $r = refresh($token);
	is($r->{status}, 503, "$name: the rotation whose answer was lost: 503");
	ok(-e $t->dir . '/cut-done', "$name: cut after the commit");
	unlink $t->dir . '/cut-done';
	my ($pid) = ($t->wait_for_log(qr/rotation was lost/, 5, $from) // '') =~ /\[(\d+)\]/;
	ok($pid, "$name: the worker that lost it logged it");
	return $pid;
}

my $v = sign_in();
lose_answer($v->{refresh_token}, 'before the mark');
sleep($GRACE + 0.5);
# The worker that lost the answer cannot reach PostgreSQL; the other one
# judges the retry (either may take a request: try until the other did).
my ($waited, $from) = (0, $t->log_offset);
for (1 .. 20) {
	$r = refresh($v->{refresh_token});
	is($r->{status}, 503, 'before the mark: the retry is answered 503');
	last if $waited = $t->wait_for_log(qr/no verdict yet/, 0.2, $from);
}
ok($waited, 'before the mark: the other worker did not judge the token');
is(session_sql('revoked_at IS NULL', $v->{refresh_token}), 't', '... the session lives');
is(reuse_rows(), 2, '... no new refresh_reuse audit row');
unlink $t->dir . '/block';
ok($t->wait_until(sub { session_sql('prev_retryable', $v->{refresh_token}) eq 't' }, 15),
    'the mark arrives once the worker reaches PostgreSQL');
$r = refresh($v->{refresh_token});
is($r->{status}, 200, 'then the retry gets a new pair') or diag($r->{content});
ok(user_ok($r->{json}{access_token} // ''), '... which works');
is(reuse_rows(), 2, '... and no theft was recorded');

# Nobody marks it (the worker that lost the answer died): judged after the wait.
my $w = sign_in();
my $pid = lose_answer($w->{refresh_token}, 'no mark');
kill 'KILL', $pid;
$t->allow_log_errors(qr/worker exited/);
ok($t->wait_gone($pid, 5), 'no mark: the worker is gone with its memory');
unlink $t->dir . '/block';
sleep($GRACE + 0.5);
is(refresh($w->{refresh_token})->{status}, 503, 'no mark: first the verdict waits');
is(session_sql('revoked_at IS NULL', $w->{refresh_token}), 't', '... the session lives');
sleep(2 * $RETRY_AFTER + 0.5);
is(refresh($w->{refresh_token})->{status}, 401, 'no mark: after two Retry-After periods, 401');
is(session_sql('revoked_at IS NOT NULL', $w->{refresh_token}), 't', '... the session is revoked');
is(reuse_rows(), 3, '... with a refresh_reuse audit row');

$t->stop_daemon;
kill 'TERM', $relay_pid;
waitpid($relay_pid, 0);
$t->done_testing;
