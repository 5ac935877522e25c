#!/usr/bin/perl

# POST /api/auth/send_otp and POST /api/auth/verify_otp through nginx,
# reading the codes from the SMTP sink: the email (recipient, subject naming
# the tenant, a 6-digit code, lifetime), the stored HMAC-SHA256(key = the
# two-factor token, code) and its 5-minute lifetime; send → verify → the
# token response of sign-in; a spent token; a wrong code (401, counted), the
# 5th wrong code voiding the token (even the right code fails then); wrong
# codes never block password sign-in (throttling on at its defaults); code
# expiry and flow expiry; the resend limit (429 with Retry-After) and a
# resend replacing the code; the cookie flavour (POST /api/login) answering
# with the session cookie exactly as POST /api/login does, and its Origin
# check; concurrent send_otp (one code) and verify_otp (one session); a user
# without email; validation; a username with CR/LF is refused and a tenant
# name with CR/LF makes no header; PostgreSQL down: 503 from the four email
# endpoints; the audit rows; no code in any log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex hmac_sha256_hex);
use HTTP::Tiny;
use JSON::PP ();
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

use Test::PbxAuth;
use Test::PbxAuth::Smtp;

my $t = Test::PbxAuth->new(need_nginx => 1);
my $smtp = Test::PbxAuth::Smtp->new($t);
$t->write_config(
	password_hash_cost => 1,
	cookie_secure      => 'off',
	allowed_origins    => 'https://app.test',
	$smtp->config,
	# throttling stays at its defaults: wrong codes must not trip it
);
$smtp->start;
$t->start_pg->start_daemon->start_nginx;

my $JSON = JSON::PP->new->canonical->utf8;
my $TOKEN_RE = qr/^[A-Za-z0-9_-]{43}\z/;
my %PW = (bob => 'Bob-two-factor-1', nomail => 'No-mail-tf-2', sam => 'System-tf-pw-3');
my @codes;    # every code seen: none may appear in a log

###############################################################################
# helpers

