#!/usr/bin/perl

# The shipped nginx configuration (deploy/nginx/*.conf.in, rendered by
# deploy/nginx/render): every error nginx answers itself for /api/ carries
# the contract's JSON error body with Cache-Control: no-store and
# X-Content-Type-Options: nosniff, never text/html: malformed requests (400),
# TRACE (405), bodies over 128 KiB (413), long URIs (414), the credential
# endpoints' limit_req at its shipped rate (429), a 10,000-byte header (431),
# an unknown Transfer-Encoding (501), HTTP/2.0 in the request line (505),
# an internal error (500), and pbx-authd stopped, its socket dead or missing,
# or not answering (503); a body that never arrives gets no response. The
# renderer's refusals. Then the complete site example over TLS with a
# certificate made here: sign-in over https with a Secure cookie, HSTS, and
# the plain-http server's redirect to https.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::UNIX;
use JSON::PP ();
use Socket qw(SOCK_STREAM);
use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->start_pg->start_daemon->start_nginx(shipped_limits => 1);

my @content_types;    # of every response, for the text/html check at the end

sub raw {
	my ($bytes, %o) = @_;
	my $r = $t->parse_http($t->raw_http($bytes, %o));
	push @content_types, $r->{headers}{'content-type'} // '';
	return $r;
}

sub http {
	my $r = $t->request(@_);
	push @content_types, $r->{headers}{'content-type'} // '';
	return $r;
}

