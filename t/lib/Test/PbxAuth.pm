package Test::PbxAuth;

# Integration test harness for pbx-auth, modelled on nginx-tests' Test::Nginx:
# one temporary directory per .t file, free ports picked at run time, a
# throwaway PostgreSQL cluster (a copy of one initdb per build), pbx-authd
# from a generated config and nginx from the shipped deploy/nginx files
# (rendered by deploy/nginx/render into a minimal nginx.conf), and a teardown that stops everything we started (by pid) and checks
# the daemon's log for sanitizer reports and unexpected error lines.
#
# Environment: PA_BUILDDIR (binaries in $PA_BUILDDIR/src), PA_SRCDIR
# (migrations in $PA_SRCDIR/sql/migrations), TEST_PA_LEAVE=1 keeps the dir.

use strict;
use warnings;

use Test::More ();
use Cwd qw(abs_path);
use Digest::SHA ();
use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use File::Basename qw(dirname);
use File::Path qw(rmtree);
use File::Spec;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use B ();
use Encode ();
use JSON::PP;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(sleep time);

our $VERSION = '0.1';

my @INSTANCES;
my $CREATOR = $$;

###############################################################################
# construction

sub new {
	my ($class, %opt) = @_;

	my $self = bless {
		conf     => {},
		raw_conf => '',
		log_allow => [],
		responses => [],
		secrets  => {},
		started  => {},
		%opt,
	}, $class;

	my $here = dirname(abs_path($0));
	my $root = abs_path(File::Spec->catdir($here, '..'));
	$self->{srcdir} = $ENV{PA_SRCDIR} || $root;
	$self->{builddir} = $ENV{PA_BUILDDIR} || $root;
	$self->{authd} = "$self->{builddir}/src/pbx-authd";
	$self->{authctl} = "$self->{builddir}/src/pbx-authctl";
	$self->{migrations} = "$self->{srcdir}/sql/migrations";

	for my $bin ($self->{authd}, $self->{authctl}) {
		die "Test::PbxAuth: $bin not found or not executable "
		    . "(set PA_BUILDDIR)\n" unless -x $bin;
	}

	($self->{pgbin}) = sort { $b cmp $a } grep { -x "$_/initdb" }
	    glob('/usr/lib/postgresql/*/bin');
	$self->{nginx} = (grep { -x } '/usr/sbin/nginx', '/usr/bin/nginx')[0];

	Test::More::plan(skip_all => 'PostgreSQL server binaries not found')
	    unless $self->{pgbin};
	Test::More::plan(skip_all => 'nginx not found')
	    if $opt{need_nginx} && !$self->{nginx};

	$self->{dir} = tempdir('pbx-auth-test-XXXXXXXX', TMPDIR => 1,
	    CLEANUP => 0);
	chmod 0755, $self->{dir};
	$self->{root} = $> == 0;
	if ($self->{root}) {
		# PostgreSQL runs as postgres and writes its socket, lock file and
		# log here; root (daemon, nginx) can write anywhere anyway.
		my (undef, undef, $uid, $gid) = getpwnam('postgres')
		    or die "Test::PbxAuth: running as root but no postgres user\n";
		chown $uid, $gid, $self->{dir};
	}

	$self->{pgport} = free_port();
	$self->{http_port} = free_port();
	$self->{fcgi_sock} = "$self->{dir}/fcgi.sock";
	$self->{conf_file} = "$self->{dir}/pbx-auth.conf";
	$self->{authd_log} = "$self->{dir}/pbx-authd.log";
	$self->{ctl_log} = "$self->{dir}/pbx-authctl.log";
	$self->{dbname} = 'pbxauth';

	$self->{http} = HTTP::Tiny->new(max_redirect => 0, timeout => 10,
	    keep_alive => 0, agent => 'pbx-auth-tests');

	$self->write_config();
	push @INSTANCES, $self;

	# Interrupted runs still stop what they started (END blocks run on exit).
	for my $sig (qw(INT TERM HUP)) {
		$SIG{$sig} = sub { Test::More::diag("caught SIG$sig"); exit 1 }
		    unless $SIG{$sig};
	}
	return $self;
}

sub dir { $_[0]{dir} }
sub conf_file { $_[0]{conf_file} }
sub fcgi_sock { $_[0]{fcgi_sock} }

