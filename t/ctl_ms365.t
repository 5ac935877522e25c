#!/usr/bin/perl

# Microsoft 365 settings and accounts from the operator's side:
# pbx-authctl ms365 set/show (validation, files checked and stored as
# absolute paths, secrets never printed, settings kept complete, hostile
# input), user bind-ms365/unbind-ms365, /api/info following the settings,
# and the database side of src/ms365.c (tenant settings, user mapping, flows
# spent once) through t/helpers/ms365_db, without the HTTP endpoints.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Cwd qw(abs_path);
use Digest::SHA qw(sha256_hex);
use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);

use Test::PbxAuth;

my $AUTHORITY = 'https://login.global.test';
my $CHINA = 'https://login.partner.microsoftonline.cn';    # the default
my $DIR = '0B5C6D7E-1111-4222-8333-944455556666';          # stored lower-case
my $APP = '11111111-2222-4333-8444-555555555555';
my $OID = 'AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE';
my $OID2 = '12345678-9abc-4def-8123-456789abcdef';

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->write_config(ms365_authority_global => $AUTHORITY);
$t->start_pg->start_daemon->start_nginx;
my $dir = abs_path($t->dir);

sub ok_ctl {
	my (@args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, "pbx-authctl @args: exit 0") or diag($err);
	return $out;
}

# ok_ctl returning (stdout, stderr).
sub ok_ctl2 {
	my (@args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, "pbx-authctl @args: exit 0") or diag($err);
	return ($out, $err);
}

