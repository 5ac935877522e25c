#!/usr/bin/perl

# Microsoft 365 sign-in end to end against the fake identity platform
# (t/lib/fake-idp, one worker so that its caches can be counted):
# - the bearer flavour (POST /api/auth/sign_in/microsoft: the authorization
#   URL's parameters, the flow row) and the cookie flavour (POST
#   /api/login/by_microsoft, Origin checked), the callback in form_post and
#   query mode, tokens and cookie that work, two-factor users of both flavours;
# - login CSRF: every flow asks for response_mode=query and is bound to the
#   browser that started it by the <cookie_name>_oidc cookie (its attributes,
#   Secure unless cookie_secure=off), set by login/by_microsoft or by the
#   start URL that sign_in/microsoft answers (once per flow); a callback
#   without that cookie, with another browser's or with two of them is refused
#   (#error, no session cookie, audit row, no code redeemed) and spends the
#   flow, in both flavours; RFC 9207 iss checked when present; the
#   authorization endpoint taken from discovery; no offline_access;
# - an operator-bound UPN recording the oid; an unbound account (matching
#   email and preferred_username claims) and a disabled user refused like a
#   wrong password, with audit rows;
# - PKCE and the client secret checked by the IdP (a wrong verifier or secret
#   fails), and the PS256 certificate assertion verified by it;
# - each ID token defect refused (bad signature, another key, alg none, HS256
#   with the public key as secret, wrong iss/aud/tid/nonce, expired, not yet
#   valid, no oid) and the 5 minutes of skew; the {tenantid} issuer template;
#   a directory named by domain;
# - key rotation accepted after exactly one JWKS refetch, and a second unknown
#   kid within the minute refused without one;
# - replayed, unknown, expired and missing state: 400 JSON, no redirect;
# - the IdP's error= on the callback; the token endpoint down, slow (timeout),
#   answering garbage or an error; the IdP unreachable;
# - discovery and keys kept when their refresh fails after ms365_metadata_ttl;
# - callback_url outside the allow-list refused before anything happens;
# - 404 for another provider or an unknown tenant, 400 without Microsoft 365;
# - no secret (client secret, passwords, our tokens, the IdP's tokens, the
#   private key) in any log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256);
use HTTP::Tiny;
use JSON::PP ();
use MIME::Base64 qw(encode_base64url);
use Test::More;
use Time::HiRes qw(sleep time);

use Test::PbxAuth;
use Test::PbxAuth::Idp;

my $DIR = '6d3f1b2a-8c4e-4f5a-9b7c-0e1d2c3b4a59';
my $APP = '0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f';
my $SECRET = 'fake-idp-client-secret-' . encode_base64url(pack('N4', map { rand(2**32) } 1 .. 4));
my %OID = (alice => '11111111-2222-4333-8444-555555555555',
    tfa => '22222222-3333-4444-8555-666666666666',
    carol => '33333333-4444-4555-8666-777777777777',
    nobody => '44444444-5555-4666-8777-888888888888');
my $CB = 'https://app.test/signed-in';
my $PORTAL = 'https://portal.test/app/';
my $JSON = JSON::PP->new->utf8->canonical;

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->secret($SECRET, 'the client secret');
# the wrong secret and the other certificate: our misconfiguration, logged as an error
$t->allow_log_errors(qr/token endpoint refused our client credential: error=invalid_client/);
my $idp = Test::PbxAuth::Idp->new($t, client_id => $APP, client_secret => $SECRET,
    user => { oid => $OID{alice}, preferred_username => 'alice@acme.example' });
$idp->start;
# One worker: the discovery and JWKS caches the test counts fetches of are per worker.
$t->write_config(workers => 1, cookie_secure => 'off', portal_url => $PORTAL,
    ms365_authority_global => $idp->base, ms365_connect_timeout => 2, ms365_timeout => 3,
    throttle_ip_failures => 0, throttle_account_failures => 0);
$t->start_pg->start_daemon->start_nginx;

###############################################################################
# helpers

sub ctl_ok {
	my (@args) = @_;
	my @shown = grep { !ref } @args;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, "pbx-authctl @shown") or diag($out . $err);
	return $out;
}

sub row { $t->psql($_[0]) }

sub post_json {
	my ($path, $body, %h) = @_;
	return $t->request('POST', $path, body => $JSON->encode($body),
	    headers => { 'Content-Type' => 'application/json', %h });
}

sub form_encode {
	my (%p) = @_;
	return join '&', map {
		my ($k, $v) = ($_, $p{$_});
		s/([^A-Za-z0-9\-._~])/sprintf '%%%02X', ord $1/ge for $k, $v;
		"$k=$v";
	} sort keys %p;
}

sub query_decode {
	my ($q) = @_;
	my %h;
	for (split /&/, $q // '') {
		my ($k, $v) = map { my $x = $_ // ''; $x =~ tr/+/ /;
		    $x =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; $x } split /=/, $_, 2;
		$h{$k} = $v;
	}
	return \%h;
}

my $browser = HTTP::Tiny->new(max_redirect => 0, timeout => 20);

# The IdP's authorize step: GET url, expect a 302 back to the callback;
# returns its query parameters.
sub authorize {
	my ($url) = @_;
	my $r = $browser->get($url);
	my $loc = $r->{headers}{location} // '';
	my $cb = $t->url('/api/auth/callback/microsoft');
	like($loc, qr/^\Q$cb\E\?/, 'the IdP redirects back to the callback')
	    or diag("$r->{status} $r->{content}");
	my ($q) = $loc =~ /\?(.*)$/;
	return query_decode($q);
}

# The binding cookie of the last bearer flow started by start_bearer.
my $BINDING;