# The JSON error as nginx renders it: the error checks of every test, and the
# exact body of deploy/nginx/pbx-auth-locations.conf.in.
sub nginx_error {
	my ($r, $status, $code, $message, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$t->is_error($r, $status, $code, $name);
	is($r->{content}, qq({"errors":[{"code":"$code","message":"$message","detail":null}]}),
	    "$name: the body");
	unlike($r->{headers}{server} // '', qr/\d/, "$name: no nginx version (server_tokens off)");
}

my $long = 'x' x 9000;

###############################################################################
# deploy/nginx/render refuses what would give a broken configuration, and
# then writes nothing

{
	my $render = "$t->{srcdir}/deploy/nginx/render";
	my $in = "$t->{srcdir}/deploy/nginx/pbx-auth-http.conf.in";
	my $out = "$t->{dir}/rendered.conf";
	for my $case ([ [], qr/no value for \@PA_FCGI_PASS\@/, 'a placeholder left unset' ],
	    [ [ '--set', 'PA_FCGI_PAS=unix:/x' ], qr/PA_FCGI_PAS: unknown placeholder/,
	      'an unknown name' ],
	    [ [ '--set', 'PA_FCGI_PASS=unix:/x; include /etc/passwd' ], qr/PA_FCGI_PASS: the value/,
	      'a value with a semicolon' ]) {
		my ($rc, undef, $err) = $t->run([$^X, $render, @{$case->[0]}, '-o', $out, $in]);
		is($rc, 1, "render: $case->[2] fails");
		like($err, $case->[1], "render: $case->[2]: says why");
		ok(!-e $out, "render: $case->[2]: nothing written");
	}
	my ($rc, $text) = $t->run([$^X, $render, '--set', 'PA_FCGI_PASS=unix:/x', $in]);
	is($rc, 0, 'render: to standard output');
	like($text, qr/^    server unix:\/x;$/m, 'render: the value in place');
	like($text, qr/ rate=10r\/s;$/m, 'render: the default rate');
	unlike($text, qr/\@PA_/, 'render: no placeholder left');
}

###############################################################################
# errors nginx answers before it chooses a location (server level)

nginx_error(raw("GET /api/info HTTP/1.1\r\nConnection: close\r\n\r\n"),
    400, 'VALIDATE_FAILED', 'Malformed request', 'HTTP/1.1 without Host');
nginx_error(raw("GET /api/info HTTP/1.1\r\nHost: localhost\r\nHost: other\r\n\r\n"),
    400, 'VALIDATE_FAILED', 'Malformed request', 'two Host headers');
nginx_error(raw("G\@T /api/info HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    400, 'VALIDATE_FAILED', 'Malformed request', 'malformed request line');
nginx_error(raw("TRACE /api/info HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    405, 'METHOD_NOT_ALLOWED', 'Method not allowed', 'TRACE');
nginx_error(raw("GET /api/info?q=$long HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    414, 'URI_TOO_LONG', 'Request URI too long', '9000-byte URI');
my $r = raw("GET /api/auth/user HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    . 'Authorization: Bearer ' . ('A' x 10_000) . "\r\n\r\n");
nginx_error($r, 431, 'REQUEST_HEADER_FIELDS_TOO_LARGE', 'Request header fields too large',
    '10,000-byte Authorization header');
nginx_error(raw("POST /api/auth/sign_in HTTP/1.1\r\nHost: localhost\r\n"
    . "Transfer-Encoding: gzip\r\nContent-Type: application/json\r\n\r\n"),
    501, 'NOT_IMPLEMENTED', 'Transfer-Encoding not supported', 'Transfer-Encoding: gzip');
nginx_error(raw("GET /api/info HTTP/2.0\r\nHost: localhost\r\n\r\n"),
    505, 'HTTP_VERSION_NOT_SUPPORTED', 'HTTP version not supported', 'HTTP/2.0 request line');

###############################################################################
# errors nginx answers in location /api/

my $big = '{"username":"' . ('u' x (128 * 1024)) . '"}';
for my $path ('/api/auth/sign_in', '/api/page.html') {
	nginx_error(http('POST', $path, body => $big,
	    headers => { 'Content-Type' => 'application/json' }),
	    413, 'PAYLOAD_TOO_LARGE', 'Request body too large', "POST $path, body over 128 KiB");
}
$r = http('POST', '/api/auth/sign_in', body => '{"username":"' . ('u' x 70_000) . '"}',
    headers => { 'Content-Type' => 'application/json' });
$t->is_error($r, 413, 'PAYLOAD_TOO_LARGE', 'a 70 KB body reaches pbx-authd');
unlike($r->{content}, qr/Request body too large/, '70 KB: the 413 is the application\'s');

nginx_error(raw("POST /api/auth/sign_in HTTP/1.1\r\nHost: localhost\r\n"
    . "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n"),
    400, 'VALIDATE_FAILED', 'Malformed request', 'a malformed chunked body');

# The credential endpoints at the shipped rate: 10 per second and a burst of
# 20 per client address. Each request is answered 400 at once by pbx-authd
# (an empty object), so 60 of them take far less than the 4 s in which the
# zone would let 40 more through.
my %seen;
my $first429;
for my $i (1 .. 60) {
	my $res = http('POST', '/api/auth/sign_in', body => '{}', keep_alive => 1,
	    headers => { 'Content-Type' => 'application/json' });
	$seen{$res->{status}}++;
	$first429 //= $res if $res->{status} == 429;
}
is(join(' ', sort keys %seen), '400 429', 'sign_in: pbx-authd\'s 400 until nginx limits (429)')
    or diag(explain \%seen);
cmp_ok($seen{400} // 0, '>=', 21, 'the burst of 20 and the first request passed');
ok($first429, 'a 429 from the shipped limit_req') and do {
	nginx_error($first429, 429, 'TOO_MANY_REQUESTS', 'Too many requests; try again later',
	    'limit_req');
	is($first429->{headers}{'retry-after'}, '1', 'limit_req: Retry-After: 1');
};
# One zone: /api/login is limited at once, give or take the request or two
# the zone lets through per 100 ms that passed since (a loaded machine);
# a zone of its own would let its whole burst of 20 through first.
my @login;
for my $i (1 .. 5) {
	push @login, http('POST', '/api/login', body => '{}', keep_alive => 1,
	    headers => { 'Content-Type' => 'application/json' })->{status};
	last if $login[-1] == 429;
}
is($login[-1], 429, 'the same address is limited on POST /api/login (one zone)')
    or diag("statuses: @login");
%seen = ();
for my $i (1 .. 30) {
	$seen{http('GET', '/api/info', keep_alive => 1)->{status}}++;
}
is(join(' ', keys %seen), '200', 'GET /api/info is not limited');
%seen = ();
for my $i (1 .. 30) {
	$seen{http('GET', '/api/auth/user', keep_alive => 1)->{status}}++;
}
is(join(' ', keys %seen), '401', 'GET /api/auth/user is not limited');

# pbx-authd stopped: its socket is gone (502 in nginx's log), as are a
# socket nobody listens on and one that never existed.
$t->stop_daemon;
nginx_error(http('GET', '/api/info'), 503, 'SERVICE_UNAVAILABLE',
    'The service is temporarily unavailable', 'pbx-authd stopped');
is(http('GET', '/api/info')->{headers}{'retry-after'}, '5', 'pbx-authd stopped: Retry-After: 5');

my $dead = "$t->{dir}/dead.sock";
{
	my $s = IO::Socket::UNIX->new(Local => $dead, Type => SOCK_STREAM)
	    or die "bind $dead: $!";
	close $s;    # the file stays, nobody listens: ECONNREFUSED
}
for my $case ([ "unix:$dead", 'a dead socket' ], [ "unix:$t->{dir}/none.sock", 'no socket' ]) {
	$t->stop_nginx;
	$t->start_nginx(fcgi_pass => $case->[0]);
	nginx_error(http('GET', '/api/info'), 503, 'SERVICE_UNAVAILABLE',
	    'The service is temporarily unavailable', $case->[1]);
}

# A FastCGI server that accepts and never answers (this process listens and
# never accepts; the kernel completes the connections): 504 after
# fastcgi_read_timeout, which our server block sets to 1 s (the snippet
# leaves it to the server or http block).
my $silent = "$t->{dir}/silent.sock";
my $listener = IO::Socket::UNIX->new(Local => $silent, Type => SOCK_STREAM, Listen => 16)
    or die "listen $silent: $!";
$t->stop_nginx;
$t->start_nginx(fcgi_pass => "unix:$silent", server_extra => '        fastcgi_read_timeout 1s;');
nginx_error(http('GET', '/api/info'), 503, 'SERVICE_UNAVAILABLE',
    'The service is temporarily unavailable', 'pbx-authd not answering (504)');
like($t->read_file("$t->{dir}/nginx/error.log"), qr/upstream timed out/,
    'nginx logged the upstream timeout');
close $listener;

# The body not arriving within client_body_timeout (1 s in our server block;
# the snippet leaves it to the server): nginx closes the connection and sends
# nothing (its 408 is only logged), so no HTML either.
$t->stop_nginx;
$t->start_nginx(server_extra => '        client_body_timeout 1s;');
is($t->raw_http("POST /api/auth/sign_in HTTP/1.1\r\nHost: localhost\r\n"
    . "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{", timeout => 5), '',
    'body timeout: the connection is closed without a response');
like($t->read_file("$t->{dir}/nginx/access.log"), qr{"POST /api/auth/sign_in HTTP/1\.1" 408 0 },
    'body timeout: logged as a 408 of 0 bytes');

# An internal error: request bodies forced into files (inherited from our
# server block) under a temporary path that is a file, not a directory.
$t->write_file('nginx/not-a-dir', '');
$t->stop_nginx;
$t->start_nginx(server_extra => "        client_body_in_file_only on;\n"
    . "        client_body_temp_path $t->{dir}/nginx/not-a-dir;");
nginx_error(http('POST', '/api/auth/sign_in', body => '{}',
    headers => { 'Content-Type' => 'application/json' }),
    500, 'UNKNOWN', 'Internal error', 'nginx cannot write the request body');

is(scalar(grep { m{text/html}i } @content_types), 0,
    'no response was text/html (' . scalar(@content_types) . ' responses)');
$t->stop_nginx;

###############################################################################
# TLS: the site example, with a certificate made here

SKIP: {
	eval { require IO::Socket::SSL; IO::Socket::SSL->VERSION(1.56); 1 }
	    or skip 'IO::Socket::SSL missing', 1;
	$t->start_daemon;
	my $d = $t->nginx_dir;
	my ($rc, $out, $err) = $t->run(['openssl', 'req', '-x509', '-newkey', 'ec',
	    '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
	    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
	    '-keyout', "$d/tls.key", '-out', "$d/tls.crt"]);
	is($rc, 0, 'openssl made a self-signed certificate') or diag($err);

	my ($http_port, $https_port) = (Test::PbxAuth::free_port(), Test::PbxAuth::free_port());
	my $l = $t->fcgi_listen;
	my %set = (PA_FCGI_PASS => "unix:$l", PA_NGINX_DIR => $d, PA_SERVER_NAME => '127.0.0.1',
	    PA_HTTP_LISTEN => "127.0.0.1:$http_port", PA_HTTPS_LISTEN => "127.0.0.1:$https_port",
	    PA_TLS_CERT => "$d/tls.crt", PA_TLS_KEY => "$d/tls.key",
	    PA_WWW_DIR => "$t->{srcdir}/www");
	$t->render_nginx($_, %set) for qw(pbx-auth-http.conf.in pbx-auth-locations.conf.in
	    pbx-auth-www.conf.in pbx-auth-site.conf.in);
	my $user = $> == 0 ? 'user root;' : '';
	$t->start_nginx(port => $https_port, conf => <<"EOF");
$user
daemon off;
master_process on;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log info;
events { worker_connections 64; }
http {
    access_log $d/access.log;
    client_body_temp_path $d/client_body;
    fastcgi_temp_path $d/fastcgi;
    proxy_temp_path $d/proxy;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    include $d/pbx-auth-site.conf;
}
EOF
	my $pw = 'tls-admin-password';
	($rc, $out, $err) = $t->ctl('user', 'add', 'admin', { stdin => "$pw\n" });
	is($rc, 0, 'system administrator added') or diag($err);

	my $https = HTTP::Tiny->new(max_redirect => 0, timeout => 10, keep_alive => 0,
	    verify_SSL => 1, SSL_options => { SSL_ca_file => "$d/tls.crt" });
	$r = $https->request('POST', "https://127.0.0.1:$https_port/api/login",
	    { content => qq({"username":"admin","password":"$pw"}),
	      headers => { 'Content-Type' => 'application/json' } });
	is($r->{status}, 200, 'POST /api/login over https (the certificate verified)')
	    or diag("$r->{status} $r->{content}");
	my $cookie = $r->{headers}{'set-cookie'} // '';
	$t->_track_response('POST /api/login over https', $r);
	like($cookie, qr/^pbx_session=[^;]+;.*; Secure(;|$)/, 'the session cookie is Secure');
	is($r->{headers}{'strict-transport-security'}, 'max-age=63072000', 'HSTS over https');
	unlike($r->{headers}{server} // '', qr/\d/, 'https: no nginx version');

	$r = $https->request('POST', "https://127.0.0.1:$https_port/api/auth/sign_in",
	    { content => $big, headers => { 'Content-Type' => 'application/json' } });
	$r->{json} = eval { JSON::PP->new->decode($r->{content}) };
	nginx_error($r, 413, 'PAYLOAD_TOO_LARGE', 'Request body too large',
	    'https: body over 128 KiB');

	$r = $https->get("https://127.0.0.1:$https_port/");
	like("$r->{status} " . ($r->{headers}{location} // ''),
	    qr{^302 https://127\.0\.0\.1:$https_port/login/$},
	    'https: the site root sends people to the sign-in pages');
	$r = $https->get("https://127.0.0.1:$https_port/login/");
	is($r->{status}, 200, 'https: GET /login/');
	like($r->{content}, qr/type="password"/, 'https: /login/ is the sign-in page');
	like($r->{headers}{'content-security-policy'} // '', qr/frame-ancestors 'none'/,
	    'https: /login/ carries its Content-Security-Policy');

	my $plain = HTTP::Tiny->new(max_redirect => 0, timeout => 10, keep_alive => 0);
	$r = $plain->get("http://127.0.0.1:$http_port/api/info?domain=x");
	is($r->{status}, 301, 'plain http: 301');
	is($r->{headers}{location}, 'https://127.0.0.1/api/info?domain=x',
	    'plain http: redirected to https');
	$r = $plain->get("http://127.0.0.1:$https_port/api/info");
	$r->{json} = eval { JSON::PP->new->decode($r->{content}) };
	nginx_error($r, 400,
	    'VALIDATE_FAILED', 'Malformed request', 'plain http to the https port (497)');
}

$t->done_testing;