# A failing command: exit code in @$codes, a message on stderr matching $re.
sub fails {
	my ($codes, $re, @args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $t->ctl(@args);
	(my $shown = "@args") =~ s/[^\x20-\x7e]/?/g;
	ok((grep { $rc == $_ } @$codes), "pbx-authctl $shown: exit "
	    . join('/', @$codes) . " (got $rc)");
	like($err, $re, "pbx-authctl $shown: message") or diag("stderr: $err");
	return ($rc, $out, $err);
}

sub row { return $t->psql($_[0]) }
sub sqlq { my $s = shift; $s =~ s/'/''/g; return "'$s'" }

sub kvh {
	return { map { /^([^\t]*)\t(.*)$/ ? ($1, $2) : ($_, undef) } split /\n/, $_[0] };
}

my $MSCOLS = "ms365_enabled, coalesce(ms365_directory_id, '<null>'),"
    . " coalesce(ms365_application_id, '<null>'), coalesce(ms365_client_secret_file, '<null>'),"
    . " coalesce(ms365_certificate_file, '<null>'), coalesce(ms365_private_key_file, '<null>'),"
    . " ms365_national_cloud";
sub settings { return row("SELECT $MSCOLS FROM tenants WHERE domain = " . sqlq($_[0])) }

# A file in the test directory with mode $mode; returns its absolute path.
sub file {
	my ($name, $content, $mode) = @_;
	my $p = $t->write_file($name, $content);
	chmod $mode // 0600, $p;
	return "$dir/$name";
}

# The credential files.  The secret and the key are recognisable, and the
# harness fails the test if either reaches any log.
my $SECRET = 'ms365-client-secret-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 24);
$t->secret($SECRET, 'the client secret');
my $KEYBODY = 'PRIVATEKEYBODY' . join('', map { ('A' .. 'Z')[rand 26] } 1 .. 40);
$t->secret($KEYBODY, 'the private key');
my $secret_file = file('secret.txt', "$SECRET\n");
my $cert_file = file('cert.pem', "-----BEGIN CERTIFICATE-----\nMIIBfake\n"
    . "-----END CERTIFICATE-----\n", 0644);
my $key_file = file('key.pem', "-----BEGIN PRIVATE KEY-----\n$KEYBODY\n"
    . "-----END PRIVATE KEY-----\n");

# What GET /api/info?domain= says about Microsoft 365, waiting up to 3 s for
# the change (a trigger tells the workers); every worker is asked after it.
sub info_is {
	my ($domain, $want_on, $want_url, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $ok = sub {
		my $j = $_[0]{json};
		return $_[0]{status} == 200 && ref $j eq 'HASH'
		    && JSON::PP::is_bool($j->{enable_ms365_integration})
		    && !!$j->{enable_ms365_integration} == !!$want_on
		    && ($j->{ms365_authorization_endpoint} // '<null>') eq ($want_url // '');
	};
	my ($r, $seen);
	my $deadline = time + 3;
	while (1) {
		$r = $t->get("/api/info?domain=$domain");
		if ($ok->($r)) { $seen = 1; last }
		last if time > $deadline;
		sleep 0.05;
	}
	ok($seen, "/api/info $name") or diag("last: $r->{status} $r->{content}");
	my @bad = grep { !$ok->($_) } map { $t->get("/api/info?domain=$domain") } 1 .. 6;
	is(scalar @bad, 0, "/api/info $name: every worker");
}

ok_ctl('tenant', 'add', 'acme.example', '--name', 'Acme');
ok_ctl('tenant', 'add', 'beta.example', '--name', 'Beta');
my $ACME_ID = row("SELECT id FROM tenants WHERE domain = 'acme.example'");
my $BETA_ID = row("SELECT id FROM tenants WHERE domain = 'beta.example'");

###############################################################################
# help and usage

my $out = ok_ctl('ms365', '--help');
like($out, qr/ms365 set DOMAIN/, 'ms365 --help: set');
like($out, qr/ms365 show DOMAIN/, 'ms365 --help: show');
like(ok_ctl('--help'), qr/ms365/, 'pbx-authctl --help lists ms365');
like(ok_ctl('user', '--help'), qr/bind-ms365.*\n.*unbind-ms365/, 'user --help: bind/unbind');
fails([2], qr/usage/, 'ms365');
fails([2], qr/unknown subcommand 'frobnicate' of ms365/, 'ms365', 'frobnicate', 'acme.example');
fails([2], qr/DOMAIN/, 'ms365', 'set', '--enable');
fails([2], qr/something to set/, 'ms365', 'set', 'acme.example');
fails([2], qr/usage/, 'ms365', 'set', 'acme.example', '--colour', 'red');
fails([2], qr/usage/, 'ms365', 'show');
fails([2], qr/exclude/, 'ms365', 'set', 'acme.example', '--enable', '--disable');
fails([2], qr/--application-id given twice/, 'ms365', 'set', 'acme.example',
    '--application-id', $APP, '--application-id', $APP);
fails([2], qr/not both/, 'ms365', 'set', 'acme.example', '--directory-id', $DIR,
    '--application-id', $APP, '--client-secret-file', $secret_file,
    '--certificate', $cert_file, '--private-key', $key_file);
fails([2], qr/not both/, 'ms365', 'set', 'acme.example', '--client-secret-file',
    $secret_file, '--certificate', $cert_file);
fails([2], qr/go together/, 'ms365', 'set', 'acme.example', '--certificate', $cert_file);
fails([2], qr/go together/, 'ms365', 'set', 'acme.example', '--private-key', $key_file);
fails([2], qr/unknown key 'ms365_enabled'/, 'tenant', 'set', 'acme.example',
    'ms365_enabled=true');

###############################################################################
# show before anything is set

my $h = kvh(ok_ctl('ms365', 'show', 'ACME.example'));
is_deeply([ map { /^([^\t]*)\t/ } split /\n/, ok_ctl('ms365', 'show', 'acme.example') ],
    [ qw(domain enabled active directory_id application_id national_cloud credential
      client_secret_file client_secret_file_readable certificate_file
      certificate_file_readable private_key_file private_key_file_readable
      authorization_endpoint) ], 'ms365 show: keys in order');
is_deeply($h, { domain => 'acme.example', enabled => 'false', active => 'false',
    directory_id => '', application_id => '', national_cloud => 'GLOBAL',
    credential => 'none', client_secret_file => '', client_secret_file_readable => '',
    certificate_file => '', certificate_file_readable => '', private_key_file => '',
    private_key_file_readable => '', authorization_endpoint => '' },
    'ms365 show: nothing set');
fails([1], qr/no such tenant 'nosuch.example'/, 'ms365', 'show', 'nosuch.example');
fails([1], qr/no such tenant 'nosuch.example'/, 'ms365', 'set', 'nosuch.example',
    '--directory-id', $DIR, '--application-id', $APP, '--client-secret-file', $secret_file);
fails([1], qr/not a valid domain/, 'ms365', 'show', "acme.example\r\nx=1");

###############################################################################
# the settings must be complete

my $empty = settings('acme.example');
fails([1], qr/incomplete: give --application-id, --client-secret-file or --certificate/,
    'ms365', 'set', 'acme.example', '--directory-id', $DIR);
fails([1], qr/incomplete: give --directory-id, --client-secret-file/,
    'ms365', 'set', 'acme.example', '--application-id', $APP, '--enable');
fails([1], qr/incomplete: give --directory-id, --application-id$/m,
    'ms365', 'set', 'acme.example', '--client-secret-file', $secret_file);
fails([1], qr/incomplete/, 'ms365', 'set', 'acme.example', '--enable');
fails([1], qr/incomplete/, 'ms365', 'set', 'acme.example', '--national-cloud', 'CHINA');
is(settings('acme.example'), $empty, 'incomplete sets changed nothing');
ok_ctl('ms365', 'set', 'beta.example', '--disable');
is(settings('beta.example'), 'f|<null>|<null>|<null>|<null>|<null>|GLOBAL',
    '--disable alone works on a tenant without settings');

###############################################################################
# a client secret; relative paths stored absolute; the secret never printed

my $err;
($out, $err) = ok_ctl2('ms365', 'set', 'Acme.Example', '--directory-id', $DIR,
    '--application-id', uc $APP, '--client-secret-file', 'secret.txt');
like($out, qr/^Microsoft 365 sign-in for acme\.example: disabled/, 'set: says disabled');
is($err, '', 'set: no warning for a mode 0600 secret');
is(settings('acme.example'), 'f|' . lc($DIR) . "|$APP|$secret_file|<null>|<null>|GLOBAL",
    'set: GUIDs lower-cased, the relative secret path stored absolute, still disabled');
info_is('acme.example', 0, undef, 'complete but disabled: off');

($out, $err) = ok_ctl2('ms365', 'set', 'acme.example', '--enable');
like($out, qr/: enabled$/m, 'set --enable: says enabled');
is(row("SELECT ms365_enabled FROM tenants WHERE domain = 'acme.example'"), 't',
    'partial update: --enable alone once complete');
info_is('acme.example', 1, "$AUTHORITY/" . lc($DIR) . '/oauth2/v2.0/authorize',
    'enabled and complete: on, endpoint from ms365_authority_global');

($out, $err) = ok_ctl2('ms365', 'show', 'acme.example');
$h = kvh($out);
is($h->{enabled}, 'true', 'show: enabled');
is($h->{active}, 'true', 'show: active');
is($h->{directory_id}, lc $DIR, 'show: directory_id');
is($h->{application_id}, $APP, 'show: application_id');
is($h->{credential}, 'client_secret', 'show: credential');
is($h->{client_secret_file}, $secret_file, 'show: the path');
is($h->{client_secret_file_readable}, 'true', 'show: readable');
is($h->{authorization_endpoint}, "$AUTHORITY/" . lc($DIR) . '/oauth2/v2.0/authorize',
    'show: authorization_endpoint');
unlike("$out$err", qr/\Q$SECRET\E/, 'show never prints the secret');
unlike("$out$err", qr/ms365-client-secret/, 'show prints no part of the secret');

ok_ctl('ms365', 'set', 'acme.example', '--national-cloud', 'CHINA');
info_is('acme.example', 1, "$CHINA/" . lc($DIR) . '/oauth2/v2.0/authorize',
    'national cloud CHINA');
ok_ctl('ms365', 'set', 'acme.example', '--national-cloud', 'GLOBAL',
    '--directory-id', 'Contoso.onMicrosoft.com');
info_is('acme.example', 1, "$AUTHORITY/contoso.onmicrosoft.com/oauth2/v2.0/authorize",
    'a directory domain name, lower-cased');
ok_ctl('ms365', 'set', 'acme.example', '--directory-id', $DIR);

# group- and world-readable secrets are accepted with a warning
chmod 0640, $secret_file;
(undef, $err) = ok_ctl2('ms365', 'set', 'acme.example', '--client-secret-file', $secret_file);
like($err, qr/warning: .*secret\.txt is readable by its group \(mode 0640\)/,
    'a group-readable secret: warning');
chmod 0604, $secret_file;
(undef, $err) = ok_ctl2('ms365', 'set', 'acme.example', '--client-secret-file', $secret_file);
like($err, qr/warning: .*is readable by everyone \(mode 0604\)/, 'a world-readable secret: warning');
chmod 0600, $secret_file;

###############################################################################
# files that cannot serve

my $before = settings('acme.example');
fails([1], qr/--client-secret-file .*nosuch\.txt: No such file/, 'ms365', 'set',
    'acme.example', '--client-secret-file', 'nosuch.txt');
fails([1], qr/not a regular file/, 'ms365', 'set', 'acme.example',
    '--client-secret-file', $dir);
fails([1], qr/one line holding the client secret/, 'ms365', 'set', 'acme.example',
    '--client-secret-file', file('empty.txt', ''));
fails([1], qr/one line holding the client secret/, 'ms365', 'set', 'acme.example',
    '--client-secret-file', file('two.txt', "a\nb\n"));
fails([1], qr/expected a PEM certificate/, 'ms365', 'set', 'acme.example',
    '--certificate', $key_file, '--private-key', $key_file);
fails([1], qr/expected a PEM private key/, 'ms365', 'set', 'acme.example',
    '--certificate', $cert_file, '--private-key', $cert_file);
fails([1], qr/control characters/, 'ms365', 'set', 'acme.example',
    '--client-secret-file', "$secret_file\r\nx");
fails([1], qr/control characters/, 'ms365', 'set', 'acme.example',
    '--client-secret-file', "secret.txt\n");
fails([1], qr/control characters|No such file/, 'ms365', 'set', 'acme.example',
    '--client-secret-file', '');
{
	# root reads files whatever their mode: then pbx-authctl runs as postgres
	my $locked = file('locked.txt', "x$SECRET\n", $> == 0 ? 0600 : 0000);
	my @cmd = ($t->authctl_bin, '-c', $t->conf_file, 'ms365');
	my ($rc, $o, $e) = $t->run([@cmd, 'set', 'acme.example', '--client-secret-file',
	    $locked], as_postgres => 1);
	is($rc, 1, 'an unreadable file: exit 1');
	like($e, qr/--client-secret-file .*locked\.txt: cannot read it: Permission denied/,
	    'an unreadable file: message');
	$t->psql("UPDATE tenants SET ms365_certificate_file = " . sqlq($locked)
	    . ", ms365_private_key_file = " . sqlq($key_file) . " WHERE domain = 'beta.example'");
	($rc, $o, $e) = $t->run([@cmd, 'show', 'beta.example'], as_postgres => 1);
	like($o, qr/^certificate_file_readable\tfalse$/m, 'show: an unreadable file');
	$t->psql("UPDATE tenants SET ms365_certificate_file = NULL, ms365_private_key_file = NULL"
	    . " WHERE domain = 'beta.example'");
}
is(settings('acme.example'), $before, 'refused files changed nothing');

###############################################################################
# bad ids and clouds

for my $bad ('not-a-guid', substr($APP, 0, 35), "{$APP}", "${APP}0", $APP =~ s/-//gr,
    'g1111111-2222-4333-8444-555555555555', "$APP\n", "x'; DROP TABLE tenants; --", '') {
	fails([1], qr/--application-id: expected a GUID/, 'ms365', 'set', 'acme.example',
	    '--application-id', $bad);
}
for my $bad ('common', 'organizations', 'consumers', 'bad domain.example', '192.0.2.1',
    '-x.example', 'x-.example', 'a..example', "contoso.example\r\n", 'contoso.example.',
    "x'; DROP TABLE tenants; --", ('a' x 64) . '.example', '') {
	fails([1], qr/--directory-id: expected the directory's GUID or one of its domain names/,
	    'ms365', 'set', 'acme.example', '--directory-id', $bad);
}
for my $bad ('MARS', 'global', 'China', 'USGOV', '', "GLOBAL\n") {
	fails([1], qr/--national-cloud: expected GLOBAL or CHINA/, 'ms365', 'set',
	    'acme.example', '--national-cloud', $bad);
}
fails([1], qr/not a valid domain/, 'ms365', 'set', "acme.example\r\n", '--enable');
is(settings('acme.example'), $before, 'refused values changed nothing');
is(row('SELECT count(*) FROM tenants'), 2, 'the tenants table is still there');

###############################################################################
# secret xor certificate

ok_ctl('ms365', 'set', 'acme.example', '--certificate', $cert_file, '--private-key', 'key.pem');
is(settings('acme.example'), 't|' . lc($DIR) . "|$APP|<null>|$cert_file|$key_file|GLOBAL",
    'a certificate replaces the secret');
($out, $err) = ok_ctl2('ms365', 'show', 'acme.example');
$h = kvh($out);
is($h->{credential}, 'certificate', 'show: credential=certificate');
is($h->{certificate_file_readable}, 'true', 'show: certificate readable');
is($h->{private_key_file_readable}, 'true', 'show: key readable');
is($h->{client_secret_file}, '', 'show: no secret file');
unlike("$out$err", qr/\Q$KEYBODY\E|PRIVATEKEYBODY|BEGIN/, 'show never prints the key');
info_is('acme.example', 1, "$AUTHORITY/" . lc($DIR) . '/oauth2/v2.0/authorize',
    'certificate credential: on');
chmod 0644, $key_file;
(undef, $err) = ok_ctl2('ms365', 'set', 'acme.example', '--certificate', $cert_file,
    '--private-key', $key_file);
like($err, qr/warning: --private-key .*key\.pem is readable by everyone/,
    'a world-readable private key: warning');
unlike($err, qr/--certificate .*readable by/, 'no warning for the (public) certificate');
chmod 0600, $key_file;

# a file that goes away later: show says so, the settings stay
my $gone = file('gone.txt', "$SECRET\n");
ok_ctl('ms365', 'set', 'acme.example', '--client-secret-file', $gone);
is(settings('acme.example'), 't|' . lc($DIR) . "|$APP|$gone|<null>|<null>|GLOBAL",
    'the secret replaces the certificate');
unlink $gone;
$h = kvh(ok_ctl('ms365', 'show', 'acme.example'));
is($h->{client_secret_file_readable}, 'false', 'show: a missing file is not readable');

# SQL metacharacters in a file name are stored and shown exactly
my $odd = "it's; DROP TABLE tenants; -- \$1 %s \\x.txt";
my $odd_path = file($odd, "$SECRET\n");
ok_ctl('ms365', 'set', 'acme.example', '--client-secret-file', $odd_path);
is(row("SELECT ms365_client_secret_file FROM tenants WHERE domain = 'acme.example'"),
    $odd_path, 'hostile file name stored exactly');
$h = kvh(ok_ctl('ms365', 'show', 'acme.example'));
is($h->{client_secret_file}, $odd_path, 'hostile file name shown exactly');
is($h->{client_secret_file_readable}, 'true', 'hostile file name: readable');
ok_ctl('ms365', 'set', 'acme.example', '--client-secret-file', $secret_file);

# a row written by plain SQL with control characters is shown on one line each
$t->psql("UPDATE tenants SET ms365_client_secret_file = E'/x\\ninjected=1'"
    . " WHERE domain = 'beta.example'");
$out = ok_ctl('ms365', 'show', 'beta.example');
unlike($out, qr/^injected/m, 'show: a newline in a stored path makes no line of its own');
like($out, qr{^client_secret_file\t/x\?injected=1$}m, 'show: control characters as ?');

###############################################################################
# /api/info follows every way the settings change

ok_ctl('ms365', 'set', 'acme.example', '--disable');
info_is('acme.example', 0, undef, '--disable: off');
ok_ctl('ms365', 'set', 'acme.example', '--enable');
info_is('acme.example', 1, "$AUTHORITY/" . lc($DIR) . '/oauth2/v2.0/authorize', '--enable: on');
$t->psql("UPDATE tenants SET ms365_client_secret_file = NULL WHERE domain = 'acme.example'");
info_is('acme.example', 0, undef, 'credential removed by plain SQL: off');
$t->psql("UPDATE tenants SET ms365_client_secret_file = "
    . sqlq($secret_file) . ", ms365_application_id = '' WHERE domain = 'acme.example'");
info_is('acme.example', 0, undef, 'an empty application id: off');
$t->psql("UPDATE tenants SET ms365_application_id = " . sqlq($APP)
    . " WHERE domain = 'acme.example'");
info_is('acme.example', 1, "$AUTHORITY/" . lc($DIR) . '/oauth2/v2.0/authorize',
    'complete again: on');
$h = kvh(ok_ctl('ms365', 'show', 'acme.example'));
is($h->{active}, 'true', 'show: active');
ok_ctl('tenant', 'disable', 'acme.example');
$h = kvh(ok_ctl('ms365', 'show', 'acme.example'));
is($h->{active}, 'false', 'show: a disabled tenant is not active');
is($h->{enabled}, 'true', 'show: its Microsoft 365 setting stays enabled');
ok_ctl('tenant', 'enable', 'acme.example');

###############################################################################
# bind-ms365 / unbind-ms365

for my $u (qw(bob alice carol dave erin frank)) {
	ok_ctl('user', 'add', '--domain', 'acme.example', $u, { stdin => "correct horse\n" });
}
ok_ctl('user', 'add', '--domain', 'beta.example', 'bob', { stdin => "correct horse\n" });
ok_ctl('user', 'add', 'sysop', { stdin => "correct horse\n" });

sub binding {
	my ($domain, $user) = @_;
	return row("SELECT coalesce(ms365_oid, '<null>'), coalesce(ms365_upn, '<null>')"
	    . " FROM users WHERE username = " . sqlq($user) . " AND tenant_id ="
	    . " (SELECT id FROM tenants WHERE domain = " . sqlq($domain) . ')');
}

ok_ctl('user', 'bind-ms365', '--domain', 'acme.example', 'BOB', $OID);
is(binding('acme.example', 'bob'), lc($OID) . '|<null>', 'bind an oid: stored lower-case');
$h = kvh(ok_ctl('user', 'show', '--domain', 'acme.example', 'bob'));
is($h->{ms365_oid}, lc $OID, 'user show: ms365_oid');
is($h->{ms365_upn}, '', 'user show: no ms365_upn');
is(row("SELECT tenant_domain, username, event, outcome, detail FROM audit_log"
    . " WHERE event = 'ms365_bind'"),
    'acme.example|bob|ms365_bind|success|pbx-authctl user bind-ms365 oid ' . lc $OID,
    'bind: audit row');
fails([1], qr/already bound to user 'bob' in tenant 'acme.example'/, 'user', 'bind-ms365',
    '--domain', 'acme.example', 'alice', lc $OID);
is(binding('acme.example', 'alice'), '<null>|<null>', 'the same oid twice: refused');
ok_ctl('user', 'bind-ms365', '--domain', 'beta.example', 'bob', $OID);
is(binding('beta.example', 'bob'), lc($OID) . '|<null>', 'the same oid in another tenant');

ok_ctl('user', 'bind-ms365', '--domain', 'acme.example', 'alice', 'Alice@Contoso.example');
is(binding('acme.example', 'alice'), '<null>|Alice@Contoso.example', 'bind a UPN');
fails([1], qr/already bound to user 'alice'/, 'user', 'bind-ms365', '--domain',
    'acme.example', 'carol', 'alice@contoso.EXAMPLE');
ok_ctl('user', 'bind-ms365', '--domain', 'acme.example', 'carol', 'carol@contoso.example');
ok_ctl('user', 'bind-ms365', '--domain', 'acme.example', 'carol', $OID2);
is(binding('acme.example', 'carol'), "$OID2|<null>", 'a new binding replaces the old one');
ok_ctl('user', 'unbind-ms365', '--domain', 'acme.example', 'carol');
is(binding('acme.example', 'carol'), '<null>|<null>', 'unbind clears both');
is(row("SELECT count(*) FROM audit_log WHERE event = 'ms365_unbind' AND username = 'carol'"),
    1, 'unbind: audit row');
ok_ctl('user', 'unbind-ms365', '--domain', 'acme.example', 'carol');

fails([1], qr/tenant user: give --domain/, 'user', 'bind-ms365', 'sysop', $OID2);
fails([1], qr/neither an object id .* nor a user principal name/, 'user', 'bind-ms365',
    '--domain', 'acme.example', 'dave', 'dave');
for my $bad ('da ve@contoso.example', "dave\@contoso.example\r\nx", '@contoso.example',
    'dave@', 'a@b@c', "x'; DROP TABLE users; --", 'x' x 250 . '@c.example') {
	fails([1], qr/neither an object id/, 'user', 'bind-ms365', '--domain', 'acme.example',
	    'dave', $bad);
}
fails([1], qr/no such user 'nobody'/, 'user', 'bind-ms365', '--domain', 'acme.example',
    'nobody', $OID2);
fails([1], qr/no such tenant/, 'user', 'bind-ms365', '--domain', 'nosuch.example',
    'dave', $OID2);
fails([2], qr/usage/, 'user', 'bind-ms365', '--domain', 'acme.example', 'dave');
fails([2], qr/usage/, 'user', 'unbind-ms365', '--domain', 'acme.example', 'dave', $OID2);
is(binding('acme.example', 'dave'), '<null>|<null>', 'refused binds changed nothing');

# a UPN with SQL metacharacters round-trips
my $qupn = "o'brien;--\$1\@contoso.example";
ok_ctl('user', 'bind-ms365', '--domain', 'acme.example', 'frank', $qupn);
is(binding('acme.example', 'frank'), "<null>|$qupn", 'hostile UPN stored exactly');

###############################################################################
# the database side of ms365.c (t/helpers/ms365_db)

my $helper = ($ENV{PA_BUILDDIR} // "$FindBin::Bin/..") . '/t/helpers/ms365_db';
SKIP: {
	skip "$helper not built (make check builds it)", 1 unless -x $helper;

	# Runs one call; returns the printed key=value lines as a hash.
	my $db = sub {
		my @args = @_;
		my ($rc, $out, $err) = $t->run([$t->_valgrind('helper'), $helper, $t->conninfo,
		    @args]);
		open my $fh, '>>', "$dir/pbx-authctl.log";
		print $fh "### ms365_db @args[0 .. 0] => $rc\n$err" if $fh;
		is($rc, 0, "ms365_db $args[0]: exit 0") or diag($err);
		return kvh($out);
	};

	# pa_ms365_tenant
	my $r = $db->('tenant', 'ACME.example');
	is_deeply($r, { status => 'OK', tenant_id => $ACME_ID, domain => 'acme.example',
	    name => 'Acme', enabled => 'true', directory_id => lc $DIR, application_id => $APP,
	    cloud => 'GLOBAL', client_secret_file => $secret_file,
	    certificate_file => '<null>', private_key_file => '<null>' },
	    'pa_ms365_tenant: the settings');
	is($db->('tenant', 'beta.example')->{enabled}, 'false',
	    'pa_ms365_tenant: incomplete settings are not enabled');
	is($db->('tenant', 'nosuch.example')->{status}, 'ENOTFOUND', 'pa_ms365_tenant: unknown');
	ok_ctl('tenant', 'disable', 'beta.example');
	is($db->('tenant', 'beta.example')->{status}, 'ENOTFOUND',
	    'pa_ms365_tenant: disabled tenant');
	ok_ctl('tenant', 'enable', 'beta.example');

	# pa_ms365_user_map: by the bound oid
	$r = $db->('map', $ACME_ID, uc $OID, '-', '-');
	is("$r->{status} $r->{username} $r->{domain} $r->{enabled}", 'OK bob acme.example true',
	    'map: bound oid (any case)');
	$r = $db->('map', $BETA_ID, $OID, 'alice@contoso.example', '-');
	is("$r->{status} $r->{username} $r->{domain}", 'OK bob beta.example',
	    'map: the oid of the given tenant only, before any UPN');
	is($db->('map', $ACME_ID, $OID2, '-', '-')->{status}, 'ENOTFOUND', 'map: unknown oid');

	# by the operator-bound UPN, recording the oid
	my $alice_oid = 'a11ce000-0000-4000-8000-000000000001';
	$r = $db->('map', $ACME_ID, $alice_oid, 'ALICE@contoso.example', 'someone@else.example');
	is("$r->{status} $r->{username}", 'OK alice', 'map: bound UPN matches the upn claim');
	is(binding('acme.example', 'alice'), "$alice_oid|Alice\@Contoso.example",
	    'map: the oid is recorded, the UPN kept');
	is(row("SELECT tenant_domain, username, event, detail FROM audit_log"
	    . " WHERE event = 'ms365_link'"),
	    "acme.example|alice|ms365_link|oid $alice_oid by upn Alice\@Contoso.example",
	    'map: the link is audited');
	$r = $db->('map', $ACME_ID, $alice_oid, '-', '-');
	is("$r->{status} $r->{username}", 'OK alice', 'map: later sign-ins by the oid alone');
	is($db->('map', $ACME_ID, 'b0000000-0000-4000-8000-000000000002',
	    'alice@contoso.example', '-')->{status}, 'ENOTFOUND',
	    'map: another account with the same UPN once the oid is recorded');
	is($db->('map', $BETA_ID, 'b0000000-0000-4000-8000-000000000003',
	    'alice@contoso.example', '-')->{status}, 'ENOTFOUND',
	    'map: the UPN of another tenant');

	# preferred_username, and upn preferred over it
	ok_ctl('user', 'bind-ms365', '--domain', 'acme.example', 'dave', 'dave@contoso.example');
	ok_ctl('user', 'bind-ms365', '--domain', 'acme.example', 'erin', 'erin@contoso.example');
	$r = $db->('map', $ACME_ID, 'da0e0000-0000-4000-8000-000000000004', '-',
	    'Dave@Contoso.example');
	is("$r->{status} $r->{username}", 'OK dave', 'map: bound UPN matches preferred_username');
	ok_ctl('user', 'bind-ms365', '--domain', 'acme.example', 'carol', 'carol@contoso.example');
	$r = $db->('map', $ACME_ID, 'e0000000-0000-4000-8000-000000000005',
	    'erin@contoso.example', 'carol@contoso.example');
	is("$r->{status} $r->{username}", 'OK erin', 'map: upn wins over preferred_username');
	is(binding('acme.example', 'carol'), '<null>|carol@contoso.example',
	    'map: the other candidate is untouched');

	# never by email, nor without an oid
	$t->psql("UPDATE users SET email = 'carol\@mail.example' WHERE username = 'carol'");
	is($db->('map', $ACME_ID, 'c0000000-0000-4000-8000-000000000006', '-',
	    'carol@mail.example')->{status}, 'ENOTFOUND', 'map: never by the email address');
	is($db->('map', $ACME_ID, '-', 'carol@contoso.example', '-')->{status}, 'ENOTFOUND',
	    'map: no oid, no match');
	is($db->('map', $ACME_ID, 'not-a-guid', 'carol@contoso.example', '-')->{status},
	    'ENOTFOUND', 'map: an oid that is no GUID');
	is(binding('acme.example', 'carol'), '<null>|carol@contoso.example',
	    'map: nothing recorded for refused accounts');
	is($db->('map', $ACME_ID, 'c0000000-0000-4000-8000-000000000007', "x' OR '1'='1",
	    "%")->{status}, 'ENOTFOUND', 'map: hostile claims match nothing');

	# disabled users and tenants are found, marked not enabled
	ok_ctl('user', 'set', '--domain', 'acme.example', 'bob', 'enabled=false');
	$r = $db->('map', $ACME_ID, $OID, '-', '-');
	is("$r->{status} $r->{enabled}", 'OK false', 'map: a disabled user is not enabled');
	ok_ctl('user', 'set', '--domain', 'acme.example', 'bob', 'enabled=true');
	ok_ctl('tenant', 'disable', 'acme.example');
	$r = $db->('map', $ACME_ID, $OID, '-', '-');
	is("$r->{status} $r->{enabled}", 'OK false', 'map: a disabled tenant is not enabled');
	ok_ctl('tenant', 'enable', 'acme.example');

	# concurrent first sign-ins of one account: all map to the user, one oid recorded
	my $f_oid = 'f0000000-0000-4000-8000-000000000008';
	my @hs = map { $t->spawn([$helper, $t->conninfo, 'map', $ACME_ID, $f_oid, $qupn, '-']) }
	    1 .. 4;
	my @got = map { my ($rc, $o) = $t->wait_cmd($_); kvh($o) } @hs;
	is(join(' ', map { "$_->{status}:" . ($_->{username} // '') } @got),
	    join(' ', ('OK:frank') x 4), 'map: concurrent first sign-ins all map to the user');
	is(binding('acme.example', 'frank'), "$f_oid|$qupn", 'map: the oid recorded once');

	# flows: created, spent once, only their state's hash stored
	my $state = 'state-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 30);
	my $nonce = 'nonce-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 30);
	my $verifier = 'verifier-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 43);
	$t->secret($state, 'a flow state');
	$t->secret($verifier, 'a PKCE verifier');
	is($db->('flow-create', $ACME_ID, $state, $nonce, $verifier, 'bearer',
	    'https://app.acme.example/cb', 600, '192.0.2.7', '-')->{status}, 'OK', 'flow created');
	is(row("SELECT kind, encode(token_hash, 'hex'), tenant_id, nonce, pkce_verifier, flavour,"
	    . " destination, client_addr, expires_at > now() + interval '500 seconds',"
	    . " expires_at <= now() + interval '600 seconds', spent_at IS NULL FROM auth_flows"
	    . " WHERE kind = 'oidc'"),
	    'oidc|' . sha256_hex($state) . "|$ACME_ID|$nonce|$verifier|bearer|"
	    . 'https://app.acme.example/cb|192.0.2.7|t|t|t', 'flow row: SHA-256 of the state');
	is(row("SELECT count(*) FROM auth_flows WHERE position(" . sqlq($state)
	    . " IN concat_ws(' ', nonce, pkce_verifier, destination)) > 0"), 0,
	    'the state itself is not stored');
	is($db->('flow-spend', "x$state")->{status}, 'ENOTFOUND', 'spend: unknown state');
	is($db->('flow-spend', '')->{status}, 'ENOTFOUND', 'spend: empty state');
	is($db->('flow-spend', 'x' x 600)->{status}, 'ENOTFOUND', 'spend: overlong state');
	$r = $db->('flow-spend', $state);
	is_deeply($r, { status => 'OK', tenant_id => $ACME_ID, domain => 'acme.example',
	    nonce => $nonce, verifier => $verifier, destination => 'https://app.acme.example/cb',
	    flavour => 'bearer', client_addr => '192.0.2.7', browser_hash => '<null>' },
	    'spend: what the flow held');
	is(row("SELECT spent_at IS NOT NULL, nonce IS NULL, pkce_verifier IS NULL"
	    . " FROM auth_flows WHERE kind = 'oidc'"), 't|t|t',
	    'spent: marked, nonce and verifier gone');
	is($db->('flow-spend', $state)->{status}, 'ENOTFOUND', 'spend: a second time');

	# cookie flavour without a destination, bound to a browser; expired flows
	my $s2 = "cookie-$state";
	my $browser = 'browser-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 35);
	$t->secret($browser, 'a browser binding');
	# (PostgreSQL logs a refused row: these two carry no secret)
	is($db->('flow-create', $BETA_ID, "unbound-$s2", 'n', 'v', 'cookie', '-', 600,
	    '-', '-')->{status}, 'EDB', 'a cookie flow without a browser binding is refused');
	# a bearer flow may carry a binding: the start URL binds it (migration 0007)
	is($db->('flow-create', $ACME_ID, "bound-$state", 'n', 'v', 'bearer',
	    'https://x.example/', 600, '-', 'not-a-secret-binding')->{status}, 'OK',
	    'a bearer flow with a browser binding is allowed');
	is($db->('flow-create', $BETA_ID, $s2, $nonce, $verifier, 'cookie', '-', 600, '-',
	    $browser)->{status}, 'OK', 'cookie flow created');
	is(row("SELECT encode(browser_hash, 'hex') FROM auth_flows WHERE token_hash = decode('"
	    . sha256_hex($s2) . "', 'hex')"), sha256_hex($browser),
	    'cookie flow: only SHA-256 of the browser binding stored');
	my $s3 = "expired-$state";
	is($db->('flow-create', $ACME_ID, $s3, $nonce, $verifier, 'bearer', 'https://x.example/',
	    600, '-', '-')->{status}, 'OK', 'flow to expire created');
	$t->psql("UPDATE auth_flows SET expires_at = now() - interval '1 second'"
	    . " WHERE token_hash = decode('" . sha256_hex($s3) . "', 'hex')");
	is($db->('flow-spend', $s3)->{status}, 'ENOTFOUND', 'spend: expired');
	$r = $db->('flow-spend', $s2, $browser);
	is("$r->{status} $r->{flavour} $r->{destination} $r->{domain} $r->{client_addr}"
	    . " $r->{browser_ok}", 'OK cookie <null> beta.example <null> true',
	    'spend: cookie flow, its browser binding matches');
	# the binding check on other flows and values
	my $s6 = "cookie2-$state";
	for my $case (["x$browser", 'another browser\'s binding'], ['-', 'no binding'],
	    [substr($browser, 0, -1), 'a truncated binding']) {
		my $s = "$s6-$case->[0]";
		$db->('flow-create', $BETA_ID, $s, $nonce, $verifier, 'cookie', '-', 600, '-',
		    $browser);
		$r = $db->('flow-spend', $s, $case->[0]);
		is("$r->{status} $r->{browser_ok}", 'OK false', "spend: cookie flow, $case->[1]");
	}
	$db->('flow-create', $ACME_ID, $s6, $nonce, $verifier, 'bearer', 'https://x.example/', 600,
	    '-', '-');
	is($db->('flow-spend', $s6, $browser)->{browser_ok}, 'false',
	    'spend: a bearer flow matches no browser binding');

	# a flow of another kind with the same hash is not an OpenID Connect flow
	my $s4 = "other-$state";
	$t->psql("INSERT INTO auth_flows (kind, token_hash, flavour, expires_at) VALUES"
	    . " ('two_factor', decode('" . sha256_hex($s4) . "', 'hex'), 'bearer',"
	    . " now() + interval '1 hour')");
	is($db->('flow-spend', $s4)->{status}, 'ENOTFOUND', 'spend: only oidc flows');

	# concurrent callbacks with one state: exactly one spends it
	my $s5 = "race-$state";
	is($db->('flow-create', $ACME_ID, $s5, $nonce, $verifier, 'bearer', 'https://x.example/',
	    600, '-', '-')->{status}, 'OK', 'flow to race for created');
	@hs = map { $t->spawn([$helper, $t->conninfo, 'flow-spend', $s5]) } 1 .. 6;
	@got = map { my ($rc, $o) = $t->wait_cmd($_); kvh($o)->{status} // "exit $rc" } @hs;
	is(join(' ', sort @got), 'ENOTFOUND ENOTFOUND ENOTFOUND ENOTFOUND ENOTFOUND OK',
	    'spend: of six concurrent callbacks exactly one gets the flow');

	# deleting the tenant deletes its flows
	$t->psql("DELETE FROM tenants WHERE domain = 'beta.example'");
	is(row("SELECT count(*) FROM auth_flows WHERE kind = 'oidc' AND tenant_id = $BETA_ID"), 0,
	    'flows go with their tenant');
}

$t->done_testing;
