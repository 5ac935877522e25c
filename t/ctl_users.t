#!/usr/bin/perl

# pbx-authctl user add/passwd/set/list/show, session list/revoke and audit:
# the username, role and password rules, passwords read from standard input
# (never argv) and hashed with yescrypt, session revocation with audit rows,
# and the audit listing's filters.  The database is checked with psql.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new();
$t->start_pg;

my $PW = 'correct horse';

sub ok_ctl {
	my (@args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $o = ref $args[-1] eq 'HASH' ? $args[-1] : undef;
	my @shown = grep { !ref } @args;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, "pbx-authctl @shown: exit 0") or diag($err);
	return $out;
}

# A failing command: exit code in @$codes, a message on stderr matching $re.
sub fails {
	my ($codes, $re, @args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my @shown = grep { !ref } @args;
	my ($rc, $out, $err) = $t->ctl(@args);
	ok((grep { $rc == $_ } @$codes), "pbx-authctl @shown: exit "
	    . join('/', @$codes) . " (got $rc)");
	like($err, $re, "pbx-authctl @shown: message") or diag("stderr: $err");
	return ($rc, $out, $err);
}

sub row { return $t->psql($_[0]) }

sub sqlq { my $s = shift; $s =~ s/'/''/g; return "'$s'" }

sub kvh {
	return { map { /^([^\t]*)\t(.*)$/ ? ($1, $2) : ($_, undef) } split /\n/, $_[0] };
}

# The SQL condition for a user: [domain] username, as stored (exact case).
sub user_cond {
	my ($domain, $user) = @_;
	return 'username = ' . sqlq($user) . ' AND ' . (defined $domain
	    ? 'tenant_id = (SELECT id FROM tenants WHERE domain = ' . sqlq($domain) . ')'
	    : 'tenant_id IS NULL');
}

sub hash_of { return row('SELECT password_hash FROM users WHERE ' . user_cond(@_)) }

# Insert a session for a user; %o: expired => 1, revoked => 1, addr.
# Returns its id.
my $SESSIONS = 0;
sub add_session {
	my ($domain, $user, %o) = @_;
	$SESSIONS++;
	my $exp = $o{expired} ? "now() - interval '1 minute'" : "now() + interval '1 day'";
	my $rev = $o{revoked} ? 'now()' : 'NULL';
	my $addr = defined $o{addr} ? sqlq($o{addr}) : 'NULL';
	return row("INSERT INTO sessions (user_id, flavour, access_hash, access_expires_at,"
	    . " refresh_hash, refresh_expires_at, client_addr, revoked_at)"
	    . " SELECT id, '" . ($o{flavour} // 'bearer') . "', sha256('a$SESSIONS$$'::bytea),"
	    . " least($exp, now() + interval '1 hour'), sha256('r$SESSIONS$$'::bytea), $exp,"
	    . " $addr, $rev"
	    . " FROM users WHERE " . user_cond($domain, $user) . " RETURNING id");
}

sub active_sessions {
	return row('SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id'
	    . ' WHERE s.revoked_at IS NULL AND u.' . join(' AND u.', split / AND /,
	    user_cond(@_)));
}

sub verifies {
	my ($pw, $hash) = @_;
	return defined $hash && length $hash && crypt($pw, $hash) eq $hash;
}

ok_ctl('tenant', 'add', 'acme.example', '--name', 'Acme');
ok_ctl('tenant', 'add', 'beta.example', '--name', 'Beta');

###############################################################################
# user add

ok_ctl('user', 'add', '--domain', 'acme.example', 'bob', '--email', 'bob@acme.example',
    { stdin => "$PW\n" });
is(row("SELECT username, email, role, enabled, two_factor, password_force_reset,"
    . " password_verified FROM users WHERE " . user_cond('acme.example', 'bob')),
    'bob|bob@acme.example|StandardUser|t|f|f|f', 'user add: stored, default role StandardUser');
my $h = hash_of('acme.example', 'bob');
like($h, qr/^\$y\$/, 'user add: yescrypt hash');
ok(verifies($PW, $h), 'user add: the hash verifies the password (libcrypt)');
ok(!verifies('wrong password', $h), 'user add: the hash refuses another password');
is(row("SELECT tenant_domain, username, event, outcome, detail, client_addr IS NULL,"
    . " user_id = (SELECT id FROM users WHERE username = 'bob') FROM audit_log"
    . " WHERE username = 'bob'"),
    'acme.example|bob|user_add|success|role: - -> StandardUser, email: - -> bob@acme.example,'
    . ' two_factor: - -> false; password set|t|t',
    'user add: audit row (what the user has, never the hash)');
like(row("SELECT operator FROM audit_log WHERE username = 'bob'"), qr/^operator=\S+$/,
    'user add: the audit row names the operator');

ok_ctl('user', 'add', 'sysop', { stdin => "$PW\n" });
is(row("SELECT role, tenant_id IS NULL FROM users WHERE username = 'sysop'"),
    'SystemAdmin|t', 'user add without --domain: system-level SystemAdmin');
is(row("SELECT tenant_domain IS NULL FROM audit_log WHERE username = 'sysop'"), 't',
    'user add system-level: audit row without a domain');
ok_ctl('user', 'add', 'dealer1', '--role', 'Dealer', { stdin => "$PW\n" });
ok_ctl('user', 'add', 'alice', '--domain', 'ACME.Example', '--role', 'Admin',
    '--two-factor', { stdin => "$PW\r\n" });
is(row("SELECT role, two_factor, tenant_id = (SELECT id FROM tenants"
    . " WHERE domain = 'acme.example') FROM users WHERE username = 'alice'"),
    'Admin|t|t', 'user add --role --two-factor, domain in other case');
ok(verifies($PW, hash_of('acme.example', 'alice')), 'password read with \r\n stripped');
ok_ctl('user', 'add', '--domain', 'acme.example', 'nonl', { stdin => $PW });
ok(verifies($PW, hash_of('acme.example', 'nonl')), 'password without a newline');
my $long = 'p' x 128;
ok_ctl('user', 'add', '--domain', 'acme.example', 'longpw', { stdin => "$long\n" });
ok(verifies($long, hash_of('acme.example', 'longpw')), '128-character password');
my $uni = "p\x{e4}ssw\x{f6}rd";
utf8::encode(my $unib = $uni);
ok_ctl('user', 'add', '--domain', 'acme.example', 'unicode', { stdin => "$unib\n" });
ok(verifies($unib, hash_of('acme.example', 'unicode')), 'UTF-8 password');

# duplicates are case-insensitive; the same name in another tenant or system-level is fine
fails([1], qr/already exists/, 'user', 'add', '--domain', 'acme.example', 'BOB',
    { stdin => "$PW\n" });
fails([1], qr/already exists/, 'user', 'add', '--domain', 'Acme.Example', 'Bob',
    { stdin => "$PW\n" });
fails([1], qr/already exists/, 'user', 'add', 'SYSOP', { stdin => "$PW\n" });
is(row("SELECT count(*) FROM users WHERE lower(username) = 'bob'"), 1,
    'duplicate not inserted');
ok_ctl('user', 'add', '--domain', 'beta.example', 'bob', { stdin => "$PW\n" });
ok_ctl('user', 'add', 'Bob', { stdin => "$PW\n" });
is(row("SELECT count(*) FROM users WHERE lower(username) = 'bob'"), 3,
    'bob in two tenants and system-level');
fails([1], qr/no such tenant 'nosuch\.example'/, 'user', 'add', '--domain',
    'nosuch.example', 'carol', { stdin => "$PW\n" });
fails([1], qr/not a valid domain/, 'user', 'add', '--domain', 'bad domain', 'carol',
    { stdin => "$PW\n" });

###############################################################################
# username rules

my $u64 = 'u' x 64;
for my $name ('b.o.b', "o'neil", "a'b", $u64, '_x-', 'x', "'") {
	ok_ctl('user', 'add', '--domain', 'acme.example', $name, { stdin => "$PW\n" });
	is(row('SELECT username FROM users WHERE ' . user_cond('acme.example', $name)), $name,
	    "username '$name' stored exactly");
}
like(ok_ctl('user', 'show', '--domain', 'acme.example', "A'B"), qr/^username\ta'b$/m,
    "user show a'b (other case)");
for my $name ('.bob', 'bob.', '.', 'u' x 65, 'x;drop', 'bob smith', "j\xc3\xb6hn", '',
    'a"b', 'x;drop table users;--', 'tab	x') {
	(my $shown = $name) =~ s/[^\x20-\x7e]/?/g;
	fails([1], qr/not a valid username/, 'user', 'add', '--domain', 'acme.example', $name,
	    { stdin => "$PW\n" });
}
is(row("SELECT count(*) FROM users WHERE username LIKE '%drop%' OR username LIKE '.%'"
    . " OR username LIKE '%.' OR length(username) > 64"), 0, 'invalid usernames not stored');
is(row('SELECT count(*) FROM tenants'), 2, 'tenants intact');

###############################################################################
# reserved names and role scope

for my $name (qw(admin ADMIN Root system Administrator)) {
	fails([1], qr/reserved/, 'user', 'add', '--domain', 'acme.example', $name,
	    { stdin => "$PW\n" });
}
fails([1], qr/reserved/, 'user', 'add', 'root', '--role', 'Dealer', { stdin => "$PW\n" });
fails([1], qr/reserved|tenant users/, 'user', 'add', 'root', '--role', 'Admin',
    { stdin => "$PW\n" });
is(row("SELECT count(*) FROM users WHERE lower(username) IN"
    . " ('admin', 'root', 'system', 'administrator')"), 0, 'reserved names refused');
ok_ctl('user', 'add', 'admin', { stdin => "$PW\n" });
ok_ctl('user', 'add', 'Root', '--role', 'SystemAdmin', { stdin => "$PW\n" });
is(row("SELECT string_agg(username || ':' || role, ',' ORDER BY username) FROM users"
    . " WHERE lower(username) IN ('admin', 'root')"), 'Root:SystemAdmin,admin:SystemAdmin',
    'reserved names as system-level SystemAdmin');

fails([1], qr/SystemAdmin is for system-level/, 'user', 'add', '--domain', 'acme.example',
    'carol', '--role', 'SystemAdmin', { stdin => "$PW\n" });
fails([1], qr/Dealer is for system-level/, 'user', 'add', '--domain', 'acme.example',
    'carol', '--role', 'Dealer', { stdin => "$PW\n" });
fails([1], qr/Admin is for tenant users/, 'user', 'add', 'carol', '--role', 'Admin',
    { stdin => "$PW\n" });
fails([1], qr/QueueManager is for tenant users/, 'user', 'add', 'carol', '--role',
    'QueueManager', { stdin => "$PW\n" });
fails([1], qr/unknown role/, 'user', 'add', '--domain', 'acme.example', 'carol', '--role',
    'Superuser', { stdin => "$PW\n" });
fails([1], qr/unknown role/, 'user', 'add', '--domain', 'acme.example', 'carol', '--role',
    'admin', { stdin => "$PW\n" });
fails([1], qr/email/, 'user', 'add', '--domain', 'acme.example', 'carol', '--email',
    'not-an-email', { stdin => "$PW\n" });
is(row("SELECT count(*) FROM users WHERE username = 'carol'"), 0, 'carol never added');

# The schema's CHECK constraints are a second line: a violation is named, and
# the failing row (with the password hash) is not printed.
row("ALTER TABLE users ADD CONSTRAINT test_no_zed CHECK (username <> 'zed'),"
    . " ADD CONSTRAINT test_zed2_enabled CHECK (username <> 'zed2' OR enabled)");
my (undef, undef, $zerr) = fails([1], qr/refused by the database's rule test_no_zed$/m,
    'user', 'add', '--domain', 'acme.example', 'zed', { stdin => "$PW\n" });
unlike($zerr, qr/\$y\$|Failing row|ERROR/, 'user add check violation: no raw SQL error');
ok_ctl('user', 'add', '--domain', 'acme.example', 'zed2', { stdin => "$PW\n" });
(undef, undef, $zerr) = fails([1], qr/refused by the database's rule test_zed2_enabled$/m,
    'user', 'set', '--domain', 'acme.example', 'zed2', 'two_factor=true', 'enabled=false');
unlike($zerr, qr/\$y\$|Failing row|ERROR/, 'user set check violation: no raw SQL error');
is(row("SELECT two_factor FROM users WHERE username = 'zed2'"), 'f',
    'user set check violation: rolled back');
row('ALTER TABLE users DROP CONSTRAINT test_no_zed, DROP CONSTRAINT test_zed2_enabled');
row("DELETE FROM users WHERE username = 'zed2'");
row("DELETE FROM audit_log WHERE username = 'zed2'");

###############################################################################
# password policy and input

fails([1], qr/password: .*8-128/, 'user', 'add', '--domain', 'acme.example', 'carol',
    { stdin => "1234567\n" });
fails([1], qr/password: .*8-128/, 'user', 'add', '--domain', 'acme.example', 'carol',
    { stdin => ('p' x 129) . "\n" });
fails([1], qr/no password/, 'user', 'add', '--domain', 'acme.example', 'carol',
    { stdin => '' });
fails([1], qr/no password/, 'user', 'add', '--domain', 'acme.example', 'carol');
fails([1], qr/password: /, 'user', 'add', '--domain', 'acme.example', 'carol',
    { stdin => "\n" });
fails([1], qr/more than one line/, 'user', 'add', '--domain', 'acme.example', 'carol',
    { stdin => "$PW\n$PW\n" });
fails([1], qr/NUL/, 'user', 'add', '--domain', 'acme.example', 'carol',
    { stdin => "abcd\0efghij\n" });
fails([1], qr/4096/, 'user', 'add', '--domain', 'acme.example', 'carol',
    { stdin => ('p' x 4097) });
fails([1], qr/password: /, 'user', 'add', '--domain', 'acme.example', 'carol',
    { stdin => "abc\tdefghij\n" });
fails([1], qr/password: /, 'user', 'add', '--domain', 'acme.example', 'carol',
    { stdin => "abcd\xff\xfeefgh\n" });
is(row("SELECT count(*) FROM users WHERE username = 'carol'"), 0,
    'rejected passwords: carol not added');
ok_ctl('user', 'add', '--domain', 'acme.example', 'carol', { stdin => "12345678\n" });
ok(verifies('12345678', hash_of('acme.example', 'carol')), '8-character password accepted');

# never from argv: extra arguments are usage errors
fails([2], qr/USERNAME|usage/, 'user', 'add', 'u', 'extra-arg', { stdin => "$PW\n" });
fails([2], qr/password|usage/, 'user', 'add', '--password', 'in-argv', 'u',
    { stdin => "$PW\n" });
fails([2], qr/usage/, 'user', 'add', { stdin => "$PW\n" });
fails([2], qr/usage/, 'user', 'passwd', '--domain', 'acme.example', 'bob', 'in-argv',
    { stdin => "$PW\n" });
is(row("SELECT count(*) FROM users WHERE username IN ('u', 'extra-arg')"), 0,
    'usage errors added nobody');

###############################################################################
# user passwd

row("UPDATE users SET password_verified = true WHERE " . user_cond('acme.example', 'bob'));
my $s1 = add_session('acme.example', 'bob');
my $s2 = add_session('acme.example', 'bob', flavour => 'cookie');
my $s_other = add_session('beta.example', 'bob');
my $old = hash_of('acme.example', 'bob');
my $audit_before = row('SELECT count(*) FROM audit_log');
my $out = ok_ctl('user', 'passwd', '--domain', 'acme.example', 'BOB',
    { stdin => "new password 1\n" });
like($out, qr/2 sessions revoked/, 'user passwd: says how many sessions were revoked');
$h = hash_of('acme.example', 'bob');
isnt($h, $old, 'user passwd: new hash');
like($h, qr/^\$y\$/, 'user passwd: yescrypt');
ok(verifies('new password 1', $h), 'user passwd: the new password verifies');
ok(!verifies($PW, $h), 'user passwd: the old one does not');
is(row("SELECT password_verified, updated_at > created_at FROM users WHERE "
    . user_cond('acme.example', 'bob')), 'f|t',
    'user passwd: password_verified=false, updated_at bumped');
is(row("SELECT count(*) FROM sessions WHERE id IN ($s1, $s2) AND revoked_at IS NOT NULL"
    . " AND revoke_reason = 'password changed'"), 2, 'user passwd: sessions revoked');
is(row("SELECT revoked_at IS NULL FROM sessions WHERE id = $s_other"), 't',
    "user passwd: another tenant's bob keeps his session");
is(row("SELECT event || ' ' || outcome || ' ' || coalesce(detail, '-') FROM audit_log"
    . " WHERE username = 'bob' AND tenant_domain = 'acme.example' AND event = 'password_set'"
    . " ORDER BY id DESC LIMIT 1"), 'password_set success pbx-authctl user passwd',
    'user passwd: audit row');
is(row("SELECT string_agg(detail, ',' ORDER BY detail) FROM audit_log WHERE event ="
    . " 'session_revoke'"), "session $s1,session $s2", 'user passwd: session_revoke rows');

$old = hash_of('acme.example', 'bob');
fails([1], qr/8-128/, 'user', 'passwd', '--domain', 'acme.example', 'bob',
    { stdin => "short\n" });
fails([1], qr/no password/, 'user', 'passwd', '--domain', 'acme.example', 'bob');
is(hash_of('acme.example', 'bob'), $old, 'rejected passwd: hash unchanged');
fails([1], qr/no such user 'nobody' in tenant 'acme\.example'/, 'user', 'passwd',
    '--domain', 'acme.example', 'nobody', { stdin => "$PW\n" });
fails([1], qr/no such system-level user 'alice'/, 'user', 'passwd', 'alice',
    { stdin => "$PW\n" });
fails([1], qr/no such tenant/, 'user', 'passwd', '--domain', 'nosuch.example', 'bob',
    { stdin => "$PW\n" });
ok_ctl('user', 'passwd', 'sysop', { stdin => "sysop password\n" });
ok(verifies('sysop password', hash_of(undef, 'sysop')), 'user passwd system-level');

# On a terminal: two prompts on /dev/tty without echo (script(1) gives a pty).
# Each line is typed once its prompt is shown: the echo switch flushes typeahead.
sub on_tty {
	my ($lines, @args) = @_;
	my $outf = $t->dir . '/tty.out';
	unlink $outf;
	my $cmd = join ' ', map { my $a = $_; $a =~ s/'/'\\''/g; "'$a'" }
	    $t->authctl_bin, '-c', $t->conf_file, @args;
	my $pid = open(my $w, '|-');
	die "fork: $!" unless defined $pid;
	if ($pid == 0) {
		open STDOUT, '>', $outf or die;
		open STDERR, '>&', \*STDOUT or die;
		exec 'script', '-qefc', $cmd, '/dev/null';
		die "exec script: $!";
	}
	$w->autoflush(1);
	my @prompts = ('Password: ', 'Again: ');
	for my $i (0 .. $#$lines) {
		my $p = $prompts[$i];
		$t->wait_until(sub { index($t->read_file($outf), $p) >= 0 }, 10)
		    or diag("no prompt '$p'; output: " . $t->read_file($outf));
		select(undef, undef, undef, 0.2);
		print $w "$lines->[$i]\n";
	}
	$t->wait_until(sub { $t->read_file($outf) =~ /pbx-authctl: |revoked/ }, 10);
	close $w;
	my $rc = $? >> 8;
	return ($rc, $t->read_file($outf));
}

SKIP: {
	skip 'script(1) not found', 6 unless grep { -x "$_/script" } split /:/, $ENV{PATH};
	$t->secret('tty password 1', 'typed on the terminal');
	my ($rc, $out) = on_tty(['tty password 1', 'tty password 1'], 'user', 'passwd', 'dealer1');
	is($rc, 0, 'terminal: passwd with two matching prompts') or diag($out);
	like($out, qr/Password: .*Again: /s, 'terminal: both prompts shown');
	unlike($out, qr/tty password/, 'terminal: the password is not echoed');
	ok(verifies('tty password 1', hash_of(undef, 'dealer1')), 'terminal: the password set');
	($rc, $out) = on_tty(['tty password 1', 'tty password 2'], 'user', 'passwd', 'dealer1');
	is($rc, 1, 'terminal: mismatch exits 1');
	like($out, qr/do not match/, 'terminal: mismatch message') or diag($out);
}

###############################################################################
# user set

ok_ctl('user', 'set', '--domain', 'acme.example', 'alice', 'email=alice@acme.example',
    'role=QueueManager', 'two_factor=off', 'password_force_reset=yes');
is(row("SELECT email, role, two_factor, password_force_reset, enabled FROM users"
    . " WHERE username = 'alice'"), 'alice@acme.example|QueueManager|f|t|t',
    'user set: every key stored');
ok_ctl('user', 'set', 'alice', 'email=', '--domain', 'acme.example');
is(row("SELECT email IS NULL FROM users WHERE username = 'alice'"), 't',
    'user set email= clears it (--domain after the assignments)');
ok_ctl('user', 'set', 'dealer1', 'role=SystemAdmin');
is(row("SELECT role FROM users WHERE username = 'dealer1'"), 'SystemAdmin',
    'user set role on a system-level account');

my $before = row("SELECT email, role, enabled, two_factor, password_force_reset"
    . " FROM users WHERE username = 'alice'");
fails([1], qr/SystemAdmin is for system-level/, 'user', 'set', '--domain', 'acme.example',
    'alice', 'two_factor=true', 'role=SystemAdmin');
fails([1], qr/Admin is for tenant users/, 'user', 'set', 'dealer1', 'role=Admin');
fails([1], qr/reserved/, 'user', 'set', 'admin', 'role=Dealer');
fails([1], qr/unknown role/, 'user', 'set', '--domain', 'acme.example', 'alice', 'role=Boss');
fails([1], qr/enabled.*true or false/, 'user', 'set', '--domain', 'acme.example', 'alice',
    'two_factor=true', 'enabled=maybe');
fails([1], qr/email/, 'user', 'set', '--domain', 'acme.example', 'alice', 'email=x');
fails([2], qr/unknown key 'password'/, 'user', 'set', '--domain', 'acme.example', 'alice',
    'password=secret123');
fails([2], qr/unknown key 'password_hash'/, 'user', 'set', '--domain', 'acme.example',
    'alice', 'password_hash=x');
fails([2], qr/twice/, 'user', 'set', '--domain', 'acme.example', 'alice', 'enabled=true',
    'enabled=false');
fails([2], qr/KEY=VALUE/, 'user', 'set', '--domain', 'acme.example', 'alice', 'enabled');
fails([2], qr/usage/, 'user', 'set', '--domain', 'acme.example', 'alice');
fails([1], qr/no such user/, 'user', 'set', '--domain', 'acme.example', 'nobody',
    'enabled=false');
is(row("SELECT email, role, enabled, two_factor, password_force_reset FROM users"
    . " WHERE username = 'alice'"), $before, 'failed sets changed nothing');
is(row("SELECT role FROM users WHERE username = 'admin'"), 'SystemAdmin',
    'admin still SystemAdmin');

my $a1 = add_session('acme.example', 'alice');
my $a2 = add_session('acme.example', 'alice');
my $a3 = add_session('acme.example', 'alice', revoked => 1);
$out = ok_ctl('user', 'set', '--domain', 'acme.example', 'alice', 'enabled=false');
like($out, qr/2 sessions revoked/, 'user set enabled=false: says how many');
is(row("SELECT enabled FROM users WHERE username = 'alice'"), 'f', 'alice disabled');
is(row("SELECT count(*) FROM sessions WHERE id IN ($a1, $a2) AND revoke_reason ="
    . " 'user disabled'"), 2, 'user set enabled=false revokes the sessions');
is(row("SELECT revoke_reason IS NULL FROM sessions WHERE id = $a3"), 't',
    'an already revoked session is left alone');
is(row("SELECT count(*) FROM audit_log WHERE event = 'session_revoke' AND detail IN"
    . " ('session $a1', 'session $a2') AND username = 'alice'"), 2,
    'enabled=false: session_revoke audit rows');
my $a4 = add_session('acme.example', 'alice');
ok_ctl('user', 'set', '--domain', 'acme.example', 'alice', 'enabled=true');
is(row("SELECT revoked_at IS NULL FROM sessions WHERE id = $a4"), 't',
    'enabled=true revokes nothing');

###############################################################################
# user list / show

is(ok_ctl('user', 'list', '--domain', 'beta.example'),
    "bob\tStandardUser\tenabled\t-\t-\n", 'user list --domain beta.example');
ok_ctl('user', 'set', '--domain', 'acme.example', 'alice', 'two_factor=1',
    'email=alice@acme.example');
ok_ctl('user', 'set', '--domain', 'acme.example', 'carol', 'enabled=0',
    'password_force_reset=1');
$out = ok_ctl('user', 'list', '--domain', 'acme.example');
my @lines = split /\n/, $out;
is_deeply([ map { (split /\t/)[0] } @lines ],
    [ "'", '_x-', "a'b", 'alice', 'b.o.b', 'bob', 'carol', 'longpw', 'nonl', "o'neil",
      'unicode', $u64, 'x' ], 'user list: ordered by lower(username)');
is((grep { /^alice\t/ } @lines)[0],
    "alice\tQueueManager\tenabled\talice\@acme.example\ttwo_factor,force_reset",
    'user list: two_factor and force_reset flags, email');
is((grep { /^carol\t/ } @lines)[0], "carol\tStandardUser\tdisabled\t-\tforce_reset",
    'user list: disabled, force_reset flag, no email');
is(ok_ctl('user', 'list'),
    "admin\tSystemAdmin\tenabled\t-\t-\n"
    . "Bob\tSystemAdmin\tenabled\t-\t-\n"
    . "dealer1\tSystemAdmin\tenabled\t-\t-\n"
    . "Root\tSystemAdmin\tenabled\t-\t-\n"
    . "sysop\tSystemAdmin\tenabled\t-\t-\n", 'user list without --domain: system-level');
fails([1], qr/no such tenant/, 'user', 'list', '--domain', 'nosuch.example');
fails([2], qr/usage/, 'user', 'list', 'extra');

$out = ok_ctl('user', 'show', '--domain', 'acme.example', 'ALICE');
$h = kvh($out);
is_deeply([ map { /^([^\t]*)\t/ } split /\n/, $out ],
    [ qw(domain username role email enabled two_factor password_force_reset
      password_verified password_set last_sign_in_at created_at updated_at
      active_sessions ms365_oid ms365_upn) ], 'user show: keys in order');
is($h->{domain}, 'acme.example', 'user show: domain');
is($h->{username}, 'alice', 'user show: username as stored');
is($h->{role}, 'QueueManager', 'user show: role');
is($h->{email}, 'alice@acme.example', 'user show: email');
is($h->{enabled}, 'true', 'user show: enabled');
is($h->{two_factor}, 'true', 'user show: two_factor');
is($h->{password_force_reset}, 'true', 'user show: password_force_reset');
is($h->{password_verified}, 'false', 'user show: password_verified');
is($h->{password_set}, 'true', 'user show: password_set');
is($h->{last_sign_in_at}, '', 'user show: never signed in');
like($h->{created_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'user show: created_at RFC 3339');
is($h->{active_sessions}, 1, 'user show: active_sessions');
unlike($out, qr/\$y\$|hash/, 'user show: no password hash');
row("UPDATE users SET password_hash = NULL WHERE username = 'nonl'");
is(kvh(ok_ctl('user', 'show', '--domain', 'acme.example', 'nonl'))->{password_set}, 'false',
    'user show: password_set=false');
$h = kvh(ok_ctl('user', 'show', 'sysop'));
is($h->{domain}, '', 'user show system-level: empty domain');
fails([1], qr/no such user/, 'user', 'show', '--domain', 'beta.example', 'alice');
fails([2], qr/usage/, 'user', 'show');
fails([2], qr/unknown subcommand 'frobnicate' of user/, 'user', 'frobnicate');

###############################################################################
# session list / revoke

row('UPDATE sessions SET revoked_at = now() WHERE revoked_at IS NULL');
my $b1 = add_session('acme.example', 'bob', addr => '192.0.2.1');
my $b2 = add_session('acme.example', 'bob', flavour => 'cookie');
my $bx = add_session('acme.example', 'bob', expired => 1);
my $br = add_session('acme.example', 'bob', revoked => 1);
my $c1 = add_session('acme.example', 'carol', addr => '2001:db8::1');
my $o1 = add_session('beta.example', 'bob');
my $y1 = add_session(undef, 'sysop');
row("UPDATE sessions SET refreshed_at = now() WHERE id = $b2");

my $TS = qr/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/;
$out = ok_ctl('session', 'list');
@lines = split /\n/, $out;
is_deeply([ map { (split /\t/)[0] } @lines ], [ $b1, $b2, $c1, $o1, $y1 ],
    'session list: every active session, oldest first');
like($lines[0], qr/^$b1\tacme\.example\tbob\tbearer\t192\.0\.2\.1\t$TS\t-\t$TS$/,
    'session list: line format (no refresh yet)');
like($lines[1], qr/^$b2\tacme\.example\tbob\tcookie\t-\t$TS\t$TS\t$TS$/,
    'session list: refreshed_at, no client address');
like($lines[4], qr/^$y1\t-\tsysop\tbearer\t/, 'session list: system-level domain -');
is(join(',', map { (split /\t/)[0] } split /\n/,
    ok_ctl('session', 'list', '--domain', 'ACME.example')), "$b1,$b2,$c1",
    'session list --domain');
is(join(',', map { (split /\t/)[0] } split /\n/,
    ok_ctl('session', 'list', '--domain', 'acme.example', 'Bob')), "$b1,$b2",
    'session list --domain USERNAME');
is(join(',', map { (split /\t/)[0] } split /\n/, ok_ctl('session', 'list', 'sysop')),
    "$y1", 'session list USERNAME (system-level)');
fails([1], qr/no such user/, 'session', 'list', '--domain', 'beta.example', 'carol');
fails([1], qr/no such system-level user 'alice'/, 'session', 'list', 'alice');
fails([1], qr/no such tenant/, 'session', 'list', '--domain', 'nosuch.example');
fails([2], qr/usage/, 'session', 'list', 'a', 'b');

# revoke by id: all or nothing
$audit_before = row("SELECT count(*) FROM audit_log WHERE event = 'session_revoke'");
fails([1], qr/id 999999\b.*nothing revoked/, 'session', 'revoke', $b1, '999999');
fails([1], qr/id $br\b/, 'session', 'revoke', $br, $b1);
is(row("SELECT revoked_at IS NULL FROM sessions WHERE id = $b1"), 't',
    'failed revoke: the valid id was not revoked either');
is(row("SELECT count(*) FROM audit_log WHERE event = 'session_revoke'"), $audit_before,
    'failed revoke: no audit rows');
fails([2], qr/not a session id/, 'session', 'revoke', 'abc');
fails([2], qr/not a session id/, 'session', 'revoke', '0');
fails([2], qr/invalid option/, 'session', 'revoke', '-5');
fails([2], qr/not a session id/, 'session', 'revoke', "$b1;DROP TABLE sessions");
fails([2], qr/not a session id/, 'session', 'revoke', '99999999999999999999');
fails([2], qr/usage|needs/, 'session', 'revoke');
fails([2], qr/either/, 'session', 'revoke', '--user', 'bob', $b1);
fails([2], qr/--domain goes with --user/, 'session', 'revoke', '--domain', 'acme.example',
    $b1);
like(ok_ctl('session', 'revoke', $b1, $c1), qr/revoked 2 sessions/, 'session revoke ID ID');
is(row("SELECT count(*) FROM sessions WHERE id IN ($b1, $c1) AND revoked_at IS NOT NULL"
    . " AND revoke_reason = 'pbx-authctl'"), 2, 'session revoke: revoked, reason pbx-authctl');
is(row("SELECT string_agg(coalesce(tenant_domain, '-') || ' ' || username || ' '"
    . " || outcome || ' ' || detail, ',' ORDER BY id) FROM audit_log WHERE event ="
    . " 'session_revoke' AND id > (SELECT max(id) - 2 FROM audit_log)"),
    "acme.example bob success session $b1,acme.example carol success session $c1",
    'session revoke: an audit row per session');
fails([1], qr/id $b1\b.*already revoked/, 'session', 'revoke', $b1);

# revoke --user
my $b3 = add_session('acme.example', 'bob');
like(ok_ctl('session', 'revoke', '--domain', 'acme.example', '--user', 'BOB'),
    qr/^revoked 2 sessions$/m, 'session revoke --user: prints how many');
is(active_sessions('acme.example', 'bob'), 1, "acme bob's sessions revoked but the expired one");
is(row("SELECT revoked_at IS NULL FROM sessions WHERE id = $bx"), 't',
    'an expired session is left as it is');
is(row("SELECT revoked_at IS NULL FROM sessions WHERE id = $o1"), 't',
    "beta bob's session untouched");
like(ok_ctl('session', 'revoke', '--domain', 'acme.example', '--user', 'bob'),
    qr/^revoked 0 sessions$/m, 'session revoke --user again: 0');
like(ok_ctl('session', 'revoke', '--user', 'sysop'), qr/revoked 1 session$/m,
    'session revoke --user system-level');
fails([1], qr/no such user/, 'session', 'revoke', '--domain', 'acme.example', '--user',
    'nobody');
is(join(',', map { (split /\t/)[0] } split /\n/, ok_ctl('session', 'list')), "$o1",
    'session list after the revokes');

###############################################################################
# audit

row("INSERT INTO audit_log (at, tenant_domain, username, client_addr, event, outcome, detail)"
    . " VALUES ('2020-01-02 03:04:05+00', 'old.example', 'ghost', '198.51.100.7', 'sign_in',"
    . " 'failure', NULL)");
row("INSERT INTO audit_log (at, tenant_domain, username, event, outcome, detail)"
    . " VALUES (now() - interval '2 days', 'Beta.Example', 'bob', 'sign_in', 'success',"
    . " 'bearer')");
my $total = row('SELECT count(*) FROM audit_log');
$out = ok_ctl('audit');
@lines = split /\n/, $out;
is(scalar @lines, $total, 'audit: every row');
is($lines[0], "2020-01-02T03:04:05Z\told.example\tghost\t198.51.100.7\tsign_in\tfailure\t-\t-",
    'audit: the oldest first, format');
like($lines[1], qr/^$TS\tBeta\.Example\tbob\t-\tsign_in\tsuccess\tbearer\t-$/,
    'audit: second line');
like($lines[-1], qr/^$TS\t-\tsysop\t-\tsession_revoke\tsuccess\tsession $y1\toperator=\S+$/,
    'audit: newest last, system-level domain -, the operator last');
is(scalar(() = $out =~ /\tuser_add\tsuccess\t[^\t]*; password set\toperator=\S+$/mg),
    row("SELECT count(*) FROM audit_log WHERE event = 'user_add'"),
    'audit: the user add rows');

is(ok_ctl('audit', '--limit', '2'), join('', map { "$_\n" } @lines[-2, -1]),
    'audit --limit 2: the newest two, newest last');
$out = ok_ctl('audit', '--domain', 'beta.example');
is(join(',', map { (split /\t/)[2] . '/' . (split /\t/)[4] } split /\n/, $out),
    'bob/sign_in,-/tenant_add,bob/user_add', 'audit --domain (case-insensitive)');
unlike(ok_ctl('audit', '--since', '1h'), qr/old\.example|Beta\.Example/,
    'audit --since 1h: older rows left out');
my $n1h = () = ok_ctl('audit', '--since', '1h') =~ /\n/g;
is($n1h, $total - 2, 'audit --since 1h: the recent rows');
like(ok_ctl('audit', '--since', '3d'), qr/Beta\.Example/, 'audit --since 3d');
unlike(ok_ctl('audit', '--since', '3d'), qr/old\.example/, 'audit --since 3d: not 2020');
like(ok_ctl('audit', '--since', '2020-01-02T03:04:05Z'), qr/old\.example/,
    'audit --since timestamp (inclusive)');
unlike(ok_ctl('audit', '--since', '2020-01-02 03:04:06'), qr/old\.example/,
    'audit --since timestamp without offset is UTC');
like(ok_ctl('audit', '--since', '2020-01-02 05:04:05+02'), qr/old\.example/,
    'audit --since timestamp with offset');
is(ok_ctl('audit', '--since', '2999-01-01'), '', 'audit --since the future: nothing');
is(ok_ctl('audit', '--domain', 'old.example', '--since', '2019-12-31'),
    "2020-01-02T03:04:05Z\told.example\tghost\t198.51.100.7\tsign_in\tfailure\t-\t-\n",
    'audit --domain --since');
for my $bad ('garbage', '1w', '-1h', 'h', "1h'; DROP TABLE audit_log; --", '99999999999d',
    '2020-13-45') {
	fails([2], qr/--since/, 'audit', '--since', $bad);
}
for my $bad ('0', '-1', 'x', '1.5', '') {
	fails([2], qr/--limit/, 'audit', '--limit', $bad);
}
fails([2], qr/usage/, 'audit', 'extra');
fails([1], qr/not a valid domain/, 'audit', '--domain', 'bad domain');
is(row('SELECT count(*) FROM audit_log'), $total, 'audit_log intact');

###############################################################################
# --help everywhere

for my $cmd (['user'], ['user', 'add'], ['user', 'passwd'], ['user', 'set'], ['user', 'list'],
    ['user', 'show'], ['session'], ['session', 'list'], ['session', 'revoke'], ['audit'])
{
	my ($rc, $o, $e) = $t->ctl(@$cmd, '--help');
	is($rc, 0, "@$cmd --help: exit 0");
	like($o, qr/^usage: pbx-authctl $cmd->[0]/m, "@$cmd --help: usage on stdout");
}
like((($t->ctl('--help'))[1]), qr/user add\|passwd.*\n.*session list\|revoke.*\n.*audit/s,
    'pbx-authctl --help lists the new commands');

$t->done_testing;
