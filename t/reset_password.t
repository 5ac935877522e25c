#!/usr/bin/perl

# POST /api/auth/forget_password and POST /api/auth/reset_password through
# nginx, reading the mail the service queues: the reset email's recipient,
# subject and body, the link (callback_url with the token as a query
# parameter, '?' or '&', before a fragment), the flow row (SHA-256 of the
# token, lifetime); reset_password: the password policy (400 naming the rule,
# token kept), single use, expiry, voiding by a newer request, every session
# of the user revoked, password_force_reset cleared, a pending two-factor
# step voided, an account lockout cleared, a yescrypt hash, the audit rows;
# unknown tenant, unknown user, disabled user and a user without email answer
# the same bytes and queue nothing, and the answer leaves before any work
# that depends on the account (the users table locked); at most one
# email per account per mail_rate_interval, also for concurrent requests;
# validation of every field
# (callback_url allow-list, CR/LF in the username), and a tenant name with
# CR/LF that must not make a header.  The mail is read from the SMTP sink.
# check_logs greps every log for the tokens, those of the links included.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use HTTP::Tiny;
use JSON::PP ();
use POSIX ();
use Test::More;

use Test::PbxAuth;
use Test::PbxAuth::Smtp;

my $t = Test::PbxAuth->new(need_nginx => 1);
my $smtp = Test::PbxAuth::Smtp->new($t);
$t->write_config(
	password_hash_cost        => 1,
	cookie_secure             => 'off',
	# every request comes from 127.0.0.1: the sign-ins below must not block it
	throttle_ip_failures      => 0,
	$smtp->config,
);
$smtp->start;
$t->start_pg->start_daemon->start_nginx;

my $JSON = JSON::PP->new->canonical->utf8;
my $TOKEN_RE = qr/[A-Za-z0-9_-]{43}/;
my $CB = 'https://app.test/reset';

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

sub add_user {
	my ($name, $pw, @opt) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return ctl_ok('user', 'add', '--domain', 't1.test', $name, @opt, { stdin => "$pw\n" });
}

sub post {
	my ($path, $body, %h) = @_;
	$body = $JSON->encode($body) if ref $body;
	return $t->request('POST', $path, body => $body,
	    headers => { 'Content-Type' => 'application/json', %h });
}

# forget_password answers first and then does its work (the section on the
# users table locked): every answered request writes one reset_request audit
# row, in the transaction that queues its mail.  forget() returns once that
# row is there, so what a test reads next is what the request did.
sub resets_recorded { $t->psql("SELECT count(*) FROM audit_log WHERE event = 'reset_request'") }

sub recorded {
	my ($want, $name) = @_;
	$t->wait_until(sub { resets_recorded() >= $want }, 20)
	    or fail("$name: no reset_request audit row 20 s after the answer");
}