# The callback, as the browser sends it (query by default, as the
# authorization URL asks, or form_post), with a Cookie header when $cookie is
# given; without a $cookie argument, the binding cookie of the last bearer
# flow (the browser that opened its start URL).
sub callback {
	my ($p, $mode, $cookie) = @_;
	$cookie = "pbx_session_oidc=$BINDING" if @_ < 3 && defined $BINDING;
	my %h = defined $cookie ? (Cookie => $cookie) : ();
	if (($mode // 'query') eq 'query') {
		return $t->get('/api/auth/callback/microsoft?' . form_encode(%$p), headers => \%h);
	}
	return $t->request('POST', '/api/auth/callback/microsoft', body => form_encode(%$p),
	    headers => { 'Content-Type' => 'application/x-www-form-urlencoded', %h });
}

# The Set-Cookie headers of a response: { name => the whole header value }.
sub set_cookies {
	my ($r) = @_;
	my $sc = $r->{headers}{'set-cookie'};
	my %c;
	for (ref $sc eq 'ARRAY' ? @$sc : defined $sc ? ($sc) : ()) {
		$c{$1} = $_ if /^([^=;\s]+)=/;
	}
	return \%c;
}

# Starts a cookie sign-in as a browser (POST /api/login/by_microsoft);
# returns the response, the authorization URL and the binding cookie's value.
sub start_cookie {
	my (%h) = @_;
	my $r = $t->request('POST', '/api/login/by_microsoft', body => 'domain=acme.example',
	    headers => { 'Content-Type' => 'application/x-www-form-urlencoded', %h });
	my ($binding) = (set_cookies($r)->{pbx_session_oidc} // '') =~ /^pbx_session_oidc=([^;]*)/;
	return ($r, $r->{headers}{location} // '', $binding);
}

# The rest of a cookie sign-in: the IdP, then the callback (query mode, as the
# authorization URL asks) with $cookie as the browser's Cookie header.
sub cookie_callback {
	my ($url, $cookie) = @_;
	my $r = callback(authorize($url), 'query', $cookie);
	register_idp_tokens();
	return $r;
}

# Location of a 302 split into (base, fragment hash).
sub destination {
	my ($r) = @_;
	my $loc = $r->{headers}{location} // '';
	my ($base, $frag) = split /#/, $loc, 2;
	my $f = query_decode($frag);
	$t->secret($f->{$_}, "$_ in a callback redirect") for qw(access_token refresh_token token);
	return ($base, $f);
}

sub register_idp_tokens { $t->secret($_, 'a token the IdP issued') for $idp->issued }

# POST /api/auth/sign_in/microsoft; returns the start URL it answers.
sub start_bearer_url {
	my (%o) = @_;
	my $r = post_json('/api/auth/sign_in/microsoft',
	    { domain => $o{domain} // 'acme.example', callback_url => $o{callback_url} // $CB });
	is($r->{status}, 200, 'sign_in/microsoft: 200') or diag($r->{content});
	return $r->{json}{url};
}

# A browser opens a start URL: returns the response, its Location and the
# binding cookie it set.
sub open_start {
	my ($url) = @_;
	my $base = $t->url('');
	my $r = $t->get($url =~ s/^\Q$base\E//r);
	my ($binding) = (set_cookies($r)->{pbx_session_oidc} // '') =~ /^pbx_session_oidc=([^;]*)/;
	return ($r, $r->{headers}{location} // '', $binding);
}

# Starts a bearer sign-in in a browser (the start URL opened, its binding
# cookie kept in $BINDING); returns the authorization URL.
sub start_bearer {
	my (%o) = @_;
	my ($r, $loc, $binding) = open_start(start_bearer_url(%o));
	is($r->{status}, 302, 'the start URL: 302') or diag($r->{content});
	$BINDING = $binding;
	return $loc;
}

# A whole bearer sign-in with the knobs %k set for it; returns the
# callback's response and its fragment.
sub bearer_flow {
	my (%k) = @_;
	my $mode = delete $k{mode};
	$idp->reset_knobs;
	$idp->knobs(%k) if %k;
	my $url = start_bearer();
	my $q = authorize($url);
	my $r = callback($q, $mode);
	register_idp_tokens();
	my ($base, $f) = destination($r);
	return ($r, $f, $base);
}

sub is_error_redirect {
	my ($r, $f, $base, $error, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($r->{status}, 302, "$name: 302") or diag($r->{content});
	is($base, $CB, "$name: to the callback_url");
	is($f->{error}, $error, "$name: #error=$error") or diag($JSON->encode($f));
	ok(length($f->{error_description} // ''), "$name: with error_description");
	ok(!exists $f->{access_token} && !exists $f->{token}, "$name: no token");
}

sub audit_count {
	my ($outcome) = @_;
	return row("SELECT count(*) FROM audit_log WHERE tenant_domain = 'acme.example'"
	    . " AND event = 'sign_in' AND outcome = '$outcome'");
}

###############################################################################
# setup

ctl_ok('system', 'set', "public_base_url=" . $t->url(''), 'web_domain=portal.test');
ctl_ok('tenant', 'add', 'acme.example', '--name', 'Acme', '--callback-prefix', 'https://app.test/');
ctl_ok('tenant', 'add', 'plain.example', '--name', 'Plain');
my $secret_file = $t->write_file('client-secret.txt', "$SECRET\n");
chmod 0600, $secret_file;
ctl_ok('ms365', 'set', 'acme.example', '--directory-id', $DIR, '--application-id', $APP,
    '--client-secret-file', $secret_file, '--enable');
my %PW = (alice => 'Alice-pass-1', tfa => 'Tfa-pass-22', carol => 'Carol-pass-3',
    bob => 'Bob-pass-44');
$t->secret($_, 'a password') for values %PW;
ctl_ok('user', 'add', '--domain', 'acme.example', $_, ($_ eq 'tfa' ? ('--two-factor') : ()),
    { stdin => "$PW{$_}\n" }) for sort keys %PW;
ctl_ok('user', 'bind-ms365', '--domain', 'acme.example', 'alice', $OID{alice});
ctl_ok('user', 'bind-ms365', '--domain', 'acme.example', 'tfa', 'Tfa@Acme.Example');
ctl_ok('user', 'bind-ms365', '--domain', 'acme.example', 'carol', $OID{carol});

###############################################################################
# bearer flavour, client secret, form_post

{
	my $r = post_json('/api/auth/sign_in/microsoft',
	    { domain => 'acme.example', callback_url => $CB });
	is($r->{status}, 200, 'sign_in/microsoft: 200');
	$t->has_common_headers($r, 'sign_in/microsoft');
	is_deeply([$t->json_keys($r->{content})], ['url'], 'sign_in/microsoft: {url}');
	my $start = $r->{json}{url} // '';
	my ($sp, $sq) = split /\?/, $start, 2;
	is($sp, $t->url('/api/auth/authorize/microsoft'),
	    'sign_in/microsoft answers a pbx-auth start URL');
	my $state = query_decode($sq)->{state} // '';
	like($state, qr/^[A-Za-z0-9_-]{43}\z/, 'the start URL carries the state');
	is(row("SELECT browser_hash IS NULL FROM auth_flows WHERE token_hash = "
	    . "sha256('$state'::bytea)"), 't', 'the flow is bound to no browser yet');
	my ($sr, $url, $binding) = open_start($start);
	is($sr->{status}, 302, 'the start URL: 302') or diag($sr->{content});
	$t->has_common_headers($sr, 'the start URL');
	like(set_cookies($sr)->{pbx_session_oidc} // '', qr/^pbx_session_oidc=[A-Za-z0-9_-]{43};
	    \ Path=\/api\/auth\/callback\/microsoft;\ Max-Age=600;\ HttpOnly;\ SameSite=Lax$/x,
	    'the start URL sets the binding cookie');
	is(row("SELECT encode(browser_hash, 'hex') FROM auth_flows WHERE token_hash = "
	    . "sha256('$state'::bytea)"), unpack('H*', sha256($binding // '')),
	    'the flow is bound to SHA-256 of the binding cookie');
	my ($again_r) = open_start($start);
	$t->is_error($again_r, 400, 'VALIDATE_FAILED', 'the start URL opened a second time');
	ok(!defined set_cookies($again_r)->{pbx_session_oidc}, 'a second opening sets no cookie');
	$BINDING = $binding;
	my ($ep, $qs) = split /\?/, $url, 2;
	is($ep, $idp->base . "/$DIR/oauth2/v2.0/authorize",
	    'the authorization endpoint of the discovery document');
	my $q = query_decode($qs);
	is($q->{client_id}, $APP, 'client_id');
	is($q->{response_type}, 'code', 'response_type=code');
	is($q->{response_mode}, 'query',
	    'response_mode=query (a top-level GET carries the SameSite=Lax binding cookie)');
	is($q->{scope}, 'openid profile email', 'scope: no offline_access');
	is($q->{state}, $state, 'the state of the start URL');
	is($q->{redirect_uri}, $t->url('/api/auth/callback/microsoft'),
	    'redirect_uri = public_base_url + /api/auth/callback/microsoft');
	is($q->{code_challenge_method}, 'S256', 'PKCE S256');
	like($q->{code_challenge}, qr/^[A-Za-z0-9_-]{43}\z/, 'code_challenge: 43 base64url');
	like($q->{state}, qr/^[A-Za-z0-9_-]{43}\z/, 'state: 256 random bits');
	like($q->{nonce}, qr/^[A-Za-z0-9_-]{43}\z/, 'nonce: 256 random bits');
	isnt($q->{state}, $q->{nonce}, 'state and nonce differ');
	my $flow = row("SELECT kind, flavour, destination, tenant_id = (SELECT id FROM tenants"
	    . " WHERE domain = 'acme.example'), expires_at - created_at FROM auth_flows"
	    . " WHERE kind = 'oidc'");
	is($flow, "oidc|bearer|$CB|t|00:10:00", 'the flow row: bearer, destination, 10 minutes');
	is(row("SELECT count(*) FROM auth_flows WHERE nonce IS NOT NULL AND token_hash = "
	    . "sha256('$q->{state}'::bytea)"), 1, 'only SHA-256(state) is stored');

	my $back = authorize($url);
	is($back->{state}, $q->{state}, 'the IdP returns the state');
	my $cr = callback($back);
	register_idp_tokens();
	is($cr->{status}, 302, 'callback (query): 302') or diag($cr->{content});
	my ($base, $f) = destination($cr);
	is($base, $CB, 'to the callback_url');
	is_deeply([sort keys %$f], [qw(access_token expires_in refresh_token token_type)],
	    'fragment: token_type, access_token, refresh_token, expires_in');
	is($f->{token_type}, 'Bearer', 'token_type=Bearer');
	is($f->{expires_in}, 3600, 'expires_in');
	like($f->{access_token}, qr/^[A-Za-z0-9_-]{43}\z/, 'an access token');
	my $tr = $idp->last_token_request;
	ok($tr->{ok} && $tr->{pkce} && $tr->{secret_verified},
	    'the IdP checked the PKCE verifier and the client secret') or diag($JSON->encode($tr));
	my $u = $t->get('/api/auth/user',
	    headers => { Authorization => "Bearer $f->{access_token}" });
	is($u->{status}, 200, 'the access token works');
	is(row("SELECT spent_at IS NOT NULL FROM auth_flows WHERE token_hash = "
	    . "sha256('$q->{state}'::bytea)"), 't', 'the flow is spent');

	# the same state again: 400 JSON, no redirect
	my $again = callback($back);
	$t->is_error($again, 400, 'VALIDATE_FAILED', 'replayed state');
	ok(!defined $again->{headers}{location}, 'replayed state: no Location');
	my $unknown = callback({ code => 'x', state => 'no-such-state-' . 'a' x 30 });
	$t->is_error($unknown, 400, 'VALIDATE_FAILED', 'unknown state');
	ok(!defined $unknown->{headers}{location}, 'unknown state: no Location');
	$t->is_error(callback({ code => 'x' }), 400, 'VALIDATE_FAILED', 'no state');
	$t->is_error($t->get('/api/auth/callback/microsoft'), 400, 'VALIDATE_FAILED',
	    'GET without parameters');

	# an expired flow: 400, no redirect (and still spendable by nobody)
	my $q2 = authorize(start_bearer());
	row("UPDATE auth_flows SET expires_at = now() - interval '1 second'"
	    . " WHERE token_hash = sha256('$q2->{state}'::bytea)");
	my $expired = callback($q2);
	$t->is_error($expired, 400, 'VALIDATE_FAILED', 'expired state');
	ok(!defined $expired->{headers}{location}, 'expired state: no Location');
	is(audit_count('success'), 1, 'one sign_in success audit row');
	is(row("SELECT detail FROM audit_log WHERE event = 'sign_in' AND outcome = 'success'"),
	    'microsoft bearer', 'the success audit row says Microsoft (microsoft bearer)');
}

# form_post response mode, from the same browser (its cookie sent)
{
	my ($r, $f, $base) = bearer_flow(mode => 'form_post');
	is($r->{status}, 302, 'callback (form_post): 302');
	ok(length($f->{access_token} // ''), 'callback (form_post): tokens');
}

# the longest callback_url the contract accepts (2048 bytes) gets its tokens;
# one byte more is refused before a flow is stored
{
	$idp->reset_knobs;
	my $long = 'https://app.test/' . ('a' x 1900) . '?q=' . ('b' x (2048 - 17 - 1900 - 3));
	is(length $long, 2048, 'a 2048-byte callback_url');
	my $q = authorize(start_bearer(callback_url => $long));
	my $r = callback($q);
	register_idp_tokens();
	is($r->{status}, 302, 'long callback_url: 302') or diag($r->{content});
	my ($base, $f) = destination($r);
	ok($base eq $long, 'long callback_url: Location is the whole callback_url');
	like($f->{access_token} // '', qr/^[A-Za-z0-9_-]{43}\z/, 'long callback_url: the tokens');
	unlike($t->daemon_log, qr/refusing a malformed or oversized response header/,
	    'long callback_url: no header refused');
	my $flows = row("SELECT count(*) FROM auth_flows WHERE kind = 'oidc'");
	my $over = post_json('/api/auth/sign_in/microsoft',
	    { domain => 'acme.example', callback_url => $long . 'c' });
	$t->is_error($over, 400, 'VALIDATE_FAILED', 'a 2049-byte callback_url');
	is($over->{json}{errors}[0]{detail}{field}, 'callback_url', '2049 bytes: detail callback_url');
	my $huge = post_json('/api/auth/sign_in/microsoft',
	    { domain => 'acme.example', callback_url => 'https://app.test/' . ('x' x 60000) });
	$t->is_error($huge, 400, 'VALIDATE_FAILED', 'a 60 KB callback_url');
	is(row("SELECT count(*) FROM auth_flows WHERE kind = 'oidc'"), $flows,
	    'no flow stored for a callback_url over 2048 bytes');
}

# Login CSRF, bearer flavour: the attacker signs in with their own account in
# their own browser and auto-posts the authorization response from a foreign
# page; the victim's browser has no (or another) binding cookie.
{
	$idp->reset_knobs;
	start_bearer();
	my $victim = $BINDING;
	for my $case (['bearer, no binding cookie', undef, 'no browser binding cookie', 'form_post'],
	    ["bearer, another flow's binding cookie", "pbx_session_oidc=$victim",
	    'browser binding cookie does not match', 'query']) {
		my ($name, $cookie, $reason, $mode) = @$case;
		my $fail0 = audit_count('failure');
		my $tokens0 = scalar($idp->token_requests);
		my $q = authorize(start_bearer());
		my $cr = callback($q, $mode, $cookie);
		my ($base, $f) = destination($cr);
		is_error_redirect($cr, $f, $base, 'access_denied', $name);
		is($f->{error_description}, 'This sign-in was not started in this browser',
		    "$name: error_description");
		is(audit_count('failure'), $fail0 + 1, "$name: a failure audit row");
		is(row("SELECT detail FROM audit_log WHERE outcome = 'failure' ORDER BY id DESC"
		    . " LIMIT 1"), "microsoft bearer: $reason", "$name: the audit row says why");
		is(scalar($idp->token_requests), $tokens0, "$name: the code was not redeemed");
		$t->is_error(callback($q), 400, 'VALIDATE_FAILED', "$name: the flow is spent");
	}
	$t->is_error($t->get('/api/auth/authorize/microsoft'), 400, 'VALIDATE_FAILED',
	    'start URL without state');
	$t->is_error($t->get('/api/auth/authorize/microsoft?state=nope'), 400, 'VALIDATE_FAILED',
	    'start URL with an unknown state');
}

# RFC 9207: an iss parameter in the authorization response must be the issuer
{
	$idp->reset_knobs;
	my $q = authorize(start_bearer());
	my $r = callback({ %$q, iss => $idp->base . "/$DIR/v2.0" });
	register_idp_tokens();
	my ($base, $f) = destination($r);
	ok(length($f->{access_token} // ''), 'iss = the issuer: signed in');
	$q = authorize(start_bearer());
	my $tokens0 = scalar($idp->token_requests);
	$r = callback({ %$q, iss => 'https://evil.test/v2.0' });
	($base, $f) = destination($r);
	is_error_redirect($r, $f, $base, 'access_denied', 'iss of another issuer');
	is(scalar($idp->token_requests), $tokens0, 'iss of another issuer: no code redeemed');
	$q = authorize(start_bearer());
	$r = callback({ %$q, error => 'access_denied', iss => 'https://evil.test/v2.0' });
	($base, $f) = destination($r);
	is($f->{error_description}, 'The authorization response came from another issuer',
	    'an error response is checked for iss too');
}

# the authorization endpoint is the one discovery names
{
	$idp->reset_knobs;
	$idp->knobs(authorization_endpoint => $idp->base . "/$DIR/oauth2/v2.0/authorize?x=1");
	$t->stop_daemon;
	$t->start_daemon;	# a fresh discovery cache
	my $url = start_bearer();
	like($url, qr/^\Q${\ $idp->base}\E\/\Q$DIR\E\/oauth2\/v2\.0\/authorize\?x=1&client_id=/,
	    'the authorization URL is built on the discovery document\'s endpoint');
	$idp->reset_knobs;
	$t->stop_daemon;
	$t->start_daemon;
}

# an operator-bound UPN links the account and records the oid; two-factor
{
	my ($r, $f, $base) = bearer_flow(user => { oid => $OID{tfa},
	    preferred_username => 'tfa@acme.example' });
	is($r->{status}, 302, 'two-factor user: 302');
	is_deeply([sort keys %$f], [qw(token two_factor_enabled)],
	    'two-factor user: #two_factor_enabled=true&token=…');
	is($f->{two_factor_enabled}, 'true', 'two_factor_enabled=true');
	like($f->{token}, qr/^[A-Za-z0-9_-]{43}\z/, 'the two-factor token');
	is(row("SELECT ms365_oid FROM users WHERE username = 'tfa'"), $OID{tfa},
	    'the UPN binding recorded the oid');
	is(row("SELECT count(*) FROM auth_flows WHERE kind = 'two_factor' AND spent_at IS NULL"),
	    1, 'a two-factor flow started');
}

###############################################################################
# cookie flavour

{
	$idp->reset_knobs;
	my ($r, $url, $binding) = start_cookie(Origin => 'https://portal.test');
	is($r->{status}, 302, 'login/by_microsoft: 302') or diag($r->{content});
	like($url, qr/^\Q${\ $idp->base}\E\/\Q$DIR\E\/oauth2\/v2\.0\/authorize\?/,
	    'login/by_microsoft: Location is the authorization URL');
	my ($qs) = $url =~ /\?(.*)$/;
	my $aq = query_decode($qs);
	is($aq->{response_mode}, 'query',
	    'login/by_microsoft: response_mode=query (a top-level GET carries SameSite=Lax cookies)');
	is_deeply([sort keys %{set_cookies($r)}], ['pbx_session_oidc'],
	    'login/by_microsoft: sets the binding cookie, no session cookie');
	like(set_cookies($r)->{pbx_session_oidc}, qr/^pbx_session_oidc=[A-Za-z0-9_-]{43};
	    \ Path=\/api\/auth\/callback\/microsoft;\ Max-Age=600;\ HttpOnly;\ SameSite=Lax$/x,
	    'binding cookie: 256 random bits, only for the callback path, ms365_flow_ttl,'
	    . ' HttpOnly, SameSite=Lax, no Secure with cookie_secure=off');
	is(row("SELECT flavour, destination IS NULL, encode(browser_hash, 'hex') FROM auth_flows"
	    . " WHERE kind = 'oidc' ORDER BY id DESC LIMIT 1"),
	    'cookie|t|' . unpack('H*', sha256($binding)),
	    'a cookie flow without destination, bound to SHA-256 of the binding cookie');
	is(row("SELECT count(*) FROM auth_flows WHERE position(convert_to('$binding', 'UTF8')"
	    . " IN coalesce(browser_hash, ''::bytea)) > 0 OR position('$binding' IN"
	    . " concat_ws(' ', nonce, pkce_verifier, destination)) > 0"), 0,
	    'the binding value itself is not stored');
	my $cr = cookie_callback($url, "other=1; pbx_session_oidc=$binding");
	is($cr->{status}, 302, 'cookie callback: 302') or diag($cr->{content});
	is($cr->{headers}{location}, $PORTAL, 'cookie callback: to portal_url');
	my $sc = set_cookies($cr);
	like($sc->{pbx_session} // '',
	    qr/^pbx_session=[A-Za-z0-9_-]{43}; Path=\/api; Max-Age=\d+; HttpOnly; SameSite=Lax$/,
	    'cookie callback: the session cookie, as POST /api/login sets it');
	is($sc->{pbx_session_oidc}, 'pbx_session_oidc=; Path=/api/auth/callback/microsoft;'
	    . ' Max-Age=0; HttpOnly; SameSite=Lax', 'cookie callback: clears the binding cookie');
	my ($cookie) = ($sc->{pbx_session} // '') =~ /^pbx_session=([^;]+)/;
	my $s = $t->get('/api/login', headers => { Cookie => "pbx_session=$cookie" });
	is($s->{status}, 200, 'the cookie session works');
	is(row("SELECT detail FROM audit_log WHERE event = 'sign_in' AND outcome = 'success'"
	    . " ORDER BY id DESC LIMIT 1"), 'microsoft cookie',
	    'the cookie success audit row says Microsoft (microsoft cookie)');

	my $bad = $t->request('POST', '/api/login/by_microsoft', body => 'domain=acme.example',
	    headers => { 'Content-Type' => 'application/x-www-form-urlencoded',
	    Origin => 'https://evil.test' });
	$t->is_error($bad, 403, 'FORBIDDEN', 'login/by_microsoft from another origin');

	# a two-factor user, cookie flavour: the portal gets the two-factor token, no cookie
	$idp->knobs(user => { oid => $OID{tfa}, preferred_username => 'tfa@acme.example' });
	($r, $url, $binding) = start_cookie();
	$cr = cookie_callback($url, "pbx_session_oidc=$binding");
	my ($pbase, $pf) = destination($cr);
	is($pbase, $PORTAL, 'cookie flavour, two-factor: to portal_url');
	is($pf->{two_factor_enabled}, 'true', 'cookie flavour, two-factor: #two_factor_enabled');
	like($pf->{token} // '', qr/^[A-Za-z0-9_-]{43}\z/, 'cookie flavour, two-factor: token');
	is_deeply([keys %{set_cookies($cr)}], ['pbx_session_oidc'],
	    'cookie flavour, two-factor: no session cookie yet (the binding one cleared)');
	is(row("SELECT flavour FROM auth_flows WHERE kind = 'two_factor' ORDER BY id DESC LIMIT 1"),
	    'cookie', 'cookie flavour, two-factor: a cookie two-factor flow');
	is(row("SELECT detail FROM audit_log WHERE event = 'sign_in' AND outcome = 'two_factor'"
	    . " ORDER BY id DESC LIMIT 1"), 'microsoft cookie',
	    'cookie flavour, two-factor: the audit row says Microsoft');
	$idp->reset_knobs;

	# a failure of the cookie flavour goes to the portal with #error
	$idp->knobs(token => 'error');
	($r, $url, $binding) = start_cookie();
	$cr = cookie_callback($url, "pbx_session_oidc=$binding");
	is($cr->{status}, 302, 'cookie flavour failure: 302');
	like($cr->{headers}{location} // '', qr/^\Q$PORTAL\E#error=access_denied&error_description=/,
	    'cookie flavour failure: portal_url#error=…&error_description=…');
	ok(!defined set_cookies($cr)->{pbx_session}, 'cookie flavour failure: no session cookie');
	$idp->reset_knobs;
}

# Login CSRF: the attacker starts a cookie flow, signs in with their own
# Microsoft account and hands the callback URL to the victim's browser.  Only
# the browser holding the flow's binding cookie is signed in.
{
	$idp->reset_knobs;
	my (undef, $mine_url, $mine) = start_cookie();		# the victim's own flow
	my $n = 0;
	for my $case (['no binding cookie', undef, 'no browser binding cookie'],
	    ["another browser's binding cookie", "pbx_session_oidc=$mine",
	    'browser binding cookie does not match'],
	    ['two binding cookies', 'pbx_session_oidc=ATTACKER; pbx_session_oidc=ATTACKER',
	    'no browser binding cookie'],
	    ['a session cookie but no binding cookie', 'pbx_session=' . ('A' x 43),
	    'no browser binding cookie']) {
		my ($name, $cookie, $reason) = @$case;
		my (undef, $url, $attacker) = start_cookie();
		# the attacker's binding, planted beside a wrong one, is refused too
		$cookie =~ s/ATTACKER/$attacker/ && $cookie =~ s/ATTACKER/x$attacker/
		    if defined $cookie;
		my $fail0 = audit_count('failure');
		my $tokens0 = scalar($idp->token_requests);
		my $q = authorize($url);
		my $cr = callback($q, 'query', $cookie);
		is($cr->{status}, 302, "$name: 302") or diag($cr->{content});
		my ($base, $f) = destination($cr);
		is($base, $PORTAL, "$name: to the portal");
		is($f->{error}, 'access_denied', "$name: #error=access_denied");
		is($f->{error_description}, 'This sign-in was not started in this browser',
		    "$name: error_description");
		is_deeply([keys %{set_cookies($cr)}], ['pbx_session_oidc'],
		    "$name: no session cookie (the binding one cleared)");
		like(set_cookies($cr)->{pbx_session_oidc}, qr/^pbx_session_oidc=; .*Max-Age=0;/,
		    "$name: binding cookie cleared");
		is(audit_count('failure'), $fail0 + 1, "$name: a failure audit row");
		is(row("SELECT detail FROM audit_log WHERE outcome = 'failure' ORDER BY id DESC"
		    . " LIMIT 1"), "microsoft cookie: $reason", "$name: the audit row says why");
		is(scalar($idp->token_requests), $tokens0, "$name: the code was not redeemed");
		# the flow is spent: the attacker's link is dead, even with the right cookie
		my $again = callback($q, 'query', "pbx_session_oidc=$attacker");
		$t->is_error($again, 400, 'VALIDATE_FAILED', "$name: the flow is spent");
		ok(!defined set_cookies($again)->{pbx_session}, "$name: still no session");
		$n++;
	}
	like($t->daemon_log,
	    qr/Microsoft sign-in for acme\.example refused: browser binding cookie does not match/,
	    'log: a binding mismatch');
	# the victim's own flow, in the victim's browser, still works
	my $cr = cookie_callback($mine_url, "pbx_session_oidc=$mine");
	is($cr->{headers}{location}, $PORTAL, 'the victim\'s own flow: signed in');
	ok(defined set_cookies($cr)->{pbx_session}, 'the victim\'s own flow: session cookie');
}

###############################################################################
# ID token defects: each one is refused

my $now = int time;
my %DEFECTS = (
	'bad signature' => { id_token => { alg => 'bad_sig' } },
	'alg none' => { id_token => { alg => 'none' } },
	'HS256 with the public key as secret' => { id_token => { alg => 'HS256' } },
	'wrong iss' => { id_token => { claims => { iss => $idp->base . '/other-tenant/v2.0' } } },
	'wrong aud' => { id_token => { claims => { aud => '99999999-9999-4999-8999-999999999999' } } },
	'wrong tid' => { id_token => { claims => { tid => '99999999-9999-4999-8999-999999999999' } } },
	'wrong nonce' => { id_token => { claims => { nonce => 'not-the-nonce' } } },
	'expired' => { id_token => { claims => { exp => $now - 400, iat => $now - 4000,
	    nbf => $now - 4000 } } },
	'not yet valid' => { id_token => { claims => { nbf => $now + 900, iat => $now + 900,
	    exp => $now + 4000 } } },
	'no oid' => { id_token => { claims => { oid => undef } } },
	'no sub' => { id_token => { claims => { sub => undef } } },
	'aud an array with another client' => { id_token => { claims =>
	    { aud => ['99999999-9999-4999-8999-999999999999'] } } },
	'aud an array of two' => { id_token => { claims =>
	    { aud => [$APP, '99999999-9999-4999-8999-999999999999'] } } },
	'signed by a key not in the JWKS (same kid)' => { id_token => { alg => 'bad_sig',
	    sign_with => 'other' } },
);
$idp->new_key('other');
for my $name (sort keys %DEFECTS) {
	my $k = $DEFECTS{$name};
	# JSON null deletes a claim in the fake IdP
	my ($r, $f, $base) = bearer_flow(%$k);
	is_error_redirect($r, $f, $base, 'access_denied', "ID token $name");
}
like($t->daemon_log, qr/ID token refused: alg none is not RS256/, 'log: alg none refused');
like($t->daemon_log, qr/ID token refused: alg HS256 is not RS256/, 'log: HS256 refused');
like($t->daemon_log, qr/ID token refused: bad signature/, 'log: bad signature');
like($t->daemon_log, qr/ID token refused: wrong nonce/, 'log: wrong nonce');

# valid per the standards: aud as a one-element array (OpenID Connect Core
# section 2), no kid when the key set holds exactly one key (RFC 7515 4.1.4)
{
	my ($r, $f) = bearer_flow(id_token => { claims => { aud => [$APP] } });
	ok(length($f->{access_token} // ''), 'aud ["<client id>"]: accepted')
	    or diag($r->{headers}{location});
	($r, $f) = bearer_flow(id_token => { no_kid => JSON::PP::true });
	ok(length($f->{access_token} // ''), 'no kid, one key published: accepted')
	    or diag($r->{headers}{location});
	# two keys published (a fresh worker fetches both): no kid is refused
	$idp->set_defaults(jwks_kids => ['k1', 'other']);
	$t->stop_daemon;
	$t->start_daemon;
	my $base;
	($r, $f, $base) = bearer_flow(id_token => { no_kid => JSON::PP::true });
	is_error_redirect($r, $f, $base, 'access_denied', 'no kid, two keys published');
	like($t->daemon_log, qr/ID token refused: no kid, and the key set has not exactly one key/,
	    'no kid, two keys: logged');
	($r, $f) = bearer_flow();
	ok(length($f->{access_token} // ''), 'two keys published, kid k1: accepted');
	$idp->set_defaults(jwks_kids => ['k1']);
	$t->stop_daemon;
	$t->start_daemon;
}

# within the 5 minutes of skew: accepted
{
	my $n = int time;
	my ($r, $f) = bearer_flow(id_token => { claims => { exp => $n - 200,
	    iat => $n - 3800, nbf => $n - 3800 } });
	ok(length($f->{access_token} // ''), 'expired 200 s ago: within the skew, accepted');
	($r, $f) = bearer_flow(id_token => { claims => { nbf => $n + 200, iat => $n + 200 } });
	ok(length($f->{access_token} // ''), 'valid in 200 s: within the skew, accepted');
}

# the metadata's issuer template {tenantid}, resolved to the directory
{
	my $fetches = $idp->discovery_fetches;
	my ($r, $f) = bearer_flow(issuer_template => JSON::PP::true);
	is($idp->discovery_fetches, $fetches, 'discovery is cached (no fetch per sign-in)');
}

###############################################################################
# unbound, disabled

{
	my $fail0 = audit_count('failure');
	my ($r, $f, $base) = bearer_flow(user => { oid => $OID{nobody},
	    preferred_username => 'alice@acme.example', email => 'alice@acme.example' });
	is_error_redirect($r, $f, $base, 'access_denied', 'an unbound Microsoft account');
	is($f->{error_description}, 'Authentication Error', 'unbound: like a wrong password');
	is(audit_count('failure'), $fail0 + 1, 'unbound: a failure audit row');
	is(row("SELECT detail FROM audit_log WHERE outcome = 'failure' ORDER BY id DESC LIMIT 1"),
	    "microsoft bearer: no user for the Microsoft account oid=$OID{nobody}",
	    'unbound: the audit row names the account');
	is(row("SELECT count(*) FROM users WHERE ms365_oid = '$OID{nobody}'"), 0,
	    'unbound: no oid recorded; the email or preferred_username claim links nothing');

	ctl_ok('user', 'set', '--domain', 'acme.example', 'carol', 'enabled=false');
	($r, $f, $base) = bearer_flow(user => { oid => $OID{carol} });
	is_error_redirect($r, $f, $base, 'access_denied', 'a disabled user');
	is($f->{error_description}, 'Authentication Error', 'disabled: like a wrong password');
	like(row("SELECT username || ' ' || detail FROM audit_log WHERE outcome = 'failure'"
	    . " ORDER BY id DESC LIMIT 1"), qr/^carol microsoft bearer: /, 'disabled: audit row');
}

###############################################################################
# the IdP's error on the callback, and token endpoint failures

{
	my ($r, $f, $base) = bearer_flow(authorize_error => 'access_denied');
	is_error_redirect($r, $f, $base, 'access_denied', 'the IdP answers error=access_denied');
	is($idp->count(qr{/token$}), scalar($idp->token_requests), 'no token request after error=');

	my $out_errors = sub {
		my %m = map { /^pbx_auth_outbound_errors_total\{kind="(\w+)"\} (\d+)$/ ? ($1, $2) : () }
		    split /\n/, $t->get('/api/metrics')->{content} // '';
		return \%m;
	};
	my $before = $out_errors->();
	($r, $f, $base) = bearer_flow(token => 'down');
	is_error_redirect($r, $f, $base, 'temporarily_unavailable', 'token endpoint down');
	($r, $f, $base) = bearer_flow(token => 'garbage');
	is_error_redirect($r, $f, $base, 'temporarily_unavailable', 'token endpoint garbage');
	($r, $f, $base) = bearer_flow(token => 'error');
	is_error_redirect($r, $f, $base, 'access_denied', 'token endpoint invalid_grant');
	like($t->daemon_log, qr/token endpoint refused the code: error=invalid_grant .*answering access_denied/,
	    'invalid_grant: logged with the error sent on');
	($r, $f, $base) = bearer_flow(token => 'unavailable');
	is_error_redirect($r, $f, $base, 'temporarily_unavailable',
	    'token endpoint 503 temporarily_unavailable');
	my $after = $out_errors->();
	# ('down' closes the connection without a reply: curl's "other")
	is_deeply({ map { $_ => $after->{$_} - $before->{$_} } qw(connect timeout other status invalid) },
	    { connect => 0, timeout => 0, other => 1, status => 2, invalid => 1 },
	    'metrics: outbound errors by kind (down; invalid_grant and 503; garbage)');
	# the IdP really checks the verifier and the secret
	$idp->reset_knobs;
	my $q = authorize(start_bearer());
	# one character changed (a fixed 'x' would leave 1 verifier in 64 as it was)
	row("UPDATE auth_flows SET pkce_verifier = CASE WHEN left(pkce_verifier, 1) = 'x'"
	    . " THEN 'y' ELSE 'x' END || substr(pkce_verifier, 2)"
	    . " WHERE kind = 'oidc' AND spent_at IS NULL");
	$r = callback($q);
	($base, $f) = destination($r);
	is_error_redirect($r, $f, $base, 'access_denied', 'a wrong PKCE verifier (invalid_grant)');
	is($idp->last_token_request->{why}, 'code_verifier', 'the IdP refused the verifier');
	($r, $f, $base) = bearer_flow(client_secret => 'another-secret');
	is_error_redirect($r, $f, $base, 'server_error', 'a wrong client secret (invalid_client)');
	is($idp->last_token_request->{why}, 'client_secret', 'the IdP refused the secret');
	like($t->daemon_log, qr/token endpoint refused our client credential: error=invalid_client .*answering server_error/,
	    'invalid_client: logged as our misconfiguration');

	my $t0 = time;
	($r, $f, $base) = bearer_flow(token => 'hang', hang_seconds => 20);
	is_error_redirect($r, $f, $base, 'temporarily_unavailable', 'token endpoint slow');
	cmp_ok(time - $t0, '<', 15, 'slow: ms365_timeout (3 s) cut it short');
	like($t->daemon_log, qr/token endpoint \S+ failed: .*timed out/, 'slow: logged as a timeout');
}

###############################################################################
# key rotation: a new kid is accepted after one JWKS refetch

{
	my $before = $idp->jwks_fetches;
	$idp->rotate('k2');
	my ($r, $f) = bearer_flow();
	ok(length($f->{access_token} // ''), 'rotated key k2: accepted') or diag($r->{headers}{location});
	is($idp->jwks_fetches, $before + 1, 'rotated key k2: exactly one JWKS refetch');
	($r, $f) = bearer_flow();
	is($idp->jwks_fetches, $before + 1, 'k2 again: no fetch');

	# another unknown kid right away: refused, no second refetch within a minute
	$idp->rotate('k3');
	my $base;
	($r, $f, $base) = bearer_flow();
	is_error_redirect($r, $f, $base, 'access_denied', 'k3 within a minute of the k2 refetch');
	is($idp->jwks_fetches, $before + 1, 'k3: no refetch within the minute');
	like($t->daemon_log, qr/unknown kid; the last refetch was \d+s ago/, 'k3: logged');
	$idp->set_defaults(signing_kid => 'k2');
}

###############################################################################
# the IdP gone: discovery and keys are kept; the token endpoint is down

{
	$idp->stop;
	my $url = start_bearer();
	ok($url, 'sign_in needs no IdP round trip');
	my ($state) = $url =~ /[?&]state=([^&]+)/;
	my $r = callback({ code => 'some-code', state => $state });
	my ($base, $f) = destination($r);
	is_error_redirect($r, $f, $base, 'temporarily_unavailable', 'IdP unreachable');
	$idp->start;
}

###############################################################################
# callback_url outside the allow-list: 400 before anything else

{
	my $flows = row("SELECT count(*) FROM auth_flows WHERE kind = 'oidc'");
	my $auth = $idp->count(qr{authorize});
	for my $bad ('https://evil.test/cb', 'https://app.test.evil.test/', 'http://app.test/',
	    'javascript:alert(1)', 'https://app.test@evil.test/') {
		my $r = post_json('/api/auth/sign_in/microsoft',
		    { domain => 'acme.example', callback_url => $bad });
		$t->is_error($r, 400, 'VALIDATE_FAILED', "callback_url $bad");
		like($r->{content}, qr/callback_url/, "callback_url $bad: named in the detail");
	}
	# even for a tenant that does not exist or has no Microsoft settings
	$t->is_error(post_json('/api/auth/sign_in/microsoft',
	    { domain => 'nosuch.example', callback_url => 'https://evil.test/' }), 400,
	    'VALIDATE_FAILED', 'unknown tenant, bad callback_url: 400 first');
	is(row("SELECT count(*) FROM auth_flows WHERE kind = 'oidc'"), $flows, 'no flow stored');
	is($idp->count(qr{authorize}), $auth, 'no redirect happened');
}

###############################################################################
# other answers before a flow

{
	$t->is_error(post_json('/api/auth/sign_in/google',
	    { domain => 'acme.example', callback_url => $CB }), 404, 'NOT_FOUND',
	    'provider other than microsoft');
	$t->is_error(post_json('/api/auth/sign_in/microsoft',
	    { domain => 'nosuch.example', callback_url => 'https://portal.test/x' }), 404,
	    'NOT_FOUND', 'unknown tenant');
	$t->is_error(post_json('/api/auth/sign_in/microsoft',
	    { domain => 'plain.example', callback_url => 'https://portal.test/x' }), 400,
	    'VALIDATE_FAILED', 'tenant without Microsoft 365');
	$t->is_error(post_json('/api/auth/sign_in/microsoft', { domain => 'acme.example' }), 400,
	    'VALIDATE_FAILED', 'no callback_url');
	# login/by_microsoft is a browser's form post: its errors go to the portal
	for my $case (['x=1', 'invalid_request', 'without domain'],
	    ['domain=a&domain=b', 'invalid_request', 'with two domains'],
	    ['domain=bad%20domain%21', 'invalid_request', 'with an invalid domain'],
	    ['domain=nosuch.example', 'access_denied', 'for an unknown tenant'],
	    ['domain=plain.example', 'access_denied', 'for a tenant without Microsoft 365']) {
		my ($body, $error, $name) = @$case;
		my $r = $t->request('POST', '/api/login/by_microsoft', body => $body,
		    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' });
		is($r->{status}, 302, "login/by_microsoft $name: 302") or diag($r->{content});
		like($r->{headers}{location} // '',
		    qr/^\Q$PORTAL\E#error=$error&error_description=[^&]+\z/,
		    "login/by_microsoft $name: portal_url#error=$error&error_description=…");
		ok(!defined set_cookies($r)->{pbx_session_oidc}, "login/by_microsoft $name: no cookie");
	}
	$idp->set_defaults(discovery => 'down');
	$idp->reset_knobs;
	$t->stop_daemon;
	$t->start_daemon;	# nothing cached
	my $r = $t->request('POST', '/api/login/by_microsoft', body => 'domain=acme.example',
	    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' });
	like($r->{headers}{location} // '', qr/^\Q$PORTAL\E#error=temporarily_unavailable&/,
	    'login/by_microsoft, discovery down: portal_url#error=temporarily_unavailable');
	$idp->set_defaults(discovery => undef);
	$idp->reset_knobs;
	$t->is_error($t->request('POST', '/api/login/by_microsoft', body => '{}',
	    headers => { 'Content-Type' => 'application/json' }), 415,
	    'UNSUPPORTED_MEDIA_TYPE', 'login/by_microsoft with JSON');
	$t->is_error($t->request('PUT', '/api/auth/callback/microsoft'), 405,
	    'METHOD_NOT_ALLOWED', 'callback PUT');
}

###############################################################################
# certificate client assertion (PS256, x5t#S256) verified by the IdP

{
	my $cert = $t->dir . '/app-cert.pem';
	my $key = $t->dir . '/app-key.pem';
	my ($rc, $out, $err) = $t->run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
	    '-keyout', $key, '-out', $cert, '-days', '2', '-subj', '/CN=pbx-auth test app']);
	is($rc, 0, 'openssl req -x509: the test certificate') or diag($err);
	chmod 0600, $key;
	my $pem = $t->read_file($key);
	$t->secret($_, 'a line of the private key')
	    for grep { length > 40 && !/-----/ } split /\n/, $pem;
	ctl_ok('ms365', 'set', 'acme.example', '--certificate', $cert, '--private-key', $key);
	$idp->set_defaults(cert_file => $cert, client_secret => undef);
	my ($r, $f) = bearer_flow();
	ok(length($f->{access_token} // ''), 'certificate credential: signed in')
	    or diag($r->{headers}{location});
	my $tr = $idp->last_token_request;
	ok($tr->{ok} && $tr->{auth} eq 'assertion' && $tr->{assertion_verified},
	    'the IdP verified the PS256 assertion (signature, x5t#S256, aud, iss/sub, exp)')
	    or diag($JSON->encode($tr));

	# an assertion the IdP cannot verify (another certificate) fails the sign-in
	my $other = $t->dir . '/other-cert.pem';
	$t->run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout',
	    $t->dir . '/other-key.pem', '-out', $other, '-days', '2', '-subj', '/CN=other']);
	my $base;
	($r, $f, $base) = bearer_flow(cert_file => $other);
	is_error_redirect($r, $f, $base, 'server_error',
	    'an assertion of another certificate (invalid_client)');
	like($idp->last_token_request->{why} // '', qr/x5t#S256|signature/,
	    'the IdP refused it for its thumbprint');
}

###############################################################################
# a directory named by its domain: tid and iss are the GUID Microsoft's issuer names

{
	ctl_ok('ms365', 'set', 'acme.example', '--directory-id', 'acme.onmicrosoft.com');
	my ($r, $f) = bearer_flow(tid => $DIR);
	ok(length($f->{access_token} // ''), 'directory by domain name: signed in')
	    or diag($r->{headers}{location});
	is($idp->last_authorize->{client_id}, $APP, 'directory by domain name: authorize');
	my $base;
	($r, $f, $base) = bearer_flow(tid => $DIR,
	    id_token => { claims => { tid => '99999999-9999-4999-8999-999999999999' } });
	is_error_redirect($r, $f, $base, 'access_denied',
	    'directory by domain name: a tid other than the issuer\'s GUID');
	ctl_ok('ms365', 'set', 'acme.example', '--directory-id', $DIR);
}

###############################################################################
# discovery and keys: a failed refresh keeps the last good copy

{
	$t->stop_daemon;
	$t->write_config(ms365_metadata_ttl => 1, cookie_secure => 'on', ms365_flow_ttl => 300);
	$t->start_daemon;
	$idp->set_defaults(discovery => 'down');
	$idp->reset_knobs;
	my ($r) = open_start(start_bearer_url());
	my ($base, $f) = destination($r);
	is_error_redirect($r, $f, $base, 'temporarily_unavailable',
	    'discovery down and nothing cached: the start URL');
	$idp->set_defaults(discovery => undef);
	$idp->reset_knobs;
	my ($sr) = start_cookie();
	like(set_cookies($sr)->{pbx_session_oidc} // '', qr/^pbx_session_oidc=[A-Za-z0-9_-]{43};
	    \ Path=\/api\/auth\/callback\/microsoft;\ Max-Age=300;\ HttpOnly;\ SameSite=Lax;\ Secure$/x,
	    'binding cookie with cookie_secure=on: Secure; Max-Age follows ms365_flow_ttl');
	($r, $f) = bearer_flow();
	ok(length($f->{access_token} // ''), 'discovery back: signed in');
	sleep 1.5;
	my ($d0, $j0) = ($idp->discovery_fetches, $idp->jwks_fetches);
	$idp->set_defaults(discovery => 'down', jwks => 'down');
	($r, $f) = bearer_flow();
	ok(length($f->{access_token} // ''),
	    'discovery and JWKS down after their lifetime: the last good copies serve');
	cmp_ok($idp->discovery_fetches, '>', $d0, 'the expired discovery document was refetched');
	cmp_ok($idp->jwks_fetches, '>', $j0, 'the expired keys were refetched');
	like($t->daemon_log, qr/OpenID discovery \S+ failed: using the copy of \d+s ago/,
	    'log: discovery kept');
	like($t->daemon_log, qr/JWKS \S+: refresh failed, keeping the keys of \d+s ago/,
	    'log: keys kept');
	$idp->set_defaults(discovery => undef, jwks => undef);
}

###############################################################################
# the IdP's error and error_description reach the log escaped (issue 16, 9)

{
	$idp->reset_knobs;
	my $q = authorize(start_bearer());
	delete $q->{code};
	# ESC (a terminal title), BS, VT, CR LF forging a field, NEL, U+2028, a quote
	$q->{error} = "access_denied\e]0;pwned\a\x08\x0b\r\naudit event=forged";
	$q->{error_description} = "desc\xc2\x85next\xe2\x80\xa8line \"q\" \e[2J";
	my $off = $t->log_offset;
	my $r = callback($q);
	my ($base, $f) = destination($r);
	like($f->{error} // '', qr/^[a-z_]+\z/, 'a hostile error=: the app gets a plain error code');
	my $log = $t->daemon_log($off);
	my ($line) = grep { /the IdP answered/ } split /\n/, $log;
	ok(defined $line, 'the IdP\'s error is logged') or diag($log);
	like($line // '', qr/ error="access_denied\\u001b\]0;pwned\\u0007\\u0008\\u000b\\r\\naudit event=forged"/,
	    'error: ESC, BEL, BS, VT, CR and LF escaped, inside quotes');
	like($line // '', qr/ description="desc\\u0085next\\u2028line \\"q\\" \\u001b\[2J"/,
	    'error_description: NEL, U+2028, quotes and ESC escaped');
	unlike($log, qr/[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]/,
	    'no raw control character in the log');
	unlike($log, qr/^\S+ \S+ \S+ audit event=forged/m, 'no forged audit line');
	is(scalar(grep { !defined } $t->log_records($off)), 0, 'every line parses');
}

is(audit_count('success') > 5, 1, 'sign_in success audit rows');
$t->log_format_ok;
$idp->stop;
$t->done_testing;
