#!/usr/bin/perl

# The PBX gate through the shipped snippet deploy/nginx/pbx-auth-gate.conf.in:
# a protected location proxying to an echo server the test starts.  Without
# a token: JSON 401 with WWW-Authenticate; a bearer token: the service sees
# the identity headers and never a client's X-PBX-* header; cookie GET
# passes, cookie POST from a foreign Origin does not; wrong role, password
# change pending: 403; a domain with CR/LF cannot inject a header.  With
# three workers whose caches are warm, every way of revoking a token makes
# every worker refuse it within 1 s.  PostgreSQL down: cached tokens pass,
# others get 503; back up, a revocation made meanwhile counts.  RFC 7662
# introspection: active, expired, revoked, refresh token, bad client.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

use Test::PbxAuth;

my $WORKERS = 3;
# log_level debug: the gate's passes (204) are logged at debug level, and
# the test reads them to know which worker answered.
my $t = Test::PbxAuth->new(need_nginx => 1, conf => { log_level => 'debug' });
$t->write_config(workers => $WORKERS, refresh_reuse_grace => 0,
    allowed_origins => 'https://portal.test');
$t->allow_log_errors(qr/unknown role 'Wizard'|database|postgres|connect|server|socket|sql|libpq/i);

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

###############################################################################
# the echo service: answers every request with what it received, as JSON

my $echo = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
    Proto => 'tcp', Listen => 64, ReuseAddr => 1) or die "echo: $!";
my $echo_port = $echo->sockport;
my $echo_pid = fork // die "fork: $!";
if (!$echo_pid) {
	$SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);    # not the harness's handlers
	alarm 600;    # stops by itself if the test is killed outright
	while (my $c = $echo->accept) {
		local $/ = "\r\n";
		my $line = <$c> // '';
		$line =~ s/\r\n\z//;
		my @h;
		while (defined(my $l = <$c>)) {
			last if $l eq "\r\n";
			$l =~ s/\r\n\z//;
			push @h, [ split /:\s*/, $l, 2 ];
		}
		my $body = $JSON->encode({ request => $line, headers => \@h });
		print $c "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		    . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
		close $c;
	}
	POSIX::_exit(0);
}
close $echo;

$t->nginx_dir;    # where render_nginx writes
my $gate = $t->render_nginx('pbx-auth-gate.conf.in',
    PA_GATE_UPSTREAM => "http://127.0.0.1:$echo_port");
$t->start_pg->start_daemon->start_nginx(server_extra => <<"EOF");
        include $gate;
        # any role, password change allowed; and a roles list with a typo
        location /api/pbx-any/ {
            set \$pbx_gate_roles "";
            set \$pbx_gate_allow_force_reset 1;
            auth_request /api/auth/verify;
            error_page 401 = \@pbx_gate_401;
            error_page 403 = \@pbx_gate_403;
            error_page 500 502 504 = /pbx-auth-error/503;
            proxy_pass http://127.0.0.1:$echo_port;
        }
        location /api/pbx-typo/ {
            set \$pbx_gate_roles "Admin,Wizard";
            auth_request /api/auth/verify;
            error_page 500 502 504 = /pbx-auth-error/503;
            proxy_pass http://127.0.0.1:$echo_port;
        }
EOF

###############################################################################
# helpers

my %PW = (alice => 'Secret-pass1', bob => 'Other-pass2', fred => 'Fourth-pass4',
    sam => 'System-pass5', dave => 'Fifth-pass6', erin => 'Sixth-pass7');

sub post_json {
	my ($path, $body, %h) = @_;
	return $t->request('POST', $path, body => $JSON->encode($body),
	    headers => { 'Content-Type' => 'application/json', %h });
}

sub sign_in {
	my ($user, $domain) = @_;
	my %b = (username => $user, password => $PW{$user});
	$b{domain} = $domain if defined $domain;
	my $r = post_json('/api/auth/sign_in', \%b);
	is($r->{status}, 200, "sign_in $user") or diag($r->{content});
	$t->secret($r->{json}{$_}, $_) for qw(access_token refresh_token);
	return $r->{json} // {};
}