sub forget {
	my (%b) = @_;
	my $before = resets_recorded();
	my $r = post('/api/auth/forget_password', { domain => 't1.test', callback_url => $CB, %b });
	recorded($before + 1, 'forget_password') if ($r->{status} // 0) == 200;
	return $r;
}

sub reset_pw {
	my ($token, $pw) = @_;
	return post('/api/auth/reset_password', { token => $token, new_password => $pw });
}

sub sign_in {
	my ($name, $pw) = @_;
	return post('/api/auth/sign_in', { domain => 't1.test', username => $name, password => $pw });
}

sub q_str { my $s = shift; $s =~ s/'/''/g; return "'$s'" }

sub uid { $t->psql('SELECT id FROM users WHERE lower(username) = lower(' . q_str($_[0]) . ')') }

# The rate limit of the account forgotten, for tests that need a second email.
sub unlimit { $t->psql('UPDATE users SET reset_sent_at = NULL WHERE id = ' . uid($_[0])) }

# A 200 answer with the empty body of forget_password and reset_password.
sub ok_empty {
	my ($r, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($r->{status}, 200, "$name: 200") or diag($r->{content});
	is($r->{content} // '', '', "$name: empty body");
	$t->has_common_headers($r, $name);
}

sub invalid {
	my ($r, $field, $name, $rule) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$t->is_error($r, 400, 'VALIDATE_FAILED', $name) or return;
	my @d = map { $_->{detail} } @{$r->{json}{errors}};
	ok((grep { ref $_ eq 'HASH' && ($_->{field} // '') eq $field } @d),
	    "$name: detail names $field") or diag($r->{content});
	if (defined $rule) {
		ok((grep { ref $_ eq 'HASH' && ($_->{rule} // '') =~ $rule } @d),
		    "$name: rule matches $rule") or diag($r->{content});
	}
}

# The one new message since $n messages, or undef (with a failed test).
sub one_mail {
	my ($n, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my @m = $smtp->since($n, 1);
	is(scalar @m, 1, "$name: one message") or return undef;
	return $m[0];
}

# The token of the reset link in a message (registered as a secret).
sub link_token {
	my ($m) = @_;
	my ($tok) = ($m->{body} // '') =~ m{token=($TOKEN_RE)};
	$t->secret($tok, 'reset token of an email');
	return $tok;
}

# A new reset token for $name by email.
sub reset_token {
	my ($name, %b) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $n = $smtp->count;
	ok_empty(forget(username => $name, %b), "forget_password $name");
	my $m = one_mail($n, "forget_password $name") or return undef;
	return link_token($m);
}

###############################################################################
# fixtures

my %PW = (alice => 'Alice-pass-1', carol => 'Carol-pass-2', nomail => 'No-mail-pass-3',
    dave => 'Dave-disabled-4', erin => 'Erin-pass-5', quinn => 'Quinn-pass-6');

ctl_ok('tenant', 'add', 't1.test', '--name', 'Tenant One');
ctl_ok('tenant', 'set', 't1.test', 'callback_prefixes=https://app.test/reset,https://app.test/r?');
ctl_ok('tenant', 'add', 't2.test', '--name', 'Tenant Two');
ctl_ok('system', 'set', 'web_domain=portal.test');
add_user('alice', $PW{alice}, '--email', 'alice@x.test');
add_user('carol', $PW{carol}, '--email', 'carol@x.test');
add_user('nomail', $PW{nomail});
add_user('dave', $PW{dave}, '--email', 'dave@x.test');
ctl_ok('user', 'set', '--domain', 't1.test', 'dave', 'enabled=false');
add_user('erin', $PW{erin}, '--email', 'erin@x.test');
add_user('quinn', $PW{quinn}, '--email', 'quinn@x.test');
add_user('hostile', 'Hostile-pass-7', '--email', 'hostile@x.test');
# only SQL can store such an address (pbx-authctl checks it)
$t->psql("UPDATE users SET email = E'hostile\@x.test\r\nBcc: evil\@evil.test' "
    . "WHERE username = 'hostile'");
add_user('heidi', 'Heidi-pass-8', '--email', 'heidi@x.test');

###############################################################################
# the email and its link

my $n = $smtp->count;
my $r = forget(username => 'alice');
ok_empty($r, 'forget_password alice');
my $known = $r;
my $m = one_mail($n, 'alice');
is($m->{to}, 'alice@x.test', 'reset email: recipient');
is($m->{subject}, 'Password reset for Tenant One', 'reset email: default subject names the tenant');
like($m->{body}, qr/Hello alice,/, 'reset email: greets the user');
like($m->{body}, qr/at Tenant One\./, 'reset email: names the tenant');
like($m->{body}, qr/within 30 minutes/, 'reset email: the lifetime (reset_token_ttl 1800)');
like($m->{body}, qr{^\Q$CB\E\?token=$TOKEN_RE$}m, 'reset email: link on a line of its own');
my $alice_tok = link_token($m);
ok(defined $alice_tok, 'reset email: link carries a 43-character token');
is($t->psql("SELECT kind, user_id, client_addr, flavour IS NULL, spent_at IS NULL, "
    . "abs(extract(epoch FROM expires_at - created_at) - 1800) < 5 FROM auth_flows "
    . "WHERE token_hash = '\\x" . sha256_hex($alice_tok // '') . "'"),
    'password_reset|' . uid('alice') . '|127.0.0.1|t|t|t',
    'reset flow: SHA-256 of the token, 30 minutes, unspent');
is($t->psql("SELECT count(*) FROM auth_flows WHERE kind = 'password_reset' "
    . "AND token_hash = convert_to('$alice_tok', 'UTF8')"), 0, 'the token itself is not stored');
is($t->psql("SELECT kind, user_id FROM mail_outbox ORDER BY id DESC LIMIT 1"),
    'password_reset|' . uid('alice'), 'mail_outbox row: kind and user');

# the link: '&' after an existing query, nothing after a trailing '?', before a fragment
for my $case (
	[ 'https://app.test/reset?lang=en', 'https://app.test/reset?lang=en&token=' ],
	[ 'https://app.test/r?', 'https://app.test/r?token=' ],
	[ 'https://app.test/reset?a=1&', 'https://app.test/reset?a=1&token=' ],
	[ 'https://portal.test/', 'https://portal.test/?token=' ],
	[ 'https://app.test/reset#/done', 'https://app.test/reset?token=', '#/done' ],
	[ 'https://app.test/reset?x=y#f?g', 'https://app.test/reset?x=y&token=', '#f?g' ],
    )
{
	my ($cb, $pre, $post) = @$case;
	unlimit('erin');
	my $n0 = $smtp->count;
	ok_empty(forget(username => 'erin', callback_url => $cb), "callback_url $cb");
	my $mm = one_mail($n0, "callback_url $cb") or next;
	like($mm->{body}, qr{^\Q$pre\E$TOKEN_RE\Q${\($post // '')}\E$}m, "link for $cb");
	link_token($mm);
}

###############################################################################
# reset_password: policy, success, sessions revoked, single use

# sessions to be revoked: two bearer sessions and a portal cookie
my @sess = map { sign_in('alice', $PW{alice})->{json} } 1 .. 2;
ok($sess[$_]{access_token}, "alice signed in, session $_") for 0 .. 1;
$r = post('/api/login', { domain => 't1.test', username => 'alice', password => $PW{alice} });
my ($cookie) = ($r->{headers}{'set-cookie'} // '') =~ /^pbx_session=([^;]+)/;
ok($cookie, 'alice has a portal cookie');
ctl_ok('user', 'set', '--domain', 't1.test', 'alice', 'password_force_reset=true');
is($t->psql('SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND user_id = '
    . uid('alice')), 3, 'alice: three live sessions');

for my $weak ([ 'short', qr/8-128 characters/ ], [ 'x' x 129, qr/8-128 characters/ ],
    [ "tab\there-long", qr/control characters/ ])
{
	invalid(reset_pw($alice_tok, $weak->[0]), 'new_password', 'weak new password', $weak->[1]);
}
invalid(reset_pw($alice_tok, 12345678), 'new_password', 'new_password a number', qr/string/);
is($t->psql("SELECT count(*) FROM auth_flows WHERE spent_at IS NULL AND kind = 'password_reset' "
    . 'AND user_id = ' . uid('alice')), 1, 'rejected passwords do not spend the token');

my $NEW = 'Brand-new-pass-9';
$r = reset_pw($alice_tok, $NEW);
ok_empty($r, 'reset_password alice');
like($t->psql('SELECT password_hash FROM users WHERE id = ' . uid('alice')), qr/^\$y\$/,
    'the new hash is yescrypt');
is($t->psql('SELECT password_force_reset FROM users WHERE id = ' . uid('alice')), 'f',
    'password_force_reset cleared');
is($t->psql('SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND user_id = '
    . uid('alice')), 0, 'every session of alice is revoked');
is($t->psql("SELECT DISTINCT revoke_reason FROM sessions WHERE user_id = " . uid('alice')),
    'password reset', 'revoke_reason');
for my $i (0 .. 1) {
	$t->is_error($t->get('/api/auth/user',
	    headers => { Authorization => "Bearer $sess[$i]{access_token}" }),
	    401, 'INVALID_TOKEN', "old access token $i after the reset");
	$t->is_error(post('/api/auth/refresh_token', { refresh_token => $sess[$i]{refresh_token} }),
	    401, 'INVALID_TOKEN', "old refresh token $i after the reset");
}
$t->is_error($t->get('/api/login', headers => { Cookie => "pbx_session=$cookie" }),
    401, 'INVALID_TOKEN', 'old portal cookie after the reset');
$t->is_error(sign_in('alice', $PW{alice}), 401, 'AUTHENTICATION_FAILED', 'old password refused');
$r = sign_in('alice', $NEW);
is($r->{status}, 200, 'new password signs in') or diag($r->{content});
ok($r->{json}{access_token}, 'new password: tokens');

# single use
$t->is_error(reset_pw($alice_tok, 'Another-pass-10'), 401, 'INVALID_TOKEN', 'token used twice');
$r = sign_in('alice', $NEW);
is($r->{status}, 200, 'the second use changed nothing');

###############################################################################
# a newer request voids older tokens; expiry; garbage tokens

my $old = reset_token('carol');
unlimit('carol');
my $newer = reset_token('carol');
isnt($old, $newer, 'two different tokens');
$t->is_error(reset_pw($old, 'Carol-new-pass-1'), 401, 'INVALID_TOKEN', 'older token voided');
# carol forgot her password and locked her account (10 failures, the default)
$t->is_error(sign_in('carol', "Guess-$_-pass"), 401, 'AUTHENTICATION_FAILED', "carol guess $_")
    for 1 .. 10;
$t->is_error(sign_in('carol', $PW{carol}), 429, 'TOO_MANY_REQUESTS', 'carol is locked out');
ok_empty(reset_pw($newer, 'Carol-new-pass-2'), 'newer token works');
is(sign_in('carol', 'Carol-new-pass-2')->{status}, 200,
    'carol signs in with the new password: the reset cleared the account lock');

unlimit('carol');
my $exp = reset_token('carol');
$t->psql("UPDATE auth_flows SET expires_at = now() - interval '1 second' "
    . "WHERE token_hash = '\\x" . sha256_hex($exp // '') . "'");
$t->is_error(reset_pw($exp, 'Carol-new-pass-3'), 401, 'INVALID_TOKEN', 'expired token');
is(sign_in('carol', 'Carol-new-pass-2')->{status}, 200, 'expired token changed nothing');

for my $bad ('A' x 43, 'short', 'A' x 44, "$newer=", '') {
	$t->is_error(reset_pw($bad, 'Whatever-pass-1'), 401, 'INVALID_TOKEN',
	    'unknown or malformed token (' . length($bad) . ' chars)');
}
# the token of a two-factor flow is no reset token
ctl_ok('user', 'set', '--domain', 't1.test', 'quinn', 'two_factor=true');
my $tf = sign_in('quinn', $PW{quinn})->{json}{token};
ok($tf, 'quinn: a two-factor token');
$t->is_error(reset_pw($tf, 'Quinn-new-pass-1'), 401, 'INVALID_TOKEN', 'two-factor token refused');
# a reset voids the user's pending two-factor step
my $qt = reset_token('quinn');
ok_empty(reset_pw($qt, 'Quinn-new-pass-2'), 'quinn reset');
is($t->psql("SELECT spent_at IS NOT NULL FROM auth_flows WHERE token_hash = '\\x"
    . sha256_hex($tf // '') . "'"), 't', 'the pending two-factor token is void after a reset');

###############################################################################
# unknown tenant, unknown user, disabled user, no email: the same answer, no mail

$n = $smtp->count;
my $outbox = $t->psql('SELECT count(*) FROM mail_outbox');
# alice (known, with email) within her rate limit, however slow this run is
$t->psql("UPDATE users SET reset_sent_at = now() WHERE username = 'alice'");
my %same = (
	'unknown user'          => forget(username => 'nobody'),
	'unknown tenant'        => forget(domain => 'nosuch.test', username => 'alice',
	    callback_url => 'https://portal.test/reset'),
	'user without email'    => forget(username => 'nomail'),
	'disabled user'         => forget(username => 'dave'),
	'user of another tenant' => forget(domain => 't2.test', username => 'alice',
	    callback_url => 'https://portal.test/reset'),
	'known user, other case' => forget(username => 'ALICE'),
	'email with CR/LF'      => forget(username => 'hostile'),
);
for my $case (sort keys %same) {
	my $s = $same{$case};
	is($s->{status}, $known->{status}, "$case: same status");
	is($s->{content}, $known->{content}, "$case: same body");
	is(join(',', map { "$_=" . ($s->{headers}{$_} // '') }
	    qw(content-type content-length cache-control x-content-type-options)),
	    join(',', map { "$_=" . ($known->{headers}{$_} // '') }
	    qw(content-type content-length cache-control x-content-type-options)),
	    "$case: same headers");
}
is($t->psql('SELECT count(*) FROM mail_outbox'), $outbox, 'nothing queued for any of them');
is(scalar $smtp->since($n, 0, 2), 0, 'no message arrives');
# An unknown tenant has no callback prefixes: only https://<web_domain> is
# allowed (tenants are public anyway: GET /api/info?domain=).
invalid(forget(domain => 'nosuch.test', username => 'alice'), 'callback_url',
    'unknown tenant, a prefix of another tenant', qr/allowed callback prefix/);

###############################################################################
# at most one email per account per mail_rate_interval

unlimit('erin');
my $first = reset_token('erin');
$n = $smtp->count;
$outbox = $t->psql('SELECT count(*) FROM mail_outbox');
for my $i (1 .. 3) {
	$r = forget(username => 'erin');
	is($r->{content}, $known->{content}, "request $i within the minute: same answer");
}
is($t->psql('SELECT count(*) FROM mail_outbox'), $outbox, 'nothing queued within the minute');
is(scalar $smtp->since($n, 0, 2), 0, 'no further message within the minute');
is($t->psql("SELECT count(*) FROM auth_flows WHERE kind = 'password_reset' AND spent_at IS NULL "
    . 'AND user_id = ' . uid('erin')), 1, 'the first token is still the live one');
# a minute later
$t->psql("UPDATE users SET reset_sent_at = now() - interval '61 seconds' WHERE id = "
    . uid('erin'));
my $later = reset_token('erin');
ok(defined $later, 'a minute later the next email goes out');
$t->is_error(reset_pw($first, 'Erin-new-pass-1'), 401, 'INVALID_TOKEN',
    'and voids the earlier token');

###############################################################################
# validation

my %base = (domain => 't1.test', username => 'alice', callback_url => $CB);
$n = $smtp->count;
$outbox = $t->psql('SELECT count(*) FROM mail_outbox');
for my $f (qw(domain username callback_url)) {
	my %b = %base;
	delete $b{$f};
	invalid(post('/api/auth/forget_password', \%b), $f, "forget_password without $f",
	    qr/required/);
	%b = (%base, $f => 42);
	invalid(post('/api/auth/forget_password', \%b), $f, "forget_password, $f a number",
	    qr/string/);
	%b = (%base, $f => [ 'x' ]);
	invalid(post('/api/auth/forget_password', \%b), $f, "forget_password, $f an array");
}
for my $case (
	[ username => "alice\r\nBcc: evil\@evil.test", 'CR/LF in the username' ],
	[ username => "alice\nX: y", 'LF in the username' ],
	[ username => 'admin', 'reserved username' ],
	[ username => '.alice', 'username starting with a dot' ],
	[ username => 'a' x 65, '65-character username' ],
	[ domain => "t1.test\r\nBcc: x\@evil.test", 'CR/LF in the domain' ],
	[ domain => 'a' x 281, '281-character domain' ],
	[ domain => '', 'empty domain' ],
	[ callback_url => 'https://evil.test/reset', 'callback_url outside the allow-list' ],
	[ callback_url => 'https://app.test.evil/reset', 'callback_url look-alike host' ],
	[ callback_url => 'http://app.test/reset', 'plain http callback_url' ],
	[ callback_url => 'javascript:alert(1)', 'javascript: callback_url' ],
	[ callback_url => "https://app.test/reset\r\nBcc: x", 'CR/LF in callback_url' ],
	[ callback_url => '/reset', 'relative callback_url' ],
	[ callback_url => 'https://app.test/reset' . ('x' x 2100), 'oversize callback_url' ],
	[ callback_url => '', 'empty callback_url' ],
    )
{
	my ($f, $v, $name) = @$case;
	invalid(post('/api/auth/forget_password', { %base, $f => $v }), $f, $name);
}
for my $raw ('{"domain":"t1.test","username":"alice","callback_url":"' . $CB . '"',
    '[]', 'null', '"x"', qq({"domain":"t1.test","username":"al\xffice","callback_url":"$CB"}),
    '{"domain":"t1.test","username":"alice\u0000","callback_url":"' . $CB . '"}')
{
	my $s = post('/api/auth/forget_password', $raw);
	is($s->{status}, 400, 'malformed body ' . JSON::PP->new->ascii->allow_nonref->encode($raw)
	    . ': 400') or diag($s->{content});
}
$r = $t->request('POST', '/api/auth/forget_password', body => $JSON->encode(\%base),
    headers => { 'Content-Type' => 'text/plain' });
$t->is_error($r, 415, 'UNSUPPORTED_MEDIA_TYPE', 'forget_password text/plain');
$r = post('/api/auth/forget_password', '{"domain":"' . ('a' x 70000) . '"}');
$t->is_error($r, 413, 'PAYLOAD_TOO_LARGE', 'forget_password oversize body');
$r = $t->request('GET', '/api/auth/forget_password');
$t->is_error($r, 405, 'METHOD_NOT_ALLOWED', 'GET forget_password');
is($r->{headers}{allow}, 'POST', 'Allow: POST');
for my $f (qw(token new_password)) {
	my %b = (token => 'A' x 43, new_password => 'Good-pass-123');
	delete $b{$f};
	invalid(post('/api/auth/reset_password', \%b), $f, "reset_password without $f", qr/required/);
	invalid(post('/api/auth/reset_password', { %b, $f => { a => 1 } }), $f,
	    "reset_password, $f an object", qr/string/);
}
is($t->psql('SELECT count(*) FROM mail_outbox'), $outbox, 'no invalid request queued mail');
is(scalar $smtp->since($n, 0, 1), 0, 'no invalid request sent mail');

###############################################################################
# a tenant name with CR/LF (only SQL can store one) makes no header

$t->psql("UPDATE tenants SET name = E'Evil\\r\\nBcc: victim\@evil.test\\r\\nX-Evil: 1' "
    . "WHERE domain = 't1.test'");
unlimit('erin');
$n = $smtp->count;
ok_empty(forget(username => 'erin'), 'forget_password, tenant name with CR/LF');
$m = one_mail($n, 'tenant name with CR/LF');
if ($m) {
	link_token($m);
	unlike($m->{subject}, qr/[\r\n]/, 'the subject is one line');
	like($m->{subject}, qr/^Password reset for Evil +Bcc: victim\@evil\.test +X-Evil: 1$/,
	    'CR/LF in the tenant name became spaces');
	ok(!(grep { $_->[0] =~ /^(bcc|x-evil)$/i } @{$m->{headers}}), 'no Bcc or X-Evil header')
	    or diag($m->{head});
	is_deeply($m->{rcpt_to}, ['erin@x.test'], 'the only recipient is the user');
}

###############################################################################
# concurrent requests for one account: one email

unlimit('erin');
$n = $smtp->count;
my $before = resets_recorded();
my @res = $t->concurrently(6, '/api/auth/forget_password',
    $JSON->encode({ domain => 't1.test', username => 'erin', callback_url => $CB }));
is(scalar(grep { $_->[0] == 200 && $_->[1] eq '' } @res), 6, '6 concurrent requests: all 200');
recorded($before + 6, '6 concurrent requests');
my @cm = $smtp->since($n, 1);
is(scalar($smtp->since($n, 0, 1)), 1, 'exactly one email');
link_token($cm[0]) if @cm;
is($t->psql("SELECT count(*) FROM auth_flows WHERE kind = 'password_reset' AND spent_at IS NULL "
    . 'AND user_id = ' . uid('erin')), 1, 'one live reset token');

###############################################################################
# the answer leaves before any work that depends on the account, so its time
# cannot tell an unknown user from one who is sent an email (that work took
# a third of a millisecond more: two inserts, the NOTIFY that wakes the
# mailer).  With the users table locked, forget_password still answers,
# for an unknown user and for one who is then sent an email; their work
# waits for the lock and is done once it is released.  Needs both request
# workers (the default): each holds its request's work until the release.

unlimit('heidi');
$n = $smtp->count;
$before = resets_recorded();
my $hold = $t->psql_hold('LOCK TABLE users IN ACCESS EXCLUSIVE MODE');
my @held = map { post('/api/auth/forget_password',
    { domain => 't1.test', username => $_, callback_url => $CB }) } qw(nobody heidi);
is_deeply([ map { ($_->{status} // 0) . ' ' . ($_->{content} // '') } @held ], [ '200 ', '200 ' ],
    'users table locked: an unknown user and one to be emailed are both answered 200');
ok($t->wait_until(sub { $t->psql("SELECT count(*) FROM pg_stat_activity WHERE"
    . " application_name = 'pbx-authd' AND wait_event_type = 'Lock'") == 2 }, 10),
    'their work waits for the lock, after the answers');
is(resets_recorded(), $before, 'nothing recorded while the lock is held');
ok($t->psql_release($hold), 'the lock released');
recorded($before + 2, 'after the release');
is($t->psql("SELECT string_agg(username || ' ' || outcome, ', ' ORDER BY username) FROM"
    . " (SELECT username, outcome FROM audit_log WHERE event = 'reset_request'"
    . " ORDER BY id DESC LIMIT 2) r"), 'heidi queued, nobody unknown_user',
    'then the work is done: heidi queued, nobody unknown');
$m = one_mail($n, 'after the release');
if ($m) {
	link_token($m);
	is($m->{to}, 'heidi@x.test', 'the email goes to heidi');
}

# The database failing after the answer (its connection ended while the
# work waits for a row lock): the user was told 200 and gets no email; the
# worker says so, naming the account, and serves the next request.  libpq's
# message ("...unexpectedly\n\tThis probably means...") reaches the log as
# one logfmt line.
unlimit('heidi');
$n = $smtp->count;
$before = resets_recorded();
$hold = $t->psql_hold('SELECT 1 FROM users WHERE id = ' . uid('heidi') . ' FOR UPDATE');
my $off = $t->log_offset;
$r = post('/api/auth/forget_password', { domain => 't1.test', username => 'heidi',
    callback_url => $CB });
is($r->{status}, 200, 'heidi\'s row locked: answered 200') or diag($r->{content});
my $waiting;
$t->wait_until(sub { ($waiting) = $t->psql("SELECT pid FROM pg_stat_activity WHERE"
    . " application_name = 'pbx-authd' AND wait_event_type = 'Lock'"); $waiting }, 10);
ok($waiting, 'its work waits for the lock');
$t->psql("SELECT pg_terminate_backend($waiting)") if $waiting;
$t->allow_log_errors(qr/forget_password was answered but not carried out/);
my $said = $t->wait_for_log(qr/forget_password was answered but not carried out, no email/,
    10, $off);
like($said // '', qr/ domain=t1\.test user=heidi /, 'the error line names the account');
my $lost = 'lost the PostgreSQL connection during reset_request: server closed the connection'
    . ' unexpectedly This probably means ';
like($t->daemon_log($off), qr/^\S+ warn pbx-authd\[\d+\]: \Q$lost\E/m,
    'the lost connection: libpq\'s two lines are one, single spaces');
ok($t->psql_release($hold), 'the lock released');
is(resets_recorded(), $before, 'nothing recorded');
is(scalar $smtp->since($n, 0, 2), 0, 'no email');
ok_empty(forget(username => 'heidi'), 'the next request is carried out');
one_mail($n, 'the next request');

###############################################################################
# audit

my @audit = map { [ split /\|/, $_, -1 ] } split /\n/, $t->psql(
    "SELECT coalesce(tenant_domain, '<null>'), coalesce(username, '<null>'), client_addr, "
    . "event, outcome, coalesce(detail, '') FROM audit_log ORDER BY id");
sub audit_has {
	my ($want, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok((grep { my $row = $_; !grep { defined $want->[$_] && $row->[$_] ne $want->[$_] } 0 .. 5 }
	    @audit), "audit: $name") or diag('want: ' . join('|', map { $_ // '*' } @$want));
}
audit_has([ 't1.test', 'alice', '127.0.0.1', 'reset_request', 'queued', undef ], 'queued');
audit_has([ 't1.test', 'nobody', '127.0.0.1', 'reset_request', 'unknown_user', undef ],
    'unknown user');
audit_has([ 'nosuch.test', 'alice', '127.0.0.1', 'reset_request', 'unknown_user', undef ],
    'unknown tenant');
audit_has([ 't1.test', 'nomail', '127.0.0.1', 'reset_request', 'no_email', undef ], 'no email');
audit_has([ 't1.test', 'dave', '127.0.0.1', 'reset_request', 'not_allowed', undef ],
    'disabled user');
audit_has([ 't1.test', 'hostile', '127.0.0.1', 'reset_request', 'bad_email', undef ],
    'an email address with CR/LF is never used');
audit_has([ 't1.test', 'erin', '127.0.0.1', 'reset_request', 'rate_limited', undef ],
    'rate limited');
audit_has([ 't1.test', 'alice', '127.0.0.1', 'password_reset', 'success', '3 sessions revoked' ],
    'reset success');
audit_has([ '<null>', '<null>', '127.0.0.1', 'password_reset', 'invalid_token', '' ],
    'invalid token');

$smtp->stop;
$t->done_testing;