sub ctl_ok {
	my (@args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $t->ctl(@args);
	my @shown = grep { !ref } @args;
	is($rc, 0, "pbx-authctl @shown") or diag($out . $err);
	return $out;
}

sub post {
	my ($path, $body, %h) = @_;
	$body = $JSON->encode($body) if ref $body;
	return $t->request('POST', $path, body => $body,
	    headers => { 'Content-Type' => 'application/json', %h });
}

sub hash_lit { "'\\x" . sha256_hex($_[0] // '') . "'::bytea" }

# A two-factor token from a password sign-in (bearer, or cookie: /api/login).
sub flow {
	my ($name, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my %b = (username => $name, password => $PW{$name});
	$b{domain} = $o{domain} // 't1.test' unless $o{system};
	my $r = post($o{cookie} ? '/api/login' : '/api/auth/sign_in', \%b);
	is($r->{status}, 200, "$name signs in") or diag($r->{content});
	ok($r->{json}{two_factor_enabled}, "$name: two-factor step");
	return $r->{json}{token};
}

sub send_otp { post('/api/auth/send_otp', { token => $_[0] }, %{$_[1] || {}}) }
# ("$_[1]": a code used as a number would be sent as a JSON number)
sub verify { post('/api/auth/verify_otp', { token => $_[0], code => "$_[1]" }, %{$_[2] || {}}) }

# send_otp answered 200 (empty) and the one new message; returns (code, message).
sub sent_code {
	my ($token, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $n = $smtp->count;
	my $r = send_otp($token);
	is($r->{status}, 200, "$name: send_otp 200") or diag($r->{content});
	is($r->{content} // '', '', "$name: send_otp empty body");
	$t->has_common_headers($r, "$name: send_otp");
	my @m = $smtp->since($n, 1);
	is(scalar @m, 1, "$name: one message") or return;
	my ($code) = $m[0]{body} =~ /\b(\d{6})\b/;
	ok(defined $code, "$name: the message holds a 6-digit code") or diag($m[0]{body});
	push @codes, $code if defined $code;
	return ($code, $m[0]);
}

# Another code than $code (for wrong-code tests).
sub wrong { sprintf '%06d', ($_[0] + 1 + int rand 999998) % 1000000 }

sub tokens_ok {
	my ($r, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($r->{status}, 200, "$name: 200") or do { diag($r->{content}); return {} };
	$t->has_common_headers($r, $name);
	is_deeply([ $t->json_keys($r->{content}) ],
	    [qw(token_type access_token refresh_token expires_in)], "$name: token response keys");
	is($r->{json}{token_type}, 'Bearer', "$name: Bearer");
	like($r->{json}{access_token} // '', $TOKEN_RE, "$name: access_token");
	like($r->{json}{refresh_token} // '', $TOKEN_RE, "$name: refresh_token");
	like($r->{content}, qr/"expires_in":3600\}$/, "$name: expires_in 3600");
	return $r->{json};
}

sub auth_failed {
	my ($r, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$t->is_error($r, 401, 'AUTHENTICATION_FAILED', $name);
	is($r->{json}{errors}[0]{message}, 'Authentication Error', "$name: message");
}

sub invalid_token {
	my ($r, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$t->is_error($r, 401, 'INVALID_TOKEN', $name);
}

sub invalid {
	my ($r, $field, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$t->is_error($r, 400, 'VALIDATE_FAILED', $name) or return;
	my $d = $r->{json}{errors}[0]{detail};
	is(ref $d eq 'HASH' ? $d->{field} : undef, $field, "$name: detail names $field")
	    or diag($r->{content});
}

sub flow_row {
	my ($token, $cols) = @_;
	return $t->psql("SELECT $cols FROM auth_flows WHERE token_hash = " . hash_lit($token));
}

###############################################################################
# fixtures

ctl_ok('tenant', 'add', 't1.test', '--name', 'Tenant One');
ctl_ok('user', 'add', '--domain', 't1.test', 'bob', '--email', 'bob@x.test', '--two-factor',
    { stdin => "$PW{bob}\n" });
ctl_ok('user', 'add', '--domain', 't1.test', 'nomail', '--two-factor',
    { stdin => "$PW{nomail}\n" });
ctl_ok('user', 'add', 'sam', '--email', 'sam@x.test', '--two-factor', '--role', 'SystemAdmin',
    { stdin => "$PW{sam}\n" });
ctl_ok('system', 'set', 'web_domain=pbx.example.test');

###############################################################################
# send → verify → tokens

my $tok = flow('bob');
like($tok // '', $TOKEN_RE, 'bob: a two-factor token');
my ($code, $m) = sent_code($tok, 'bob');
is($m->{to}, 'bob@x.test', 'code email: recipient');
is($m->{subject}, 'Your sign-in code for Tenant One', 'code email: subject names the tenant');
like($m->{body}, qr/^Hello bob,/, 'code email: greets the user');
like($m->{body}, qr/for Tenant One is \d{6}\. It is valid for 5 minutes\./,
    'code email: tenant, code and lifetime (otp_ttl 300)');
is(flow_row($tok, "encode(code_hash, 'hex')"), hmac_sha256_hex($code // '', $tok),
    'stored: HMAC-SHA256(key = the two-factor token, the code)');
is(flow_row($tok, 'abs(extract(epoch FROM code_expires_at - code_sent_at) - 300) < 2, attempts'),
    't|0', 'stored: a 5-minute lifetime, no attempt yet');
is($t->psql("SELECT kind, user_id FROM mail_outbox ORDER BY id DESC LIMIT 1"),
    'otp|' . $t->psql("SELECT id FROM users WHERE username = 'bob'"), 'mail_outbox row: kind otp');

auth_failed(verify($tok, wrong($code)), 'wrong code');
is(flow_row($tok, 'attempts, spent_at IS NULL'), '1|t', 'the wrong code is counted');
my $j = tokens_ok(verify($tok, $code), 'right code');
my $r = $t->get('/api/auth/user', headers => { Authorization => "Bearer $j->{access_token}" });
is($r->{status}, 200, 'the access token works');
is($r->{json}{role}, 'StandardUser', 'auth/user: role');
ok($r->{json}{password_verified}, 'auth/user: password_verified (proved at the first step)');
is($t->psql("SELECT flavour, client_addr FROM sessions WHERE access_hash = "
    . hash_lit($j->{access_token})), 'bearer|127.0.0.1', 'a bearer session');
is(flow_row($tok, 'spent_at IS NOT NULL'), 't', 'the flow is spent');
invalid_token(verify($tok, $code), 'the right code again');
invalid_token(send_otp($tok), 'send_otp with a spent token');
$r = post('/api/auth/refresh_token', { refresh_token => $j->{refresh_token} });
is($r->{status}, 200, 'the refresh token works');

###############################################################################
# 5 wrong codes void the token; they never block password sign-in

for my $round (1 .. 2) {
	my $tk = flow('bob');
	my ($c) = sent_code($tk, "round $round");
	for my $i (1 .. 4) {
		auth_failed(verify($tk, wrong($c)), "round $round: wrong code $i");
	}
	invalid_token(verify($tk, wrong($c)), "round $round: the 5th wrong code voids the token");
	is(flow_row($tk, 'attempts, spent_at IS NOT NULL'), '5|t', "round $round: flow void");
	invalid_token(verify($tk, $c), "round $round: the right code after that");
	invalid_token(send_otp($tk), "round $round: no new code for a void token");
}
is($t->psql("SELECT count(*) FROM throttle"), 0, '10 wrong codes: no throttle row');
$r = post('/api/auth/sign_in', { domain => 't1.test', username => 'bob', password => $PW{bob} });
is($r->{status}, 200, 'password sign-in still works after 10 wrong codes') or diag($r->{content});

###############################################################################
# the resend limit; a resend replaces the code

$tok = flow('bob');
my ($c1) = sent_code($tok, 'first code');
$r = send_otp($tok);
$t->is_error($r, 429, 'TOO_MANY_REQUESTS', 'a second code within the minute');
my $ra = $r->{headers}{'retry-after'} // '';
ok($ra =~ /^\d+$/ && $ra >= 1 && $ra <= 60, "Retry-After in 1..60 ($ra)");
is(flow_row($tok, "encode(code_hash, 'hex')"), hmac_sha256_hex($c1 // '', $tok),
    'the refused resend kept the code');
$t->psql("UPDATE auth_flows SET code_sent_at = code_sent_at - interval '61 seconds' "
    . 'WHERE token_hash = ' . hash_lit($tok));
my ($c2) = sent_code($tok, 'a minute later');
SKIP: {
	skip 'the two codes happen to be equal', 1 if ($c1 // '') eq ($c2 // '');
	auth_failed(verify($tok, $c1), 'the replaced code no longer works');
}
tokens_ok(verify($tok, $c2), 'the new code works');

###############################################################################
# concurrent requests: one code is sent, one session starts

$tok = flow('bob');
my $n0 = $smtp->count;
my @res = $t->concurrently(6, '/api/auth/send_otp', $JSON->encode({ token => $tok }));
is(scalar(grep { $_->[0] == 200 } @res), 1, '6 concurrent send_otp: one 200');
is(scalar(grep { $_->[0] == 429 } @res), 5, '6 concurrent send_otp: five 429')
    or diag(explain \@res);
my @cm = $smtp->since($n0, 1);
is(scalar($smtp->since($n0, 0, 1)), 1, 'one message');
($code) = ($cm[0]{body} // '') =~ /\b(\d{6})\b/;
push @codes, $code if defined $code;
my $successes = $t->psql("SELECT count(*) FROM audit_log WHERE event = 'otp_verify'"
    . " AND outcome = 'success'");
@res = $t->concurrently(4, '/api/auth/verify_otp', $JSON->encode({ token => $tok, code => "$code" }));
is(scalar(grep { $_->[0] == 200 } @res), 1, '4 concurrent verify_otp, right code: one 200')
    or diag(explain [ map { $_->[0] } @res ]);
is(scalar(grep { $_->[0] == 401 && $_->[1] =~ /INVALID_TOKEN/ } @res), 3,
    'the others: 401 INVALID_TOKEN');
is($t->psql("SELECT count(*) FROM audit_log WHERE event = 'otp_verify' AND outcome = 'success'"),
    $successes + 1, 'one more otp_verify success');

###############################################################################
# expiry: of the code, and of the two-factor token

$tok = flow('bob');
($code) = sent_code($tok, 'code to expire');
$t->psql("UPDATE auth_flows SET code_expires_at = now() - interval '1 second' "
    . 'WHERE token_hash = ' . hash_lit($tok));
auth_failed(verify($tok, $code), 'an expired code');
$t->psql("UPDATE auth_flows SET code_sent_at = now() - interval '2 minutes' "
    . 'WHERE token_hash = ' . hash_lit($tok));
($code) = sent_code($tok, 'after the expired code');
tokens_ok(verify($tok, $code), 'a fresh code works');

$tok = flow('bob');
($code) = sent_code($tok, 'flow to expire');
$t->psql("UPDATE auth_flows SET expires_at = now() - interval '1 second' "
    . 'WHERE token_hash = ' . hash_lit($tok));
invalid_token(verify($tok, $code), 'an expired two-factor token');
invalid_token(send_otp($tok), 'send_otp with an expired two-factor token');

# verify before any code was sent: counted like a wrong code
$tok = flow('bob');
auth_failed(verify($tok, '000000'), 'verify before send_otp');
is(flow_row($tok, 'attempts'), 1, 'counted');

###############################################################################
# the cookie flavour

my $before = $t->psql("SELECT count(*) FROM sessions WHERE flavour = 'cookie'");
$tok = flow('bob', cookie => 1);
is(flow_row($tok, 'flavour'), 'cookie', 'POST /api/login: a cookie flow');
($code) = sent_code($tok, 'cookie flow');
for my $o ('https://evil.test', 'null', 'https://app.test.evil') {
	$r = verify($tok, $code, { Origin => $o });
	$t->is_error($r, 403, 'FORBIDDEN', "cookie flow, Origin $o");
	ok(!defined $r->{headers}{'set-cookie'}, "cookie flow, Origin $o: no cookie");
}
$r = verify($tok, $code, { Origin => 'https://app.test' });
is($r->{status}, 200, 'cookie flow: 200') or diag($r->{content});
$t->has_common_headers($r, 'cookie flow');
my $sc = $r->{headers}{'set-cookie'} // '';
like($sc, qr/^pbx_session=[A-Za-z0-9_-]{43}; Path=\/api; Max-Age=2592000; HttpOnly; SameSite=Lax$/,
    'cookie flow: Set-Cookie as POST /api/login writes it') or diag($sc);
my ($cookie) = $sc =~ /^pbx_session=([^;]+)/;
is_deeply([ $t->json_keys($r->{content}) ], [qw(access_token expires_at expires_in role)],
    'cookie flow: the body of POST /api/login');
is($r->{json}{role}, 'StandardUser', 'cookie flow: role');
is($t->psql("SELECT count(*) FROM sessions WHERE flavour = 'cookie'"), $before + 1,
    'cookie flow: one cookie session');
$r = $t->get('/api/login', headers => { Cookie => "pbx_session=" . ($cookie // '') });
is($r->{status}, 200, 'the cookie works on GET /api/login') or diag($r->{content});
like($r->{json}{access_token} // '', $TOKEN_RE, 'GET /api/login: an access token');

# a bearer flow does not care about Origin
$tok = flow('bob');
($code) = sent_code($tok, 'bearer flow from a page');
tokens_ok(verify($tok, $code, { Origin => 'https://evil.test' }), 'bearer flow with an Origin');

###############################################################################
# a system-level account; a user without email

$tok = flow('sam', system => 1);
($code, $m) = sent_code($tok, 'system account');
is($m->{subject}, 'Your sign-in code for pbx.example.test',
    'system account: {tenant} is the web domain');
tokens_ok(verify($tok, $code), 'system account: right code');

$tok = flow('nomail');
my $n = $smtp->count;
$t->is_error(send_otp($tok), 403, 'FORBIDDEN', 'a user without email');
is(scalar $smtp->since($n, 0, 1), 0, 'no message for a user without email');

###############################################################################
# validation

$tok = flow('bob');
for my $c ('12345', '1234567', 'abcdef', ' 12345', "12345\n", '１２３４５６', '') {
	invalid(verify($tok, $c), 'code', 'code ' . JSON::PP->new->ascii->encode([$c]));
}
invalid(post('/api/auth/verify_otp', qq({"token":"$tok","code":123456})), 'code',
    'code a number');
invalid(post('/api/auth/verify_otp', { code => '123456' }), 'token', 'verify without token');
invalid(post('/api/auth/verify_otp', { token => $tok }), 'code', 'verify without code');
invalid(post('/api/auth/send_otp', {}), 'token', 'send_otp without token');
invalid(post('/api/auth/send_otp', { token => [1] }), 'token', 'send_otp, token an array');
is(flow_row($tok, 'attempts, code_sent_at IS NULL'), '0|t', 'invalid requests count nothing');
for my $bad ('A' x 43, 'short', "$tok=", $tok . 'A', "\x{e9}" x 43) {
	invalid_token(send_otp($bad), 'send_otp with a bad token (' . length($bad) . ')');
	invalid_token(verify($bad, '123456'), 'verify_otp with a bad token (' . length($bad) . ')');
}
for my $raw ('{"token":', '[]', 'null', qq({"token":"\xff"}), '{"token":"a\u0000b"}') {
	for my $p ('/api/auth/send_otp', '/api/auth/verify_otp') {
		my $s = post($p, $raw);
		is($s->{status}, 400, "$p, malformed body: 400") or diag($s->{content});
	}
}
$r = $t->request('POST', '/api/auth/send_otp', body => '{}',
    headers => { 'Content-Type' => 'text/plain' });
$t->is_error($r, 415, 'UNSUPPORTED_MEDIA_TYPE', 'send_otp text/plain');
$r = $t->request('GET', '/api/auth/verify_otp');
$t->is_error($r, 405, 'METHOD_NOT_ALLOWED', 'GET verify_otp');
# the two-factor token is no reset token, nor the other way round
invalid_token(post('/api/auth/reset_password', { token => $tok, new_password => 'Whatever-1x' }),
    'a two-factor token on reset_password');

###############################################################################
# CR/LF: a username with one is refused; a tenant name with one makes no header

$r = post('/api/auth/sign_in', { domain => 't1.test', username => "bob\r\nBcc: x\@evil.test",
    password => $PW{bob} });
invalid($r, 'username', 'sign-in with CR/LF in the username');
$t->psql("UPDATE tenants SET name = E'Evil\\r\\nBcc: victim\@evil.test\\nX-Evil: 1' "
    . "WHERE domain = 't1.test'");
$tok = flow('bob');
($code, $m) = sent_code($tok, 'tenant name with CR/LF');
if ($m) {
	like($m->{subject}, qr/^Your sign-in code for Evil +Bcc: victim\@evil\.test +X-Evil: 1$/,
	    'CR/LF in the tenant name became spaces');
	ok(!(grep { $_->[0] =~ /^(bcc|x-evil)$/i } @{$m->{headers}}), 'no Bcc or X-Evil header')
	    or diag($m->{head});
	is_deeply($m->{rcpt_to}, ['bob@x.test'], 'the only recipient is the user');
	like($m->{body}, qr/for Evil +Bcc: victim\@evil\.test +X-Evil: 1 is \d{6}\./,
	    'the body line stays one line');
}

###############################################################################
# PostgreSQL down: 503 with Retry-After from all four, never a 401 or a 500;
# the flow made before the outage works after it

$t->psql("UPDATE tenants SET name = 'Tenant One' WHERE domain = 't1.test'");
$tok = flow('bob');
$t->allow_log_errors(qr/PostgreSQL|connect|server|socket/i);
$t->stop_pg;
for my $req ([ '/api/auth/send_otp', { token => $tok } ],
    [ '/api/auth/verify_otp', { token => $tok, code => '123456' } ],
    [ '/api/auth/forget_password', { domain => 't1.test', username => 'bob',
	callback_url => 'https://pbx.example.test/reset' } ],
    [ '/api/auth/reset_password', { token => $tok, new_password => 'Outage-pass-12' } ])
{
	$r = post(@$req);
	$t->is_error($r, 503, 'SERVICE_UNAVAILABLE', "PostgreSQL down: $req->[0]");
	like($r->{headers}{'retry-after'} // '', qr/^\d+$/, "PostgreSQL down: $req->[0]: Retry-After");
}
$t->start_pg;
($code) = sent_code($tok, 'after the outage');
tokens_ok(verify($tok, $code), 'after the outage: the flow completes');

###############################################################################
# audit; no code in any log

my $audit = $t->psql("SELECT event || '/' || outcome || '/' || coalesce(detail, '') FROM audit_log "
    . "WHERE event LIKE 'otp%' ORDER BY id");
like($audit, qr{^otp_send/success/bearer$}m, 'audit: otp_send');
like($audit, qr{^otp_verify/success/bearer$}m, 'audit: otp_verify success');
like($audit, qr{^otp_verify/success/cookie$}m, 'audit: otp_verify success, cookie');
like($audit, qr{^otp_verify/failure/attempt 1$}m, 'audit: otp_verify failure');
like($audit, qr{^otp_verify/voided/attempt 5$}m, 'audit: otp_verify voided');

$smtp->stop;
$t->stop_all;
my $logs = join '', map { $t->read_file($_) } grep { -f } map { glob $t->dir . "/$_" }
    qw(*.log nginx/*.log);
# numbers logged anyway: request durations, process ids
$logs =~ s/\bus=\d+|\[\d+\]//g;
my @leaked = grep { $logs =~ /\b\Q$_\E\b/ } @codes;
is(scalar @leaked, 0, 'no code (' . scalar(@codes) . ' seen) in any log')
    or diag("leaked: @leaked");
$t->done_testing;
