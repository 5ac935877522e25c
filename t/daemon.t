#!/usr/bin/perl

# The daemon as a service manager or an init script runs it: the owner and
# group of the unix socket (`user`, `listen_group`), the pidfile (written at
# start, refused while its pid lives, removed at exit), the systemd readiness
# protocol on $NOTIFY_SOCKET (READY=1, RELOADING=1, STOPPING=1; a path and an
# abstract socket), and the detached mode: a relative -c still reloads after
# the chdir("/"), and nothing is written to the inherited stderr.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Select;
use IO::Socket::UNIX;
use POSIX ();
use Socket qw(SOCK_DGRAM);
use Test::More;
use Time::HiRes qw(sleep time);

use Test::PbxAuth;

my $t = Test::PbxAuth->new;
my ($creator, $detached) = ($$, undef);
END { kill 'KILL', $detached if $detached && $$ == $creator }
$t->write_config(workers => 2);
$t->start_pg;
my $dir = $t->dir;
my $pidfile = "$dir/run/pbx-authd.pid";
mkdir "$dir/run" or die "$dir/run: $!";

# A datagram socket standing in for systemd's notification socket.
sub notify_socket {
	my ($name) = @_;
	my $s = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $name)
	    or die "notify socket $name: $!";
	return $s;
}

# The next datagram, or '' after $timeout seconds.
sub next_notice {
	my ($s, $timeout) = @_;
	return '' unless IO::Select->new($s)->can_read($timeout // 15);
	my $msg = '';
	$s->recv($msg, 4096);
	return $msg;
}

sub read_pid {
	open my $fh, '<', $_[0] or return undef;
	my $l = <$fh> // '';
	return $l =~ /^(\d+)\n\z/ ? $1 : undef;
}

sub alive { my $st = $t->read_file("/proc/$_[0]/stat"); $st ne '' && $st !~ /^\d+ \(.*\) [ZX] /s }

###############################################################################
# the socket's owner and group

my $root = $> == 0;
if ($root) {
	my ($nuid, $ngid) = (getpwnam('nobody'))[2, 3];
	my $dgid = getgrnam('daemon');
	die 'test needs the users nobody and daemon' unless defined $nuid && defined $dgid;

	$t->write_config(user => 'nobody');
	$t->start_daemon;
	my @st = stat $t->fcgi_sock;
	is("$st[4]:$st[5]", "$nuid:$ngid",
	    'root with user = nobody: the socket is owned by nobody and its primary group');
	is($st[2] & 07777, 0666, 'listen_mode still applies');
	is($t->stop_daemon, 0, 'stopped');

	$t->write_config(user => 'nobody', listen_group => 'daemon');
	$t->start_daemon;
	@st = stat $t->fcgi_sock;
	is("$st[4]:$st[5]", "$nuid:$dgid", 'listen_group = daemon: the socket\'s group');
	is($t->stop_daemon, 0, 'stopped');
} else {
	# Unprivileged, `user` changes nothing; listen_group takes a group we are in.
	my $gid = (split ' ', $))[-1];
	my $gname = getgrgid($gid);
	$t->write_config(user => 'nobody', listen_group => $gname);
	$t->start_daemon;
	my @st = stat $t->fcgi_sock;
	is("$st[4]:$st[5]", "$>:$gid", "unprivileged: our socket, group $gname");
	is($t->stop_daemon, 0, 'stopped');
}
{
	my ($rc, $out, $err) = $t->authd('--check-config', '-c',
	    $t->write_file('badgroup.conf', $t->config_text(listen_group => 'no-such-group-pa')));
	isnt($rc, 0, 'an unknown listen_group is refused by --check-config');
	like($err, qr/listen_group = no-such-group-pa: no such group/, '... saying why');
	($rc, $out, $err) = $t->authd('--check-config', '-c',
	    $t->write_file('relpid.conf', $t->config_text(pidfile => 'run/x.pid')));
	isnt($rc, 0, 'a relative pidfile is refused');
}

###############################################################################
# in the foreground: pidfile, readiness on an abstract socket

{
	my $name = "\0pbx-auth-test-$$";
	my $ns = notify_socket($name);
	$t->write_config(user => undef, listen_group => undef, pidfile => $pidfile);
	$t->start_daemon(env => { NOTIFY_SOCKET => "\@pbx-auth-test-$$" });
	my $pid = $t->daemon_pid;
	is(next_notice($ns), "READY=1\nSTATUS=serving", 'READY=1 on the abstract socket');
	is(read_pid($pidfile), $pid, 'the pidfile holds the master\'s pid');

	my ($rc, $out, $err) = $t->authd('-f', '-c', $t->conf_file);
	is($rc, 1, 'a second daemon with the same pidfile does not start');
	like($err, qr/already running as pid $pid/, '... and names the running pid');
	ok(-S $t->fcgi_sock && $t->fcgi_connect, 'the running daemon\'s socket is untouched');

	$t->signal('HUP');
	like(next_notice($ns), qr/^RELOADING=1\nMONOTONIC_USEC=\d+\z/,
	    'SIGHUP: RELOADING=1 with MONOTONIC_USEC');
	is(next_notice($ns), "READY=1\nSTATUS=serving", '... then READY=1');
	$t->wait_until(sub { $t->worker_pids == 2 }, 10);

	kill 'TERM', $pid;
	is(next_notice($ns), 'STOPPING=1', 'SIGTERM: STOPPING=1');
	is($t->stop_daemon, 0, 'exit 0');
	ok(!-e $pidfile, 'the pidfile is removed at exit');
	ok(!-e $t->fcgi_sock, 'and the socket');
}

###############################################################################
# detached, relative -c, a stale pidfile, readiness on a path socket

{
	# A pid that certainly belongs to no process: a child already reaped.
	my $dead = fork() // die;
	POSIX::_exit(0) if !$dead;
	waitpid($dead, 0);
	$t->write_file($pidfile, "$dead\n");

	my $path = "$dir/notify.sock";
	my $ns = notify_socket($path);
	mkdir "$dir/etc";
	$t->write_file('etc/rel.conf', $t->config_text(workers => 2));
	my ($rc, $out, $err) = $t->run([$t->authd_bin, '-c', 'etc/rel.conf'],
	    dir => $dir, env => { NOTIFY_SOCKET => $path });
	is($rc, 0, 'detached start with a relative -c and a stale pidfile');
	is("$out$err", '', 'nothing on the inherited stdout and stderr (syslog instead)');
	is(next_notice($ns), "READY=1\nSTATUS=serving", 'READY=1 on the path socket');
	my $pid = read_pid($pidfile);
	ok($pid && $pid != $dead && alive($pid), 'the pidfile names the detached master');
	$detached = $pid;
	# config_text has hash_workers = 2
	is(scalar($t->children_of($pid)), 5, 'two workers, two hashing workers and the mailer');

	$t->write_file('etc/rel.conf', $t->config_text(workers => 3));
	kill 'HUP', $pid;
	like(next_notice($ns), qr/^RELOADING=1\n/, 'SIGHUP: RELOADING=1');
	is(next_notice($ns), "READY=1\nSTATUS=serving", '... READY=1');
	ok($t->wait_until(sub { $t->children_of($pid) == 6 }, 10),
	    'the relative file was reread after chdir("/"): three workers now');

	kill 'TERM', $pid;
	is(next_notice($ns), 'STOPPING=1', 'STOPPING=1');
	ok($t->wait_until(sub { !alive($pid) }, 20), 'the detached master exits');
	ok(!-e $pidfile, 'and removes its pidfile');
	undef $detached;
}

$t->done_testing;
