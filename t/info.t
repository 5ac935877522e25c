#!/usr/bin/perl

# GET /api/info through nginx: system metadata, tenant metadata by domain,
# validation of the domain parameter, the Microsoft 365 endpoint, and
# changes made with pbx-authctl or plain SQL becoming visible within a second.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);

use Test::PbxAuth;

my @SYS = qw(web_domain private_ipv4 public_ipv4 enable_ipv6 private_ipv6
    public_ipv6 primary_dns_server secondary_dns_server enable_dataflow);
my @TENANT = qw(name domain website avatar_url enable_ms365_integration
    ms365_authorization_endpoint);

my $GLOBAL = 'https://login.global.test';
my $CHINA = 'https://login.partner.microsoftonline.cn';    # the default
my $DIR_G = '0b5c6d7e-1111-4222-8333-944455556666';
my $DIR_C = 'c0ffee00-aaaa-4bbb-8ccc-dddddddddddd';

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->write_config(ms365_authority_global => $GLOBAL);
$t->start_pg->start_daemon->start_nginx;

sub ctl_ok {
	my (@args) = @_;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, "pbx-authctl @args") or diag($err);
}

# A 200 /api/info response with the common headers and the keys in order.
sub info_ok {
	my ($path, $keys, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $r = $t->get($path);
	is($r->{status}, 200, "$name: status 200") or diag($r->{content});
	$t->has_common_headers($r, $name);
	is_deeply([$t->json_keys($r->{content})], $keys, "$name: keys in order");
	return $r->{json} // {};
}

sub bool_is {
	my ($v, $want, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok(JSON::PP::is_bool($v), "$name is a JSON boolean")
	    and is(!!$v, !!$want, "$name is " . ($want ? 'true' : 'false'));
}

sub q_escape {
	my ($s) = @_;
	$s =~ s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ge;
	return $s;
}

# Poll $path until $cond->($response) holds, for at most one second after
# $t0; then check that every request from $t0 + 1 s on (any worker) agrees.
sub visible_within_1s {
	my ($t0, $path, $cond, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($seen, $r);
	while (1) {
		my $start = time;
		$r = $t->get($path);
		if ($cond->($r)) { $seen = 1; last }
		last if $start > $t0 + 1.0;
		sleep 0.05;
	}
	ok($seen, "$name: visible within 1 s")
	    or diag("last: $r->{status} $r->{content}");
	my $wait = $t0 + 1.0 - time;
	sleep $wait if $wait > 0;
	my @bad;
	for (1 .. 8) {
		my $x = $t->get($path);
		push @bad, "$x->{status} $x->{content}" unless $cond->($x);
	}
	is(scalar @bad, 0, "$name: all later requests see it (every worker)")
	    or diag(join "\n", @bad);
}

###############################################################################
# system metadata

my $j = info_ok('/api/info', \@SYS, 'fresh system');
is_deeply($j, {
	web_domain => '', private_ipv4 => '', public_ipv4 => '',
	enable_ipv6 => JSON::PP::false, private_ipv6 => '', public_ipv6 => '',
	primary_dns_server => '', secondary_dns_server => '',
	enable_dataflow => JSON::PP::false,
}, 'fresh system: strings "" (never null: OpenAPI types them string), booleans false');
unlike($t->get('/api/info')->{content}, qr/null/, 'fresh system: no null in the body');
bool_is($j->{enable_ipv6}, 0, 'fresh enable_ipv6');
bool_is($j->{enable_dataflow}, 0, 'fresh enable_dataflow');

# warm the caches of both workers before changing anything
$t->get('/api/info') for 1 .. 6;

ctl_ok('system', 'set', 'web_domain=pbx.example.com', 'private_ipv4=10.0.0.10',
    'public_ipv4=203.0.113.10', 'enable_ipv6=true', 'public_ipv6=2001:db8::10',
    'primary_dns_server=192.0.2.53');
my $t0 = time;
visible_within_1s($t0, '/api/info',
    sub { ($_[0]{json}{web_domain} // '') eq 'pbx.example.com' },
    'system set through pbx-authctl');

$j = info_ok('/api/info', \@SYS, 'system after set');
is_deeply($j, {
	web_domain => 'pbx.example.com', private_ipv4 => '10.0.0.10',
	public_ipv4 => '203.0.113.10', enable_ipv6 => JSON::PP::true,
	private_ipv6 => '', public_ipv6 => '2001:db8::10',
	primary_dns_server => '192.0.2.53', secondary_dns_server => '',
	enable_dataflow => JSON::PP::false,
}, 'system after set: exact values, unset fields ""');
bool_is($j->{enable_ipv6}, 1, 'enable_ipv6');
bool_is($j->{enable_dataflow}, 0, 'enable_dataflow');
ok(exists $j->{enable_dataflow}, 'enable_dataflow present');

$t->psql('UPDATE system_settings SET enable_dataflow = true, '
    . "secondary_dns_server = '192.0.2.54'");
$t0 = time;
visible_within_1s($t0, '/api/info', sub {
	my $x = $_[0]{json} // {};
	JSON::PP::is_bool($x->{enable_dataflow}) && $x->{enable_dataflow}
	    && ($x->{secondary_dns_server} // '') eq '192.0.2.54';
}, 'system change through plain SQL');

###############################################################################
# tenants

ctl_ok('tenant', 'add', 'demo.pbx.test', '--name', 'Demo PBX',
    '--website', 'https://www.demo.example', '--avatar-url',
    'https://www.demo.example/logo.png');
ctl_ok('tenant', 'add', 'Mixed.PBX.test', '--name', 'Mixed Case');
ctl_ok('tenant', 'add', 'off.pbx.test', '--name', 'Switched off');
ctl_ok('tenant', 'disable', 'off.pbx.test');
# Microsoft 365 is on only when enabled with complete settings: directory,
# application and a credential (t/ctl_ms365.t tests more combinations).
my $secret = $t->write_file('ms365-secret.txt', "info-client-secret\n");
chmod 0600, $secret;
$t->secret('info-client-secret', 'the client secret');
my @APP = ('--application-id', '11111111-2222-4333-8444-555555555555',
    '--client-secret-file', $secret);
ctl_ok('tenant', 'add', 'ms.pbx.test', '--name', 'MS Global');
ctl_ok('ms365', 'set', 'ms.pbx.test', '--enable', '--directory-id', $DIR_G,
    '--national-cloud', 'GLOBAL', @APP);
ctl_ok('tenant', 'add', 'cn.pbx.test', '--name', 'MS China');
ctl_ok('ms365', 'set', 'cn.pbx.test', '--enable', '--directory-id', $DIR_C,
    '--national-cloud', 'CHINA', @APP);
ctl_ok('tenant', 'add', 'nodir.pbx.test', '--name', 'No directory');
$t->psql("UPDATE tenants SET ms365_enabled = true WHERE domain = 'nodir.pbx.test'");
ctl_ok('tenant', 'add', 'noapp.pbx.test', '--name', 'No application');
$t->psql("UPDATE tenants SET ms365_enabled = true, ms365_directory_id = '$DIR_G',"
    . " ms365_client_secret_file = '$secret' WHERE domain = 'noapp.pbx.test'");
ctl_ok('tenant', 'add', 'nocred.pbx.test', '--name', 'No credential');
$t->psql("UPDATE tenants SET ms365_enabled = true, ms365_directory_id = '$DIR_G',"
    . " ms365_application_id = '11111111-2222-4333-8444-555555555555'"
    . " WHERE domain = 'nocred.pbx.test'");
ctl_ok('tenant', 'add', 'msoff.pbx.test', '--name', 'MS off');
ctl_ok('ms365', 'set', 'msoff.pbx.test', '--disable', '--directory-id', $DIR_G, @APP);

my $sys_now = info_ok('/api/info', \@SYS, 'system before tenants');

$j = info_ok('/api/info?domain=DeMo.PBX.Test', [@SYS, @TENANT],
    'tenant in other case');
is_deeply($j, {
	%$sys_now,
	name => 'Demo PBX', domain => 'demo.pbx.test',
	website => 'https://www.demo.example',
	avatar_url => 'https://www.demo.example/logo.png',
	enable_ms365_integration => JSON::PP::false,
	ms365_authorization_endpoint => '',
}, 'tenant metadata: exact values with the system metadata');
bool_is($j->{enable_ms365_integration}, 0, 'demo enable_ms365_integration');

$j = info_ok('/api/info?domain=mixed.pbx.test', [@SYS, @TENANT],
    'mixed-case tenant');
is($j->{domain}, 'Mixed.PBX.test', 'domain returned as stored');
is($j->{name}, 'Mixed Case', 'mixed-case tenant name');
is($j->{website}, '', 'unset website is ""');
is($j->{avatar_url}, '', 'unset avatar_url is ""');
unlike($t->get('/api/info?domain=mixed.pbx.test')->{content}, qr/null/,
    'tenant with unset fields: no null in the body');

$t->is_error($t->get('/api/info?domain=off.pbx.test'), 404, 'NOT_FOUND',
    'disabled tenant');
$t->is_error($t->get('/api/info?domain=nosuch.pbx.test'), 404, 'NOT_FOUND',
    'unknown tenant');

# Microsoft 365
$j = info_ok('/api/info?domain=ms.pbx.test', [@SYS, @TENANT], 'ms365 global');
bool_is($j->{enable_ms365_integration}, 1, 'global enable_ms365_integration');
is($j->{ms365_authorization_endpoint},
    "$GLOBAL/$DIR_G/oauth2/v2.0/authorize",
    'global endpoint built from ms365_authority_global');

$j = info_ok('/api/info?domain=CN.pbx.test', [@SYS, @TENANT], 'ms365 china');
bool_is($j->{enable_ms365_integration}, 1, 'china enable_ms365_integration');
is($j->{ms365_authorization_endpoint},
    "$CHINA/$DIR_C/oauth2/v2.0/authorize",
    'china endpoint built from ms365_authority_china');

$j = info_ok('/api/info?domain=nodir.pbx.test', [@SYS, @TENANT],
    'ms365 enabled without directory');
bool_is($j->{enable_ms365_integration}, 0, 'no directory id: integration off');
is($j->{ms365_authorization_endpoint}, '', 'no directory id: endpoint ""');

for my $d (qw(noapp nocred)) {
	$j = info_ok("/api/info?domain=$d.pbx.test", [@SYS, @TENANT], "ms365 enabled, $d");
	bool_is($j->{enable_ms365_integration}, 0, "$d: integration off");
	is($j->{ms365_authorization_endpoint}, '', "$d: endpoint \"\"");
}

$j = info_ok('/api/info?domain=msoff.pbx.test', [@SYS, @TENANT], 'ms365 disabled');
bool_is($j->{enable_ms365_integration}, 0, 'disabled: integration off');
is($j->{ms365_authorization_endpoint}, '', 'disabled: endpoint ""');

# other query keys are ignored
$j = info_ok('/api/info?lang=en&domain=demo.pbx.test&x=1', [@SYS, @TENANT],
    'other keys ignored');
is($j->{domain}, 'demo.pbx.test', 'other keys ignored: tenant found');

###############################################################################
# domain validation

my $long = join('.', ('a' x 63) x 4) . '.' . ('c' x 20) . '.com';
is(length $long, 280, '280-character domain');
$t->psql("INSERT INTO tenants (domain, name) VALUES ('$long', 'Long one')");
$j = info_ok("/api/info?domain=$long", [@SYS, @TENANT], '280 characters');
is($j->{domain}, $long, '280-character domain found');
is($j->{name}, 'Long one', '280-character domain name');

my $too_long = 'x' . $long;
is(length $too_long, 281, '281-character domain');

my %bad = (
	'empty'               => '',
	'281 characters'      => $too_long,
	'space'               => q_escape('a b'),
	'angle brackets'      => q_escape('<x>'),
	'quote'               => q_escape("a'b"),
	'SQL metacharacters'  => q_escape("x';DROP TABLE tenants;--"),
	'double quote'        => q_escape('a"b'),
	'semicolon'           => q_escape('demo.pbx.test;'),
	'percent'             => q_escape('demo%pbx.test'),
	'slash'               => q_escape('demo.pbx.test/x'),
	'at sign'             => q_escape('admin@demo.pbx.test'),
	'newline'             => q_escape("demo.pbx.test\n"),
	'non-ASCII letter'    => q_escape("d\xc3\xb6main.test"),
	'like wildcard'       => q_escape('demo.pbx.tes%'),
	'SQL LIKE underscore' => 'demo_pbx_test',    # valid, no such tenant: 404
);
for my $case (sort keys %bad) {
	my $r = $t->get("/api/info?domain=$bad{$case}");
	if ($case eq 'SQL LIKE underscore') {
		$t->is_error($r, 404, 'NOT_FOUND', "domain $case");
		next;
	}
	$t->is_error($r, 400, 'VALIDATE_FAILED', "domain $case")
	    or next;
	my $d = $r->{json}{errors}[0]{detail};
	is(ref $d eq 'HASH' ? $d->{field} : undef, 'domain',
	    "domain $case: detail.field");
	ok(ref $d eq 'HASH' && defined $d->{rule} && !ref $d->{rule}
	    && length $d->{rule}, "domain $case: detail.rule is a string");
}

$t->is_error($t->get('/api/info?domain=demo.pbx.test&domain=demo.pbx.test'),
    400, 'VALIDATE_FAILED', 'domain given twice');
$t->is_error($t->get('/api/info?domain=demo.pbx.test&domain=ms.pbx.test'),
    400, 'VALIDATE_FAILED', 'two different domains');
$t->is_error($t->get('/api/info?domain'), 400, 'VALIDATE_FAILED',
    'domain without =');

is($t->psql("SELECT count(*) FROM tenants WHERE domain = 'demo.pbx.test'"), 1,
    'tenants table intact after SQL metacharacters');

###############################################################################
# changes become visible within a second (per-worker caches invalidated)

$t->get('/api/info?domain=demo.pbx.test') for 1 .. 6;    # cache both workers

ctl_ok('tenant', 'set', 'demo.pbx.test', 'name=Demo Renamed');
$t0 = time;
visible_within_1s($t0, '/api/info?domain=demo.pbx.test',
    sub { ($_[0]{json}{name} // '') eq 'Demo Renamed' },
    'tenant rename through pbx-authctl');

$t->psql("UPDATE tenants SET website = 'https://sql.example/' "
    . "WHERE domain = 'demo.pbx.test'");
$t0 = time;
visible_within_1s($t0, '/api/info?domain=demo.pbx.test',
    sub { ($_[0]{json}{website} // '') eq 'https://sql.example/' },
    'tenant website through plain SQL');

$t->get('/api/info?domain=ms.pbx.test') for 1 .. 6;
$t->psql("UPDATE tenants SET ms365_national_cloud = 'CHINA' "
    . "WHERE domain = 'ms.pbx.test'");
$t0 = time;
visible_within_1s($t0, '/api/info?domain=ms.pbx.test',
    sub { ($_[0]{json}{ms365_authorization_endpoint} // '') eq
	    "$CHINA/$DIR_G/oauth2/v2.0/authorize" },
    'national cloud changed through plain SQL');

ctl_ok('tenant', 'disable', 'demo.pbx.test');
$t0 = time;
visible_within_1s($t0, '/api/info?domain=demo.pbx.test',
    sub { $_[0]{status} == 404 }, 'tenant disabled through pbx-authctl');

$t->get('/api/info?domain=off.pbx.test') for 1 .. 6;
$t->psql("UPDATE tenants SET enabled = true WHERE domain = 'off.pbx.test'");
$t0 = time;
visible_within_1s($t0, '/api/info?domain=off.pbx.test',
    sub { $_[0]{status} == 200 && ($_[0]{json}{name} // '') eq 'Switched off' },
    'tenant enabled through plain SQL');

$t->psql("DELETE FROM tenants WHERE domain = 'off.pbx.test'");
$t0 = time;
visible_within_1s($t0, '/api/info?domain=off.pbx.test',
    sub { $_[0]{status} == 404 }, 'tenant deleted through plain SQL');

my @five = grep { $_->[1] >= 500 } $t->responses;
is(scalar @five, 0, 'no 5xx response') or diag(explain \@five);

$t->done_testing;
