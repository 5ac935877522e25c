#!/usr/bin/perl

# ./dev.sh up, down and clean from a copy of the tree in a directory only its
# owner can enter (as root, the postgres user cannot reach it), on free ports
# and with the binaries of the build under test (PBX_DEV_BUILD, so nothing is
# compiled): the stack comes up, answers through the shipped nginx files and
# signs the demo user in; `down` leaves no process behind. With the HTTP or
# the SMTP port taken, `up` says in one line which PBX_DEV_* variable to set,
# exits 1 and starts nothing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use JSON::PP ();
use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new(need_nginx => 1);
my $src = $t->{srcdir};

# A copy of what dev.sh up needs from the tree, in a 0700 directory.
my $private = $t->dir . '/private';
mkdir $private, 0700 or die "$private: $!";
chmod 0700, $private;
sub clone {
	my ($name) = @_;
	my $c = "$private/$name";
	mkdir $c;
	mkdir "$c/t";
	my ($rc, $out, $err) = $t->run(['cp', '-a', "$src/dev.sh", "$src/deploy", "$src/sql", $c]);
	($rc, $out, $err) = $t->run(['cp', '-a', "$src/t/lib", "$c/t/"]) unless $rc;
	die "copying the tree: $err" if $rc;
	return $c;
}

my %port = map { $_ => Test::PbxAuth::free_port() } qw(HTTP PG SMTP);
sub dev {
	my ($clone, @args) = @_;
	my $o = ref $args[-1] eq 'HASH' ? pop @args : {};
	return $t->run(["$clone/dev.sh", @args], dir => $clone, timeout => 180, env => {
	    PBX_DEV_BUILD => $t->{builddir}, PBX_DEV_HTTP_PORT => $port{HTTP},
	    PBX_DEV_PG_PORT => $port{PG}, PBX_DEV_SMTP_PORT => $port{SMTP}, %$o });
}

# Processes whose command line names one of @paths (pbx-authd, nginx, the
# SMTP sink and the postmaster all do: their configuration or data dir).
sub processes_of {
	my (@paths) = @_;
	my @found;
	for my $f (glob '/proc/[0-9]*/cmdline') {
		open my $fh, '<', $f or next;
		my $cmd = do { local $/; <$fh> } // '';
		$cmd =~ tr/\0/ /;
		push @found, "$f: $cmd" if grep { index($cmd, $_) >= 0 } @paths;
	}
	return @found;
}

my $clone = clone('clone');
my @up;
END { dev($clone, 'clean') if @up && $t }

my ($rc, $out, $err) = dev($clone, 'up');
@up = ($rc);
is($rc, 0, 'dev.sh up from a 0700 directory' . ($> == 0 ? ' as root' : ''))
    or diag("$out\n$err");
like($out, qr{running on http://127\.0\.0\.1:$port{HTTP}}, 'up says where it runs');

my $http = HTTP::Tiny->new(timeout => 10, keep_alive => 0);
my $base = "http://127.0.0.1:$port{HTTP}";
my $r = $http->get("$base/api/info?domain=demo.pbx.test");
is($r->{status}, 200, 'GET /api/info?domain=demo.pbx.test') or diag($r->{content});
my ($pw) = $out =~ /alice of tenant demo\.pbx\.test \(password (\S+)\)/;
$r = $http->post("$base/api/auth/sign_in", { headers => { 'Content-Type' => 'application/json' },
    content => JSON::PP->new->encode({ domain => 'demo.pbx.test', username => 'alice',
    password => $pw // '' }) });
is($r->{status}, 200, 'the demo user signs in (PostgreSQL works)') or diag($r->{content});
$r = $http->get("$base/api/auth/user", { headers => { Authorization => 'Bearer ' . 'A' x 10_000 } });
is("$r->{status} $r->{headers}{'content-type'}", '431 application/json; charset=utf-8',
    'the shipped nginx files answer (JSON 431 for a 10,000-byte header)');

my $conf = $t->read_file("$clone/var/pbx-auth.conf");
my ($pgsock) = $conf =~ /^database = host=(\S+)/m;
(my $pgroot = $pgsock // '') =~ s{/run$}{};
ok(processes_of("$clone/", $pgroot), 'processes of the stack are found by their paths');
if ($> == 0) {
	like($pgroot, qr{^/var/tmp/pbx-auth-dev-}, 'as root the cluster lives under /var/tmp');
	is((getpwuid((stat "$pgroot/pg")[4]))[0], 'postgres', 'owned by postgres');
}

($rc, $out, $err) = dev($clone, 'ctl', 'tenant', 'list');
like($out, qr/^demo\.pbx\.test\tenabled/m, 'dev.sh ctl reaches the stack');

# up again while it runs: the busy ports are its own. (A build directory
# without binaries stops it right after the port check, before it restarts
# anything, which would take seconds.)
($rc, $out, $err) = dev($clone, 'up', { PBX_DEV_BUILD => "$private/no-build" });
is($err, "dev.sh: PBX_DEV_BUILD=$private/no-build holds no src/pbx-authd and src/pbx-authctl\n",
    'up again: its own ports pass the check');
is($http->get("$base/api/info")->{status}, 200, 'up again: the stack still runs');

($rc, $out, $err) = dev($clone, 'down');
is($rc, 0, 'dev.sh down');
ok($t->wait_until(sub { !processes_of("$clone/", $pgroot) }, 10), 'down leaves no process')
    or diag(join "\n", processes_of("$clone/", $pgroot));

# The HTTP or SMTP port taken by another program.
my $other = clone('other');
for my $what (qw(HTTP SMTP)) {
	my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	    Listen => 1, Proto => 'tcp') or die "listen: $!";
	my $p = $busy->sockport;
	($rc, $out, $err) = dev($other, 'up', { "PBX_DEV_${what}_PORT" => $p });
	is($rc, 1, "$what port busy: up exits 1");
	is($err, "dev.sh: port $p ($what) is in use by another program: "
	    . "set PBX_DEV_${what}_PORT to a free port\n", "$what port busy: one line says what to do");
	is(join('', processes_of("$other/")), '', "$what port busy: nothing started");
	ok(!-e "$other/var/run", "$what port busy: no state made");
	close $busy;
}

($rc, $out, $err) = dev($clone, 'clean');
is($rc, 0, 'dev.sh clean');
ok(!-e "$clone/var", 'clean removes ./var');
ok(!-e $pgroot, 'clean removes the cluster') if $> == 0;
@up = ();

$t->done_testing;
