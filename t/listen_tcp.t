#!/usr/bin/perl

# pbx-authd listening on host:port instead of a unix socket (for nginx on
# another host): it binds only the address given, nginx reaches it, and a
# raw FastCGI request gets the same answer; so does the hashing workers'
# hash_listen on host:port; a graceful stop drains the listen queue and
# takes no new connection.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new(need_nginx => 1);
my $port = $t->free_port;
my $hash_port = $t->free_port;
$t->write_config(listen => "127.0.0.1:$port", hash_listen => "127.0.0.1:$hash_port");
$t->start_pg->start_daemon->start_nginx;

ok(!-e $t->fcgi_sock, 'no unix socket was created');
my $r = $t->get('/api/info');
is($r->{status}, 200, 'GET /api/info through nginx over TCP');
ok(exists $r->{json}{web_domain}, 'system metadata in the body');

my $f = $t->fcgi_request(params => $t->fcgi_params(query => 'domain=nope.test'));
is($f->{status}, 404, 'raw FastCGI over TCP: unknown tenant is 404');
$f = $t->fcgi_request(listen => "127.0.0.1:$hash_port",
    params => $t->fcgi_params(query => 'domain=nope.test'));
is($f->{status}, 404, 'raw FastCGI to hash_listen over TCP: unknown tenant is 404');
$r = $t->request('POST', '/api/auth/sign_in', body => '{}',
    headers => { 'Content-Type' => 'application/json' });
is($r->{status}, 400, 'POST /api/auth/sign_in through nginx to hash_listen over TCP');

# Bound to 127.0.0.1 only: the same port on another local address is free.
my $other = IO::Socket::INET->new(LocalAddr => '127.0.0.2', LocalPort => $port,
    Proto => 'tcp', Listen => 1, ReuseAddr => 0);
ok($other, "127.0.0.2:$port is free: pbx-authd bound only the address it was given")
    or diag("bind 127.0.0.2:$port: $!");
close $other if $other;

# A graceful stop over TCP: both workers busy, one more request waiting in
# the listen queue.  After SIGTERM a new connection is not taken any more
# (its SYN goes unanswered, then refused once the listener is closed), the
# queued request is still answered, and nothing is reset.
my @held = ($t->fcgi_begin, $t->fcgi_begin);
ok($t->wait_until(sub { ($t->fcgi_backlog // -1) == 0 }, 10), 'both workers busy');
my $queued = $t->fcgi_begin;
ok($t->wait_until(sub { ($t->fcgi_backlog // 0) == 1 }, 10), 'a request waits in the queue');
my $pid = $t->daemon_pid;
my $from = $t->log_offset;
$t->signal('TERM');
ok($t->wait_for_log(qr/stopping:/, 5, $from), 'the master is stopping');
my $late = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'tcp', Timeout => 1);
ok(!$late, 'after SIGTERM a new connection is not taken');
my @done = map { [ $t->fcgi_end($_) ] } @held, $queued;
is_deeply([ map { $_->[0] } @done ], [ 1, 1, 1 ],
    'the requests in flight and the queued one were answered');
ok($t->wait_gone($pid, 20), 'pbx-authd stopped once the queue was served');
is($t->stop_daemon, 0, 'exit status 0');
$late = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'tcp', Timeout => 3);
ok(!$late && $!{ECONNREFUSED}, 'then connections are refused') or diag("connect: $!");

# FCGI_WEB_SERVER_ADDRS (libfcgi's convention, which pbx-authd keeps since it
# accepts its connections itself): only those peers; an entry that is not an
# address is ignored with a warning.
{
	my $from = $t->log_offset;
	$t->start_daemon(env => { FCGI_WEB_SERVER_ADDRS => ' 10.9.8.7, not-an-address ,127.0.0.2,::1' });
	my $f = $t->fcgi_request(local => '127.0.0.2', params => $t->fcgi_params(query => 'domain=nope.test'));
	is($f->{status}, 404, 'FCGI_WEB_SERVER_ADDRS: a listed peer (127.0.0.2) is served');
	my $g = $t->fcgi_request(local => '127.0.0.3', params => $t->fcgi_params(query => 'domain=nope.test'));
	ok(!$g->{complete} && $g->{raw} eq '',
	    'FCGI_WEB_SERVER_ADDRS: another peer (127.0.0.3) is closed without an answer')
	    or diag($g->{raw});
	ok($t->wait_for_log(qr/warn .*FastCGI connection from 127\.0\.0\.3 refused: not in FCGI_WEB_SERVER_ADDRS/,
	    5, $from), '... and logged');
	ok($t->wait_for_log(qr/warn .*FCGI_WEB_SERVER_ADDRS: \\?"not-an-address\\?" is not an IP address/, 5, $from),
	    'the entry that is not an address is logged');
	$f = $t->fcgi_request(local => '127.0.0.2', params => $t->fcgi_params(query => 'domain=nope.test'));
	is($f->{status}, 404, 'FCGI_WEB_SERVER_ADDRS: the listed peer is still served');
	is($t->stop_daemon, 0, 'stopped');
}

$t->done_testing;
