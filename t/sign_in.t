#!/usr/bin/perl

# POST /api/auth/sign_in, GET /api/auth/user and POST /api/auth/sign_out
# through nginx: tenant users and system-level accounts, the token response,
# case-insensitive domain and username, two-factor users, password_force_reset,
# sign-out revoking both tokens, malformed Authorization headers, every
# validation rule of the body and of ?qr, 413/415, the byte-identical 401 of
# every failure cause, the upgrade of bcrypt and sha512crypt hashes to
# yescrypt, disabled users' and tenants' tokens, and the audit rows.
# Throttling is off here (t/throttle.t); check_logs greps every log for the
# passwords and tokens of the run.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;

use Test::PbxAuth;

my $ACCESS_TTL = 1800;
my $REFRESH_TTL = 172800;

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->write_config(
	throttle_ip_failures      => 0,
	throttle_account_failures => 0,
	password_hash_cost        => 1,
	access_token_ttl          => $ACCESS_TTL,
	refresh_token_ttl         => $REFRESH_TTL,
);
$t->start_pg->start_daemon->start_nginx;

my $JSON = JSON::PP->new->canonical->utf8;    # UTF-8 bytes out
my $TOKEN_RE = qr/^[A-Za-z0-9_-]{43}\z/;
my $AUTH_FAILED = '{"errors":[{"code":"AUTHENTICATION_FAILED",'
    . '"message":"Authentication Error","detail":null}]}';

###############################################################################
# helpers

