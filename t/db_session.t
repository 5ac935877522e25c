#!/usr/bin/perl

# The daemon's own session settings survive an operator's options= in the
# `database` connection string: statement_timeout 10s, client_encoding UTF8
# and READ COMMITTED are SET after connecting, while the operator's other
# settings (work_mem here) still apply. A trigger on audit_log records the
# settings of the session that wrote the row: the worker's, during a failed
# sign-in through nginx.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->start_pg;
$t->psql(<<'SQL');
CREATE TABLE seen_settings (id serial, app text, st text, wm text, iso text, enc text);
CREATE FUNCTION record_settings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO seen_settings (app, st, wm, iso, enc) VALUES (
	    current_setting('application_name'), current_setting('statement_timeout'),
	    current_setting('work_mem'), current_setting('transaction_isolation'),
	    current_setting('client_encoding'));
	RETURN NULL;
END $$;
CREATE TRIGGER record_settings AFTER INSERT ON audit_log
	FOR EACH ROW EXECUTE FUNCTION record_settings();
SQL
$t->start_nginx;

my $n = 0;
sub settings_with {
	my ($options) = @_;
	$t->stop_daemon if $t->daemon_pid;
	$t->write_config(database => $t->conninfo . " options='$options'");
	$t->start_daemon;
	my $r = $t->request('POST', '/api/auth/sign_in',
	    headers => { 'Content-Type' => 'application/json' },
	    body => encode_json({ domain => 'nowhere.test', username => 'u' . ++$n,
	        password => 'wrong-password' }));
	is($r->{status}, 401, "options='$options': a failed sign-in is answered 401")
	    or diag($r->{content});
	return $t->psql('SELECT app, st, wm, iso, enc FROM seen_settings ORDER BY id DESC LIMIT 1');
}

is(settings_with('-c work_mem=7MB'), 'pbx-authd|10s|7MB|read committed|UTF8',
    'options=-c work_mem: the worker keeps statement_timeout 10s, work_mem applies');
is(settings_with('-c statement_timeout=0 -c default_transaction_isolation=serializable'
    . ' -c client_encoding=LATIN1'),
    'pbx-authd|10s|4MB|read committed|UTF8',
    'options that try to replace them: still 10s, read committed, UTF8');

$t->done_testing;
