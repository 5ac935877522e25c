#!/usr/bin/perl

# The statement table is the contract between C and SQL: at every connect
# db.c checks each prepared statement's parameter and column counts
# (PQdescribePrepared) against what the code expects, and refuses the
# connection with a clear log line on drift.  Driven through
# t/helpers/db_contract against a migrated database: the real table passes;
# expected counts changed for one statement (system_info, index 0 of
# enum pa_stmt: 0 parameters, 10 columns) are detected either way.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new;
$t->write_config;
$t->start_pg;

my $helper = ($ENV{PA_BUILDDIR} // "$FindBin::Bin/..") . '/t/helpers/db_contract';
ok(-x $helper, "$helper is built") or BAIL_OUT('make check builds t/helpers/db_contract');

sub contract {
	my (@args) = @_;
	my ($rc, $out, $err) = $t->run([$t->_valgrind('helper'), $helper, $t->conninfo, @args]);
	is($rc, 0, "db_contract @args: exit 0") or diag($err);
	return ($out, $err);
}

my ($out, $err) = contract();
is($out, "connect=OK\n", 'every statement of the table matches the migrated schema');
unlike($err, qr/drifted|cannot (describe|prepare)/, 'no drift logged') or diag($err);

($out, $err) = contract(0, 1, 10);
is($out, "connect=OK\ncheck=EDB\n", 'a parameter count that differs is detected');
like($err, qr/error .*statement system_info drifted from the code: the database describes 0 (?#
    )parameters and 10 columns, the code expects 1 and 10; refusing to serve/,
    'the log line names the statement and both counts');

($out, $err) = contract(0, 0, 9);
is($out, "connect=OK\ncheck=EDB\n", 'a column count that differs is detected');
like($err, qr/statement system_info drifted .* expects 0 and 9/, 'columns: logged');

($out, $err) = contract(0, 0, 10);
is($out, "connect=OK\ncheck=OK\n", 'the same counts given explicitly pass');

$t->done_testing;