sub ctl_ok {
	my (@args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $t->ctl(@args);
	my @shown = grep { !ref } @args;
	is($rc, 0, "pbx-authctl @shown") or diag($err);
	return $out;
}

# pbx-authctl user add [--domain D] NAME [options], password on stdin.
sub add_user {
	my ($domain, $name, $pw, @opt) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $in = "$pw\n";
	utf8::encode($in);
	return ctl_ok('user', 'add', (defined $domain ? ('--domain', $domain) : ()),
	    $name, @opt, { stdin => $in });
}

sub sql_str {
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

# The users row of (domain or undef, name): "column|column…" of $cols.
sub user_row {
	my ($domain, $name, $cols) = @_;
	my $where = defined $domain
	    ? 'tenant_id = (SELECT id FROM tenants WHERE lower(domain) = lower('
		. sql_str($domain) . '))'
	    : 'tenant_id IS NULL';
	return $t->psql("SELECT $cols FROM users WHERE $where AND lower(username) = lower("
	    . sql_str($name) . ')');
}

sub post_raw {
	my ($path, $body, %h) = @_;
	my %headers = ('Content-Type' => 'application/json', %h);
	delete $headers{$_} for grep { !defined $headers{$_} } keys %headers;
	my $r = $t->request('POST', $path, headers => \%headers, body => $body);
	return $r;
}

# POST /api/auth/sign_in with a JSON body made of %b (key order canonical);
# -query is appended to the path.
sub sign_in {
	my (%b) = @_;
	my $q = delete $b{-query} // '';
	return post_raw("/api/auth/sign_in$q", $JSON->encode(\%b));
}

sub bearer { return { Authorization => "Bearer $_[0]" } }

sub auth_user {
	my ($h) = @_;
	return $t->get('/api/auth/user', headers => ref $h ? $h : bearer($h));
}

sub sign_out {
	my ($h) = @_;
	return $t->request('POST', '/api/auth/sign_out',
	    headers => ref $h ? $h : bearer($h));
}

sub refresh {
	my ($rt) = @_;
	return post_raw('/api/auth/refresh_token',
	    $JSON->encode({ refresh_token => $rt }));
}

sub is_bool_value {
	my ($v, $want, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok(JSON::PP::is_bool($v), "$name is a JSON boolean")
	    and is(!!$v, !!$want, "$name is " . ($want ? 'true' : 'false'));
}

# A 200 token response: keys in order, Bearer, two distinct 43-character
# base64url tokens, expires_in the configured TTL (a JSON number).
sub tokens_ok {
	my ($r, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($r->{status}, 200, "$name: status 200")
	    or do { diag("body: " . ($r->{content} // '')); return undef };
	$t->has_common_headers($r, $name);
	my $j = $r->{json};
	is_deeply([ $t->json_keys($r->{content}) ],
	    [qw(token_type access_token refresh_token expires_in)], "$name: keys in order")
	    or diag($r->{content});
	is($j->{token_type}, 'Bearer', "$name: token_type Bearer");
	like($j->{access_token} // '', $TOKEN_RE, "$name: access_token is 43 base64url chars");
	like($j->{refresh_token} // '', $TOKEN_RE, "$name: refresh_token is 43 base64url chars");
	isnt($j->{access_token} // '', $j->{refresh_token} // '', "$name: two different tokens");
	like($r->{content}, qr/"expires_in"\s*:\s*$ACCESS_TTL\s*\}\s*$/,
	    "$name: expires_in is the number $ACCESS_TTL");
	return $j;
}

# GET /api/auth/user with $access: 200 {role, password_verified, password_force_reset}.
sub user_ok {
	my ($access, $role, $verified, $force, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $r = auth_user($access);
	is($r->{status}, 200, "$name: auth/user 200")
	    or do { diag("body: " . ($r->{content} // '')); return };
	$t->has_common_headers($r, "$name: auth/user");
	is_deeply([ $t->json_keys($r->{content}) ],
	    [qw(role password_verified password_force_reset)], "$name: auth/user keys in order")
	    or diag($r->{content});
	is($r->{json}{role}, $role, "$name: role $role");
	is_bool_value($r->{json}{password_verified}, $verified, "$name: password_verified");
	is_bool_value($r->{json}{password_force_reset}, $force, "$name: password_force_reset");
}

# 400 VALIDATE_FAILED whose detail names $field (when defined) and a rule.
sub invalid {
	my ($r, $field, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$t->is_error($r, 400, 'VALIDATE_FAILED', $name) or return;
	return unless defined $field;
	my $d = $r->{json}{errors}[0]{detail};
	is(ref $d eq 'HASH' ? $d->{field} : undef, $field, "$name: detail.field is $field")
	    or diag("body: $r->{content}");
	ok(ref $d eq 'HASH' && defined $d->{rule} && !ref $d->{rule} && length $d->{rule},
	    "$name: detail.rule is a string");
}

# 401 AUTHENTICATION_FAILED with exactly the contract's body.
my %fail_bodies;
sub auth_failed {
	my ($r, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$t->is_error($r, 401, 'AUTHENTICATION_FAILED', $name);
	is($r->{json}{errors}[0]{message}, 'Authentication Error', "$name: message");
	$fail_bodies{$name} = $r->{content};
	is($r->{content}, $AUTH_FAILED, "$name: body byte for byte");
}

sub invalid_token {
	my ($r, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return $t->is_error($r, 401, 'INVALID_TOKEN', $name);
}

sub session_count {
	my ($domain, $name) = @_;
	my ($id) = user_row($domain, $name, 'id');
	return $t->psql("SELECT count(*) FROM sessions WHERE user_id = $id "
	    . "AND revoked_at IS NULL");
}

###############################################################################
# fixtures

my %PW = (
	alice  => 'Secret-pass1',
	sysop  => 'Sys-op-secret-77',
	admin  => 'Admin-secret-42',
	bob    => 'Two-factor-pw-9',
	forced => 'Forced-reset-pw-3',
	long   => 'Long-name-pw-64',
	quote  => 'Quote-name-pw-5',
	carol  => 'Carol-disabled-pw',
	nopw   => 'No-password-pw-1',
	dave   => 'Dave-off-tenant-8',
	eve    => 'Eve-later-disabled',
	frank  => 'Frank-tenant-off-1',
	legb   => 'Legacy-bcrypt-pw',
	leg6   => 'Legacy-sha512-pw',
	ascii  => 'Ascii-only-pw-12',
);
my $LONG = 'u' x 63 . 'L';
is(length $LONG, 64, '64-character username');
my $QUOTE = "a'b";

ctl_ok('tenant', 'add', 't1.test', '--name', 'Tenant One');
ctl_ok('tenant', 'add', 'off.test', '--name', 'Switched Off');
ctl_ok('tenant', 'add', 't2.test', '--name', 'Tenant Two');

add_user('t1.test', 'alice', $PW{alice}, '--email', 'a@x.test');
add_user(undef, 'sysop', $PW{sysop}, '--email', 'sysop@x.test');
add_user(undef, 'admin', $PW{admin});
add_user('t1.test', 'bob', $PW{bob}, '--email', 'b@x.test', '--two-factor');
add_user('t1.test', 'forced', $PW{forced}, '--role', 'Admin');
ctl_ok('user', 'set', '--domain', 't1.test', 'forced', 'password_force_reset=true');
add_user('t1.test', $LONG, $PW{long});
add_user('t1.test', $QUOTE, $PW{quote});
add_user('t1.test', 'carol', $PW{carol});
ctl_ok('user', 'set', '--domain', 't1.test', 'carol', 'enabled=false');
add_user('t1.test', 'nopw', $PW{nopw});
$t->psql("UPDATE users SET password_hash = NULL WHERE username = 'nopw'");
add_user('off.test', 'dave', $PW{dave});
ctl_ok('tenant', 'disable', 'off.test');
add_user('t1.test', 'eve', $PW{eve}, '--role', 'QueueManager');
add_user('t2.test', 'frank', $PW{frank});
add_user('t1.test', 'legb', 'Initial-pass-b1');
add_user('t1.test', 'leg6', 'Initial-pass-61');

is(user_row('t1.test', 'alice', 'role, password_verified, password_force_reset, enabled'),
    'StandardUser|f|f|t', 'fixture: alice as pbx-authctl created her');
is(user_row(undef, 'sysop', 'role'), 'SystemAdmin', 'fixture: sysop is SystemAdmin');
is(user_row('t1.test', 'bob', 'two_factor'), 't', 'fixture: bob has two-factor');
is(user_row('t1.test', 'carol', 'enabled'), 'f', 'fixture: carol disabled');
is(user_row('t1.test', 'forced', 'password_force_reset'), 't',
    'fixture: forced has password_force_reset');
like(user_row('t1.test', 'alice', 'password_hash'), qr/^\$y\$/,
    'fixture: pbx-authctl stores yescrypt hashes');

###############################################################################
# success: tenant user

my $r = sign_in(domain => 't1.test', username => 'alice', password => $PW{alice});
my $alice = tokens_ok($r, 'alice') // {};
user_ok($alice->{access_token}, 'StandardUser', 1, 0, 'alice');
is(user_row('t1.test', 'alice', 'password_verified'), 't',
    'alice: password_verified stored after the sign-in');

is($t->psql("SELECT flavour, client_addr, "
    . "access_hash = sha256(convert_to('$alice->{access_token}', 'UTF8')), "
    . "refresh_hash = sha256(convert_to('$alice->{refresh_token}', 'UTF8')), "
    . "abs(extract(epoch FROM access_expires_at - created_at) - $ACCESS_TTL) < 5, "
    . "abs(extract(epoch FROM refresh_expires_at - created_at) - $REFRESH_TTL) < 5 "
    . "FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = 'alice')"),
    'bearer|127.0.0.1|t|t|t|t',
    'alice: one bearer session, SHA-256 of both tokens stored, lifetimes as configured');

# a second sign-in is a second session with other tokens; both work
$r = sign_in(domain => 't1.test', username => 'alice', password => $PW{alice});
my $alice2 = tokens_ok($r, 'alice again') // {};
isnt($alice2->{access_token}, $alice->{access_token}, 'second sign-in: new access token');
isnt($alice2->{refresh_token}, $alice->{refresh_token}, 'second sign-in: new refresh token');
user_ok($alice->{access_token}, 'StandardUser', 1, 0, 'alice first session still valid');
user_ok($alice2->{access_token}, 'StandardUser', 1, 0, 'alice second session');

# case-insensitive domain and username
$r = sign_in(domain => 'T1.Test', username => 'ALICE', password => $PW{alice});
my $upper = tokens_ok($r, 'ALICE at T1.Test') // {};
user_ok($upper->{access_token}, 'StandardUser', 1, 0, 'ALICE at T1.Test');
$r = sign_in(domain => 't1.test', username => 'Alice', password => $PW{alice});
tokens_ok($r, 'Alice at t1.test');

# the password is case-sensitive
auth_failed(sign_in(domain => 't1.test', username => 'alice', password => lc $PW{alice}),
    'password in other case');

# Content-Type with a charset, and a body with extra whitespace
$r = post_raw('/api/auth/sign_in',
    qq{ { "username" : "alice" ,\n "password" : "$PW{alice}", "domain":"t1.test" } },
    'Content-Type' => 'application/json; charset=utf-8');
tokens_ok($r, 'application/json; charset=utf-8');

###############################################################################
# success: system-level accounts

$r = sign_in(username => 'sysop', password => $PW{sysop});
my $sysop = tokens_ok($r, 'system account sysop') // {};
user_ok($sysop->{access_token}, 'SystemAdmin', 1, 0, 'sysop');
$r = sign_in(username => 'SysOp', password => $PW{sysop});
tokens_ok($r, 'system account, other case');

# the reserved name without a domain: the system administrator
$r = sign_in(username => 'admin', password => $PW{admin});
my $admin = tokens_ok($r, 'system administrator admin') // {};
user_ok($admin->{access_token}, 'SystemAdmin', 1, 0, 'admin');
$r = sign_in(username => 'ADMIN', password => $PW{admin});
tokens_ok($r, 'ADMIN without a domain');

# tenant user without a domain, system account with a domain: not found
auth_failed(sign_in(username => 'alice', password => $PW{alice}),
    'tenant user without a domain');
auth_failed(sign_in(domain => 't1.test', username => 'sysop', password => $PW{sysop}),
    'system account with a domain');
auth_failed(sign_in(username => 'root', password => $PW{admin}),
    'reserved name without a domain, no such account');

###############################################################################
# other roles and flags

$r = sign_in(domain => 't1.test', username => 'forced', password => $PW{forced});
my $forced = tokens_ok($r, 'password_force_reset user signs in') // {};
user_ok($forced->{access_token}, 'Admin', 1, 1, 'forced');

$r = sign_in(domain => 't1.test', username => $LONG, password => $PW{long});
tokens_ok($r, '64-character username');
$r = sign_in(domain => 't1.test', username => uc $LONG, password => $PW{long});
tokens_ok($r, '64-character username in upper case');
$r = sign_in(domain => 't1.test', username => $QUOTE, password => $PW{quote});
my $quote = tokens_ok($r, "username a'b") // {};
user_ok($quote->{access_token}, 'StandardUser', 1, 0, "a'b");

# two-factor: a flow token instead of the tokens
my $sessions_before = session_count('t1.test', 'bob');
$r = sign_in(domain => 't1.test', username => 'bob', password => $PW{bob});
is($r->{status}, 200, 'two-factor user: 200') or diag($r->{content});
$t->has_common_headers($r, 'two-factor user');
is_deeply([ $t->json_keys($r->{content}) ], [qw(two_factor_enabled token)],
    'two-factor user: keys two_factor_enabled, token');
is_bool_value($r->{json}{two_factor_enabled}, 1, 'two-factor user: two_factor_enabled');
my $flow = $r->{json}{token} // '';
like($flow, $TOKEN_RE, 'two-factor user: token is 43 base64url chars');
ok(!exists $r->{json}{access_token} && !exists $r->{json}{refresh_token},
    'two-factor user: no access or refresh token');
is(session_count('t1.test', 'bob'), $sessions_before, 'two-factor user: no session yet');
is($t->psql("SELECT kind, flavour, client_addr, spent_at IS NULL, expires_at > now() "
    . "FROM auth_flows WHERE token_hash = sha256(convert_to('$flow', 'UTF8')) "
    . "AND user_id = (SELECT id FROM users WHERE username = 'bob')"),
    'two_factor|bearer|127.0.0.1|t|t', 'two-factor user: auth_flows row (SHA-256 of the token)');
invalid_token(auth_user($flow), 'two-factor token is not an access token');
$r = sign_in(domain => 't1.test', username => 'bob', password => 'Wrong-password-x');
auth_failed($r, 'two-factor user, wrong password');

###############################################################################
# sign-out

$r = sign_in(domain => 't1.test', username => 'alice', password => $PW{alice});
my $out = tokens_ok($r, 'alice for sign-out') // {};
$r = sign_out($out->{access_token});
is($r->{status}, 200, 'sign_out: 200') or diag($r->{content});
$t->has_common_headers($r, 'sign_out');
is($r->{content} // '', '', 'sign_out: empty body');
is($t->psql("SELECT revoked_at IS NOT NULL FROM sessions "
    . "WHERE access_hash = sha256(convert_to('$out->{access_token}', 'UTF8'))"),
    't', 'sign_out: the session is revoked');
invalid_token(auth_user($out->{access_token}), 'access token after sign_out');
invalid_token(refresh($out->{refresh_token}), 'refresh token after sign_out');
invalid_token(sign_out($out->{access_token}), 'sign_out twice');
user_ok($alice->{access_token}, 'StandardUser', 1, 0, 'other session survives a sign_out');

# the refresh token is not an access token, nor the other way round
invalid_token(auth_user($alice->{refresh_token}), 'refresh token on auth/user');
invalid_token(sign_out($alice->{refresh_token}), 'refresh token on sign_out');
invalid_token(refresh($alice->{access_token}), 'access token on refresh_token');
user_ok($alice->{access_token}, 'StandardUser', 1, 0, 'alice still signed in after those');

###############################################################################
# malformed or unknown Authorization

my $unknown = 'A' x 43;
my %badauth = (
	'no Authorization'     => {},
	'Bearer garbage'       => { Authorization => 'Bearer garbage!!' },
	'Bearer without token' => { Authorization => 'Bearer' },
	'Bearer and a space'   => { Authorization => 'Bearer ' },
	'Basic credentials'    => { Authorization => 'Basic YWxpY2U6U2VjcmV0LXBhc3Mx' },
	'44-character token'   => { Authorization => "Bearer $alice->{access_token}A" },
	'42-character token'   => { Authorization => 'Bearer ' . substr($alice->{access_token}, 0, 42) },
	'unknown token'        => { Authorization => "Bearer $unknown" },
	'token with padding'   => { Authorization => "Bearer $alice->{access_token}=" },
	'token and trailing garbage' => { Authorization => "Bearer $alice->{access_token} x" },
	'token without scheme' => { Authorization => $alice->{access_token} },
	'standard base64 alphabet' => { Authorization => 'Bearer ' . ('+/' x 21) . 'A' },
);
for my $case (sort keys %badauth) {
	invalid_token(auth_user($badauth{$case}), "auth/user, $case");
	invalid_token(sign_out($badauth{$case}), "sign_out, $case");
}
user_ok($alice->{access_token}, 'StandardUser', 1, 0, 'alice unaffected by the bad tokens');

###############################################################################
# methods

for ([ 'GET', '/api/auth/sign_in', 'POST' ], [ 'PUT', '/api/auth/sign_in', 'POST' ],
    [ 'GET', '/api/auth/sign_out', 'POST' ], [ 'POST', '/api/auth/user', 'GET, HEAD' ],
    [ 'DELETE', '/api/auth/user', 'GET, HEAD' ])
{
	my ($m, $p, $allow) = @$_;
	$r = $t->request($m, $p);
	$t->is_error($r, 405, 'METHOD_NOT_ALLOWED', "$m $p");
	is($r->{headers}{allow}, $allow, "$m $p: Allow: $allow");
}

###############################################################################
# validation: the body

my %ok = (domain => 't1.test', username => 'alice', password => $PW{alice});
# The body of %ok with the fields of %o replaced (undef: left out).
sub with {
	my (%o) = @_;
	my %b = (%ok, %o);
	delete $b{$_} for grep { !defined $o{$_} } keys %o;
	return $JSON->encode(\%b);
}

my %malformed = (
	'malformed JSON'         => '{"username":"alice","password":',
	'trailing garbage'       => qq({"username":"alice","password":"$PW{alice}","domain":"t1.test"} x),
	'single quotes'          => q({'username':'alice'}),
	'empty body'             => '',
	'array'                  => '[]',
	'string'                 => '"alice"',
	'number'                 => '42',
	'null'                   => 'null',
	'bare word'              => 'alice',
);
for my $case (sort keys %malformed) {
	invalid(post_raw('/api/auth/sign_in', $malformed{$case}), undef, "body: $case");
}

my @fieldcases = (
	# name, body, field
	[ 'username missing', with(username => undef), 'username' ],
	[ 'password missing', with(password => undef), 'password' ],
	[ 'empty object', '{}', undef ],
	[ 'username a number', with(username => 42), 'username' ],
	[ 'username an array', with(username => ['alice']), 'username' ],
	[ 'username null', '{"username":null,"password":"' . $PW{alice} . '","domain":"t1.test"}', 'username' ],
	[ 'username an object', with(username => { a => 1 }), 'username' ],
	[ 'username a boolean', with(username => JSON::PP::true), 'username' ],
	[ 'password a number', with(password => 12345678), 'password' ],
	[ 'password null', '{"username":"alice","password":null,"domain":"t1.test"}', 'password' ],
	[ 'password an array', with(password => [ $PW{alice} ]), 'password' ],
	[ 'domain a number', with(domain => 42), 'domain' ],
	[ 'domain an array', with(domain => ['t1.test']), 'domain' ],
	[ 'username empty', with(username => ''), 'username' ],
	[ 'username 65 characters', with(username => $LONG . 'x'), 'username' ],
	[ 'username starts with a dot', with(username => '.alice'), 'username' ],
	[ 'username ends with a dot', with(username => 'alice.'), 'username' ],
	[ 'username only a dot', with(username => '.'), 'username' ],
	[ 'username with a space', with(username => 'al ice'), 'username' ],
	[ 'username with a tab', with(username => "al\tice"), 'username' ],
	[ 'username non-ASCII', with(username => "\x{e5}lice"), 'username' ],
	[ 'username non-ASCII letter in the middle', with(username => "al\x{ef}ce"), 'username' ],
	[ 'username with @', with(username => 'alice@t1.test'), 'username' ],
	[ 'username SQL metacharacters', with(username => "x';--"), 'username' ],
	[ 'username SQL injection', with(username => "x' OR '1'='1"), 'username' ],
	[ 'username with a NUL escape', with(username => "ali\x{0}ce"), 'username' ],
	[ 'username with a percent', with(username => 'ali%'), 'username' ],
	[ 'reserved admin with a domain', with(username => 'admin'), 'username' ],
	[ 'reserved ROOT with a domain', with(username => 'ROOT'), 'username' ],
	[ 'reserved System with a domain', with(username => 'System'), 'username' ],
	[ 'reserved administrator with a domain', with(username => 'administrator'), 'username' ],
	[ 'domain empty', with(domain => ''), 'domain' ],
	[ 'domain 281 characters', with(domain => join('.', ('a' x 63) x 4) . '.' . ('c' x 21) . '.com'), 'domain' ],
	[ 'domain with a space', with(domain => 't1 .test'), 'domain' ],
	[ 'domain SQL metacharacters', with(domain => "t1.test';--"), 'domain' ],
	[ 'domain with a slash', with(domain => 't1.test/x'), 'domain' ],
	[ 'domain non-ASCII', with(domain => "t\x{f6}.test"), 'domain' ],
	[ 'password empty', with(password => ''), 'password' ],
	[ 'password 1025 bytes', with(password => 'p' x 1025), 'password' ],
	[ 'password 513 two-byte characters', with(password => "\x{e9}" x 513), 'password' ],
);
for my $c (@fieldcases) {
	my ($name, $body, $field) = @$c;
	invalid(post_raw('/api/auth/sign_in', $body), $field, "body: $name");
}

# the limits themselves are accepted
auth_failed(sign_in(%ok, password => 'p' x 1024), 'password of 1024 bytes');
auth_failed(post_raw('/api/auth/sign_in', with(password => "\x{e9}" x 512)),
    'password of 512 two-byte characters (1024 bytes)');
my $d280 = join('.', ('a' x 63) x 4) . '.' . ('c' x 20) . '.com';
is(length $d280, 280, '280-character domain');
auth_failed(sign_in(%ok, domain => $d280), 'domain of 280 characters (no such tenant)');
auth_failed(sign_in(%ok, username => 'al.ice'), 'dot inside a username is valid');
auth_failed(sign_in(%ok, username => "o'brien_x-y.z"), 'every allowed punctuation');
auth_failed(sign_in(%ok, username => 'x'), 'one-character username');

# A NUL inside the password must not cut it short: "Secret-pass1\u0000junk"
# is not alice's password (400 or 401, never 200).
{
	my $b = '{"domain":"t1.test","username":"alice","password":"' . $PW{alice}
	    . '\u0000junk"}';
	$r = post_raw('/api/auth/sign_in', $b);
	ok($r->{status} == 400 || $r->{status} == 401,
	    'password with a NUL after the right one: 400 or 401') or diag($r->{content});
	$t->has_common_headers($r, 'password with a NUL');
}

# bad UTF-8 inside a JSON string, raw bytes
my %badutf8 = (
	'invalid byte in the password'    => qq({"username":"alice","password":"Secret-\xff-pass","domain":"t1.test"}),
	'overlong / in the password'      => qq({"username":"alice","password":"Secret-\xc0\xaf-pass","domain":"t1.test"}),
	'truncated sequence in password'  => qq({"username":"alice","password":"Secret-pass\xc3","domain":"t1.test"}),
	'surrogate bytes in the password' => qq({"username":"alice","password":"Secret-\xed\xa0\x80-pass","domain":"t1.test"}),
	'invalid byte in the username'    => qq({"username":"al\xffice","password":"$PW{alice}","domain":"t1.test"}),
	'invalid byte in the domain'      => qq({"username":"alice","password":"$PW{alice}","domain":"t1\xfe.test"}),
);
for my $case (sort keys %badutf8) {
	invalid(post_raw('/api/auth/sign_in', $badutf8{$case}), undef, "bad UTF-8: $case");
}

# a non-ASCII password is fine when it is valid UTF-8
add_user('t1.test', 'utf8user', "P\x{e4}ssw\x{f6}rd-\x{263a}-ok");
{
	my $b = $JSON->encode({ domain => 't1.test', username => 'utf8user',
	    password => "P\x{e4}ssw\x{f6}rd-\x{263a}-ok" });
	tokens_ok(post_raw('/api/auth/sign_in', $b), 'non-ASCII password');
	$b = '{"domain":"t1.test","username":"utf8user","password":"P\u00e4ssw\u00f6rd-\u263a-ok"}';
	tokens_ok(post_raw('/api/auth/sign_in', $b), 'non-ASCII password as \\u escapes');
}

###############################################################################
# validation: qr, Content-Type, size

$r = sign_in(%ok, -query => '?qr=true');
tokens_ok($r, 'qr=true');
$r = sign_in(%ok, -query => '?qr=false');
tokens_ok($r, 'qr=false');
for my $q ('qr=maybe', 'qr=true&qr=true', 'qr=true&qr=false', 'qr=', 'qr', 'qr=1',
    'qr=TRUE', 'qr=%zz')
{
	my $field = $q eq 'qr=%zz' ? undef : 'qr';
	invalid(sign_in(%ok, -query => "?$q"), $field, "query $q");
}

$t->is_error(post_raw('/api/auth/sign_in', with(), 'Content-Type' => 'text/plain'),
    415, 'UNSUPPORTED_MEDIA_TYPE', 'Content-Type text/plain');
$t->is_error(post_raw('/api/auth/sign_in',
    "domain=t1.test&username=alice&password=$PW{alice}",
    'Content-Type' => 'application/x-www-form-urlencoded'),
    415, 'UNSUPPORTED_MEDIA_TYPE', 'form body');
{
	my $b = with();
	$r = $t->parse_http($t->raw_http("POST /api/auth/sign_in HTTP/1.1\r\nHost: localhost\r\n"
	    . "Content-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b"));
	$t->is_error($r, 415, 'UNSUPPORTED_MEDIA_TYPE', 'no Content-Type');
}
$t->is_error(post_raw('/api/auth/sign_in', '{"username":"alice","pad":"'
    . ('x' x 70000) . '","password":"x"}'), 413, 'PAYLOAD_TOO_LARGE', 'body over 64 KiB');

###############################################################################
# failures: one body for every cause

auth_failed(sign_in(domain => 'nosuch.test', username => 'alice', password => $PW{alice}),
    'unknown tenant');
auth_failed(sign_in(domain => 'off.test', username => 'dave', password => $PW{dave}),
    'disabled tenant');
auth_failed(sign_in(domain => 't1.test', username => 'nobody', password => $PW{alice}),
    'unknown user');
auth_failed(sign_in(domain => 't1.test', username => 'carol', password => $PW{carol}),
    'disabled user, right password');
auth_failed(sign_in(domain => 't1.test', username => 'alice', password => 'Wrong-password-1'),
    'wrong password');
auth_failed(sign_in(domain => 't1.test', username => 'nopw', password => $PW{nopw}),
    'user without a password');
auth_failed(sign_in(username => 'nobody-sys', password => $PW{sysop}),
    'unknown system account');
auth_failed(sign_in(username => 'sysop', password => 'Wrong-password-2'),
    'system account, wrong password');
auth_failed(sign_in(domain => 't1.test', username => 'alice', password => $PW{sysop}),
    "another user's password");
auth_failed(sign_in(domain => 't2.test', username => 'alice', password => $PW{alice}),
    'user of another tenant');
{
	my %b = map { $_ => 1 } values %fail_bodies;
	is(scalar keys %b, 1, 'every failure has the same body ('
	    . scalar(keys %fail_bodies) . ' causes)')
	    or diag(explain \%fail_bodies);
}
is(user_row('t1.test', 'nopw', 'password_hash IS NULL'), 't',
    'user without a password: still none');

###############################################################################
# legacy hashes: bcrypt and sha512crypt, upgraded on the next sign-in

my @SALT = ('.', '/', 'A' .. 'Z', 'a' .. 'z', '0' .. '9');
my $bsalt = join '', map { $SALT[rand @SALT] } 1 .. 22;
my %legacy = (
	legb => crypt($PW{legb}, '$2b$04$' . $bsalt),
	leg6 => crypt($PW{leg6}, '$6$rounds=5000$abcdefgh$'),
);
like($legacy{legb}, qr/^\$2b\$04\$.{53}$/, 'Perl crypt made a bcrypt hash');
like($legacy{leg6}, qr/^\$6\$rounds=5000\$abcdefgh\$.{86}$/, 'Perl crypt made a sha512crypt hash');
for my $u (sort keys %legacy) {
	$t->psql("UPDATE users SET password_hash = " . sql_str($legacy{$u})
	    . " WHERE username = '$u'");
	my $kind = $u eq 'legb' ? 'bcrypt' : 'sha512crypt';

	auth_failed(sign_in(domain => 't1.test', username => $u, password => "$PW{$u}-wrong"),
	    "$kind: wrong password");
	is(user_row('t1.test', $u, 'password_hash'), $legacy{$u},
	    "$kind: a failed sign-in leaves the hash alone");

	my $j = tokens_ok(sign_in(domain => 't1.test', username => $u, password => $PW{$u}),
	    "$kind: sign-in with the legacy hash") // {};
	my $new = user_row('t1.test', $u, 'password_hash');
	like($new, qr/^\$y\$/, "$kind: rehashed to yescrypt");
	isnt($new, $legacy{$u}, "$kind: hash replaced");
	is(crypt($PW{$u}, $new), $new, "$kind: the new hash verifies the password");
	user_ok($j->{access_token}, 'StandardUser', 1, 0, "$kind user");

	tokens_ok(sign_in(domain => 't1.test', username => $u, password => $PW{$u}),
	    "$kind: sign-in with the new hash");
	is(user_row('t1.test', $u, 'password_hash'), $new,
	    "$kind: a current hash is not rehashed again");
	auth_failed(sign_in(domain => 't1.test', username => $u, password => "$PW{$u}-wrong"),
	    "$kind: wrong password after the upgrade");
}

# a yescrypt hash of another cost verifies (and is brought to the configured one)
{
	add_user('t1.test', 'ycost', 'Initial-ycost-1');
	my $pw = 'Yescrypt-cost-5';
	$t->secret($pw);
	my $h = crypt($pw, '$y$j9T$' . join('', map { $SALT[rand @SALT] } 1 .. 16) . '$');
	like($h, qr/^\$y\$j9T\$/, 'Perl crypt made a yescrypt hash of cost 5');
	$t->psql("UPDATE users SET password_hash = " . sql_str($h) . " WHERE username = 'ycost'");
	tokens_ok(sign_in(domain => 't1.test', username => 'ycost', password => $pw),
	    'yescrypt hash of another cost');
	my $new = user_row('t1.test', 'ycost', 'password_hash');
	like($new, qr/^\$y\$/, 'yescrypt of another cost: still yescrypt');
	is(crypt($pw, $new), $new, 'yescrypt of another cost: the stored hash verifies');
}

###############################################################################
# disabled users and tenants: their tokens stop working

$r = sign_in(domain => 't1.test', username => 'eve', password => $PW{eve});
my $eve = tokens_ok($r, 'eve') // {};
user_ok($eve->{access_token}, 'QueueManager', 1, 0, 'eve before she is disabled');
ctl_ok('user', 'set', '--domain', 't1.test', 'eve', 'enabled=false');
invalid_token(auth_user($eve->{access_token}), 'disabled user: access token');
invalid_token(refresh($eve->{refresh_token}), 'disabled user: refresh token');
invalid_token(sign_out($eve->{access_token}), 'disabled user: sign_out');
auth_failed(sign_in(domain => 't1.test', username => 'eve', password => $PW{eve}),
    'disabled user: sign-in');
ctl_ok('user', 'set', '--domain', 't1.test', 'eve', 'enabled=true');
invalid_token(auth_user($eve->{access_token}), 'enabled again: the old session stays revoked');
tokens_ok(sign_in(domain => 't1.test', username => 'eve', password => $PW{eve}),
    'enabled again: eve signs in');

$r = sign_in(domain => 't2.test', username => 'frank', password => $PW{frank});
my $frank = tokens_ok($r, 'frank') // {};
user_ok($frank->{access_token}, 'StandardUser', 1, 0, 'frank before his tenant is disabled');
ctl_ok('tenant', 'disable', 't2.test');
invalid_token(auth_user($frank->{access_token}), 'disabled tenant: access token');
invalid_token(refresh($frank->{refresh_token}), 'disabled tenant: refresh token');
auth_failed(sign_in(domain => 't2.test', username => 'frank', password => $PW{frank}),
    'disabled tenant: sign-in');

# an operator setting the password: password_verified false again
{
	my $pw = 'Alice-new-pass-2';
	ctl_ok('user', 'passwd', '--domain', 't1.test', 'alice', { stdin => "$pw\n" });
	is(user_row('t1.test', 'alice', 'password_verified'), 'f',
	    'user passwd: password_verified false');
	invalid_token(auth_user($alice->{access_token}), 'user passwd revokes the sessions');
	auth_failed(sign_in(domain => 't1.test', username => 'alice', password => $PW{alice}),
	    'user passwd: the old password fails');
	my $j = tokens_ok(sign_in(domain => 't1.test', username => 'alice', password => $pw),
	    'user passwd: the new password works') // {};
	user_ok($j->{access_token}, 'StandardUser', 1, 0, 'alice after user passwd');
	$PW{alice_new} = $pw;
}

###############################################################################
# audit rows

my @audit = map { [ split /\|/, $_, -1 ] } split /\n/, $t->psql(
    "SELECT coalesce(tenant_domain, '<null>'), coalesce(username, '<null>'), "
    . "coalesce(client_addr, '<null>'), event, outcome, coalesce(detail, '<null>') "
    . "FROM audit_log ORDER BY id");
sub audit_has {
	my ($want, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my @hit = grep {
		my $row = $_;
		!grep { defined $want->[$_] && lc $row->[$_] ne lc $want->[$_] } 0 .. 5
	} @audit;
	ok(scalar @hit, "audit: $name") or diag("want: " . join('|', map { $_ // '*' } @$want));
}
audit_has([ 't1.test', 'alice', '127.0.0.1', 'sign_in', 'success', 'bearer' ],
    'tenant sign-in success');
audit_has([ 't1.test', 'alice', '127.0.0.1', 'sign_in', 'failure', undef ],
    'tenant sign-in failure (wrong password)');
audit_has([ 't1.test', 'nobody', '127.0.0.1', 'sign_in', 'failure', undef ],
    'unknown user failure');
audit_has([ 'nosuch.test', 'alice', '127.0.0.1', 'sign_in', 'failure', undef ],
    'unknown tenant failure');
audit_has([ 't1.test', 'carol', '127.0.0.1', 'sign_in', 'failure', undef ],
    'disabled user failure');
audit_has([ '<null>', 'sysop', '127.0.0.1', 'sign_in', 'success', 'bearer' ],
    'system account success (domain NULL)');
audit_has([ '<null>', 'sysop', '127.0.0.1', 'sign_in', 'failure', undef ],
    'system account failure');
audit_has([ 't1.test', 'bob', '127.0.0.1', 'sign_in', 'two_factor', 'bearer' ],
    'two-factor sign-in');
audit_has([ 't1.test', 'alice', '127.0.0.1', 'sign_out', undef, 'bearer' ],
    'sign_out');
ok(!(grep { $_->[3] eq 'sign_in' && $_->[4] eq 'success' && $_->[1] eq 'carol' } @audit),
    'audit: no success for the disabled user');
{
	my $all = join "\n", map { join '|', @$_ } @audit;
	my %sec = $t->secrets;
	my @leak = grep { index($all, $_) >= 0 } keys %sec;
	is(scalar @leak, 0, 'audit_log holds no password or token ('
	    . scalar(keys %sec) . ' secrets)') or diag(join '; ', map { $sec{$_} } @leak);
	my $n = grep { $_->[3] eq 'sign_in' } @audit;
	cmp_ok($n, '>=', 30, "audit: a sign_in row for every attempt ($n rows)");
}

# pbx-authctl audit prints them
{
	my $o = ctl_ok('audit');
	my @lines = split /\n/, $o;
	my @f = map { [ split /\t/, $_, -1 ] } @lines;
	ok(@lines >= @audit, 'pbx-authctl audit: a line per row') or diag($o);
	ok(!(grep { @$_ != 8 } @f), 'pbx-authctl audit: 8 tab-separated fields (operator last)')
	    or diag($o);
	ok((grep { $_->[0] =~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z$/
	    && $_->[1] eq 't1.test' && $_->[2] eq 'alice' && $_->[3] eq '127.0.0.1'
	    && $_->[4] eq 'sign_in' && $_->[5] eq 'success' && $_->[6] eq 'bearer' } @f),
	    'pbx-authctl audit: alice success line') or diag($o);
	ok((grep { $_->[1] eq '-' && $_->[2] eq 'sysop' && $_->[4] eq 'sign_in' } @f),
	    "pbx-authctl audit: system account with domain '-'") or diag($o);
	my %sec = $t->secrets;
	ok(!(grep { index($o, $_) >= 0 } keys %sec), 'pbx-authctl audit: no secrets');
	my $d = ctl_ok('audit', '--domain', 'T1.test', '--since', '1h');
	my @dl = map { [ split /\t/ ] } split /\n/, $d;
	ok(@dl && !(grep { lc $_->[1] ne 't1.test' } @dl),
	    'pbx-authctl audit --domain: only that tenant') or diag($d);
}

###############################################################################

my @five = grep { $_->[1] >= 500 } $t->responses;
is(scalar @five, 0, 'no 5xx response') or diag(explain \@five);
$t->log_format_ok;

$t->done_testing;
