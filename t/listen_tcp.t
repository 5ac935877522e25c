#!/usr/bin/perl

# pbx-authd listening on host:port instead of a unix socket (for nginx on
# another host): it binds only the address given, nginx reaches it, and a
# raw FastCGI request gets the same answer; so does the hashing workers'
# hash_listen on host:port.

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

$t->done_testing;