# Where pbx-authd listens: the unix socket, or host:port when the test
# configured `listen` so.
sub fcgi_listen { $_[0]{conf}{listen} // $_[0]{fcgi_sock} }

# Where the hashing workers listen: `hash_listen`, or its default derived
# from `listen` as pbx-authd derives it (x.sock -> x-hash.sock, port + 1).
sub hash_listen {
	my ($self) = @_;
	return $self->{conf}{hash_listen} if defined $self->{conf}{hash_listen};
	my $l = $self->fcgi_listen;
	return $l =~ m{^/} ? ($l =~ s/\.sock\z//r) . ($l =~ /\.sock\z/ ? '-hash.sock' : '-hash')
	    : $l =~ s/:(\d+)\z/':' . ($1 + 1)/er;
}

# A connection to pbx-authd's FastCGI socket (or to $listen, e.g. the
# hash_listen one), or undef.
sub fcgi_connect {
	my ($self, $listen, $local) = @_;
	my $l = $listen // $self->fcgi_listen;
	return IO::Socket::UNIX->new(Peer => $l, Type => SOCK_STREAM) if $l =~ m{^/};
	return IO::Socket::INET->new(PeerAddr => $l, Proto => 'tcp', Timeout => 5,
	    $local ? (LocalAddr => $local) : ());
}
sub pgport { $_[0]{pgport} }
sub http_port { $_[0]{http_port} }
sub migrations_dir { $_[0]{migrations} }
sub authd_bin { $_[0]{authd} }
sub authctl_bin { $_[0]{authctl} }
sub authd_log { $_[0]{authd_log} }

# Bind port 0 on loopback and let the kernel choose.
sub free_port {
	my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	    Proto => 'tcp', Listen => 1, ReuseAddr => 1)
	    or die "Test::PbxAuth: cannot bind a free port: $!\n";
	my $port = $s->sockport;
	close $s;
	return $port;
}

###############################################################################
# files and commands

sub write_file {
	my ($self, $name, $content) = @_;
	my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
	open my $fh, '>', $path or die "Test::PbxAuth: $path: $!\n";
	binmode $fh;
	print $fh $content;
	close $fh or die "Test::PbxAuth: $path: $!\n";
	return $path;
}

sub read_file {
	my ($self, $name) = @_;
	my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
	open my $fh, '<', $path or return '';
	binmode $fh;
	local $/;
	my $c = <$fh>;
	return $c // '';
}

# The connection string of database $db (default: the test's) as $user
# (default: the superuser, which owns the tables and runs pbx-authctl).
sub conninfo {
	my ($self, $db, $user) = @_;
	$db //= $self->{dbname};
	$user //= 'postgres';
	return "host=$self->{dir} port=$self->{pgport} dbname=$db user=$user";
}

# The role pbx-authd connects as: the runtime role 0005 grants exactly what
# the statements need, unless new(runtime_role => 0), which keeps the
# superuser for both.
sub runtime_role { $_[0]{runtime_role} // 1 ? 'pbx_auth_runtime' : undef }

# The text of a configuration: defaults, then the overrides recorded by
# write_config(), then %o. A value of undef drops the key; the key '-raw'
# appends raw lines (to write broken files).
sub config_text {
	my ($self, %o) = @_;
	my $rt = $self->runtime_role;
	my %c = (
		database       => $self->conninfo(undef, $rt),
		ctl_database   => $rt ? $self->conninfo : undef,
		listen         => $self->{fcgi_sock},
		listen_mode    => '0666',
		workers        => 2,
		hash_workers   => 2,
		log_level      => 'info',
		migrations_dir => $self->{migrations},
		%{$self->{conf}},
	);
	my $raw = delete $o{'-raw'} // $self->{raw_conf};
	# Another database given: pbx-authctl follows it unless told otherwise.
	delete $c{ctl_database} if (exists $o{database} || exists $self->{conf}{database})
	    && !exists $o{ctl_database} && !exists $self->{conf}{ctl_database};
	%c = (%c, %o);
	my $text = "# generated by Test::PbxAuth\n";
	for my $k (sort keys %c) {
		next unless defined $c{$k};
		$text .= "$k = $c{$k}\n";
	}
	return $text . $raw;
}

# Record %overrides (merged with earlier ones) and write pbx-auth.conf.
sub write_config {
	my ($self, %o) = @_;
	$self->{raw_conf} = delete $o{'-raw'} if exists $o{'-raw'};
	for my $k (keys %o) {
		$self->{conf}{$k} = $o{$k};
	}
	$self->{workers} = $self->{conf}{workers} // 2;
	$self->{hash_workers} = $self->{conf}{hash_workers} // 2;
	return $self->write_file($self->{conf_file}, $self->config_text);
}

# Fork and exec @$cmd (no shell) with stdout/stderr to files.
# Options: stdin (bytes), env (hashref added to %ENV), as_postgres, dir.
sub spawn {
	my ($self, $cmd, %o) = @_;
	my $n = ++$self->{spawn_seq};
	my $out = $o{stdout_file} // "$self->{dir}/.cmd$n.out";
	my $err = $o{stderr_file} // "$self->{dir}/.cmd$n.err";
	my $in = '/dev/null';
	if (defined $o{stdin}) {
		$in = "$self->{dir}/.cmd$n.in";
		$self->write_file($in, $o{stdin});
	}

	my @cmd = @$cmd;
	if ($o{as_postgres} && $self->{root}) {
		unshift @cmd, 'runuser', '-u', 'postgres', '--';
	}

	my $pid = fork();
	die "Test::PbxAuth: fork: $!\n" unless defined $pid;
	if ($pid == 0) {
		eval {
			chdir($o{dir} // $self->{dir});
			open STDIN, '<', $in or die;
			open STDOUT, $o{append} ? '>>' : '>', $out or die;
			open STDERR, $o{append} ? '>>' : '>', $err or die;
			$ENV{$_} = $o{env}{$_} for keys %{$o{env} || {}};
			exec { $cmd[0] } @cmd;
		};
		print STDERR "exec $cmd[0]: $!\n";
		POSIX::_exit(127);
	}
	return { pid => $pid, out => $out, err => $err, in => $in,
	    cmd => \@cmd };
}

# Wait for a spawn()ed command; returns (exit code, stdout, stderr).
# The exit code is 128+N when killed by signal N.
sub wait_cmd {
	my ($self, $h, $timeout) = @_;
	$timeout //= 60;
	my $deadline = time + $timeout;
	my $st;
	while (1) {
		my $r = waitpid($h->{pid}, WNOHANG);
		if ($r == $h->{pid}) { $st = $?; last }
		if ($r < 0) { $st = -1; last }
		if (time > $deadline) {
			kill 'KILL', $h->{pid};
			waitpid($h->{pid}, 0);
			$st = $?;
			Test::More::diag("command timed out: @{$h->{cmd}}");
			last;
		}
		sleep 0.02;
	}
	my $rc = $st == -1 ? -1 : ($st & 127) ? 128 + ($st & 127) : $st >> 8;
	my ($out, $err) = ($self->read_file($h->{out}), $self->read_file($h->{err}));
	unlink $h->{out}, $h->{err} unless $h->{keep};
	unlink $h->{in} if $h->{in} ne '/dev/null';
	return ($rc, $out, $err);
}

sub run {
	my ($self, $cmd, %o) = @_;
	my $h = $self->spawn($cmd, %o);
	return $self->wait_cmd($h, $o{timeout});
}

###############################################################################
# PostgreSQL

sub pgdata { $_[0]{pgdata} // "$_[0]{dir}/pgdata" }

sub _pg_run {
	my ($self, $prog, @args) = @_;
	my ($rc, $out, $err) = $self->run(["$self->{pgbin}/$prog", @args],
	    as_postgres => 1, timeout => 120);
	die "Test::PbxAuth: $prog @args failed ($rc):\n$out$err\n" if $rc;
	return $out;
}

# A fresh cluster is the same for every test until we append to its
# postgresql.conf, so the first test of a build runs initdb into
# $PA_BUILDDIR/t/.pg-template-<digest of the command> and every cluster after
# it is a copy: 0.1 s instead of initdb's 2 s, for each of the ~35 clusters
# of a `./dev.sh test` run. Without a writable build directory each test
# runs initdb itself.
sub initdb {
	my ($self) = @_;
	return if $self->{initdb_done};
	my $data = $self->pgdata;
	my @args = ('-A', 'trust', '--nosync', '-U', 'postgres', '-E', 'UTF8', '--locale=C.UTF-8');
	my $tmpl = "$self->{builddir}/t/.pg-template-"
	    . Digest::SHA::sha256_hex(join "\0", $self->{pgbin}, $>, @args);
	if (!-f "$tmpl/PG_VERSION" && -d "$self->{builddir}/t" && -w _) {
		# made beside it as postgres (in a directory of postgres's, when we
		# are root), then renamed into place: tests running at once never
		# see half a template
		# (postgres may be unable to enter the build directory: then
		# initdb runs for this cluster)
		my $mine = "$tmpl.$$.d";
		eval {
			mkdir $mine or die "$mine: $!\n";
			chown((getpwnam('postgres'))[2, 3], $mine) if $self->{root};
			$self->_pg_run('initdb', @args, '-D', "$mine/data");
			rename("$mine/data", $tmpl) or -f "$tmpl/PG_VERSION" or die "$tmpl: $!\n";
			1;
		} or Test::More::diag("no template cluster, running initdb: $@");
		rmtree($mine);
	}
	if (-f "$tmpl/PG_VERSION") {
		my ($rc, undef, $err) = $self->run(['cp', '-a', $tmpl, $data]);
		die "Test::PbxAuth: copying $tmpl: $err\n" if $rc;
	} else {
		$self->_pg_run('initdb', @args, '-D', $data);
	}
	open my $fh, '>>', "$data/postgresql.conf" or die "$data: $!\n";
	print $fh "fsync = off\n",
	    "unix_socket_directories = '$self->{dir}'\n",
	    "listen_addresses = ''\n",
	    "log_destination = stderr\n";
	close $fh;
	$self->{initdb_done} = 1;
}

# Start the cluster (initdb on first use). On the first start, also create
# the database and apply the migrations, unless new(migrate => 0) or
# start_pg(migrate => 0).
sub start_pg {
	my ($self, %o) = @_;
	my $first = !$self->{initdb_done};
	$self->initdb;
	$self->_pg_run('pg_ctl', '-D', $self->pgdata, '-w', '-t', '60',
	    '-o', "-p $self->{pgport}", '-l', $self->{pg_log} // "$self->{dir}/pg.log", 'start');
	$self->{pg_pid} = $self->_postmaster_pid;
	$self->{started}{pg} = 1;
	if ($first) {
		# The login role pbx-authd uses; 0005 grants it its privileges.
		$self->psql('CREATE ROLE pbx_auth_runtime LOGIN', db => 'postgres');
		$self->create_db($self->{dbname});
		my $migrate = $o{migrate} // $self->{migrate} // 1;
		if ($migrate) {
			my ($rc, $out, $err) = $self->ctl('migrate');
			die "Test::PbxAuth: migrate failed ($rc):\n$out$err\n" if $rc;
		}
	}
	return $self;
}

# $t->standby($name): a streaming standby of this cluster, made by
# pg_basebackup -R -X stream into $dir/$name, with its own port and log
# (pg-$name.log) and cluster_name $name (its application_name for
# synchronous_standby_names); started, and returned once it is in recovery.
# It has the cluster methods (psql, pgport, pgdata, stop_pg, crash_pg,
# promote); stop_all stops it. $t->standby($name, pgport => P) reuses a port.
sub standby {
	my ($self, $name, %o) = @_;
	# one list for the first cluster and its standbys' standbys: its stop_all stops them all
	my $s = bless { %$self, pgport => $o{pgport} // free_port(), pgdata => "$self->{dir}/$name",
	    pg_log => "$self->{dir}/pg-$name.log", started => {}, initdb_done => 1, peers => [],
	    smtp_sinks => [], standbys => ($self->{standbys} //= []), responses => [] }, ref $self;
	delete @$s{qw(authd_pid authd_h nginx_pid http_ka pg_pid)};
	rmtree($s->pgdata);
	$self->_pg_run('pg_basebackup', '-h', $self->{dir}, '-p', $self->{pgport}, '-U', 'postgres',
	    '-D', $s->pgdata, '-R', '-X', 'stream', '-c', 'fast');
	open my $fh, '>>', $s->pgdata . '/postgresql.conf' or die "$name: $!\n";
	print $fh "cluster_name = '$name'\n", "hot_standby = on\n";
	close $fh;
	$s->start_pg;
	$s->wait_until(sub { ($s->psql('SELECT pg_is_in_recovery()', db => 'postgres',
	    allow_error => 1) // '') eq 't' }, 30)
	    or die "Test::PbxAuth: standby $name is not in recovery\n";
	push @{$self->{standbys}}, $s;
	return $s;
}

# Stops the cluster the way a crash does (pg_ctl stop -m immediate): no
# shutdown checkpoint, and nothing more reaches a standby.
sub crash_pg {
	my ($self) = @_;
	$self->_pg_run('pg_ctl', '-D', $self->pgdata, '-m', 'immediate', '-w', 'stop');
	delete $self->{started}{pg};
}

# Promotes a standby (pg_ctl promote, waiting until it accepts writes).
sub promote {
	my ($self) = @_;
	$self->_pg_run('pg_ctl', '-D', $self->pgdata, '-w', '-t', '60', 'promote');
}

sub _postmaster_pid {
	my ($self) = @_;
	my $c = $self->read_file($self->pgdata . '/postmaster.pid');
	my ($pid) = $c =~ /^(\d+)/;
	return $pid;
}

sub pg_pid { $_[0]{pg_pid} }

sub stop_pg {
	my ($self) = @_;
	return unless $self->{started}{pg};
	my ($rc, $out, $err) = eval {
		$self->run(["$self->{pgbin}/pg_ctl", '-D', $self->pgdata, '-m', 'fast',
		    '-w', '-t', '60', 'stop'], as_postgres => 1, timeout => 90);
	};
	($rc, $out, $err) = (-1, '', $@) unless defined $rc;
	my $pid = $self->{pg_pid};
	if ($rc && $pid && kill(0, $pid)) {
		# pg_ctl could not do it: fast shutdown by signal, then immediate
		Test::More::diag("pg_ctl stop failed ($rc): $out$err");
		for my $sig (qw(INT QUIT KILL)) {
			kill $sig, $pid;
			for (1 .. 100) { last unless kill 0, $pid; sleep 0.05 }
			last unless kill 0, $pid;
		}
	}
	delete $self->{started}{pg};
	return $rc;
}

# The tables live in the schema pbx_auth (0005): psql finds them there, and
# in public before 0005 ran.
sub create_db {
	my ($self, $name) = @_;
	$self->psql(qq{CREATE DATABASE "$name"}, db => 'postgres');
	$self->psql(qq{ALTER DATABASE "$name" SET search_path = pbx_auth, public},
	    db => 'postgres');
}

# Run SQL as the superuser (or user => ROLE); returns the unaligned,
# tuples-only output (fields separated by |, one row per line, trailing
# newline removed).  Dies on error unless allow_error => 1 (then returns
# undef; $self->{psql_err} holds the message).
sub psql {
	my ($self, $sql, %o) = @_;
	my ($rc, $out, $err) = $self->run(["$self->{pgbin}/psql", '-X', '-A', '-t', '-q',
	    '-v', 'ON_ERROR_STOP=1', '-h', $self->{dir}, '-p', $self->{pgport},
	    '-U', $o{user} // 'postgres', '-d', $o{db} // $self->{dbname}, '-f', '-'],
	    stdin => $sql, env => { PGCLIENTENCODING => 'UTF8' });
	$self->{psql_err} = $err;
	if ($rc) {
		return undef if $o{allow_error};
		die "Test::PbxAuth: psql failed ($rc): $err\nSQL: $sql\n";
	}
	chomp $out;
	return $out;
}

# A transaction left open: $t->psql_hold($sql) starts a psql session, runs
# BEGIN and $sql (a LOCK, a SELECT ... FOR UPDATE) and returns once the
# session is idle in its transaction, what $sql took still held; dies if it
# is not within 10 s.  $t->psql_release($h) commits and ends the session.
# Its output goes to psql-hold.log in the test directory.
sub psql_hold {
	my ($self, $sql) = @_;
	my $name = 'pa-test-hold-' . ++$self->{hold_seq};
	my $log = "$self->{dir}/psql-hold.log";
	my $pid = open(my $w, '|-');
	die "Test::PbxAuth: fork: $!\n" unless defined $pid;
	if ($pid == 0) {
		open STDOUT, '>>', $log or die;
		open STDERR, '>&', \*STDOUT or die;
		$ENV{PGAPPNAME} = $name;
		$ENV{PGCLIENTENCODING} = 'UTF8';
		exec "$self->{pgbin}/psql", '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
		    '-h', $self->{dir}, '-p', $self->{pgport}, '-U', 'postgres',
		    '-d', $self->{dbname}, '-f', '-';
		die "exec psql: $!";
	}
	$w->autoflush(1);
	print $w "BEGIN;\n$sql;\n";
	$self->wait_until(sub { $self->psql('SELECT count(*) FROM pg_stat_activity'
	    . " WHERE application_name = '$name' AND state = 'idle in transaction'") == 1 }, 10)
	    or die "Test::PbxAuth: psql_hold: the session did not take its locks:\n"
	    . $self->read_file($log);
	return { w => $w, pid => $pid, name => $name };
}

sub psql_release {
	my ($self, $h) = @_;
	print {$h->{w}} "COMMIT;\n";
	close $h->{w};	# waits for psql
	return $? == 0;
}

###############################################################################
# pbx-authctl

# $t->ctl(@args [, {stdin => .., conf => .., env => {..}, noconf => 1}])
# Returns (exit code, stdout, stderr). stderr is also appended to
# pbx-authctl.log, which teardown checks for sanitizer reports.
# PA_TEST_VALGRIND=1: the daemon and pbx-authctl run under memcheck;
# check_logs reads what it reports (with --quiet, anything in its logs is a
# finding).  Returns the command prefix, empty otherwise.
sub _valgrind {
	my ($self, $name) = @_;
	return () unless $ENV{PA_TEST_VALGRIND};
	return ('valgrind', '--quiet', '--leak-check=full',
	    '--show-leak-kinds=definite,indirect', '--errors-for-leak-kinds=definite,indirect',
	    "--log-file=$self->{dir}/valgrind-$name.%p.log");
}

sub ctl {
	my ($self, @args) = @_;
	my $o = ref $args[-1] eq 'HASH' ? pop @args : {};
	my @cmd = ($self->_valgrind('ctl'), $self->{authctl});
	push @cmd, '-c', $o->{conf} // $self->{conf_file} unless $o->{noconf};
	$self->secret($_, "stdin of pbx-authctl @args[0 .. ($#args > 1 ? 1 : $#args)]")
	    for split /\r?\n/, $o->{stdin} // '';
	my ($rc, $out, $err) = $self->run([@cmd, @args], stdin => $o->{stdin},
	    env => $o->{env}, timeout => $o->{timeout} // 60);
	$self->_ctl_log(\@args, $rc, $err);
	return ($rc, $out, $err);
}

# $t->ctl_ok(@args [, {...}]): ctl() as one test that it exits 0 (with
# its output as diagnostics when not); returns its stdout.
sub ctl_ok {
	my ($self, @args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my @shown = grep { !ref } @args;
	my ($rc, $out, $err) = $self->ctl(@args);
	Test::More::is($rc, 0, "pbx-authctl @shown") or Test::More::diag($out . $err);
	return $out;
}

# Start pbx-authctl in the background; finish with ctl_wait().
sub ctl_bg {
	my ($self, @args) = @_;
	my $o = ref $args[-1] eq 'HASH' ? pop @args : {};
	my @cmd = ($self->{authctl}, '-c', $o->{conf} // $self->{conf_file});
	my $h = $self->spawn([@cmd, @args], env => $o->{env});
	$h->{args} = \@args;
	return $h;
}

sub ctl_wait {
	my ($self, $h) = @_;
	my ($rc, $out, $err) = $self->wait_cmd($h, 60);
	$self->_ctl_log($h->{args}, $rc, $err);
	return ($rc, $out, $err);
}

sub _ctl_log {
	my ($self, $args, $rc, $err) = @_;
	open my $fh, '>>', $self->{ctl_log} or return;
	print $fh "### pbx-authctl @$args => $rc\n", $err;
	close $fh;
}

# pbx-authd with other arguments (--check-config, --version): (rc, out, err).
sub authd {
	my ($self, @args) = @_;
	my $o = ref $args[-1] eq 'HASH' ? pop @args : {};
	my ($rc, $out, $err) = $self->run([$self->{authd}, @args],
	    env => $o->{env}, timeout => 30);
	open my $fh, '>>', $self->{ctl_log};
	print $fh "### pbx-authd @args => $rc\n", $err if $fh;
	return ($rc, $out, $err);
}

###############################################################################
# pbx-authd

sub start_daemon {
	my ($self, %o) = @_;
	die "Test::PbxAuth: daemon already running\n" if $self->{authd_pid};
	for my $sock ($self->{fcgi_sock}, $self->hash_listen) {
		unlink $sock unless $sock !~ m{^/} || -e $sock && !-S _;
	}
	my @cmd = ($self->{authd}, '-f', '-c', $self->{conf_file});
	unshift @cmd, $self->_valgrind('authd');
	my $h = $self->spawn(\@cmd,
	    stdout_file => $self->{authd_log}, stderr_file => $self->{authd_log},
	    append => 1, env => $o{env});
	$self->{authd_pid} = $h->{pid};
	$self->{authd_h} = $h;

	my $deadline = time + ($o{timeout} // 15);
	while (1) {
		if (waitpid($h->{pid}, WNOHANG) == $h->{pid}) {
			my $st = $?;
			delete $self->{authd_pid};
			die "Test::PbxAuth: pbx-authd exited during start-up "
			    . "(status $st); log:\n" . $self->read_file($self->{authd_log});
		}
		if (my $s = $self->fcgi_connect) {
			close $s;
			last;
		}
		die "Test::PbxAuth: pbx-authd did not open " . $self->fcgi_listen . "\n"
		    if time > $deadline;
		sleep 0.05;
	}
	# wait for the workers to exist so that tests can inspect them
	$self->wait_until(sub { $self->worker_pids >= $self->{workers}
	    && $self->hash_worker_pids >= $self->{hash_workers} }, 10)
	    or Test::More::diag('pbx-authd: fewer worker processes than configured');
	return $self;
}

sub daemon_pid { $_[0]{authd_pid} }

# $t->peer($name, %conf): a second pbx-authd instance of the same database,
# as behind one nginx `upstream`: its own configuration ($name.conf, %conf
# over this instance's settings), socket ($name.sock) and log
# (pbx-authd-$name.log), in this test's directory.  It has the daemon
# methods (start_daemon, stop_daemon, signal, daemon_pid, worker_pids,
# fcgi_listen, fcgi_request); start_nginx then passes to an upstream of
# every instance; stop_all and check_logs cover it.
sub peer {
	my ($self, $name, %conf) = @_;
	my $p = bless { %$self, conf => { %{$self->{conf}} }, started => {}, responses => [],
	    peers => [], smtp_sinks => [], spawn_seq => 1_000_000 * (1 + @{$self->{peers} || []}),
	    fcgi_sock => "$self->{dir}/$name.sock", conf_file => "$self->{dir}/$name.conf",
	    authd_log => "$self->{dir}/pbx-authd-$name.log" }, ref $self;
	delete @$p{qw(authd_pid authd_h nginx_pid http_ka)};
	delete $p->{conf}{listen};
	$p->write_config(%conf);
	push @{$self->{peers}}, $p;
	return $p;
}

# Live (non-zombie) children of a pid, read from /proc/*/stat.
sub children_of {
	my ($self, $ppid) = @_;
	my @kids;
	return () unless $ppid;
	for my $stat (glob '/proc/[0-9]*/stat') {
		open my $fh, '<', $stat or next;
		my $line = <$fh>;
		close $fh;
		next unless defined $line;
		my ($pid, $rest) = $line =~ /^(\d+) \(.*\) (.*)$/s or next;
		my ($state, $pp) = split ' ', $rest;
		push @kids, $pid + 0 if $pp == $ppid && $state ne 'Z' && $state ne 'X';
	}
	@kids = sort { $a <=> $b } @kids;
	return @kids;    # an array: its count in scalar context
}

# The process names (comm) the mailer child and the hashing workers give
# themselves (src/mailer.h, src/worker.h).
use constant MAILER_COMM => 'pbx-authd-mail';
use constant HASH_COMM => 'pbx-authd-hash';

sub _comm {
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/comm" or return '';
	my $c = <$fh> // '';
	chomp $c;
	return $c;
}

# The request workers: the daemon's children except the mailer and the
# hashing workers.
sub worker_pids {
	my ($self) = @_;
	my @pids = grep { my $c = _comm($_); $c ne MAILER_COMM && $c ne HASH_COMM }
	    $self->children_of($self->{authd_pid});
	return @pids;
}

# The hashing workers.
sub hash_worker_pids {
	my ($self) = @_;
	my @pids = grep { _comm($_) eq HASH_COMM } $self->children_of($self->{authd_pid});
	return @pids;
}

# The mailer child's pid, or undef.
sub mailer_pid {
	my ($self) = @_;
	my ($pid) = grep { _comm($_) eq MAILER_COMM } $self->children_of($self->{authd_pid});
	return $pid;
}

sub signal {
	my ($self, $sig, $pid) = @_;
	$pid //= $self->{authd_pid};
	die "Test::PbxAuth: no pid to signal\n" unless $pid;
	return kill $sig, $pid;
}

# SIGTERM the master and wait; returns the raw wait status (0: exit 0).
sub stop_daemon {
	my ($self, %o) = @_;
	my $pid = $self->{authd_pid} or return undef;
	kill $o{signal} // 'TERM', $pid;
	my $deadline = time + ($o{timeout} // 15);
	my $st;
	while (1) {
		my $r = waitpid($pid, WNOHANG);
		if ($r == $pid) { $st = $?; last }
		if ($r < 0) { $st = -1; last }
		if (time > $deadline) {
			Test::More::diag("pbx-authd $pid did not stop, sending SIGKILL");
			my @kids = $self->children_of($pid);
			kill 'KILL', $pid, @kids;
			waitpid($pid, 0);
			$st = $?;
			last;
		}
		sleep 0.02;
	}
	delete $self->{authd_pid};
	return $st;
}

# Wait until a pid no longer exists (or is a zombie).
sub wait_gone {
	my ($self, $pid, $timeout) = @_;
	return $self->wait_until(sub {
		open my $fh, '<', "/proc/$pid/stat" or return 1;
		my $l = <$fh> // '';
		my ($state) = $l =~ /\) (\S)/;
		return !defined $state || $state eq 'Z';
	}, $timeout // 5);
}

sub log_offset {
	my ($self) = @_;
	return -s $self->{authd_log} || 0;
}

# The daemon log from byte offset $from.
sub daemon_log {
	my ($self, $from) = @_;
	my $c = $self->read_file($self->{authd_log});
	return substr($c, $from // 0);
}

sub wait_for_log {
	my ($self, $re, $timeout, $from) = @_;
	my $found;
	$self->wait_until(sub {
		my $l = $self->daemon_log($from);
		($found) = grep { /$re/ } split /\n/, $l;
		defined $found;
	}, $timeout // 5);
	return $found;
}

sub wait_until {
	my ($self, $cond, $timeout, $step) = @_;
	my $deadline = time + ($timeout // 5);
	while (1) {
		return 1 if $cond->();
		return 0 if time > $deadline;
		sleep($step // 0.05);
	}
}

###############################################################################
# nginx

# The nginx files that ship (deploy/nginx/*.conf.in), rendered by
# deploy/nginx/render into $dir with %set (NAME => VALUE); returns the path.
sub render_nginx {
	my ($self, $template, %set) = @_;
	(my $name = $template) =~ s/\.in$//;
	my $out = "$self->{dir}/nginx/$name";
	my ($rc, undef, $err) = $self->run([$^X, "$self->{srcdir}/deploy/nginx/render",
	    (map { ('--set', "$_=$set{$_}") } sort keys %set), '-o', $out,
	    "$self->{srcdir}/deploy/nginx/$template"]);
	die "Test::PbxAuth: rendering $template failed ($rc): $err\n" if $rc;
	return $out;
}

# The nginx directory ($dir/nginx: configuration, logs, temporary files),
# with the system's fastcgi_params beside the configuration, where the
# shipped snippet's `include fastcgi_params;` finds it.
sub nginx_dir {
	my ($self) = @_;
	my $d = "$self->{dir}/nginx";
	mkdir $d;
	mkdir "$d/$_" for qw(client_body fastcgi proxy uwsgi scgi);
	symlink('/etc/nginx/fastcgi_params', "$d/fastcgi_params") unless -e "$d/fastcgi_params";
	return $d;
}

# Starts nginx with the shipped http part (pbx-auth-http.conf) and locations
# snippet (pbx-auth-locations.conf) in a minimal nginx.conf of ours: its own
# port, temporary paths and logs, upstream = the daemon's socket.
# Options:
#   shipped_limits => 1  keeps the shipped limit_req rate and burst of the
#       credential endpoints (10r/s, burst 20); without it they are rendered
#       with PA_LOGIN_RATE=10000r/s and PA_LOGIN_BURST=10000, as the tests
#       sign in far faster than one client does (t/nginx.t tests the
#       shipped values)
#   fcgi_pass => 'unix:/path' or 'host:port': another upstream server
#   fcgi_pass_hash => the same for the hashing workers (default: hash_listen)
#   server_extra => '...': lines added to our server block (it has no other
#       directives, so the snippet's own ones cannot clash)
#   conf => '...': a whole nginx.conf instead (TLS in t/nginx.t); it is
#       started the same way, on the port given by port => N
#   www => 1 | DIR: the sign-in pages too (the shipped pbx-auth-www.conf, with
#       this tree's www/ or DIR), form_action => 'origin ...' for their CSP
sub start_nginx {
	my ($self, %o) = @_;
	my $d = $self->nginx_dir;
	my $user = $self->{root} ? "user root;\n" : '';
	my $unix = sub { $_[0] =~ m{^/} ? "unix:$_[0]" : $_[0] };
	my @inst = ($self, @{$self->{peers} || []});
	my @pass = map { $unix->($_->fcgi_listen) } @inst;
	my @hpass = map { $unix->($_->hash_listen) } @inst;
	my %limits = $o{shipped_limits} ? ()
	    : (PA_LOGIN_RATE => '10000r/s', PA_LOGIN_BURST => 10000);
	my $http_part = $self->render_nginx('pbx-auth-http.conf.in',
	    PA_FCGI_PASS => $o{fcgi_pass} // $pass[0],
	    PA_FCGI_PASS_HASH => $o{fcgi_pass_hash} // $hpass[0], %limits);
	if (@inst > 1 && !defined $o{fcgi_pass}) {
		# More instances (peer()): one `server` line each in the shipped
		# upstreams, as their comment tells an operator to add them.
		my $text = $self->read_file($http_part);
		for my $p (\@pass, \@hpass) {
			$text =~ s/^(\s*server \Q$p->[0]\E\b[^;\n]*;\n)/$1 . join('', map { "    server $_;\n" } @{$p}[1 .. $#$p])/me
			    or die "Test::PbxAuth: no upstream server line $p->[0] in $http_part\n";
		}
		$self->write_file($http_part, $text);
	}
	my $locations = $self->render_nginx('pbx-auth-locations.conf.in', %limits);
	my $extra = $o{server_extra} // '';
	my $www = !$o{www} ? '' : '        include ' . $self->render_nginx('pbx-auth-www.conf.in',
	    PA_WWW_DIR => $o{www} =~ m{^/} ? $o{www} : "$self->{srcdir}/www",
	    defined $o{form_action} ? (PA_MS365_AUTHORITIES => $o{form_action}) : ()) . ";\n";
	my $conf = $o{conf} // <<"EOF";
${user}daemon off;
master_process on;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log info;

events {
    worker_connections 256;
}

http {
    # the default "combined" format: request line (with any query string),
    # never the request body; check_logs greps it for secrets
    access_log $d/access.log;
    client_body_temp_path $d/client_body;
    fastcgi_temp_path $d/fastcgi;
    proxy_temp_path $d/proxy;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;

    include $http_part;

    server {
        listen 127.0.0.1:$self->{http_port};
        server_name localhost;
$extra
$www        include $locations;
    }
}
EOF
	$self->write_file("$d/nginx.conf", $conf);
	my $port = $o{port} // $self->{http_port};
	my $h = $self->spawn([$self->{nginx}, '-p', "$d/", '-e', "$d/error.log",
	    '-c', "$d/nginx.conf"],
	    stdout_file => "$d/stderr.log", stderr_file => "$d/stderr.log",
	    append => 1);
	$self->{nginx_pid} = $h->{pid};
	my $ok = $self->wait_until(sub {
		return 0 if waitpid($h->{pid}, WNOHANG) == $h->{pid};
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
		    PeerPort => $port, Proto => 'tcp');
		return $s ? 1 : 0;
	}, 10);
	unless ($ok) {
		my $log = $self->read_file("$d/error.log")
		    . $self->read_file("$d/stderr.log");
		delete $self->{nginx_pid};
		die "Test::PbxAuth: nginx did not start:\n$log\n";
	}
	return $self;
}

sub stop_nginx {
	my ($self) = @_;
	my $pid = delete $self->{nginx_pid} or return;
	stop_child($pid, 'QUIT');
}

# Sends $sig to a child of ours, reaps it, and KILLs it after 10 s.
sub stop_child {
	my ($pid, $sig) = @_;
	kill $sig, $pid;
	my $deadline = time + 10;
	while (waitpid($pid, WNOHANG) != $pid) {
		if (time > $deadline) {
			kill 'KILL', $pid;
			waitpid($pid, 0);
			last;
		}
		sleep 0.02;
	}
}

###############################################################################
# secrets: strings that must never appear in any log of the test directory

# Secrets shorter than this are ignored: they would match log text by chance.
use constant SECRET_MIN_LEN => 6;

# $t->secret($string [, $label]): register a secret (bytes; a character
# string is stored UTF-8 encoded). check_logs() fails for every log that
# contains one, naming the log and the label, never the secret itself.
sub secret {
	my ($self, $s, $label) = @_;
	return unless defined $s && !ref $s;
	$s = Encode::encode('UTF-8', $s) if utf8::is_utf8($s);
	return if length $s < SECRET_MIN_LEN;
	$self->{secrets}{$s} //= $label // 'registered by the test';
	return $s;
}

# The registered secrets: { secret => label }.
sub secrets { %{$_[0]{secrets}} }

my @SECRET_REQUEST_FIELDS = qw(password new_password refresh_token token);
my @SECRET_RESPONSE_FIELDS = qw(access_token refresh_token token);

# A decoded JSON string value as UTF-8 bytes; undef for anything else
# (numbers, booleans, null, arrays, objects).
sub _json_string_bytes {
	my ($v) = @_;
	return undef if !defined $v || ref $v;
	return undef unless B::svref_2object(\$v)->FLAGS & B::SVp_POK();
	return Encode::encode('UTF-8', $v);
}

sub _json_or_undef {
	my ($text) = @_;
	return undef unless defined $text && length $text;
	return eval { JSON::PP->new->utf8->allow_nonref->decode($text) };
}

# The secrets a request carries: password fields of a JSON body, tokens
# sent back, the Authorization header's credentials.
sub _track_request {
	my ($self, $what, $headers, $body) = @_;
	my $j = _json_or_undef($body);
	if (ref $j eq 'HASH') {
		for my $k (@SECRET_REQUEST_FIELDS) {
			$self->secret(_json_string_bytes($j->{$k}), "$k sent in $what");
		}
	}
	for my $k (keys %{$headers || {}}) {
		next unless lc $k eq 'authorization';
		my ($cred) = ($headers->{$k} // '') =~ /^\s*\S+\s+(\S+)/;
		$self->secret($cred, "Authorization credentials sent in $what");
	}
}

# The secrets a response carries: tokens in a JSON body, cookie values.
sub _track_response {
	my ($self, $what, $res) = @_;
	my $j = $res->{json};
	if (ref $j eq 'HASH') {
		for my $k (@SECRET_RESPONSE_FIELDS) {
			$self->secret(_json_string_bytes($j->{$k}), "$k of the response to $what");
		}
	}
	my $sc = $res->{headers}{'set-cookie'};
	for my $c (ref $sc eq 'ARRAY' ? @$sc : defined $sc ? split(/,\s*(?=[^;,=\s]+=)/, $sc) : ()) {
		my ($name, $value) = $c =~ /^\s*([^=;\s]+)=([^;]*)/ or next;
		$self->secret($value, "cookie $name set by $what");
	}
}

# One test per log file: none contains a registered secret.
sub check_secrets {
	my ($self) = @_;
	my %sec = $self->secrets;
	my @logs = grep { -f } map { glob "$self->{dir}/$_" }
	    qw(*.log nginx/*.log);
	for my $log (sort @logs) {
		my $c = $self->read_file($log);
		(my $name = $log) =~ s{^\Q$self->{dir}\E/}{};
		my @found;
		for my $s (keys %sec) {
			my $at = index($c, $s);
			next if $at < 0;
			my $line = 1 + (substr($c, 0, $at) =~ tr/\n//);
			push @found, "$sec{$s} (line $line)";
		}
		Test::More::is(scalar @found, 0, "no password or token in $name ("
		    . scalar(keys %sec) . " secrets)")
		    or Test::More::diag("$name contains: " . join('; ', sort @found));
	}
}

###############################################################################
# HTTP

# $t->concurrently($n, $path, $json_body): POSTs the body to $path $n times
# at once, each from a child process with its own connection; returns
# [status, content] of each, and registers the tokens they received as secrets.
sub concurrently {
	my ($t, $n, $path, $body, %o) = @_;
	my @kids;
	for my $i (1 .. $n) {
		pipe(my $rd, my $wr) or die "pipe: $!";
		my $pid = fork() // die "fork: $!";
		if ($pid == 0) {
			close $rd;
			# local_address => sub { $i -> '127.0.0.N' }: the client address
			# (REMOTE_ADDR) of request $i; all of 127/8 reaches loopback
			my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0,
			    $o{local_address} ? (local_address => $o{local_address}->($i)) : ());
			my $r = $http->request('POST', $t->url($path), { content => $body,
			    headers => { 'Content-Type' => 'application/json' } });
			print $wr JSON::PP->new->utf8->encode([ $r->{status}, $r->{content} // '' ]);
			close $wr;
			POSIX::_exit(0);
		}
		close $wr;
		push @kids, [ $pid, $rd ];
	}
	my @res;
	for my $k (@kids) {
		my $fh = $k->[1];
		local $/;
		my $out = <$fh>;
		waitpid($k->[0], 0);
		push @res, eval { JSON::PP->new->utf8->decode($out) } || [ 0, '' ];
	}
	# the tokens the children received: check_logs greps the logs for them
	for my $r (@res) {
		my $j = eval { JSON::PP->new->utf8->decode($r->[1]) };
		$t->secret($j->{$_}, "$_ of a concurrent $path") for grep { ref $j eq 'HASH' }
		    qw(access_token refresh_token);
	}
	return @res;
}

sub url {
	my ($self, $path) = @_;
	return "http://127.0.0.1:$self->{http_port}$path";
}

# $t->request($method, $path, headers => {...}, body => $bytes)
# Returns the HTTP::Tiny response hash plus 'json' (decoded body or undef).
sub request {
	my ($self, $method, $path, %o) = @_;
	my %args = (headers => $o{headers} || {});
	$args{content} = $o{body} if defined $o{body};
	$self->_track_request("$method $path", $args{headers}, $o{body});
	my $http = $self->{http};
	if ($o{keep_alive}) {
		# one persistent connection for request(..., keep_alive => 1)
		$http = $self->{http_ka} //= HTTP::Tiny->new(max_redirect => 0,
		    timeout => 10, keep_alive => 1, agent => 'pbx-auth-tests');
	}
	my $res = $http->request($method, $self->url($path), \%args);
	$res->{json} = eval { JSON::PP->new->utf8->allow_nonref->decode($res->{content}) }
	    if defined $res->{content} && length $res->{content};
	$self->_track_response("$method $path", $res);
	$res->{request} = "$method $path";
	push @{$self->{responses}}, [$res->{request}, $res->{status}];
	return $res;
}

sub get { my ($self, $path, %o) = @_; return $self->request('GET', $path, %o) }

# Every response recorded by request(): [ "METHOD path", status ].
sub responses { @{$_[0]{responses}} }

# Send raw bytes to nginx and return the raw response (read until EOF).
sub raw_http {
	my ($self, $bytes, %o) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
	    PeerPort => $self->{http_port}, Proto => 'tcp', Timeout => 10)
	    or die "Test::PbxAuth: connect to nginx: $!\n";
	$s->autoflush(1);
	local $SIG{PIPE} = 'IGNORE';
	print $s $bytes;
	my $resp = '';
	my $sel = IO::Select->new($s);
	my $deadline = time + ($o{timeout} // 10);
	while (time < $deadline) {
		next unless $sel->can_read(0.2);
		my $n = sysread($s, my $buf, 65536);
		last if !defined $n && $! != EINTR && $! != EAGAIN;
		last if defined $n && $n == 0;
		$resp .= $buf if $n;
	}
	close $s;
	return $resp;
}

# Parse a raw HTTP response into { status, headers (lower-case), body, json }.
sub parse_http {
	my ($self, $raw) = @_;
	my ($head, $body) = split /\r\n\r\n/, $raw, 2;
	my @lines = split /\r\n/, $head // '';
	my $st = shift @lines // '';
	my ($status) = $st =~ m{^HTTP/\d\.\d (\d{3})};
	my %h;
	for (@lines) {
		my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
		$h{lc $k} = exists $h{lc $k} ? "$h{lc $k}, $v" : $v;
	}
	my $r = { status => $status // 0, headers => \%h, content => $body // '' };
	$r->{json} = eval { JSON::PP->new->utf8->decode($r->{content}) };
	$self->_track_response('raw HTTP request', $r);
	return $r;
}

###############################################################################
# FastCGI client (straight to the daemon's socket, bypassing nginx)

use constant {
	FCGI_BEGIN_REQUEST => 1, FCGI_END_REQUEST => 3, FCGI_PARAMS => 4,
	FCGI_STDIN => 5, FCGI_STDOUT => 6, FCGI_STDERR => 7, FCGI_RESPONDER => 1,
	FCGI_KEEP_CONN => 1,
};

sub _fcgi_record {
	my ($type, $content, $id) = @_;
	my $len = length $content;
	my $pad = (8 - $len % 8) % 8;
	return pack('CCnnCx', 1, $type, $id // 1, $len, $pad) . $content . ("\0" x $pad);
}

sub _fcgi_len {
	my $l = length shift;
	return $l < 128 ? pack('C', $l) : pack('N', $l | 0x80000000);
}

# Default CGI parameters as nginx's fastcgi_params would send them for
# "GET $path?$query".
sub fcgi_params {
	my ($self, %o) = @_;
	my $method = $o{method} // 'GET';
	my $path = $o{path} // '/api/info';
	my $query = $o{query} // '';
	return {
		QUERY_STRING => $query,
		REQUEST_METHOD => $method,
		CONTENT_TYPE => $o{content_type} // '',
		CONTENT_LENGTH => $o{content_length} // '',
		SCRIPT_NAME => $path,
		REQUEST_URI => $path . (length $query ? "?$query" : ''),
		DOCUMENT_URI => $path,
		DOCUMENT_ROOT => '/usr/share/nginx/html',
		SERVER_PROTOCOL => 'HTTP/1.1',
		REQUEST_SCHEME => 'http',
		GATEWAY_INTERFACE => 'CGI/1.1',
		SERVER_SOFTWARE => 'nginx/1.22.1',
		REMOTE_ADDR => '127.0.0.1',
		REMOTE_PORT => '40000',
		SERVER_ADDR => '127.0.0.1',
		SERVER_PORT => '80',
		SERVER_NAME => 'localhost',
		REDIRECT_STATUS => '200',
		HTTP_HOST => 'localhost',
	};
}

# Connections waiting in the daemon's listen queue (ss: Recv-Q of the
# listening socket), or undef when it does not listen.
sub fcgi_backlog {
	my ($self) = @_;
	my $l = $self->fcgi_listen;
	my $unix = $l =~ m{^/};
	for (split /\n/, `ss -lnH @{[ $unix ? '-x' : '-t' ]} 2>/dev/null`) {
		my @f = split ' ';
		return $f[$unix ? 2 : 1] if @f > 4 && $f[$unix ? 4 : 3] eq $l;
	}
	return undef;
}

# $t->fcgi_begin([$params [, $bytes]]): a FastCGI POST to the daemon's
# socket, sent up to its parameters: the worker that accepts it then waits
# for the body, busy.  With $bytes, only the first $bytes bytes are sent: the
# worker that accepts it waits for the rest inside libfcgi's accept.
# $t->fcgi_end($h) sends the rest and the body and reads the answer to EOF;
# returns (END_REQUEST seen, status).
sub fcgi_begin {
	my ($self, $params, $bytes) = @_;
	my $body = '{"refresh_token":"held"}';
	$params //= $self->fcgi_params(method => 'POST', path => '/api/auth/refresh_token',
	    content_type => 'application/json', content_length => length $body);
	my $s = $self->fcgi_connect or die "Test::PbxAuth: connect " . $self->fcgi_listen . ": $!\n";
	my $p = join '', map { _fcgi_len($_) . _fcgi_len($params->{$_}) . $_ . $params->{$_} }
	    sort keys %$params;
	my $head = _fcgi_record(FCGI_BEGIN_REQUEST, pack('nCx5', FCGI_RESPONDER, 0))
	    . _fcgi_record(FCGI_PARAMS, $p) . _fcgi_record(FCGI_PARAMS, '');
	my $rest = defined $bytes ? substr($head, $bytes, length($head) - $bytes, '') : '';
	syswrite($s, $head);
	return [ $s, $body, $rest ];
}

sub fcgi_end {
	my ($self, $h) = @_;
	my ($s, $body, $rest) = @$h;
	local $SIG{PIPE} = 'IGNORE';
	syswrite($s, ($rest // '') . _fcgi_record(FCGI_STDIN, $body) . _fcgi_record(FCGI_STDIN, ''));
	my $in = '';
	while (sysread($s, my $buf, 65536)) { $in .= $buf }
	close $s;
	my ($end, $status) = (0, '');
	while (length $in >= 8) {
		my (undef, $type, undef, $clen, $plen) = unpack('CCnnC', $in);
		my $c = substr($in, 8, $clen);
		substr($in, 0, 8 + $clen + $plen, '');
		$end = 1 if $type == FCGI_END_REQUEST;
		($status) = $c =~ /^Status: (\d+)/m if $type == FCGI_STDOUT && !$status;
	}
	return ($end, $status);
}

# $t->fcgi_request(params => {...}, stdin => $bytes [, pause => sub {...}]
#     [, listen => $t->hash_listen] [, local => '127.0.0.2'] [, keep => 1]
#     [, sock => $s])
# With pause, the sub runs after the parameters are sent and before stdin.
# With listen, the request goes to that socket instead of `listen`.
# With keep, the request asks pbx-authd to keep the connection
# (FCGI_KEEP_CONN); with sock, the request goes on that connection, which is
# left open.
# Returns { status, headers (lower-case names), body, json, stderr,
# complete (END_REQUEST seen), app_status }.
sub fcgi_request {
	my ($self, %o) = @_;
	my $params = $o{params} // $self->fcgi_params;
	my $stdin = $o{stdin} // '';
	$self->_track_request('FastCGI request', {}, $stdin);
	my $s = $o{sock} // $self->fcgi_connect($o{listen}, $o{local})
	    or die "Test::PbxAuth: connect " . ($o{listen} // $self->fcgi_listen) . ": $!\n";

	my $out = _fcgi_record(FCGI_BEGIN_REQUEST,
	    pack('nCx5', FCGI_RESPONDER, $o{keep} ? FCGI_KEEP_CONN : 0));
	my $p = '';
	for my $k (sort keys %$params) {
		my $v = $params->{$k} // '';
		$p .= _fcgi_len($k) . _fcgi_len($v) . $k . $v;
	}
	for (my $i = 0; $i < length $p; $i += 65535) {
		$out .= _fcgi_record(FCGI_PARAMS, substr($p, $i, 65535));
	}
	$out .= _fcgi_record(FCGI_PARAMS, '');
	if ($o{pause}) {
		# Send the request up to its parameters, let the caller act while
		# the request is in flight, then send the body.
		local $SIG{PIPE} = 'IGNORE';
		syswrite($s, $out) == length $out
		    or die "Test::PbxAuth: fcgi write: $!\n";
		$out = '';
		$o{pause}->();
	}
	for (my $i = 0; $i < length $stdin; $i += 65535) {
		$out .= _fcgi_record(FCGI_STDIN, substr($stdin, $i, 65535));
	}
	$out .= _fcgi_record(FCGI_STDIN, '');

	local $SIG{PIPE} = 'IGNORE';
	my $flags = fcntl($s, F_GETFL, 0);
	fcntl($s, F_SETFL, $flags | O_NONBLOCK);

	my ($in, $stdout, $stderr, $complete, $app_status) = ('', '', '', 0, undef);
	my $woff = 0;
	my $deadline = time + ($o{timeout} // 10);
	my $rsel = IO::Select->new($s);
	my $wsel = IO::Select->new($s);
	READ: while (time < $deadline) {
		my ($r, $w) = IO::Select->select($rsel,
		    $woff < length $out ? $wsel : undef, undef, 0.2);
		if ($w && @$w && $woff < length $out) {
			my $n = syswrite($s, $out, 65536, $woff);
			if (defined $n) {
				$woff += $n;
			} elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
				$woff = length $out;    # peer stopped reading (EPIPE)
			}
		}
		if ($r && @$r) {
			my $n = sysread($s, my $buf, 65536);
			if (!defined $n) {
				next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
				last;                   # ECONNRESET: treat as EOF
			}
			last if $n == 0;
			$in .= $buf;
			while (length $in >= 8) {
				my ($ver, $type, $id, $clen, $plen) = unpack('CCnnC', $in);
				last if length $in < 8 + $clen + $plen;
				my $content = substr($in, 8, $clen);
				substr($in, 0, 8 + $clen + $plen, '');
				if ($type == FCGI_STDOUT) {
					$stdout .= $content;
				} elsif ($type == FCGI_STDERR) {
					$stderr .= $content;
				} elsif ($type == FCGI_END_REQUEST) {
					($app_status) = unpack('N', $content);
					$complete = 1;
					last READ;
				}
			}
		}
	}
	close $s unless $o{sock};

	my ($head, $body) = split /\r?\n\r?\n/, $stdout, 2;
	my %h;
	for (split /\r?\n/, $head // '') {
		my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
		$h{lc $k} = exists $h{lc $k} ? "$h{lc $k}, $v" : $v;
	}
	my ($status) = ($h{status} // '200') =~ /^(\d{3})/;
	my $res = { status => $status // 0, headers => \%h, content => $body // '',
	    stderr => $stderr, complete => $complete, app_status => $app_status,
	    raw => $stdout };
	$res->{json} = eval { JSON::PP->new->utf8->decode($res->{content}) };
	$self->_track_response('FastCGI request', $res);
	return $res;
}

###############################################################################
# assertions shared by the tests

# Cache-Control: no-store, X-Content-Type-Options: nosniff and, with a body,
# Content-Type: application/json; charset=utf-8.
sub has_common_headers {
	my ($self, $res, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $h = $res->{headers};
	my $ok = 1;
	$ok &&= Test::More::is($h->{'cache-control'}, 'no-store', "$name: Cache-Control");
	$ok &&= Test::More::is($h->{'x-content-type-options'}, 'nosniff',
	    "$name: X-Content-Type-Options");
	if (length($res->{content} // '')) {
		$ok &&= Test::More::like($h->{'content-type'} // '',
		    qr{^application/json;\s*charset=utf-8$}i, "$name: Content-Type");
	}
	return $ok;
}

# Status, common headers and the error body {"errors":[{code,message,detail}]}
# whose first entry has $code.
sub is_error {
	my ($self, $res, $status, $code, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $ok = Test::More::is($res->{status}, $status, "$name: status $status")
	    or Test::More::diag("body: " . ($res->{content} // ''));
	$self->has_common_headers($res, $name) or $ok = 0;
	my $j = $res->{json};
	my $shape = ref $j eq 'HASH' && ref $j->{errors} eq 'ARRAY'
	    && @{$j->{errors}} >= 1
	    && !grep {
		ref $_ ne 'HASH' || !exists $_->{code} || !exists $_->{message}
		    || !exists $_->{detail} || ref \$_->{message} ne 'SCALAR'
		    || !length $_->{message}
	    } @{$j->{errors}};
	Test::More::ok($shape, "$name: error body has errors[{code,message,detail}]")
	    or do { $ok = 0; Test::More::diag("body: " . ($res->{content} // '')) };
	Test::More::is($shape ? $j->{errors}[0]{code} : undef, $code, "$name: code $code")
	    or $ok = 0;
	return $ok;
}

# The top-level keys of a JSON object, in the order they appear in the text.
sub json_keys {
	my ($self, $text) = @_;
	my @keys;
	my ($depth, $i, $n) = (0, 0, length($text // ''));
	while ($i < $n) {
		my $c = substr($text, $i, 1);
		if ($c eq '"') {
			my $j = $i + 1;
			while ($j < $n) {
				my $d = substr($text, $j, 1);
				if ($d eq '\\') { $j += 2; next }
				last if $d eq '"';
				$j++;
			}
			my $str = substr($text, $i + 1, $j - $i - 1);
			my $rest = substr($text, $j + 1);
			push @keys, $str if $depth == 1 && $rest =~ /^\s*:/;
			$i = $j + 1;
			next;
		}
		$depth++ if $c eq '{' || $c eq '[';
		$depth-- if $c eq '}' || $c eq ']';
		$i++;
	}
	return @keys;
}

# Parses one line of pbx-authd.log, either format (log_format text or json),
# into a hashref: ts, level, proc, pid, msg (the message words), and the
# fields.  undef when the line is not exactly that: a text line is the
# prefix, then logfmt (bare message words, then key=value pairs whose values
# are bare tokens or "quoted" with \" \\ \n \r \t \uXXXX escapes only), with
# no control character, C1 control or U+2028/2029 anywhere, raw.
sub parse_log_line {
	my ($line) = @_;
	my $chars = eval { Encode::decode('UTF-8', $line, Encode::FB_CROAK() | Encode::LEAVE_SRC()) };
	return undef unless defined $chars;
	return undef if $chars =~ /[\x00-\x1f\x7f-\x9f\x{2028}\x{2029}]/;
	if ($line =~ /^\{/) {
		my $o = eval { JSON::PP->new->decode($line) };
		return undef unless ref $o eq 'HASH';
		return undef if grep { !defined $o->{$_} } qw(ts level proc pid msg);
		return undef if grep { ref $o->{$_} } keys %$o;
		return $o;
	}
	my ($ts, $level, $proc, $pid, $rest) = $chars =~
	    /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (debug|info|warn|error) ([\w-]+)\[(\d+)\]:(.*)$/
	    or return undef;
	my %o = (ts => $ts, level => $level, proc => $proc, pid => $pid);
	my @words;
	pos($rest) = 0;
	while (pos($rest) < length $rest) {
		$rest =~ /\G /gc or return undef;
		$rest =~ /\G([^\s="\\]+)/gc or return undef;
		my $key = $1;
		unless ($rest =~ /\G=/gc) {
			return undef if %o > 4;		# a bare word after the fields
			push @words, $key;
			next;
		}
		if ($rest =~ /\G"((?:[^"\\]|\\["\\nrt]|\\u[0-9a-f]{4})*)"/gc) {
			my $v = $1;
			$v =~ s/\\(?:u([0-9a-f]{4})|(.))/defined $1 ? chr(hex $1) :
			    { n => "\n", r => "\r", t => "\t" }->{$2} \/\/ $2/ge;
			$o{$key} = $v;
		} elsif ($rest =~ /\G([^\s="\\]+)/gc) {
			$o{$key} = $1;
		} else {
			return undef;
		}
		return undef unless $rest =~ /\G(?= |$)/gc;
	}
	$o{msg} //= join ' ', @words;
	return \%o;
}

# The parsed lines of pbx-authd.log (from byte offset $from), unparseable ones as undef.
sub log_records {
	my ($self, $from) = @_;
	return map { parse_log_line($_) } split /\n/, $self->daemon_log($from);
}

# Every line of pbx-authd.log has the contract's format:
# 2026-11-27T23:50:01.123Z info pbx-authd[1234]: message key=value
sub log_format_ok {
	my ($self, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my @bad = grep {
		!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?:debug|info|warn|error) pbx-authd\[\d+\]: \S/
	} split /\n/, $self->daemon_log;
	Test::More::is(scalar @bad, 0, $name // 'every log line has the contract format')
	    or Test::More::diag(join "\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);
}

###############################################################################
# teardown

# Declare that daemon log lines at level error matching $re are expected.
sub allow_log_errors {
	my ($self, $re) = @_;
	push @{$self->{log_allow}}, $re;
}

sub stop_all {
	my ($self) = @_;
	local ($?, $!, $@);
	return if $$ != $CREATOR;
	eval { $self->stop_nginx; 1 } or Test::More::diag("stop nginx: $@");
	$_->stop_all for grep { defined } @{$self->{peers} || []};
	$_->stop_pg for grep { defined && $_ != $self } @{$self->{standbys} || []};
	eval {
		if ($self->{authd_pid}) {
			my $st = $self->stop_daemon;
			Test::More::diag("pbx-authd exit status at teardown: $st") if $st;
		}
		1;
	} or Test::More::diag("stop pbx-authd: $@");
	eval { $self->stop_pg; 1 } or Test::More::diag("stop PostgreSQL: $@");
	# SMTP sinks of Test::PbxAuth::Smtp
	for my $s (grep { defined } @{$self->{smtp_sinks} || []}) {
		eval { $s->stop; 1 } or ${^GLOBAL_PHASE} eq 'DESTRUCT'
		    or Test::More::diag("stop the SMTP sink: $@");
	}
}

# The end-of-test checks over the logs.
sub check_logs {
	my ($self) = @_;
	my $log = join "\n", map { $self->read_file($_->{authd_log}) }
	    $self, @{$self->{peers} || []};
	my $ctl = $self->read_file($self->{ctl_log});
	my @san = grep { /AddressSanitizer|LeakSanitizer|runtime error:|ThreadSanitizer/ }
	    split /\n/, $log . "\n" . $ctl;
	Test::More::is(join("\n", @san), '', 'no sanitizer reports');
	if ($ENV{PA_TEST_VALGRIND}) {
		my $vg = join '', map { $self->read_file($_) } glob "$self->{dir}/valgrind-*.log";
		Test::More::is($vg, '', 'no valgrind memcheck findings (errors or leaks)');
	}
	my @err = grep {
		my $l = $_;
		(/^\S+ error \S+\[\d+\]:/ || /^\{.*"level":"error"/)
		    && !grep { $l =~ $_ } @{$self->{log_allow}}
	} split /\n/, $log;
	Test::More::is(join("\n", @err), '', 'no unexpected error lines in pbx-authd.log');
	# Sanitizer reports are checked above; every other line is ours.
	my @unparsed = grep { !/AddressSanitizer|LeakSanitizer|runtime error:|^\s|^=|^SUMMARY|^\s*$/ &&
	    !parse_log_line($_) } split /\n/, $log;
	Test::More::is(join("\n", @unparsed), '',
	    'every pbx-authd.log line parses (logfmt after the prefix, or JSON)');
	my $ng = $self->read_file("$self->{dir}/nginx/error.log");
	my @alerts = grep { /\[(alert|emerg)\]/ } split /\n/, $ng;
	Test::More::is(join("\n", @alerts), '', 'no nginx alerts');
	$self->check_secrets;
}

# Stop everything, run the log checks, then Test::More::done_testing.
sub done_testing {
	my ($self) = @_;
	$self->stop_all;
	$self->check_logs;
	$self->{checked} = 1;
	Test::More::done_testing();
}

sub _cleanup_dir {
	my ($self, $exit) = @_;
	return if $self->{cleaned}++;
	my $tb = Test::More->builder;
	if ($ENV{TEST_PA_LEAVE} || !$tb->is_passing || $exit) {
		Test::More::diag("test directory kept: $self->{dir}");
		return;
	}
	rmtree($self->{dir});
}

END {
	my $exit = $?;
	if ($$ == $CREATOR) {
		for my $t (@INSTANCES) {
			$t->stop_all;
			$t->_cleanup_dir($exit);
		}
		@INSTANCES = ();
	}
	$? = $exit;
}

sub DESTROY {
	my ($self) = @_;
	return if $$ != $CREATOR;
	$self->stop_all;
}

1;
