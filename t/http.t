#!/usr/bin/perl

# HTTP behaviour common to every endpoint: 404, 405 + Allow, 413 (through
# nginx and with a lying FastCGI CONTENT_LENGTH), 415, malformed query
# strings, percent-decoding, error bodies, and never a 5xx.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->start_pg->start_daemon->start_nginx;

for (['demo.pbx.test', 'Demo'], ['[2001:db8::1]', 'V6 tenant']) {
	my ($rc, undef, $err) = $t->ctl('tenant', 'add', $_->[0], '--name', $_->[1]);
	is($rc, 0, "tenant add $_->[0]") or diag($err);
}

my @SYS = qw(web_domain private_ipv4 public_ipv4 enable_ipv6 private_ipv6
    public_ipv6 primary_dns_server secondary_dns_server enable_dataflow);

sub info_ok {
	my ($r, $domain, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($r->{status}, 200, "$name: 200") or diag($r->{content});
	$t->has_common_headers($r, $name);
	if (defined $domain) {
		is($r->{json}{domain}, $domain, "$name: tenant $domain");
	} else {
		is_deeply([ $t->json_keys($r->{content}) ], \@SYS,
		    "$name: system metadata only");
	}
}

###############################################################################
# 404 and 405

for my $p ('/api/nope', '/api/', '/api/info/x', '/api/infox', '/api/INFO',
    '/api/auth/nope')
{
	$t->is_error($t->get($p), 404, 'NOT_FOUND', "GET $p");
}
$t->is_error($t->request('POST', '/api/nope', body => '{}',
    headers => { 'Content-Type' => 'application/json' }), 404, 'NOT_FOUND',
    'POST unknown path');

for my $m (qw(POST DELETE PUT PATCH)) {
	my $r = $t->request($m, '/api/info');
	$t->is_error($r, 405, 'METHOD_NOT_ALLOWED', "$m /api/info");
	is($r->{headers}{allow}, 'GET, HEAD', "$m /api/info: Allow: GET, HEAD");
}
my $r = $t->request('POST', '/api/info', body => '{}',
    headers => { 'Content-Type' => 'application/json' });
$t->is_error($r, 405, 'METHOD_NOT_ALLOWED', 'POST /api/info with a JSON body');
is($r->{headers}{allow}, 'GET, HEAD', 'POST /api/info with a body: Allow: GET, HEAD');

# HEAD is answered wherever GET is (RFC 9110 section 9.3.2): the same status
# and headers, no body
{
	my $g = $t->get('/api/info');
	my $h = $t->request('HEAD', '/api/info');
	is($h->{status}, 200, 'HEAD /api/info: 200');
	is($h->{content} // '', '', 'HEAD /api/info: no body');
	for my $k (qw(content-type content-length cache-control x-content-type-options)) {
		is($h->{headers}{$k}, $g->{headers}{$k}, "HEAD /api/info: $k as for GET");
	}
	$h = $t->request('HEAD', '/api/auth/user');
	is($h->{status}, 401, 'HEAD /api/auth/user without a token: 401, as GET');
	is($h->{content} // '', '', 'HEAD /api/auth/user: no body');
	is($h->{headers}{'www-authenticate'}, 'Bearer', 'HEAD /api/auth/user: WWW-Authenticate');
	is($t->request('HEAD', '/api/nope')->{status}, 404, 'HEAD of an unknown path: 404');
	$h = $t->request('HEAD', '/api/auth/sign_in');
	is($h->{status}, 405, 'HEAD of a POST-only path: 405');
	is($h->{headers}{allow}, 'POST', 'HEAD of a POST-only path: Allow: POST');
}

###############################################################################
# 413

# The contract has only GET /api/info so far: bodies are sent with GET so
# that the method and path are right and only the body is wrong.
my $json = sub { my $n = shift; '{"pad":"' . ('x' x ($n - 10)) . '"}' };
is(length $json->(65536), 65536, 'body of exactly 64 KiB');

$r = $t->request('GET', '/api/info', body => $json->(70 * 1024),
    headers => { 'Content-Type' => 'application/json' });
$t->is_error($r, 413, 'PAYLOAD_TOO_LARGE', '70 KB JSON body through nginx');

$r = $t->request('GET', '/api/info', body => $json->(65537),
    headers => { 'Content-Type' => 'application/json' });
$t->is_error($r, 413, 'PAYLOAD_TOO_LARGE', '65537-byte body through nginx');

$r = $t->request('GET', '/api/info', body => $json->(65536),
    headers => { 'Content-Type' => 'application/json' });
info_ok($r, undef, '65536-byte body is within the limit');

# Straight to the daemon: nginx would never send a lying CONTENT_LENGTH.
my $f = $t->fcgi_request(params => $t->fcgi_params);
is($f->{status}, 200, 'fcgi: plain GET /api/info is 200') or diag($f->{raw});
ok($f->{complete}, 'fcgi: END_REQUEST received');
is_deeply([ $t->json_keys($f->{content}) ], \@SYS, 'fcgi: system metadata');

# Connections that end before a whole request (closed at once, not
# FastCGI, cut off in the parameters) are closed, and the worker goes on:
# more of each than there are workers, then a request still served by the
# same workers.
{
	my @pids = sort { $a <=> $b } $t->worker_pids;
	my $head = Test::PbxAuth::_fcgi_record(1, pack('nCx5', 1, 0))
	    . Test::PbxAuth::_fcgi_record(4, "\x0e\x03REQUEST_METHODGET");
	for my $bytes ('', "GET / HTTP/1.0\r\n\r\n", substr($head, 0, 20)) {
		for (0 .. @pids) {
			my $s = $t->fcgi_connect or die "connect: $!";
			syswrite($s, $bytes) if length $bytes;
			shutdown($s, 1);
			my $in = '';
			while (sysread($s, my $buf, 4096)) { $in .= $buf }
			close $s;
			my $what = 'fcgi: ' . (length $bytes ? length($bytes) . ' bytes' : 'no byte')
			    . ' then the end';
			if (length $bytes == 20) {
				# libfcgi takes the end of the stream for the end of the
				# parameters: a request without any, which no route matches
				my ($st) = $in =~ /Status: (\d+)/;
				is($st, 404, "$what (in the parameters): 404, no route for no path");
			} else {
				is($in, '', "$what: closed without an answer");
			}
		}
	}
	$f = $t->fcgi_request(params => $t->fcgi_params);
	is($f->{status}, 200, 'fcgi: then a GET /api/info is 200');
	is_deeply([ sort { $a <=> $b } $t->worker_pids ], \@pids, 'fcgi: by the same workers');
}

# A connection nginx does not keep is closed right after its answer, the
# worker's side whole: it does not shut down its writing side and wait for
# nginx to close first (libfcgi's way, which holds the worker for the round
# trip), so a write to it after the EOF fails.  One nginx keeps
# (FCGI_KEEP_CONN) stays open for its next request.
{
	local $SIG{PIPE} = 'IGNORE';
	my $s = $t->fcgi_connect or die "connect: $!";
	$f = $t->fcgi_request(params => $t->fcgi_params, sock => $s);
	is($f->{status}, 200, 'fcgi: a request on a connection not kept: 200');
	my $eof = 0;
	for (1 .. 50) {
		my $n = sysread($s, my $buf, 4096);
		$eof = 1, last if defined $n && $n == 0;
		select(undef, undef, undef, 0.1) if !defined $n;	# non-blocking: not yet
	}
	ok($eof, 'fcgi: then the worker closes it');
	my $w = syswrite($s, 'x' x 16);
	ok(!defined $w && ($!{EPIPE} || $!{ECONNRESET}),
	    'fcgi: closed whole, not only its writing side (a write after the EOF fails)')
	    or diag("write: " . ($w // "undef, $!"));
	close $s;

	$s = $t->fcgi_connect or die "connect: $!";
	$f = $t->fcgi_request(params => $t->fcgi_params, keep => 1, sock => $s);
	is($f->{status}, 200, 'fcgi: FCGI_KEEP_CONN: the first request: 200');
	$f = $t->fcgi_request(params => $t->fcgi_params(query => 'domain=demo.pbx.test'),
	    keep => 1, sock => $s);
	is($f->{status}, 200, 'fcgi: FCGI_KEEP_CONN: a second request on the connection: 200');
	is($f->{json}{domain}, 'demo.pbx.test', 'fcgi: FCGI_KEEP_CONN: ... answered in full');
	close $s;
	$f = $t->fcgi_request(params => $t->fcgi_params);
	is($f->{status}, 200, 'fcgi: the kept connection closed by nginx: the workers go on');
}

my $big = $json->(70 * 1024);
$f = $t->fcgi_request(stdin => $big, params => $t->fcgi_params(
    content_type => 'application/json', content_length => 10));
$t->is_error($f, 413, 'PAYLOAD_TOO_LARGE',
    'fcgi: CONTENT_LENGTH=10 with 70 KB of stdin');
ok($f->{complete}, 'fcgi: lying CONTENT_LENGTH=10: END_REQUEST received');

$f = $t->fcgi_request(stdin => $big, params => $t->fcgi_params(
    content_type => 'application/json', content_length => 100000));
$t->is_error($f, 413, 'PAYLOAD_TOO_LARGE',
    'fcgi: CONTENT_LENGTH=100000 with 70 KB of stdin');

$f = $t->fcgi_request(stdin => $json->(100000), params => $t->fcgi_params(
    content_type => 'application/json', content_length => 100000));
$t->is_error($f, 413, 'PAYLOAD_TOO_LARGE',
    'fcgi: honest CONTENT_LENGTH=100000');

$f = $t->fcgi_request(stdin => $json->(65537), params => $t->fcgi_params(
    content_type => 'application/json', content_length => ''));
$t->is_error($f, 413, 'PAYLOAD_TOO_LARGE',
    'fcgi: empty CONTENT_LENGTH with 65537 bytes of stdin');

$f = $t->fcgi_request(params => $t->fcgi_params(query => 'domain=demo.pbx.test'));
is($f->{status}, 200, 'fcgi: the daemon still serves after the 413s');
is($f->{json}{domain}, 'demo.pbx.test', 'fcgi: tenant lookup after the 413s');

###############################################################################
# 415

$r = $t->request('GET', '/api/info', body => 'hello',
    headers => { 'Content-Type' => 'text/plain' });
$t->is_error($r, 415, 'UNSUPPORTED_MEDIA_TYPE', 'text/plain body');

$r = $t->request('GET', '/api/info', body => 'a=b',
    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' });
$t->is_error($r, 415, 'UNSUPPORTED_MEDIA_TYPE', 'form body on a JSON endpoint');

$r = $t->parse_http($t->raw_http("GET /api/info HTTP/1.1\r\nHost: localhost\r\n"
    . "Content-Length: 2\r\nConnection: close\r\n\r\n{}"));
$t->is_error($r, 415, 'UNSUPPORTED_MEDIA_TYPE', 'body without Content-Type');

$r = $t->request('GET', '/api/info', body => '{}',
    headers => { 'Content-Type' => 'application/json; charset=utf-8' });
info_ok($r, undef, 'application/json; charset=utf-8 body is accepted');

###############################################################################
# query strings

my %malformed = (
	'%zz'          => 'domain=%zz',
	'%4'           => 'domain=demo%4.test',
	'%4 at end'    => 'domain=%4',
	'trailing %'   => 'domain=demo.pbx.test%',
	'%00'          => 'domain=demo%00.pbx.test',
	'%ff'          => 'domain=%ff',
	'bad UTF-8'    => 'domain=%C3%28',
	'overlong /'   => 'domain=%C0%AF',
	'%zz in other key' => 'x=%zz&domain=demo.pbx.test',
	'%zz in a key' => 'do%zzmain=demo.pbx.test',
);
for my $case (sort keys %malformed) {
	$t->is_error($t->get("/api/info?$malformed{$case}"), 400,
	    'VALIDATE_FAILED', "query $case");
}

info_ok($t->get('/api/info?domain=demo%2Epbx%2Etest'), 'demo.pbx.test',
    '%2E decodes to .');
info_ok($t->get('/api/info?domain=DEMO%2epbx%2etest'), 'demo.pbx.test',
    'lower-case hex %2e');
info_ok($t->get('/api/info?dom%61in=demo.pbx.test'), 'demo.pbx.test',
    'percent-encoded key');
info_ok($t->get('/api/info?domain=%5B2001%3Adb8%3A%3A1%5D'), '[2001:db8::1]',
    'IPv6 literal, encoded');
info_ok($t->get('/api/info?domain=[2001:db8::1]'), '[2001:db8::1]',
    'IPv6 literal, raw');
info_ok($t->get('/api/info?&domain=demo.pbx.test&'), 'demo.pbx.test',
    'empty query fields');

# '+' is a space in a query string; a space is not a domain character.
$t->is_error($t->get('/api/info?domain=demo+pbx.test'), 400, 'VALIDATE_FAILED',
    '+ in domain');
$t->is_error($t->get('/api/info?domain=demo.pbx.test+'), 400, 'VALIDATE_FAILED',
    'trailing + in domain');

###############################################################################
# the access log

my $log = $t->daemon_log;
like($log, qr/^\S+ info pbx-authd\[\d+\]: request method=GET path=\/api\/info status=200 us=\d+ addr=127\.0\.0\.1 user=- request_id=[0-9a-f]{32}$/m,
    'access line for a 200');
like($log, qr/^\S+ info pbx-authd\[\d+\]: request method=GET path=\/api\/nope status=404 us=\d+ addr=127\.0\.0\.1 user=- request_id=[0-9a-f]{32}$/m,
    'access line for a 404');
like($log, qr/^\S+ info pbx-authd\[\d+\]: request method=DELETE path=\/api\/info status=405 us=\d+ addr=127\.0\.0\.1 user=- request_id=[0-9a-f]{32}$/m,
    'access line for a 405');
unlike($log, qr/request method=\S+ path=\S*\?/, 'access lines have no query string');
unlike($log, qr/demo%2Epbx|domain=/, 'query values are not logged');
$t->log_format_ok;

###############################################################################

my @five = grep { $_->[1] >= 500 } $t->responses;
is(scalar @five, 0, 'no 5xx response') or diag(explain \@five);

$t->done_testing;
