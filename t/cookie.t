#!/usr/bin/perl

# Cookie sessions of the web portal: POST /api/login (Set-Cookie and its
# attributes, with cookie_secure off and on, and cookie_name), GET /api/login
# (the derived access token: stable while valid, re-issued near and after its
# expiry), POST /api/logout (clears the cookie, revokes the session), the
# failures (no/garbage/expired/revoked cookie, wrong password, validation),
# the two-factor answer without a cookie, and the Origin check on the
# state-changing cookie requests (allowed_origins, web_domain,
# public_base_url; "null" and look-alikes refused).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex hmac_sha256);
use JSON::PP ();
use MIME::Base64 qw(encode_base64url);
use Test::More;
use Time::HiRes qw(sleep time);
use Time::Local qw(timegm);

use Test::PbxAuth;

my $REFRESH_TTL = 7200;
my $ACCESS_TTL = 3600;    # the default
my @ALLOWED = ('https://app.test', 'http://localhost:8080');
my $AUTH_FAILED = '{"errors":[{"code":"AUTHENTICATION_FAILED",'
    . '"message":"Authentication Error","detail":null}]}';

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->write_config(cookie_secure => 'off', refresh_token_ttl => $REFRESH_TTL,
    allowed_origins => join(' ', @ALLOWED),
    # every request comes from 127.0.0.1: failures must not block it
    throttle_ip_failures => 0, throttle_account_failures => 0);
$t->start_pg->start_daemon->start_nginx;

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;
my $TOKEN_RE = qr/^[A-Za-z0-9_-]{43}\z/;
my %PW = (alice => 'Secret-pass1', tfa => 'Second-pass2', sam => 'System-pass3');
my $NAME = 'pbx_session';    # cookie_name; changed for the second part
my $SECURE = 0;

###############################################################################
# helpers

sub ctl_ok {
	my (@args) = @_;
	my @shown = grep { !ref } @args;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, "pbx-authctl @shown") or diag($out . $err);
	return $out;
}

sub creds {
	my ($user, $domain) = @_;
	my %b = (username => $user, password => $PW{$user});
	$b{domain} = $domain if defined $domain;
	return \%b;
}

sub post_login {
	my ($body, %h) = @_;
	$body = $JSON->encode($body) if ref $body;
	return $t->request('POST', '/api/login', body => $body,
	    headers => { 'Content-Type' => 'application/json', %h });
}

sub get_login {
	my ($cookie, %h) = @_;
	$h{Cookie} = "$NAME=$cookie" if defined $cookie;
	return $t->get('/api/login', headers => \%h);
}

sub logout {
	my ($cookie, %h) = @_;
	$h{Cookie} = "$NAME=$cookie" if defined $cookie;
	return $t->request('POST', '/api/logout', headers => \%h);
}

sub set_cookies {
	my ($r) = @_;
	my $h = $r->{headers}{'set-cookie'};
	return () unless defined $h;
	return ref $h ? @$h : ($h);
}

# "name=value; A=b; C" -> (name, value, { lc attr => value or '' }, [attr names])
sub parse_cookie {
	my ($sc) = @_;
	my ($nv, @attrs) = split /;\s*/, $sc;
	my ($n, $v) = $nv =~ /^([^=]*)=(.*)$/ ? ($1, $2) : ($nv, undef);
	my (%a, @order);
	for (@attrs) {
		my ($k, $val) = /^([^=]*)(?:=(.*))?$/;
		$a{lc $k} = $val // '';
		push @order, $k;
	}
	return ($n, $v, \%a, \@order);
}

