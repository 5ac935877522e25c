#!/usr/bin/perl

# Strict JSON types on every endpoint with a JSON body (API.md "Conventions"):
# a member of the wrong JSON type, null included, is 400 VALIDATE_FAILED whose
# detail names the field, never "absent".  The table below lists every
# endpoint and every member it reads; each member gets null, a number, a
# boolean, an array and an object.  And the case that made this matter:
# {"username":"admin","password":…,"domain":null} must not sign the system
# administrator in.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->write_config(password_hash_cost => 1);
$t->start_pg->start_daemon->start_nginx;

my $JSON = JSON::PP->new->canonical->utf8;
my $ADMIN_PW = 'Admin-types-pw-1';
my ($rc, $out, $err) = $t->ctl('user', 'add', 'admin', { stdin => "$ADMIN_PW\n" });
is($rc, 0, 'pbx-authctl user add admin') or diag($err);

my $TOKEN = 'A' x 43;
# endpoint => a valid-looking body; every member of it is checked
my %ENDPOINTS = (
	'/api/auth/sign_in' => { username => 'bob', password => 'x', domain => 'a.test' },
	'/api/login' => { username => 'bob', password => 'x', domain => 'a.test' },
	'/api/auth/sign_in/microsoft' => { domain => 'a.test',
	    callback_url => 'https://app.a.test/cb' },
	'/api/auth/forget_password' => { domain => 'a.test', username => 'bob',
	    callback_url => 'https://app.a.test/cb' },
	'/api/auth/reset_password' => { token => $TOKEN, new_password => 'New-password-1' },
	'/api/auth/send_otp' => { token => $TOKEN },
	'/api/auth/verify_otp' => { token => $TOKEN, code => '123456' },
	'/api/auth/refresh_token' => { refresh_token => $TOKEN },
);
my %WRONG = (null => undef, number => 1, boolean => JSON::PP::true, array => ['x'],
    object => { x => 'y' });

for my $path (sort keys %ENDPOINTS) {
	for my $field (sort keys %{$ENDPOINTS{$path}}) {
		for my $kind (sort keys %WRONG) {
			my %b = (%{$ENDPOINTS{$path}}, $field => $WRONG{$kind});
			my $name = "$path $field $kind";
			my $r = $t->request('POST', $path,
			    headers => { 'Content-Type' => 'application/json' },
			    body => $JSON->encode(\%b));
			$t->is_error($r, 400, 'VALIDATE_FAILED', $name) or next;
			my @fields = map { ref $_->{detail} eq 'HASH' ? $_->{detail}{field} // '' : '' }
			    @{$r->{json}{errors}};
			is_deeply(\@fields, [$field], "$name: the detail names $field only");
			like($r->{json}{errors}[0]{detail}{rule} // '', qr/must be a string/,
			    "$name: the rule says the type");
		}
	}
}

# the system administrator with "domain": null
my $r = $t->request('POST', '/api/auth/sign_in', headers => { 'Content-Type' => 'application/json' },
    body => $JSON->encode({ username => 'admin', password => $ADMIN_PW, domain => undef }));
$t->is_error($r, 400, 'VALIDATE_FAILED', 'admin with domain null: refused');
is($t->psql("SELECT count(*) FROM sessions"), 0, 'admin with domain null: no session');
$r = $t->request('POST', '/api/auth/sign_in', headers => { 'Content-Type' => 'application/json' },
    body => $JSON->encode({ username => 'admin', password => $ADMIN_PW }));
is($r->{status}, 200, 'admin without domain: signs in') or diag($r->{content});

my @five = grep { $_->[1] >= 500 } $t->responses;
is(scalar @five, 0, 'no 5xx response') or diag(explain \@five);
$t->done_testing;
