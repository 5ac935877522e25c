#!/usr/bin/perl

# Bearer tokens: POST /api/auth/refresh_token (rotation, validation, spent
# tokens within and after refresh_reuse_grace, reuse detection revoking the
# session with an audit row), expiry of access and refresh tokens (moved in
# the database, and one real wait for access_token_ttl), revocation by
# sign_out, pbx-authctl and disabled users/tenants, and the concurrent-refresh
# race: of 20 parallel refreshes with one token exactly one succeeds and the
# session lives on.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use MIME::Base64 qw(encode_base64url);
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

use Test::PbxAuth;

my $ACCESS_TTL = 60;
our $EXPECT_TTL = $ACCESS_TTL;    # expires_in of the token responses
my $REFRESH_TTL = 3600;
my $GRACE = 2;

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->write_config(access_token_ttl => $ACCESS_TTL,
    refresh_token_ttl => $REFRESH_TTL, refresh_reuse_grace => $GRACE);
$t->start_pg->start_daemon->start_nginx;

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;
my $TOKEN_RE = qr/^[A-Za-z0-9_-]{43}\z/;
my %PW = (alice => 'Secret-pass1', bob => 'Other-pass2', carol => 'Third-pass3',
    dave => 'Fourth-pass4', sam => 'System-pass5');

###############################################################################
# helpers

sub ctl_ok {
	my (@args) = @_;
	my $o = ref $args[-1] eq 'HASH' ? $args[-1] : {};
	my @shown = grep { !ref } @args;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, "pbx-authctl @shown") or diag($out . $err);
	return $out;
}

sub post_json {
	my ($path, $body, %h) = @_;
	$body = $JSON->encode($body) if ref $body;
	return $t->request('POST', $path, body => $body,
	    headers => { 'Content-Type' => 'application/json', %h });
}