sub no_cookie {
	my ($r, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my @sc = set_cookies($r);
	is(scalar @sc, 0, "$name: no Set-Cookie") or diag(join "\n", @sc);
}

sub rfc3339_epoch {
	my ($s) = @_;
	my @f = ($s // '') =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z\z/ or return undef;
	return timegm($f[5], $f[4], $f[3], $f[2], $f[1] - 1, $f[0]);
}

# A 200 login status body: {access_token, expires_at, expires_in, role}.
sub status_ok {
	my ($r, $name, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($r->{status}, 200, "$name: 200") or diag($r->{content});
	$t->has_common_headers($r, $name);
	my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
	is_deeply([ $t->json_keys($r->{content}) ],
	    [qw(access_token expires_at expires_in role)], "$name: keys in order");
	like($j->{access_token} // '', $TOKEN_RE, "$name: access_token is 43 base64url chars");
	my $at = rfc3339_epoch($j->{expires_at});
	ok(defined $at, "$name: expires_at is RFC 3339 UTC ("
	    . ($j->{expires_at} // 'undef') . ')');
	ok(($r->{content} // '') =~ /"expires_in":\s*\d+\s*,/, "$name: expires_in is an integer");
	my $in = $j->{expires_in} // -1;
	my ($lo, $hi) = @{$o{expires_in} // [ $ACCESS_TTL - 10, $ACCESS_TTL ]};
	ok($in >= $lo && $in <= $hi, "$name: expires_in in $lo..$hi") or diag("expires_in $in");
	ok(defined $at && abs($at - (time + $in)) <= 3,
	    "$name: expires_at is now + expires_in") or diag("$j->{expires_at} vs $in");
	is($j->{role}, $o{role} // 'StandardUser', "$name: role");
	return $j;
}

# A successful POST /api/login: the cookie (returned) and its attributes.
sub login_ok {
	my ($body, $name, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $r = post_login($body, %{$o{headers} || {}});
	my $j = status_ok($r, $name, %o);
	my @sc = set_cookies($r);
	is(scalar @sc, 1, "$name: one Set-Cookie") or return (undef, $j);
	my ($n, $v, $a, $order) = parse_cookie($sc[0]);
	is($n, $NAME, "$name: cookie name $NAME");
	like($v // '', $TOKEN_RE, "$name: cookie value is 43 base64url chars");
	is($a->{path}, '/api', "$name: Path=/api");
	is($a->{'max-age'}, $REFRESH_TTL, "$name: Max-Age=$REFRESH_TTL (refresh_token_ttl)");
	ok(exists $a->{httponly} && $a->{httponly} eq '', "$name: HttpOnly");
	is($a->{samesite}, 'Lax', "$name: SameSite=Lax");
	if ($SECURE) {
		ok(exists $a->{secure} && $a->{secure} eq '', "$name: Secure");
	} else {
		ok(!exists $a->{secure}, "$name: no Secure (cookie_secure = off)");
	}
	ok(!exists $a->{domain}, "$name: no Domain (host-only cookie)");
	is($sc[0], "$NAME=" . ($v // '') . "; Path=/api; Max-Age=$REFRESH_TTL; HttpOnly; "
	    . 'SameSite=Lax' . ($SECURE ? '; Secure' : ''), "$name: Set-Cookie as the plan writes it")
	    if defined $v;
	isnt($v, $j->{access_token}, "$name: the cookie is not the access token");
	return ($v, $j);
}

# POST /api/logout answered 204 with a Set-Cookie clearing the cookie.
sub logout_ok {
	my ($r, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($r->{status}, 204, "$name: 204") or diag($r->{content});
	is($r->{content} // '', '', "$name: empty body");
	$t->has_common_headers($r, $name);
	my @sc = set_cookies($r);
	is(scalar @sc, 1, "$name: one Set-Cookie") or return;
	my ($n, $v, $a) = parse_cookie($sc[0]);
	is($n, $NAME, "$name: clears $NAME");
	ok(defined $v && $v !~ $TOKEN_RE, "$name: the cleared cookie holds no token")
	    or diag($sc[0]);
	is($a->{'max-age'}, '0', "$name: Max-Age=0");
	is($a->{path}, '/api', "$name: Path=/api");
}

sub auth_user {
	my ($access) = @_;
	return $t->get('/api/auth/user', headers => { Authorization => "Bearer $access" });
}

sub hash_lit { "'\\x" . sha256_hex($_[0]) . "'::bytea" }

sub session_of_cookie {
	my ($c) = @_;
	return $t->psql('SELECT id FROM sessions WHERE refresh_hash = ' . hash_lit($c));
}

sub revoked {
	my ($id) = @_;
	return $t->psql("SELECT revoked_at IS NOT NULL FROM sessions WHERE id = $id") eq 't';
}

sub sessions_count { $t->psql('SELECT count(*) FROM sessions') }

sub random_token { encode_base64url(join '', map { chr int rand 256 } 1 .. 32) }

###############################################################################
# set-up

ctl_ok('tenant', 'add', 't1.test', '--name', 'T1');
ctl_ok('user', 'add', '--domain', 't1.test', 'alice', { stdin => "$PW{alice}\n" });
ctl_ok('user', 'add', '--domain', 't1.test', 'tfa', '--two-factor',
    { stdin => "$PW{tfa}\n" });
ctl_ok('user', 'add', 'sam', { stdin => "$PW{sam}\n" });

###############################################################################
# POST /api/login, GET /api/login, the access token

my ($cookie, $body) = login_ok(creds('alice', 't1.test'), 'POST /api/login');
my $sid = session_of_cookie($cookie);
ok($sid, 'the session row holds the cookie hash as refresh_hash');
{
	my ($flav, $acc_ok, $ref) = split /\|/, $t->psql("SELECT flavour, "
	    . "access_hash = " . hash_lit($body->{access_token}) . ", "
	    . "extract(epoch FROM refresh_expires_at - now())::int FROM sessions WHERE id = $sid");
	is($flav, 'cookie', 'a cookie session');
	is($acc_ok, 't', 'access_hash is the SHA-256 of the access token');
	ok($ref > $REFRESH_TTL - 10 && $ref <= $REFRESH_TTL,
	    'refresh_expires_at is refresh_token_ttl ahead') or diag($ref);
	my $gen = $t->psql("SELECT access_gen FROM sessions WHERE id = $sid");
	is($body->{access_token}, encode_base64url(hmac_sha256("pbx-auth access $gen", $cookie)),
	    'access token = base64url(HMAC-SHA256(cookie, "pbx-auth access <gen>")) (plan)');
	is($t->psql("SELECT count(*) FROM audit_log WHERE event = 'sign_in' "
	    . "AND outcome = 'success' AND detail = 'cookie' AND username = 'alice'"), 1,
	    'audit row sign_in/success/cookie');
}

my $r = get_login($cookie);
my $g1 = status_ok($r, 'GET /api/login');
no_cookie($r, 'GET /api/login');
is($g1->{access_token}, $body->{access_token}, 'GET /api/login: the token POST returned');
$r = get_login($cookie);
my $g2 = status_ok($r, 'GET /api/login again');
is($g2->{access_token}, $g1->{access_token}, 'GET /api/login: the same token on two calls');
is($g2->{expires_at}, $g1->{expires_at}, 'GET /api/login: the same expires_at');

$r = auth_user($g1->{access_token});
is($r->{status}, 200, 'the cookie access token works as Bearer') or diag($r->{content});
is($r->{json}{role}, 'StandardUser', 'auth/user role');
ok($r->{json}{password_verified}, 'auth/user password_verified after a password login');

# the cookie among others; other names are not ours
$r = $t->get('/api/login', headers => { Cookie => "a=b; $NAME=$cookie; c=d" });
is($r->{status}, 200, 'GET /api/login: cookie among others') or diag($r->{content});
$t->is_error($t->get('/api/login', headers => { Cookie => "other=$cookie" }), 401,
    'INVALID_TOKEN', 'GET /api/login: the token under another cookie name');
$t->is_error($t->get('/api/login', headers => { Authorization => "Bearer $cookie" }),
    401, 'INVALID_TOKEN', 'GET /api/login: the cookie value as Bearer, no cookie');

# a system-level account
my ($sam_cookie) = login_ok(creds('sam'), 'POST /api/login, system account',
    role => 'SystemAdmin');
status_ok(get_login($sam_cookie), 'GET /api/login, system account', role => 'SystemAdmin');

###############################################################################
# expiry of the derived access token

{
	# more than 60 s left: the same token, with the stored expiry
	$t->psql("UPDATE sessions SET access_expires_at = now() + interval '120 s' "
	    . "WHERE id = $sid");
	my $j = status_ok(get_login($cookie), '120 s left', expires_in => [ 110, 120 ]);
	is($j->{access_token}, $g1->{access_token}, '120 s left: the same access token');

	# under 60 s left: the next one
	$t->psql("UPDATE sessions SET access_expires_at = now() + interval '30 s' "
	    . "WHERE id = $sid");
	my $gen0 = $t->psql("SELECT access_gen FROM sessions WHERE id = $sid");
	$j = status_ok(get_login($cookie), '30 s left');
	isnt($j->{access_token}, $g1->{access_token}, '30 s left: a new access token');
	cmp_ok($t->psql("SELECT access_gen FROM sessions WHERE id = $sid"), '>', $gen0,
	    '30 s left: access_gen bumped');
	is(auth_user($j->{access_token})->{status}, 200, '30 s left: the new token works');
	my $j2 = status_ok(get_login($cookie), 'after the renewal');
	is($j2->{access_token}, $j->{access_token}, 'after the renewal: stable again');

	# expired
	$t->psql("UPDATE sessions SET access_expires_at = now() - interval '1 s' "
	    . "WHERE id = $sid");
	$t->is_error(auth_user($j->{access_token}), 401, 'INVALID_TOKEN',
	    'expired cookie access token refused');
	my $k = status_ok(get_login($cookie), 'GET /api/login after expiry');
	isnt($k->{access_token}, $j->{access_token}, 'after expiry: a different access token');
	isnt($k->{access_token}, $g1->{access_token}, 'after expiry: not an earlier one either');
	$r = auth_user($k->{access_token});
	is($r->{status}, 200, 'after expiry: the new access token works') or diag($r->{content});
	$t->is_error(auth_user($j->{access_token}), 401, 'INVALID_TOKEN',
	    'after expiry: the old access token is still refused');
	$t->is_error(auth_user($g1->{access_token}), 401, 'INVALID_TOKEN',
	    'after expiry: the first access token is refused');
	is(status_ok(get_login($cookie), 'after expiry, again')->{access_token},
	    $k->{access_token}, 'after expiry: the new token is stable');
	$body = $k;
}

###############################################################################
# the cookie and bearer sessions do not mix

{
	$t->is_error($t->request('POST', '/api/auth/refresh_token',
	    body => $JSON->encode({ refresh_token => $cookie }),
	    headers => { 'Content-Type' => 'application/json' }), 401, 'INVALID_TOKEN',
	    'the cookie value as a refresh_token');
	$t->is_error($t->request('POST', '/api/auth/refresh_token',
	    body => $JSON->encode({ refresh_token => $body->{access_token} }),
	    headers => { 'Content-Type' => 'application/json' }), 401, 'INVALID_TOKEN',
	    'the cookie access token as a refresh_token');
	$t->is_error(get_login($body->{access_token}), 401, 'INVALID_TOKEN',
	    'the access token as the cookie');
	is(status_ok(get_login($cookie), 'the cookie after those attempts')->{access_token},
	    $body->{access_token}, 'the cookie session is unchanged by them');
	ok(!revoked($sid), 'and not revoked');

	my $b = $t->request('POST', '/api/auth/sign_in',
	    body => $JSON->encode(creds('alice', 't1.test')),
	    headers => { 'Content-Type' => 'application/json' });
	is($b->{status}, 200, 'a bearer session') or diag($b->{content});
	no_cookie($b, 'POST /api/auth/sign_in');
	my $bt = $b->{json} // {};
	$t->is_error(get_login($bt->{refresh_token} // 'x'), 401, 'INVALID_TOKEN',
	    "a bearer session's refresh token as the cookie");
	$t->is_error(get_login($bt->{access_token} // 'x'), 401, 'INVALID_TOKEN',
	    "a bearer session's access token as the cookie");
	my $rr = $t->request('POST', '/api/auth/refresh_token',
	    body => $JSON->encode({ refresh_token => $bt->{refresh_token} }),
	    headers => { 'Content-Type' => 'application/json' });
	is($rr->{status}, 200, 'the bearer session is unchanged by that')
	    or diag($rr->{content});
}

###############################################################################
# sign_out with the cookie session's access token

{
	my ($c) = login_ok(creds('alice', 't1.test'), 'login for sign_out');
	my $a = get_login($c)->{json}{access_token} // '';
	my $id = session_of_cookie($c);
	$t->is_error(auth_user($c), 401, 'INVALID_TOKEN', 'the cookie value as Bearer');
	my $log_at = $t->log_offset;
	$r = $t->request('POST', '/api/auth/sign_out', headers => { Authorization => "Bearer $a" });
	is($r->{status}, 200, 'sign_out with a cookie session access token') or diag($r->{content});
	ok(revoked($id), 'sign_out revoked the cookie session');
	is($t->psql("SELECT detail FROM audit_log WHERE event = 'sign_out' "
	    . "ORDER BY id DESC LIMIT 1"), 'cookie', 'sign_out audit row: detail cookie');
	my $line = $t->wait_for_log(qr/ audit event=sign_out /, 2, $log_at);
	like($line // '', qr/ detail=cookie request_id=[0-9a-f]{32}$/,
	    'sign_out audit log line: detail cookie, as in the audit row') or diag($line);
	$t->is_error(get_login($c), 401, 'INVALID_TOKEN', 'GET /api/login after sign_out');
	$t->is_error(auth_user($a), 401, 'INVALID_TOKEN', 'the access token after sign_out');
}

###############################################################################
# logout

{
	my ($c, $j) = login_ok(creds('alice', 't1.test'), 'login for logout');
	my $id = session_of_cookie($c);
	my $audit = "SELECT count(*) FROM audit_log WHERE event IN ('sign_out', 'logout') "
	    . "AND username = 'alice' AND detail = 'cookie'";
	my $rows = $t->psql($audit);
	status_ok(get_login($c), 'before logout');
	logout_ok(logout($c), 'POST /api/logout');
	ok(revoked($id), 'logout revoked the session');
	$t->is_error(get_login($c), 401, 'INVALID_TOKEN', 'GET /api/login after logout');
	$t->is_error(auth_user($j->{access_token}), 401, 'INVALID_TOKEN',
	    'the access token after logout');
	is($t->psql($audit), $rows + 1,
	    'logout: one audit row (sign_out or logout, detail cookie)');

	logout_ok(logout($c), 'logout with the revoked cookie');
	logout_ok(logout(), 'logout without a cookie');
	logout_ok(logout(random_token()), 'logout with an unknown cookie');
	logout_ok(logout('garbage'), 'logout with a garbage cookie');
	logout_ok($t->request('POST', '/api/logout', headers => { 'Content-Type' =>
	    'application/json' }, body => '{}'), 'logout with a JSON body');
	ok(!revoked($sid), 'those logouts left the other session alone');
	status_ok(get_login($cookie), 'the first session after the logouts',
	    expires_in => [ 1, $ACCESS_TTL ]);    # its token was issued a while ago
}

###############################################################################
# GET /api/login failures

{
	my $good = random_token();
	$t->is_error(get_login(), 401, 'INVALID_TOKEN', 'GET /api/login without a cookie');
	my %bad = (
		'empty value'         => '',
		'garbage'             => 'garbage',
		'42 characters'       => substr($cookie, 0, 42),
		'44 characters'       => $cookie . 'A',
		'unknown token'       => $good,
		'1000 characters'     => 'A' x 1000,
	);
	for my $case (sort keys %bad) {
		my $r = get_login($bad{$case});
		$t->is_error($r, 401, 'INVALID_TOKEN', "GET /api/login: cookie $case");
	}

	my ($c) = login_ok(creds('alice', 't1.test'), 'login to expire');
	my $id = session_of_cookie($c);
	$t->psql("UPDATE sessions SET refresh_expires_at = now() - interval '1 s' WHERE id = $id");
	$t->is_error(get_login($c), 401, 'INVALID_TOKEN', 'GET /api/login: expired session');

	my ($c2, $j2) = login_ok(creds('alice', 't1.test'), 'login to revoke in SQL');
	$t->psql("UPDATE sessions SET revoked_at = now() WHERE id = " . session_of_cookie($c2));
	$t->is_error(get_login($c2), 401, 'INVALID_TOKEN', 'GET /api/login: revoked session');
	$t->is_error(auth_user($j2->{access_token}), 401, 'INVALID_TOKEN',
	    'access token of a revoked cookie session');

	my ($c3) = login_ok(creds('alice', 't1.test'), 'login to revoke with pbx-authctl');
	ctl_ok('session', 'revoke', session_of_cookie($c3));
	$t->is_error(get_login($c3), 401, 'INVALID_TOKEN', 'GET /api/login: session revoke ID');

	for my $m (qw(PUT DELETE)) {
		my $r = $t->request($m, '/api/login');
		$t->is_error($r, 405, 'METHOD_NOT_ALLOWED', "$m /api/login");
		is(join(',', sort split /,\s*/, $r->{headers}{allow} // ''), 'GET,HEAD,POST',
		    "$m /api/login: Allow lists GET, HEAD and POST");
	}
	$r = $t->request('GET', '/api/logout');
	$t->is_error($r, 405, 'METHOD_NOT_ALLOWED', 'GET /api/logout');
	is($r->{headers}{allow}, 'POST', 'GET /api/logout: Allow: POST');
}

###############################################################################
# POST /api/login failures: credentials, two-factor, validation

{
	my $before = sessions_count();
	my %fail = (
		'wrong password' => { username => 'alice', password => 'Wrong-pass1',
		    domain => 't1.test' },
		'unknown user'   => { username => 'nobody', password => $PW{alice},
		    domain => 't1.test' },
		'unknown tenant' => { username => 'alice', password => $PW{alice},
		    domain => 'nosuch.test' },
		'tenant user without domain' => { username => 'alice', password => $PW{alice} },
	);
	for my $case (sort keys %fail) {
		my $r = post_login($fail{$case});
		$t->is_error($r, 401, 'AUTHENTICATION_FAILED', "POST /api/login: $case");
		is($r->{content}, $AUTH_FAILED, "POST /api/login: $case: the one failure body");
		no_cookie($r, "POST /api/login: $case");
	}
	is(sessions_count(), $before, 'failed logins create no session');
	is($t->psql("SELECT count(*) FROM audit_log WHERE event = 'sign_in' "
	    . "AND outcome = 'failure' AND detail = 'cookie'"), scalar(keys %fail),
	    'an audit row sign_in/failure/cookie for each');

	# two-factor: a token for the next step, no cookie, no session
	$r = post_login(creds('tfa', 't1.test'));
	is($r->{status}, 200, 'two-factor user: 200') or diag($r->{content});
	$t->has_common_headers($r, 'two-factor user');
	is_deeply([ $t->json_keys($r->{content}) ], [qw(two_factor_enabled token)],
	    'two-factor user: keys in order');
	ok(JSON::PP::is_bool($r->{json}{two_factor_enabled}) && $r->{json}{two_factor_enabled},
	    'two-factor user: two_factor_enabled true');
	like($r->{json}{token} // '', $TOKEN_RE, 'two-factor user: token is 43 base64url chars');
	no_cookie($r, 'two-factor user');
	is(sessions_count(), $before, 'two-factor user: no session yet');
	is($t->psql("SELECT kind || ' ' || flavour FROM auth_flows WHERE token_hash = "
	    . hash_lit($r->{json}{token} // '')), 'two_factor cookie',
	    'two-factor user: an auth_flows row, kind two_factor, flavour cookie');
	$t->is_error(get_login($r->{json}{token} // 'x'), 401, 'INVALID_TOKEN',
	    'the two-factor token is not a cookie');

	my %bad = (
		'missing password'  => '{"username":"alice","domain":"t1.test"}',
		'missing username'  => '{"password":"Secret-pass1","domain":"t1.test"}',
		'empty password'    => '{"username":"alice","password":"","domain":"t1.test"}',
		'empty username'    => '{"username":"","password":"Secret-pass1","domain":"t1.test"}',
		'password number'   => '{"username":"alice","password":1234,"domain":"t1.test"}',
		'password null'     => '{"username":"alice","password":null,"domain":"t1.test"}',
		'username array'    => '{"username":["alice"],"password":"x","domain":"t1.test"}',
		'domain number'     => '{"username":"alice","password":"x","domain":1}',
		'65-char username'  => $JSON->encode({ username => 'a' x 65, password => 'x',
		    domain => 't1.test' }),
		'malformed JSON'    => '{"username":"alice",',
		'not an object'     => '["alice","Secret-pass1"]',
		'empty body'        => '',
	);
	for my $case (sort keys %bad) {
		my $r = post_login($bad{$case});
		$t->is_error($r, 400, 'VALIDATE_FAILED', "POST /api/login: $case");
		no_cookie($r, "POST /api/login: $case");
	}
	for my $ct ('text/plain', 'application/x-www-form-urlencoded') {
		my $r = $t->request('POST', '/api/login', headers => { 'Content-Type' => $ct },
		    body => $ct =~ /form/ ? 'username=alice&password=Secret-pass1&domain=t1.test'
		    : $JSON->encode(creds('alice', 't1.test')));
		$t->is_error($r, 415, 'UNSUPPORTED_MEDIA_TYPE', "POST /api/login: $ct");
		no_cookie($r, "POST /api/login: $ct");
	}
	is(sessions_count(), $before, 'invalid requests create no session');
}

###############################################################################
# the Origin check

{
	my $before = sessions_count();
	for my $o ('https://evil.test', 'null', 'http://app.test', 'https://app.test:8443',
	    'https://app.test.evil.test', 'https://sub.app.test', 'http://localhost',
	    'http://localhost:8081', 'https://portal.test', 'https://pbx.example.test')
	{
		my $r = post_login(creds('alice', 't1.test'), Origin => $o);
		$t->is_error($r, 403, 'FORBIDDEN', "POST /api/login, Origin: $o");
		no_cookie($r, "POST /api/login, Origin: $o");
	}
	is(sessions_count(), $before, 'refused origins create no session');

	for my $o ('https://evil.test', 'null', 'https://app.test.evil.test') {
		$t->is_error(logout($cookie, Origin => $o), 403, 'FORBIDDEN',
		    "POST /api/logout, Origin: $o");
	}
	ok(!revoked($sid), 'refused logouts leave the session alive');
	status_ok(get_login($cookie), 'GET /api/login after refused logouts',
	    expires_in => [ 1, $ACCESS_TTL ]);    # its token was issued a while ago

	# allowed_origins
	for my $o (@ALLOWED) {
		my ($c) = login_ok(creds('alice', 't1.test'), "POST /api/login, Origin: $o",
		    headers => { Origin => $o });
		status_ok(get_login($c, Origin => $o), "GET /api/login, Origin: $o");
		logout_ok(logout($c, Origin => $o), "POST /api/logout, Origin: $o");
		$t->is_error(get_login($c), 401, 'INVALID_TOKEN', "logged out, Origin: $o");
	}

	# no Origin header (non-browser clients): allowed; that is every request
	# above without one.

	# https://<web_domain>
	ctl_ok('system', 'set', 'web_domain=portal.test');
	my $ok = $t->wait_until(sub {
		post_login(creds('alice', 't1.test'), Origin => 'https://portal.test')
		    ->{status} == 200 }, 3, 0.2);
	ok($ok, 'Origin https://<web_domain> allowed within 3 s of system set web_domain');
	my ($c) = login_ok(creds('alice', 't1.test'), 'POST /api/login, Origin: web_domain',
	    headers => { Origin => 'https://portal.test' });
	logout_ok(logout($c, Origin => 'https://portal.test'),
	    'POST /api/logout, Origin: web_domain');
	$t->is_error(post_login(creds('alice', 't1.test'), Origin => 'http://portal.test'),
	    403, 'FORBIDDEN', 'web_domain over http:// is not allowed');

	# the origin of public_base_url
	ctl_ok('system', 'set', 'public_base_url=https://pbx.example.test');
	$ok = $t->wait_until(sub {
		post_login(creds('alice', 't1.test'), Origin => 'https://pbx.example.test')
		    ->{status} == 200 }, 3, 0.2);
	ok($ok, 'Origin of public_base_url allowed within 3 s of system set');

	# web_domain changed: the old one is refused again
	ctl_ok('system', 'set', 'web_domain=portal2.test');
	$ok = $t->wait_until(sub {
		post_login(creds('alice', 't1.test'), Origin => 'https://portal.test')
		    ->{status} == 403 }, 3, 0.2);
	ok($ok, 'the previous web_domain is refused after a change');
}

###############################################################################
# the default cookie_secure (on) and another cookie_name

{
	$t->stop_nginx;
	$t->stop_daemon;
	$t->write_config(cookie_secure => undef, cookie_name => 'portal_sid');
	$t->start_daemon->start_nginx;
	$NAME = 'portal_sid';
	$SECURE = 1;

	my ($c, $j) = login_ok(creds('alice', 't1.test'), 'Secure: POST /api/login');
	status_ok(get_login($c), 'Secure: GET /api/login with portal_sid');
	$t->is_error($t->get('/api/login', headers => { Cookie => "pbx_session=$c" }), 401,
	    'INVALID_TOKEN', 'cookie_name = portal_sid: pbx_session is not read');
	status_ok(get_login($cookie), 'cookie_name = portal_sid: the earlier session, renamed',
	    expires_in => [ 1, $ACCESS_TTL ]);    # its token was issued a while ago
	logout_ok(logout($c), 'Secure: POST /api/logout');
	$t->is_error(get_login($c), 401, 'INVALID_TOKEN', 'Secure: GET /api/login after logout');
	$t->is_error(auth_user($j->{access_token}), 401, 'INVALID_TOKEN',
	    'Secure: the access token after logout');

	# explicitly on
	$t->stop_nginx;
	$t->stop_daemon;
	$t->write_config(cookie_secure => 'on', cookie_name => undef);
	$t->start_daemon->start_nginx;
	$NAME = 'pbx_session';
	login_ok(creds('alice', 't1.test'), 'cookie_secure = on: POST /api/login');
}

###############################################################################

my $log = $t->daemon_log;
unlike($log, qr/\Q$cookie\E/, 'the cookie never appears in the daemon log');
unlike($log, qr/\Q$body->{access_token}\E/, 'access tokens never appear in the daemon log');
my $pw = join '|', map { quotemeta } values %PW;
unlike($log, qr/$pw/, 'passwords never appear in the daemon log');

my @five = grep { $_->[1] >= 500 } $t->responses;
is(scalar @five, 0, 'no 5xx response') or diag(explain \@five);

$t->done_testing;
