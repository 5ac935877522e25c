#!/usr/bin/perl

# pbx-authctl migrate: applies pending files in order, once, each in its own
# transaction, under an advisory lock; --status; a changed applied file
# stops everything; concurrent runs on a fresh database.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Basename qw(basename);
use File::Copy qw(copy);
use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new(migrate => 0);
$t->start_pg;

my $src = $t->migrations_dir;
my @files = sort map { basename($_) } glob("$src/*.sql");
is($files[0], '0001_init.sql', 'first migration is 0001_init.sql');
my @versions = map { /^(\d+)/ ? $1 + 0 : -1 } @files;
my $next = $versions[-1] + 1;

my $ROWS = 'SELECT version, name, checksum, applied_at FROM schema_migrations '
    . 'ORDER BY version';

sub lines { join '', map { "$_[0] $_\n" } @_[1 .. $#_] }

sub copy_dir {
	my ($name, %extra) = @_;
	my $d = $t->dir . "/$name";
	mkdir $d or die "$d: $!";
	copy("$src/$_", "$d/$_") or die "copy $_: $!" for @files;
	$t->write_file("$d/$_", $extra{$_}) for keys %extra;
	return $d;
}

sub table_exists {
	my ($table, $db) = @_;
	return $t->psql("SELECT to_regclass('$table') IS NOT NULL",
	    $db ? (db => $db) : ()) eq 't';
}

###############################################################################
# a fresh database

my ($rc, $out, $err) = $t->ctl('migrate', '--status');
is($rc, 3, 'status on a fresh database: exit 3 (files pending)') or diag($err);
is($out, lines('pending', @files), 'status on a fresh database: all pending');

($rc, $out, $err) = $t->ctl('migrate');
is($rc, 0, 'migrate a fresh database: exit 0') or diag($err);
is($out, lines('applied', @files), 'migrate prints applied <file> per file');

my $rows = $t->psql($ROWS);
my @rows = split /\n/, $rows;
is_deeply([ map { (split /\|/)[0] } @rows ], \@versions,
    'schema_migrations: one row per file, version from the file name');
ok(!grep({ my @f = split /\|/; !length($f[2] // '') || !length($f[3] // '') } @rows),
    'schema_migrations: checksum and applied_at set');
is($t->psql('SELECT count(*) FROM system_settings'), 1, 'system_settings has one row');
ok(table_exists('tenants'), 'tenants table created');

($rc, $out, $err) = $t->ctl('migrate');
is($rc, 0, 'migrate again: exit 0') or diag($err);
is($out, "database is up to date\n", 'migrate again: database is up to date');
is($t->psql($ROWS), $rows, 'migrate again: schema_migrations unchanged');

($rc, $out, $err) = $t->ctl('migrate', '--status');
is($rc, 0, 'status: exit 0') or diag($err);
is($out, lines('applied', @files), 'status: all applied');

###############################################################################
# a pending file in another directory

my $extra = sprintf('%04d_test.sql', $next);
my $dir_extra = copy_dir('mig_extra',
    $extra => "CREATE TABLE migrate_test_extra (id int);\n"
    . "INSERT INTO migrate_test_extra VALUES (42);\n");

($rc, $out, $err) = $t->ctl('migrate', '--status', '--dir', $dir_extra);
is($rc, 3, 'status --dir with a pending file: exit 3') or diag($err);
is($out, lines('applied', @files) . "pending $extra\n", 'status --dir: one pending');
ok(!table_exists('migrate_test_extra'), 'status applies nothing');

($rc, $out, $err) = $t->ctl('migrate', '--dir', $dir_extra);
is($rc, 0, 'migrate --dir: exit 0') or diag($err);
is($out, "applied $extra\n", 'migrate --dir applies only the pending file');
is($t->psql('SELECT id FROM migrate_test_extra'), 42, 'pending file applied');
my $rows_extra = $t->psql($ROWS);
is(join(',', map { (split /\|/)[0] } split /\n/, $rows_extra),
    join(',', @versions, $next), "schema_migrations has version $next");
like($rows_extra, qr/^\Q$rows\E\n/, 'earlier rows untouched');

($rc, $out, $err) = $t->ctl('migrate', '--status', '--dir', $dir_extra);
is($out, lines('applied', @files, $extra), 'status --dir: all applied');
is($rc, 0, 'status --dir, all applied: exit 0');
($rc, $out, $err) = $t->ctl('migrate', '--dir', $dir_extra);
is($out, "database is up to date\n", 'migrate --dir again: up to date');

###############################################################################
# a changed applied file

my $init = $t->read_file("$src/0001_init.sql");
my $never = sprintf('%04d_never.sql', $next + 1);
my $dir_changed = copy_dir('mig_changed',
    $extra => $t->read_file("$dir_extra/$extra"),
    '0001_init.sql' => $init . "\n-- a harmless comment\n",
    $never => "CREATE TABLE migrate_never (id int);\n");

($rc, $out, $err) = $t->ctl('migrate', '--status', '--dir', $dir_changed);
is($rc, 4, 'status with a changed applied file (and a pending one): exit 4');
like($out, qr/^changed 0001_init\.sql \(checksum mismatch\)$/m, 'status: the changed file');

($rc, $out, $err) = $t->ctl('migrate', '--dir', $dir_changed);
is($rc, 1, 'changed applied file: exit 1');
like($err, qr/0001_init\.sql/, 'changed applied file: stderr names the file');
like($err, qr/checksum mismatch/, 'changed applied file: says checksum mismatch');
unlike($out, qr/applied/, 'changed applied file: nothing reported applied');
ok(!table_exists('migrate_never'), 'changed applied file: pending file not applied');
is($t->psql($ROWS), $rows_extra, 'changed applied file: schema_migrations unchanged');

###############################################################################
# a failing file is rolled back and not recorded

my $broken = sprintf('%04d_broken.sql', $next + 1);
my $dir_broken = copy_dir('mig_broken',
    $extra => $t->read_file("$dir_extra/$extra"),
    $broken => "CREATE TABLE migrate_broken (id int);\nSELECT 1/0;\n");

($rc, $out, $err) = $t->ctl('migrate', '--dir', $dir_broken);
is($rc, 1, 'failing file: exit 1');
like($err, qr/\Q$broken\E/, 'failing file: stderr names the file');
ok(!table_exists('migrate_broken'), 'failing file: its transaction rolled back');
is($t->psql($ROWS), $rows_extra, 'failing file: not recorded');

###############################################################################
# concurrent runs on fresh databases

for my $round (1 .. 3) {
	my $db = "pbxauth_c$round";
	$t->create_db($db);
	my $conf = $t->write_file("c$round.conf",
	    $t->config_text(database => $t->conninfo($db)));
	my @h = map { $t->ctl_bg('migrate', { conf => $conf }) } 1 .. 3;
	my @res = map { [ $t->ctl_wait($_) ] } @h;
	my %applied;
	for my $i (0 .. $#res) {
		my ($rc, $out, $err) = @{$res[$i]};
		is($rc, 0, "round $round, run $i: exit 0") or diag($err);
		like($out, qr/\A(?:applied \S+\n|database is up to date\n)+\z/,
		    "round $round, run $i: output") or diag($out);
		$applied{$_}++ for $out =~ /^applied (\S+)$/mg;
	}
	is_deeply(\%applied, { map { $_ => 1 } @files },
	    "round $round: each file applied exactly once");
	is(join(',', split /\n/, $t->psql('SELECT version FROM schema_migrations '
	    . 'ORDER BY version', db => $db)), join(',', @versions),
	    "round $round: one schema_migrations row per file");
	is($t->psql('SELECT count(*) FROM system_settings', db => $db), 1,
	    "round $round: one system_settings row");
}

$t->done_testing;