# Sign in with a password; returns the token response (a hash) or {}.
sub sign_in {
	my ($user, $domain, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my %b = (username => $user, password => $PW{$user});
	$b{domain} = $domain if defined $domain;
	my $r = post_json('/api/auth/sign_in', \%b);
	is($r->{status}, 200, "$name: sign_in 200") or diag($r->{content});
	return token_response_ok($r, $name);
}

# A 200 token response: keys in order, Bearer, two fresh tokens, expires_in.
sub token_response_ok {
	my ($r, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$t->has_common_headers($r, $name);
	my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
	is_deeply([ $t->json_keys($r->{content}) ],
	    [qw(token_type access_token refresh_token expires_in)], "$name: keys in order");
	is($j->{token_type}, 'Bearer', "$name: token_type Bearer");
	like($j->{access_token} // '', $TOKEN_RE, "$name: access_token is 43 base64url chars");
	like($j->{refresh_token} // '', $TOKEN_RE, "$name: refresh_token is 43 base64url chars");
	isnt($j->{access_token}, $j->{refresh_token}, "$name: access and refresh differ");
	ok(defined $j->{expires_in} && !ref $j->{expires_in}
	    && $r->{content} =~ /"expires_in":\s*$EXPECT_TTL\s*}/,
	    "$name: expires_in is the number $EXPECT_TTL");
	return $j;
}

sub refresh {
	my ($rt) = @_;
	return post_json('/api/auth/refresh_token', { refresh_token => $rt });
}

sub refresh_ok {
	my ($rt, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $r = refresh($rt);
	is($r->{status}, 200, "$name: refresh 200") or diag($r->{content});
	return token_response_ok($r, $name);
}

sub refresh_401 {
	my ($rt, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return $t->is_error(refresh($rt), 401, 'INVALID_TOKEN', $name);
}

sub auth_user {
	my ($access) = @_;
	return $t->get('/api/auth/user',
	    headers => { Authorization => "Bearer $access" });
}

sub access_ok {
	my ($access, $name, $role) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $r = auth_user($access);
	my $ok = is($r->{status}, 200, "$name: auth/user 200") or diag($r->{content});
	is($r->{json}{role}, $role, "$name: role $role") if $ok && $role;
	return $ok;
}

sub access_401 {
	my ($access, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return $t->is_error(auth_user($access), 401, 'INVALID_TOKEN', $name);
}

sub sign_out {
	my ($access) = @_;
	return $t->request('POST', '/api/auth/sign_out',
	    headers => { Authorization => "Bearer $access" });
}

# The bytea literal of a token's SHA-256 (tokens themselves never go to psql).
sub hash_lit { "'\\x" . sha256_hex($_[0]) . "'::bytea" }

sub session_of_access {
	my ($access) = @_;
	return $t->psql('SELECT id FROM sessions WHERE access_hash = ' . hash_lit($access));
}

sub session_of_refresh {
	my ($rt) = @_;
	return $t->psql('SELECT id FROM sessions WHERE refresh_hash = ' . hash_lit($rt));
}

sub revoked {
	my ($id) = @_;
	return $t->psql("SELECT revoked_at IS NOT NULL FROM sessions WHERE id = $id") eq 't';
}

sub random_token { encode_base64url(join '', map { chr int rand 256 } 1 .. 32) }

###############################################################################
# set-up

ctl_ok('tenant', 'add', 't1.test', '--name', 'T1');
ctl_ok('tenant', 'add', 't2.test', '--name', 'T2');
ctl_ok('user', 'add', '--domain', 't1.test', $_, { stdin => "$PW{$_}\n" })
    for qw(alice bob carol);
ctl_ok('user', 'add', '--domain', 't2.test', 'dave', { stdin => "$PW{dave}\n" });
ctl_ok('user', 'add', 'sam', { stdin => "$PW{sam}\n" });

###############################################################################
# sign-in, auth/user, lifetimes stored

my $s = sign_in('alice', 't1.test', 'alice');
{
	my $r = auth_user($s->{access_token});
	is($r->{status}, 200, 'auth/user with a fresh access token') or diag($r->{content});
	$t->has_common_headers($r, 'auth/user');
	is_deeply([ $t->json_keys($r->{content}) ],
	    [qw(role password_verified password_force_reset)], 'auth/user keys in order');
	is($r->{json}{role}, 'StandardUser', 'auth/user role');
	ok(JSON::PP::is_bool($r->{json}{password_verified}) && $r->{json}{password_verified},
	    'auth/user password_verified true after a password sign-in');
	ok(JSON::PP::is_bool($r->{json}{password_force_reset})
	    && !$r->{json}{password_force_reset}, 'auth/user password_force_reset false');

	my $id = session_of_access($s->{access_token});
	ok($id, 'the session row holds the access token hash');
	is(session_of_refresh($s->{refresh_token}), $id, 'and the refresh token hash');
	my ($acc, $ref, $flav) = split /\|/, $t->psql("SELECT "
	    . "extract(epoch FROM access_expires_at - now())::int, "
	    . "extract(epoch FROM refresh_expires_at - now())::int, flavour "
	    . "FROM sessions WHERE id = $id");
	ok($acc > $ACCESS_TTL - 10 && $acc <= $ACCESS_TTL,
	    "access_expires_at is access_token_ttl ($ACCESS_TTL s) ahead") or diag($acc);
	ok($ref > $REFRESH_TTL - 10 && $ref <= $REFRESH_TTL,
	    "refresh_expires_at is refresh_token_ttl ($REFRESH_TTL s) ahead") or diag($ref);
	is($flav, 'bearer', 'sign_in creates a bearer session');
	is($t->psql("SELECT count(*) FROM sessions WHERE access_hash = refresh_hash "
	    . "OR length(access_hash) <> 32 OR length(refresh_hash) <> 32"), 0,
	    'stored hashes are 32 bytes (SHA-256)');
}

{
	# RFC 7235: the scheme is case-insensitive; RFC 6750: a 401 names it
	my $r = $t->get('/api/auth/user',
	    headers => { Authorization => "bearer $s->{access_token}" });
	is($r->{status}, 200, 'auth/user with the scheme in lower case') or diag($r->{content});
	$r = auth_user(random_token());
	is($r->{headers}{'www-authenticate'}, 'Bearer error="invalid_token"',
	    'auth/user 401 with a bad token: WWW-Authenticate: Bearer error="invalid_token"');
	# RFC 6750 section 3.1: a request without credentials gets no error code
	$r = $t->get('/api/auth/user');
	$t->is_error($r, 401, 'INVALID_TOKEN', 'auth/user without credentials');
	is($r->{headers}{'www-authenticate'}, 'Bearer',
	    'auth/user 401 without credentials: WWW-Authenticate: Bearer, no error=');
	$r = $t->request('POST', '/api/auth/sign_out');
	is($r->{headers}{'www-authenticate'}, 'Bearer',
	    'sign_out 401 without credentials: WWW-Authenticate: Bearer, no error=');
	$r = $t->get('/api/auth/user', headers => { Authorization => 'Basic dTpw' });
	is($r->{headers}{'www-authenticate'}, 'Bearer',
	    'auth/user with another scheme: WWW-Authenticate: Bearer, no error=');
}

my $sys = sign_in('sam', undef, 'system-level account');
access_ok($sys->{access_token}, 'system-level access token', 'SystemAdmin');

###############################################################################
# refresh rotation

{
	my $id = session_of_access($s->{access_token});
	my $n = refresh_ok($s->{refresh_token}, 'rotation');
	isnt($n->{access_token}, $s->{access_token}, 'rotation: new access token differs');
	isnt($n->{refresh_token}, $s->{refresh_token}, 'rotation: new refresh token differs');
	access_401($s->{access_token}, 'rotation: old access token refused');
	access_ok($n->{access_token}, 'rotation: new access token works', 'StandardUser');
	is(session_of_access($n->{access_token}), $id, 'rotation: same session row');
	ok($t->psql("SELECT refreshed_at IS NOT NULL FROM sessions WHERE id = $id") eq 't',
	    'rotation: refreshed_at set');
	is(session_of_refresh($s->{refresh_token}), '', 'rotation: old refresh hash gone');

	# the old refresh token, immediately: within the grace period
	refresh_401($s->{refresh_token}, 'rotation: old refresh token refused');
	ok(!revoked($id), 'rotation: the session lives on after a reuse within the grace');
	is($t->psql("SELECT count(*) FROM sessions WHERE prev_refresh_hash = "
	    . hash_lit($s->{refresh_token}) . " AND id = $id"), 1,
	    'rotation: old refresh token recorded as the one spent last');
	is(substr($n->{refresh_token}, 0, 12), substr($s->{refresh_token}, 0, 12),
	    'rotation: the new refresh token keeps the family of the old one');
	is($t->psql("SELECT count(*) FROM spent_refresh_tokens"), 0,
	    'rotation: no row per spent token');

	# a chain of rotations, each replacing both tokens
	my $cur = $n;
	for my $i (1 .. 3) {
		my $next = refresh_ok($cur->{refresh_token}, "chain $i");
		access_401($cur->{access_token}, "chain $i: previous access token refused");
		access_ok($next->{access_token}, "chain $i: new access token works");
		$cur = $next;
	}
	access_ok($cur->{access_token}, 'chain: the newest access token works');
	$s = $cur;
}

###############################################################################
# reuse within the grace period, then after it: the session is revoked

{
	my $a = sign_in('alice', 't1.test', 'reuse session');
	my $id = session_of_access($a->{access_token});
	my $b = refresh_ok($a->{refresh_token}, 'reuse: first rotation');
	my $c = refresh_ok($b->{refresh_token}, 'reuse: second rotation');

	refresh_401($a->{refresh_token}, 'reuse within grace: first spent token');
	refresh_401($b->{refresh_token}, 'reuse within grace: second spent token');
	ok(!revoked($id), 'reuse within grace: session not revoked');
	access_ok($c->{access_token}, 'reuse within grace: newest access token works');
	is($t->psql("SELECT count(*) FROM audit_log WHERE event = 'refresh_reuse'"), 0,
	    'reuse within grace: no refresh_reuse audit row');
	my $d = refresh_ok($c->{refresh_token}, 'reuse within grace: newest refresh token works');
	access_ok($d->{access_token}, 'reuse within grace: rotated again, access works');

	# wait for the grace period to pass for $b (spent a moment ago)
	sleep($GRACE + 1.2);
	refresh_401($b->{refresh_token}, 'reuse after grace (waited)');
	ok(revoked($id), 'reuse after grace: session revoked');
	access_401($d->{access_token}, 'reuse after grace: newest access token refused');
	refresh_401($d->{refresh_token}, 'reuse after grace: newest refresh token refused');
	$t->is_error(sign_out($d->{access_token}), 401, 'INVALID_TOKEN',
	    'reuse after grace: sign_out with the newest access token');
	my $audit = $t->psql("SELECT tenant_domain, username, event, outcome FROM audit_log "
	    . "WHERE event = 'refresh_reuse' AND username = 'alice'");
	is($audit, 't1.test|alice|refresh_reuse|revoked',
	    'reuse after grace: audit row refresh_reuse/revoked');
	my $reason = $t->psql("SELECT revoke_reason FROM sessions WHERE id = $id");
	ok(length $reason, "reuse after grace: revoke_reason recorded ($reason)");
	refresh_401($a->{refresh_token}, 'revoked session: oldest spent token');
	refresh_401($c->{refresh_token}, 'revoked session: spent token');

	# alice's other session is untouched
	access_ok($s->{access_token}, 'reuse detection revokes only that session');
}

{
	# the same, with the spend time moved back in the database
	my $a = sign_in('bob', 't1.test', 'reuse (moved) session');
	my $id = session_of_access($a->{access_token});
	my $b = refresh_ok($a->{refresh_token}, 'reuse (moved): rotation');
	refresh_401($a->{refresh_token}, 'reuse (moved): within grace');
	ok(!revoked($id), 'reuse (moved): within grace, session lives');
	$t->psql("UPDATE sessions SET refreshed_at = now() - interval '1 minute' WHERE id = $id");
	refresh_401($a->{refresh_token}, 'reuse (moved): after grace');
	ok(revoked($id), 'reuse (moved): session revoked');
	access_401($b->{access_token}, 'reuse (moved): newest access token refused');
	refresh_401($b->{refresh_token}, 'reuse (moved): newest refresh token refused');
	is($t->psql("SELECT count(*) FROM audit_log WHERE event = 'refresh_reuse' "
	    . "AND outcome = 'revoked' AND username = 'bob'"), 1,
	    'reuse (moved): one refresh_reuse audit row');
	# presenting it again does not need to write another revocation
	refresh_401($a->{refresh_token}, 'reuse (moved): spent token of a revoked session');
}

###############################################################################
# spent tokens need no row each (their family names the session): a long
# chain keeps spent_refresh_tokens empty, and any spent token of it, however
# old, still revokes the session after the grace

{
	my $a = sign_in('bob', 't1.test', 'long chain');
	my $id = session_of_access($a->{access_token});
	my @chain = ($a);
	push @chain, refresh_ok($chain[-1]{refresh_token}, "long chain: rotation $_") for 1 .. 30;
	is($t->psql("SELECT count(*) FROM spent_refresh_tokens"), 0,
	    'long chain: 30 rotations, no spent token row');
	is(scalar(grep { substr($_->{refresh_token}, 0, 12) eq substr($a->{refresh_token}, 0, 12) }
	    @chain), 31, 'long chain: every refresh token carries the session\'s family');
	$t->psql("UPDATE sessions SET refreshed_at = now() - interval '1 minute' WHERE id = $id");
	refresh_401($chain[10]{refresh_token}, 'long chain: a token 20 rotations old, after the grace');
	ok(revoked($id), 'long chain: the session is revoked');
	access_401($chain[-1]{access_token}, 'long chain: the newest access token is refused');
	is($t->psql("SELECT count(*) FROM audit_log WHERE event = 'refresh_reuse' "
	    . "AND username = 'bob'"), 2, 'long chain: a refresh_reuse audit row');

	# a token the server never issued, with a live session's family: only
	# a holder of a token of that session knows the family; taken as reuse
	my $b = sign_in('bob', 't1.test', 'forged family');
	my $bid = session_of_access($b->{access_token});
	my $c = refresh_ok($b->{refresh_token}, 'forged family: rotation');
	$t->psql("UPDATE sessions SET refreshed_at = now() - interval '1 minute' WHERE id = $bid");
	my $forged = substr($b->{refresh_token}, 0, 12) . substr(random_token(), 12);
	refresh_401($forged, 'forged family: 401');
	ok(revoked($bid), 'forged family: the session is revoked');

	# a token of an unknown family revokes nothing
	my $d = sign_in('bob', 't1.test', 'unknown family');
	my $did = session_of_access($d->{access_token});
	refresh_401(random_token(), 'unknown family: 401');
	ok(!revoked($did), 'unknown family: no session revoked');

	# tokens spent before 0006 have a row, and still revoke
	my $legacy = random_token();
	$t->psql("INSERT INTO spent_refresh_tokens (token_hash, session_id, spent_at) VALUES ("
	    . hash_lit($legacy) . ", $did, now() - interval '1 minute')");
	refresh_401($legacy, 'a token spent before 0006: 401');
	ok(revoked($did), 'a token spent before 0006: the session is revoked');

	# a session from before 0006 (no family) adopts the family of its token
	my $e = sign_in('bob', 't1.test', 'session without family');
	my $eid = session_of_access($e->{access_token});
	$t->psql("UPDATE sessions SET refresh_family = NULL WHERE id = $eid");
	my $f = refresh_ok($e->{refresh_token}, 'session without family: rotation');
	is($t->psql("SELECT refresh_family FROM sessions WHERE id = $eid"),
	    substr($e->{refresh_token}, 0, 12), 'session without family: adopted its token\'s');
	$t->psql("UPDATE sessions SET refreshed_at = now() - interval '1 minute' WHERE id = $eid");
	refresh_401($e->{refresh_token}, 'session without family: its spent token, after the grace');
	ok(revoked($eid), 'session without family: revoked');
}

###############################################################################
# expiry moved in the database

{
	my $a = sign_in('alice', 't1.test', 'access expiry');
	my $id = session_of_access($a->{access_token});
	$t->psql("UPDATE sessions SET access_expires_at = now() - interval '1 s' WHERE id = $id");
	access_401($a->{access_token}, 'expired access token on auth/user');
	$t->is_error(sign_out($a->{access_token}), 401, 'INVALID_TOKEN',
	    'expired access token on sign_out');
	ok(!revoked($id), 'sign_out with an expired access token revokes nothing');
	my $b = refresh_ok($a->{refresh_token}, 'access expired: refresh still works');
	access_ok($b->{access_token}, 'access expired: the refreshed access token works');

	$t->psql("UPDATE sessions SET refresh_expires_at = now() - interval '1 s' "
	    . "WHERE id = $id");
	refresh_401($b->{refresh_token}, 'expired refresh token');
	ok(!revoked($id), 'an expired refresh token does not count as reuse');

	# just inside the lifetime
	my $c = sign_in('alice', 't1.test', 'access about to expire');
	my $cid = session_of_access($c->{access_token});
	$t->psql("UPDATE sessions SET access_expires_at = now() + interval '5 s', "
	    . "refresh_expires_at = now() + interval '5 s' WHERE id = $cid");
	access_ok($c->{access_token}, 'access token 5 s before expiry works');
	my $d = refresh_ok($c->{refresh_token}, 'refresh token 5 s before expiry works');
	access_ok($d->{access_token}, 'and its new access token works');
}

###############################################################################
# sign-out

{
	my $a = sign_in('alice', 't1.test', 'sign_out');
	my $id = session_of_access($a->{access_token});
	my $r = sign_out($a->{access_token});
	is($r->{status}, 200, 'sign_out 200') or diag($r->{content});
	is($r->{content} // '', '', 'sign_out: empty body');
	$t->has_common_headers($r, 'sign_out');
	ok(revoked($id), 'sign_out: session revoked');
	access_401($a->{access_token}, 'after sign_out: access token refused');
	refresh_401($a->{refresh_token}, 'after sign_out: refresh token refused');
	$t->is_error(sign_out($a->{access_token}), 401, 'INVALID_TOKEN', 'sign_out twice');
	is($t->psql("SELECT count(*) FROM audit_log WHERE event = 'sign_out' "
	    . "AND username = 'alice' AND detail = 'bearer'"), 1, 'sign_out: audit row');
	access_ok($s->{access_token}, 'sign_out revokes only that session');

	# sign out after a rotation: both the current tokens die
	my $b = sign_in('alice', 't1.test', 'sign_out after rotation');
	my $c = refresh_ok($b->{refresh_token}, 'sign_out after rotation: refresh');
	is(sign_out($c->{access_token})->{status}, 200, 'sign_out after rotation: 200');
	access_401($c->{access_token}, 'sign_out after rotation: access refused');
	refresh_401($c->{refresh_token}, 'sign_out after rotation: refresh refused');
	refresh_401($b->{refresh_token}, 'sign_out after rotation: spent refresh refused');

	# a refresh token is not an access token
	my $e = sign_in('alice', 't1.test', 'sign_out with the refresh token');
	$t->is_error(sign_out($e->{refresh_token}), 401, 'INVALID_TOKEN',
	    'sign_out with a refresh token as Bearer');
	access_ok($e->{access_token}, 'the session survives a sign_out with its refresh token');

	$t->is_error($t->request('POST', '/api/auth/sign_out'), 401, 'INVALID_TOKEN',
	    'sign_out without Authorization');
	for my $h ('Bearer', 'Bearer ', "Basic $e->{access_token}", $e->{access_token},
	    'Bearer ' . random_token(), 'Bearer x', "Bearer $e->{access_token}x")
	{
		(my $shown = $h) =~ s/[A-Za-z0-9_-]{40,}/<token>/g;
		$t->is_error($t->request('POST', '/api/auth/sign_out',
		    headers => { Authorization => $h }), 401, 'INVALID_TOKEN',
		    "sign_out with Authorization: $shown");
	}
	access_ok($e->{access_token}, 'the session survives bad sign_out attempts');
}

###############################################################################
# revocation from outside: pbx-authctl, the database, disabled users/tenants

{
	my $a = sign_in('alice', 't1.test', 'ctl revoke');
	my $id = session_of_access($a->{access_token});
	ctl_ok('session', 'revoke', $id);
	access_401($a->{access_token}, 'session revoke ID: access refused');
	refresh_401($a->{refresh_token}, 'session revoke ID: refresh refused');

	my $b = sign_in('alice', 't1.test', 'revoked in SQL');
	$t->psql("UPDATE sessions SET revoked_at = now() WHERE id = "
	    . session_of_access($b->{access_token}));
	access_401($b->{access_token}, 'revoked in SQL: access refused');
	refresh_401($b->{refresh_token}, 'revoked in SQL: refresh refused');

	my $c = sign_in('bob', 't1.test', 'user disabled');
	$t->psql("UPDATE users SET enabled = false WHERE username = 'bob'");
	access_401($c->{access_token}, 'disabled user (SQL): access refused');
	refresh_401($c->{refresh_token}, 'disabled user (SQL): refresh refused');
	$t->psql("UPDATE users SET enabled = true WHERE username = 'bob'");

	my $d = sign_in('bob', 't1.test', 'user disabled by ctl');
	ctl_ok('user', 'set', '--domain', 't1.test', 'bob', 'enabled=false');
	access_401($d->{access_token}, 'user set enabled=false: access refused');
	refresh_401($d->{refresh_token}, 'user set enabled=false: refresh refused');
	ctl_ok('user', 'set', '--domain', 't1.test', 'bob', 'enabled=true');
	access_401($d->{access_token}, 'user re-enabled: the old access token stays dead');

	my $e = sign_in('dave', 't2.test', 'tenant disabled');
	ctl_ok('tenant', 'disable', 't2.test');
	my $ok = $t->wait_until(sub { auth_user($e->{access_token})->{status} == 401 }, 3);
	ok($ok, 'tenant disabled: access refused within 3 s');
	refresh_401($e->{refresh_token}, 'tenant disabled: refresh refused');
}

###############################################################################
# validation of POST /api/auth/refresh_token

{
	my %bad = (
		'missing refresh_token' => '{}',
		'other key only'        => '{"refreshToken":"x"}',
		'number'                => '{"refresh_token":42}',
		'null'                  => '{"refresh_token":null}',
		'array'                 => '{"refresh_token":["x"]}',
		'object'                => '{"refresh_token":{}}',
		'boolean'               => '{"refresh_token":true}',
		'malformed JSON'        => '{"refresh_token":',
		'trailing garbage'      => '{"refresh_token":"x"} x',
		'not an object'         => '["refresh_token"]',
		'a bare string'         => '"x"',
		'empty body'            => '',
	);
	for my $case (sort keys %bad) {
		my $r = $t->request('POST', '/api/auth/refresh_token', body => $bad{$case},
		    headers => { 'Content-Type' => 'application/json' });
		$t->is_error($r, 400, 'VALIDATE_FAILED', "refresh_token: $case");
	}
	my $r = $t->request('POST', '/api/auth/refresh_token',
	    body => 'refresh_token=' . random_token(),
	    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' });
	$t->is_error($r, 415, 'UNSUPPORTED_MEDIA_TYPE', 'refresh_token: form body');
	$r = $t->request('POST', '/api/auth/refresh_token');
	ok($r->{status} == 400 || $r->{status} == 415, 'refresh_token: no body: 400 or 415')
	    or diag("$r->{status} $r->{content}");

	for my $m (qw(GET PUT DELETE)) {
		$r = $t->request($m, '/api/auth/refresh_token');
		$t->is_error($r, 405, 'METHOD_NOT_ALLOWED', "$m /api/auth/refresh_token");
		is($r->{headers}{allow}, 'POST', "$m /api/auth/refresh_token: Allow: POST");
	}
	$r = $t->request('GET', '/api/auth/sign_out');
	$t->is_error($r, 405, 'METHOD_NOT_ALLOWED', 'GET /api/auth/sign_out');
	is($r->{headers}{allow}, 'POST', 'GET /api/auth/sign_out: Allow: POST');
	$r = $t->request('POST', '/api/auth/user');
	$t->is_error($r, 405, 'METHOD_NOT_ALLOWED', 'POST /api/auth/user');
	is($r->{headers}{allow}, 'GET, HEAD', 'POST /api/auth/user: Allow: GET, HEAD');

	# well-formed requests with tokens that are not ours: 401
	my $good = random_token();
	my %tok = (
		'empty string'            => '',
		'one character'           => 'a',
		'42 characters'           => substr($good, 0, 42),
		'44 characters'           => $good . 'A',
		'1000 characters'         => 'A' x 1000,
		'unknown, right shape'    => $good,
		'standard base64 chars'   => substr($good, 0, 41) . '+/',
		'padding'                 => substr($good, 0, 42) . '=',
		'space inside'            => substr($good, 0, 20) . ' ' . substr($good, 21),
		'trailing newline'        => substr($good, 0, 42) . "\n",
		'non-ASCII'               => substr($good, 0, 42) . "\x{e9}",
		'SQL'                     => "' OR '1'='1",
		'the access token'        => $s->{access_token},
	);
	for my $case (sort keys %tok) {
		refresh_401($tok{$case}, "refresh_token: $case");
	}
	access_ok($s->{access_token}, 'an access token used as a refresh token changes nothing');
	ok(!revoked(session_of_access($s->{access_token})),
	    'its session is not revoked');

	# extra keys are ignored
	my $x = sign_in('alice', 't1.test', 'extra keys');
	$r = post_json('/api/auth/refresh_token',
	    '{"grant_type":"refresh_token","refresh_token":"' . $x->{refresh_token} . '"}');
	is($r->{status}, 200, 'refresh_token with an extra key: 200') or diag($r->{content});
	$r = post_json('/api/auth/refresh_token', { refresh_token => $x->{refresh_token} },
	    'Content-Type' => 'application/json; charset=utf-8');
	$t->is_error($r, 401, 'INVALID_TOKEN', 'charset=utf-8 accepted (spent token: 401)');

	# the access token of auth/user: garbage of every shape is 401
	for my $case ('empty string', 'one character', '42 characters', '44 characters',
	    '1000 characters', 'unknown, right shape', 'standard base64 chars', 'padding')
	{
		access_401($tok{$case}, "auth/user with Bearer: $case") if length $tok{$case};
	}
	$t->is_error($t->get('/api/auth/user'), 401, 'INVALID_TOKEN',
	    'auth/user without Authorization');
	access_401($s->{refresh_token}, 'auth/user with the refresh token as Bearer');
}

###############################################################################
# the real clock: lifetimes of a few seconds, nothing moved in the database

{
	$t->stop_nginx;
	$t->stop_daemon;
	$t->write_config(access_token_ttl => 2, refresh_token_ttl => 6);
	$t->start_daemon->start_nginx;
	local $EXPECT_TTL = 2;

	# Lifetimes run from when the server made each session, which is before
	# its response arrived: wait from the arrival of the later one (a slow
	# sign-in, under valgrind, must not make the test look too early).
	my $x = sign_in('carol', 't1.test', 'short lifetimes, session X');
	access_ok($x->{access_token}, 'short lifetimes: fresh access token works');
	my $y = sign_in('carol', 't1.test', 'short lifetimes, session Y');
	my $t0 = time;
	my $xid = session_of_access($x->{access_token});

	sleep($t0 + 2.6 - time);
	access_401($x->{access_token}, 'access token after access_token_ttl (waited)');
	access_401($y->{access_token}, 'the other access token too (waited)');
	my $y2 = refresh_ok($y->{refresh_token}, 'refresh after the access expiry (waited)');
	access_ok($y2->{access_token}, 'the refreshed access token works (waited)');

	sleep($t0 + 6.6 - time);
	refresh_401($x->{refresh_token}, 'refresh token after refresh_token_ttl (waited)');
	ok(!revoked($xid), 'an expired refresh token revokes nothing');

	$t->stop_nginx;
	$t->stop_daemon;
	$t->write_config(access_token_ttl => $ACCESS_TTL, refresh_token_ttl => $REFRESH_TTL);
}

###############################################################################
# the concurrent-refresh race

# Fire $n POST /api/auth/refresh_token with $rt at once: every child connects
# to nginx, says it is ready, waits for the gate (a pipe the parent closes),
# sends its request and writes the raw response to a file.
sub race {
	my ($rt, $n) = @_;
	my $body = $JSON->encode({ refresh_token => $rt });
	my $req = "POST /api/auth/refresh_token HTTP/1.1\r\nHost: localhost\r\n"
	    . "Content-Type: application/json\r\nContent-Length: " . length($body)
	    . "\r\nConnection: close\r\n\r\n$body";
	pipe(my $gate_r, my $gate_w) or die "pipe: $!";
	pipe(my $ready_r, my $ready_w) or die "pipe: $!";
	my @kids;
	for my $i (1 .. $n) {
		my $file = $t->dir . "/race.$i";
		unlink $file;
		my $pid = fork;
		die "fork: $!" unless defined $pid;
		if ($pid == 0) {
			close $gate_w;
			close $ready_r;
			my $resp = '';
			eval {
				my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
				    PeerPort => $t->http_port, Proto => 'tcp', Timeout => 10)
				    or die "connect: $!";
				syswrite($ready_w, 'r');
				close $ready_w;
				sysread($gate_r, my $x, 1);    # EOF when the parent closes it
				syswrite($sock, $req) == length $req or die "write: $!";
				my $sel = IO::Select->new($sock);
				my $deadline = time + 20;
				while (time < $deadline) {
					next unless $sel->can_read(0.2);
					my $got = sysread($sock, my $buf, 65536);
					last unless $got;
					$resp .= $buf;
				}
				1;
			} or $resp = "ERROR $@";
			if (open my $fh, '>', $file) {
				print $fh $resp;
				close $fh;
			}
			POSIX::_exit(0);
		}
		push @kids, [ $pid, $file ];
	}
	close $gate_r;
	close $ready_w;
	my $ready = 0;
	my $sel = IO::Select->new($ready_r);
	my $deadline = time + 20;
	while ($ready < $n && time < $deadline) {
		next unless $sel->can_read(0.5);
		my $got = sysread($ready_r, my $buf, 64);
		last unless $got;
		$ready += $got;
	}
	close $ready_r;
	my $t0 = time;
	close $gate_w;    # go
	my @res;
	for my $k (@kids) {
		my $end = time + 30;
		while (waitpid($k->[0], POSIX::WNOHANG()) == 0) {
			if (time > $end) { kill 'KILL', $k->[0]; waitpid($k->[0], 0); last }
			sleep 0.02;
		}
		my $raw = $t->read_file($k->[1]);
		unlink $k->[1];
		my $res = $raw =~ /^ERROR/ ? { status => 0, content => $raw }
		    : $t->parse_http($raw);
		if ($t->can('secret') && ref $res->{json} eq 'HASH') {
			$t->secret($res->{json}{$_}, "$_ won in the race")
			    for qw(access_token refresh_token);
		}
		push @res, $res;
	}
	return { ready => $ready, secs => time - $t0, res => \@res };
}

{
	# Plenty of workers for real parallelism; a long grace so that the
	# losers of the race are within it however slow the machine is.
	$t->stop_nginx;
	$t->stop_daemon;
	$t->write_config(workers => 8, refresh_reuse_grace => 60);
	$t->start_daemon->start_nginx;

	my $N = 20;
	my $reuse_rows = $t->psql("SELECT count(*) FROM audit_log WHERE event = 'refresh_reuse'");
	for my $round (1 .. 3) {
		my $name = "race round $round";
		my $a = sign_in('alice', 't1.test', $name);
		my $id = session_of_access($a->{access_token});
		my $b = refresh_ok($a->{refresh_token}, "$name: a first rotation");

		my $race = race($b->{refresh_token}, $N);
		is($race->{ready}, $N, "$name: $N clients connected before the start");
		my @res = @{$race->{res}};
		my @won = grep { $_->{status} == 200 } @res;
		my @lost = grep { $_->{status} == 401 } @res;
		is(scalar @won, 1, "$name: exactly one 200")
		    or diag(join "\n", map { "$_->{status} $_->{content}" } @res);
		is(scalar @lost, $N - 1, "$name: all others 401")
		    or diag(join "\n", map { "$_->{status} $_->{content}" }
			grep { $_->{status} != 401 } @res);
		is(scalar(grep { ($_->{json}{errors}[0]{code} // '') eq 'INVALID_TOKEN' } @lost),
		    scalar @lost, "$name: the 401s are INVALID_TOKEN");
		note(sprintf "$name: %d requests in %.2f s", $N, $race->{secs});
		ok(!revoked($id), "$name: the session is not revoked");
		is($t->psql("SELECT count(*) FROM audit_log WHERE event = 'refresh_reuse'"),
		    $reuse_rows, "$name: no new refresh_reuse audit row");
		next unless @won == 1;

		my $w = $won[0]{json} // {};
		like($w->{access_token} // '', $TOKEN_RE, "$name: the winner got an access token");
		like($w->{refresh_token} // '', $TOKEN_RE, "$name: the winner got a refresh token");
		is(session_of_access($w->{access_token}), $id,
		    "$name: the winner's access token is the session's");
		access_ok($w->{access_token}, "$name: the winner's access token works");
		access_401($b->{access_token}, "$name: the raced access token is gone");
		my $c = refresh_ok($w->{refresh_token}, "$name: the winner's refresh token works");
		access_ok($c->{access_token}, "$name: and the next access token works");
		ok(!revoked($id), "$name: the session still lives");
		is($t->psql("SELECT count(*) FROM spent_refresh_tokens WHERE session_id = $id"), 0,
		    "$name: no row per spent refresh token (two rotations and the race)");
		for my $old ($a, $b, $w) {
			refresh_401($old->{refresh_token}, "$name: a spent token of the chain, in the grace");
		}
		ok(!revoked($id), "$name: in the grace, the spent tokens do not revoke");
		is(sign_out($c->{access_token})->{status}, 200, "$name: sign_out");
	}

	# a race of refreshes of distinct sessions: all succeed
	my @ts = map { sign_in('alice', 't1.test', "parallel sessions $_") } 1 .. 5;
	my @pids;
	for my $i (0 .. $#ts) {
		my $pid = fork;
		die "fork: $!" unless defined $pid;
		if ($pid == 0) {
			my $r = refresh($ts[$i]{refresh_token});
			open my $fh, '>', $t->dir . "/par.$i";
			print $fh $r->{status};
			close $fh;
			POSIX::_exit(0);
		}
		push @pids, $pid;
	}
	waitpid($_, 0) for @pids;
	is(join(' ', map { $t->read_file("par.$_") } 0 .. $#ts), join(' ', ('200') x @ts),
	    'parallel refreshes of different sessions all succeed');
}

###############################################################################

unlike($t->daemon_log, qr/\Q$s->{access_token}\E|\Q$s->{refresh_token}\E/,
    'tokens never appear in the daemon log');
my $pw = join '|', map { quotemeta } values %PW;
unlike($t->daemon_log, qr/$pw/, 'passwords never appear in the daemon log');

my @five = grep { $_->[1] >= 500 } $t->responses;
is(scalar @five, 0, 'no 5xx response') or diag(explain \@five);

$t->done_testing;