sub login_cookie {
	my ($user, $domain) = @_;
	my $r = post_json('/api/login', { username => $user, password => $PW{$user},
	    domain => $domain });
	is($r->{status}, 200, "login $user") or diag($r->{content});
	my ($c) = ($r->{headers}{'set-cookie'} // '') =~ /^([^=]+=[^;]+)/;
	$t->secret((split /=/, $c // '', 2)[1], 'cookie');
	return $c;
}

sub pbx {
	my ($token, %o) = @_;
	my %h = (%{$o{headers} || {}});
	$h{Authorization} = "Bearer $token" if defined $token;
	return $t->request($o{method} // 'GET', $o{path} // '/api/pbx/calls?x=1',
	    headers => \%h, defined $o{body} ? (body => $o{body}) : ());
}

# The headers the echo service received, as name => [values].
sub seen {
	my ($r) = @_;
	my %h;
	push @{$h{lc $_->[0]}}, $_->[1] for @{($r->{json} // {})->{headers} || []};
	return \%h;
}

sub session_of {
	my ($access) = @_;
	return $t->psql("SELECT id FROM sessions WHERE access_hash = '\\x"
	    . sha256_hex($access) . "'::bytea");
}

# Verify log lines since $from: pid => [statuses].
sub verify_by_worker {
	my ($from) = @_;
	my %w;
	for (split /\n/, $t->daemon_log($from)) {
		push @{$w{$1}}, $2 if /\[(\d+)\]: request method=GET path=\/api\/auth\/verify status=(\d+)/;
	}
	return \%w;
}

# Sends the token through the gate until every worker has answered it with
# 204 (its cache now holds it).  True when all did.
sub warm {
	my ($token, %o) = @_;
	my $from = $t->log_offset;
	for (1 .. 200) {
		my $r = pbx($token, %o);
		return 0 unless $r->{status} == 200;
		my $w = verify_by_worker($from);
		return 1 if (grep { grep { $_ == 204 } @$_ } values %$w) >= $WORKERS;
	}
	return 0;
}

# After a revocation: every worker refuses the token within 1 s (a worker
# reads its notifications before each request; they reach it within
# milliseconds), and none accepts it again.
sub refused_everywhere {
	my ($token, $name, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($from, $t0, $done) = ($t->log_offset, time, 0);
	while (!$done && time - $t0 < 1) {
		pbx($token, %o);
		my $w = verify_by_worker($from);
		$done = keys %$w >= $WORKERS && !grep { $_->[-1] != 401 } values %$w;
	}
	ok($done, "$name: every worker refuses it within 1 s")
	    or diag(explain(verify_by_worker($from)));
	my $bad = grep { pbx($token, %o)->{status} != 401 } 1 .. 3 * $WORKERS;
	is($bad, 0, "$name: and keeps refusing it");
}

###############################################################################
# set-up

$t->ctl_ok('tenant', 'add', 't1.test', '--name', 'T1');
$t->ctl_ok('user', 'add', '--domain', 't1.test', 'alice', '--role', 'Admin', { stdin => "$PW{alice}\n" });
$t->ctl_ok('user', 'add', '--domain', 't1.test', 'bob', { stdin => "$PW{bob}\n" });
$t->ctl_ok('user', 'add', '--domain', 't1.test', 'fred', '--role', 'Admin', { stdin => "$PW{fred}\n" });
$t->ctl_ok('user', 'add', '--domain', 't1.test', 'dave', '--role', 'Admin', { stdin => "$PW{dave}\n" });
$t->ctl_ok('user', 'add', '--domain', 't1.test', 'erin', '--role', 'Admin', { stdin => "$PW{erin}\n" });
$t->ctl_ok('user', 'add', 'sam', { stdin => "$PW{sam}\n" });

###############################################################################
# 401, bearer identity, stripping, roles

{
	my $r = pbx(undef);
	$t->is_error($r, 401, 'INVALID_TOKEN', 'no token');
	like($r->{headers}{'www-authenticate'} // '', qr/^Bearer\b/, 'no token: WWW-Authenticate Bearer');
	$r = pbx('x' x 43);
	$t->is_error($r, 401, 'INVALID_TOKEN', 'unknown token');
	is($t->get('/api/auth/verify')->{status}, 404, 'the verify location is internal');

	my $a = sign_in('alice', 't1.test');
	$r = pbx($a->{access_token}, headers => { 'X-PBX-User-Id' => '1', 'X-PBX-Role' => 'SystemAdmin',
	    'X-PBX-Username' => 'mallory', 'X-PBX-Extra' => 'injected', 'x-pbx-domain' => 'evil.test' });
	is($r->{status}, 200, 'bearer: the service answers') or diag($r->{content});
	my $h = seen($r);
	my $uid = $t->psql("SELECT id FROM users WHERE username = 'alice'");
	is_deeply($h->{'x-pbx-user-id'}, [$uid], 'X-PBX-User-Id: the user id, once');
	is_deeply($h->{'x-pbx-username'}, ['alice'], 'X-PBX-Username');
	is_deeply($h->{'x-pbx-domain'}, ['t1.test'], 'X-PBX-Domain');
	is_deeply($h->{'x-pbx-role'}, ['Admin'], 'X-PBX-Role, not the client\'s');
	is_deeply($h->{'x-pbx-session-id'}, [session_of($a->{access_token})], 'X-PBX-Session-Id');
	is_deeply($h->{'x-pbx-auth'}, ['bearer'], 'X-PBX-Auth bearer');
	ok(!$h->{'x-pbx-extra'}, 'a client X-PBX-* header never reaches the service');
	ok(!$h->{authorization} && !$h->{cookie}, 'the token does not reach the service');
	like((seen($r) && $r->{json}{request}) // '', qr{^GET /api/pbx/calls\?x=1 }, 'path and query kept');

	# Passes are logged at debug level, refusals at info (README).
	# (The line is written once the answer has left: waited for.)
	ok($t->wait_for_log(qr/ debug pbx-authd\[\d+\]: request method=GET path=\/api\/auth\/verify status=204 /, 5),
	    'a pass: access line at debug level');
	ok($t->wait_for_log(qr/ info pbx-authd\[\d+\]: request method=GET path=\/api\/auth\/verify status=401 /, 5),
	    'a refusal: access line at info level');
	unlike($t->daemon_log, qr/ info pbx-authd\[\d+\]: request method=GET path=\/api\/auth\/verify status=204 /,
	    'no pass at info level');

	my $s = sign_in('sam');
	$h = seen(pbx($s->{access_token}));
	is_deeply($h->{'x-pbx-role'}, ['SystemAdmin'], 'system account: role');
	ok(!$h->{'x-pbx-domain'}, 'system account: no domain');

	my $b = sign_in('bob', 't1.test');
	$t->is_error(pbx($b->{access_token}), 403, 'FORBIDDEN', 'StandardUser on an Admin location');
	is(pbx($b->{access_token}, path => '/api/pbx-any/x')->{status}, 200, 'StandardUser where any role passes');
	$r = pbx($a->{access_token}, path => '/api/pbx-typo/x');
	$t->is_error($r, 503, 'SERVICE_UNAVAILABLE', 'unknown role name: refused');
	ok($t->wait_for_log(qr/unknown role 'Wizard'/, 5), 'unknown role name: logged');

	$t->ctl_ok('user', 'set', '--domain', 't1.test', 'fred', 'password_force_reset=true');
	my $f = sign_in('fred', 't1.test');
	$t->is_error(pbx($f->{access_token}), 403, 'FORBIDDEN', 'password change pending: 403');
	is(pbx($f->{access_token}, path => '/api/pbx-any/x')->{status}, 200,
	    'password change pending: passes where allowed');
}

###############################################################################
# cookies and CSRF

{
	my $c = login_cookie('dave', 't1.test');
	my $r = pbx(undef, headers => { Cookie => $c });
	is($r->{status}, 200, 'cookie GET passes') or diag($r->{content});
	is_deeply(seen($r)->{'x-pbx-auth'}, ['cookie'], 'X-PBX-Auth cookie');
	is(pbx(undef, method => 'POST', body => '{}', headers => { Cookie => $c,
	    'Content-Type' => 'application/json', Origin => 'https://portal.test' })->{status}, 200,
	    'cookie POST from an allowed Origin passes');
	$t->is_error(pbx(undef, method => 'POST', body => '{}', headers => { Cookie => $c,
	    'Content-Type' => 'application/json', Origin => 'https://evil.test' }), 403, 'FORBIDDEN',
	    'cookie POST from a foreign Origin');
	$t->is_error(pbx(undef, method => 'DELETE', headers => { Cookie => $c,
	    Origin => 'https://evil.test' }), 403, 'FORBIDDEN', 'cookie DELETE from a foreign Origin');
	is(pbx(undef, headers => { Cookie => $c, Origin => 'https://evil.test' })->{status}, 200,
	    'cookie GET from a foreign Origin (safe method) passes');
	my $r401 = pbx(undef, headers => { Cookie => 'pbx_auth=' . ('A' x 43) });
	$t->is_error($r401, 401, 'INVALID_TOKEN', 'unknown cookie');
}

###############################################################################
# header injection: a domain written by hand with CR/LF and non-ASCII

{
	$t->psql("INSERT INTO tenants (domain, name) VALUES (E'x.test\\r\\nX-PBX-Role: SystemAdmin\\r\\nX-I: caf\\u00e9', 'Bad')");
	my $e = sign_in('erin', 't1.test');
	$t->psql("UPDATE users SET tenant_id = (SELECT id FROM tenants WHERE name = 'Bad') WHERE username = 'erin'");
	my $r = pbx($e->{access_token});
	is($r->{status}, 200, 'odd domain: passes') or diag($r->{content});
	my $h = seen($r);
	is_deeply($h->{'x-pbx-role'}, ['Admin'], 'odd domain: no injected role');
	ok(!$h->{'x-i'}, 'odd domain: no injected header');
	is_deeply($h->{'x-pbx-domain'}, ['x.test%0D%0AX-PBX-Role:%20SystemAdmin%0D%0AX-I:%20caf%C3%A9'],
	    'odd domain: percent-encoded');
}

###############################################################################
# revocation reaches every worker's cache within 1 s

{
	my $a = sign_in('alice', 't1.test');
	ok(warm($a->{access_token}), 'sign_out: every worker cached the token');
	is($t->request('POST', '/api/auth/sign_out',
	    headers => { Authorization => "Bearer $a->{access_token}" })->{status}, 200, 'sign_out');
	refused_everywhere($a->{access_token}, 'sign_out');

	my $c = login_cookie('dave', 't1.test');
	ok(warm(undef, headers => { Cookie => $c }), 'logout: every worker cached the cookie');
	is($t->request('POST', '/api/logout', headers => { Cookie => $c })->{status}, 204, 'logout');
	refused_everywhere(undef, 'logout', headers => { Cookie => $c });

	my $b = sign_in('alice', 't1.test');
	ok(warm($b->{access_token}), 'refresh: cached');
	my $n = post_json('/api/auth/refresh_token', { refresh_token => $b->{refresh_token} });
	is($n->{status}, 200, 'refresh rotates');
	$t->secret($n->{json}{$_}, $_) for qw(access_token refresh_token);
	refused_everywhere($b->{access_token}, 'refresh rotation: the old access token');

	ok(warm($n->{json}{access_token}), 'reuse: the new access token cached');
	is(post_json('/api/auth/refresh_token', { refresh_token => $b->{refresh_token} })->{status},
	    401, 'the spent refresh token again');
	refused_everywhere($n->{json}{access_token}, 'refresh reuse revokes the session');

	my $d = sign_in('alice', 't1.test');
	ok(warm($d->{access_token}), 'session revoke: cached');
	$t->ctl_ok('session', 'revoke', session_of($d->{access_token}));
	refused_everywhere($d->{access_token}, 'pbx-authctl session revoke');

	$d = sign_in('alice', 't1.test');
	ok(warm($d->{access_token}), 'SQL: cached');
	$t->psql("UPDATE sessions SET revoked_at = now() WHERE id = " . session_of($d->{access_token}));
	refused_everywhere($d->{access_token}, "a DBA's UPDATE of sessions");

	$d = sign_in('alice', 't1.test');
	ok(warm($d->{access_token}), 'password: cached');
	$t->ctl_ok('user', 'passwd', '--domain', 't1.test', 'alice', { stdin => "$PW{alice}\n" });
	refused_everywhere($d->{access_token}, 'password changed (pbx-authctl user passwd)');

	$d = sign_in('alice', 't1.test');
	ok(warm($d->{access_token}), 'password change required: cached');
	$t->psql("UPDATE users SET password_force_reset = true WHERE username = 'alice'");
	ok($t->wait_until(sub { pbx($d->{access_token})->{status} == 403 }, 1),
	    'password_force_reset set in SQL: 403 within 1 s');
	$t->psql("UPDATE users SET password_force_reset = false WHERE username = 'alice'");

	$d = sign_in('alice', 't1.test');
	ok(warm($d->{access_token}), 'user disabled: cached');
	$t->ctl_ok('user', 'set', '--domain', 't1.test', 'alice', 'enabled=false');
	refused_everywhere($d->{access_token}, 'user disabled');
	$t->ctl_ok('user', 'set', '--domain', 't1.test', 'alice', 'enabled=true');

	$d = sign_in('alice', 't1.test');
	ok(warm($d->{access_token}), 'user disabled in SQL: cached');
	$t->psql("UPDATE users SET enabled = false WHERE username = 'alice'");
	refused_everywhere($d->{access_token}, 'user disabled in SQL');
	$t->psql("UPDATE users SET enabled = true WHERE username = 'alice'");

	my $s = sign_in('sam');
	$t->ctl_ok('user', 'add', 'sam2', { stdin => "$PW{sam}\n" });
	$PW{sam2} = $PW{sam};
	my $s2 = sign_in('sam2');
	ok(warm($s2->{access_token}), 'user deleted: cached');
	$t->psql("DELETE FROM users WHERE username = 'sam2'");
	refused_everywhere($s2->{access_token}, 'user deleted');
	is(pbx($s->{access_token})->{status}, 200, 'other users stay');

	$d = sign_in('alice', 't1.test');
	ok(warm($d->{access_token}), 'tenant disabled: cached');
	$t->ctl_ok('tenant', 'disable', 't1.test');
	refused_everywhere($d->{access_token}, 'tenant disabled');
	$t->psql("UPDATE tenants SET enabled = true WHERE domain = 't1.test'");
}

###############################################################################
# introspection (RFC 7662)

{
	my $secret = $t->ctl_ok('client', 'add', 'billing');
	chomp $secret;
	like($secret, qr/^[A-Za-z0-9_-]{43}\z/, 'client add prints a 256-bit secret');
	$t->secret($secret, 'client secret');
	like($t->ctl_ok('client', 'list'), qr/^billing\t\d{4}-/m, 'client list');
	my ($rc) = $t->ctl('client', 'add', 'billing');
	is($rc, 1, 'client add: the name exists');
	is($t->psql("SELECT count(*) FROM introspection_clients WHERE secret_hash = '\\x"
	    . sha256_hex($secret) . "'::bytea"), 1, 'only the SHA-256 of the secret is stored');

	my $basic = 'Basic ' . encode_base64("billing:$secret", '');
	my $intro = sub {
		my ($token, $auth, $extra) = @_;
		return $t->request('POST', '/api/auth/introspect', body => 'token=' . $token . ($extra // ''),
		    headers => { 'Content-Type' => 'application/x-www-form-urlencoded',
		    $auth ? (Authorization => $auth) : () });
	};
	my $a = sign_in('alice', 't1.test');
	my $r = $intro->($a->{access_token}, $basic);
	is($r->{status}, 200, 'introspect: 200') or diag($r->{content});
	my $j = $r->{json} // {};
	is($j->{active}, JSON::PP::true, 'active');
	is_deeply([ @$j{qw(sub username domain role token_type)} ],
	    [ $t->psql("SELECT id FROM users WHERE username = 'alice'"), 'alice', 't1.test', 'Admin', 'Bearer' ],
	    'sub, username, domain, role, token_type');
	ok($j->{exp} > time && $j->{iat} <= time + 1 && $j->{exp} > $j->{iat}, 'exp and iat');
	is($intro->($a->{access_token}, undef,
	    '&client_id=billing&client_secret=' . $secret)->{json}{active}, JSON::PP::true,
	    'client credential in the form');

	is($intro->($a->{refresh_token}, $basic)->{content}, '{"active":false}', 'refresh token: inactive');
	is($intro->('x' x 43, $basic)->{content}, '{"active":false}', 'unknown token: inactive');
	my $x = sign_in('alice', 't1.test');
	$t->psql("UPDATE sessions SET access_expires_at = now() - interval '1 second' WHERE id = "
	    . session_of($x->{access_token}));
	is($intro->($x->{access_token}, $basic)->{content}, '{"active":false}', 'expired: inactive');
	$t->ctl_ok('session', 'revoke', session_of($a->{access_token}));
	ok($t->wait_until(sub { $intro->($a->{access_token}, $basic)->{content} eq '{"active":false}' }, 1),
	    'revoked: inactive within 1 s');

	my $bad = $intro->($a->{access_token}, 'Basic ' . encode_base64("billing:x$secret", ''));
	$t->is_error($bad, 401, 'INVALID_CLIENT', 'wrong secret');
	like($bad->{headers}{'www-authenticate'} // '', qr/^Basic /, 'wrong secret: WWW-Authenticate Basic');
	$t->is_error($intro->($a->{access_token}, 'Basic ' . encode_base64("nobody:$secret", '')),
	    401, 'INVALID_CLIENT', 'unknown client');
	$t->is_error($intro->($a->{access_token}, undef), 401, 'INVALID_CLIENT', 'no client credential');
	$t->is_error($intro->($a->{access_token}, 'Basic %%%'), 401, 'INVALID_CLIENT', 'malformed Basic');
	$t->ctl_ok('client', 'remove', 'billing');
	$t->is_error($intro->($a->{access_token}, $basic), 401, 'INVALID_CLIENT', 'removed client');
}

###############################################################################
# PostgreSQL down: cached tokens pass, unknown ones get 503; back up, a
# revocation made while this host could not hear it counts

{
	my $a = sign_in('alice', 't1.test');
	my $b = sign_in('alice', 't1.test');
	ok(warm($a->{access_token}), 'outage: cached');
	$t->stop_pg;
	my $r = pbx($a->{access_token});
	is($r->{status}, 200, 'PostgreSQL down: a cached token passes') or diag($r->{content});
	ok(!grep({ pbx($a->{access_token})->{status} != 200 } 1 .. 10), 'on every worker');
	$t->is_error(pbx($b->{access_token}), 503, 'SERVICE_UNAVAILABLE', 'PostgreSQL down: unknown token');
	$t->start_pg;
	$t->psql("UPDATE sessions SET revoked_at = now() WHERE id = " . session_of($a->{access_token}));
	refused_everywhere($a->{access_token}, 'back up: revoked meanwhile');
	is(pbx($b->{access_token})->{status}, 200, 'back up: other tokens pass');
}

###############################################################################
# the cache's counters in /api/metrics: hits and misses above; a full cache
# (gate_cache_size 2, one worker) drops the oldest entry to make room, and
# the dropped token still passes, from PostgreSQL

sub token_cache_metrics {
	my $r = $t->get('/api/metrics');
	my %m = map { /^pbx_auth_token_cache_(\S+) (\d+)$/ ? ($1, $2) : () }
	    split /\n/, $r->{content} // '';
	return \%m;
}

{
	my $m = token_cache_metrics();
	cmp_ok($m->{'requests_total{result="hit"}'} // 0, '>', 0, 'metrics: token cache hits counted');
	cmp_ok($m->{'requests_total{result="miss"}'} // 0, '>', 0, 'metrics: token cache misses counted');
	is($m->{evictions_total}, 0, 'metrics: no eviction from a cache that never filled');

	$t->stop_daemon;
	$t->write_config(workers => 1, gate_cache_size => 2);
	$t->start_daemon;
	my @tok = map { sign_in('alice', 't1.test')->{access_token} } 1 .. 3;
	is(pbx($_)->{status}, 200, 'small cache: a token passes') for @tok;
	$m = token_cache_metrics();
	is($m->{evictions_total}, 1, 'metrics: the third token evicted the first');
	is(pbx($tok[0])->{status}, 200, 'the evicted token still passes (from PostgreSQL)');
	is(token_cache_metrics()->{'requests_total{result="miss"}'}, 4,
	    'metrics: three first lookups and the evicted one missed');
}

Test::PbxAuth::stop_child($echo_pid, 'TERM');
$t->done_testing;
