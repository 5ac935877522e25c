#!/usr/bin/perl

# pbx-authctl: tenant add/list/show/set/enable/disable, system show/set,
# exit codes and messages of failures, --help everywhere, and parameterised
# SQL (hostile names round-trip exactly). The database is checked with psql.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use Test::More;

use Test::PbxAuth;

my $t = Test::PbxAuth->new();
$t->start_pg;

my @SYSKEYS = qw(web_domain private_ipv4 public_ipv4 enable_ipv6 private_ipv6
    public_ipv6 primary_dns_server secondary_dns_server enable_dataflow);

sub ok_ctl {
	my (@args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $t->ctl(@args);
	is($rc, 0, "pbx-authctl @args: exit 0") or diag($err);
	return $out;
}

# A failing command: exit code in @$codes, a message on stderr matching $re.
sub fails {
	my ($codes, $re, @args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $t->ctl(@args);
	ok((grep { $rc == $_ } @$codes), "pbx-authctl @args: exit "
	    . join('/', @$codes) . " (got $rc)");
	like($err, $re, "pbx-authctl @args: message") or diag("stderr: $err");
	return ($rc, $out, $err);
}

# key<TAB>value lines into [ [key, value], ... ]
sub kv {
	return [ map { /^([^\t]*)\t(.*)$/ ? [ $1, $2 ] : [ $_, undef ] } split /\n/, $_[0] ];
}

sub kvh { return { map { @$_ } @{ kv($_[0]) } } }

sub row {
	my ($sql) = @_;
	return $t->psql($sql);
}

my $TCOLS = "name, coalesce(website, '<null>'), coalesce(avatar_url, '<null>'), "
    . "enabled, coalesce(array_to_string(callback_prefixes, ','), '<null>'), "
    . "ms365_enabled, coalesce(ms365_directory_id::text, '<null>'), "
    . "coalesce(ms365_national_cloud::text, '<null>')";

###############################################################################
# system

my $out = ok_ctl('system', 'show');
my $sys = kv($out);
is_deeply([ grep { $_ ne 'public_base_url' } map { $_->[0] } @$sys ], \@SYSKEYS,
    'system show: keys in order');
is_deeply({ map { @$_ } @$sys }, { (map { $_ => '' } @SYSKEYS),
    enable_ipv6 => 'false', enable_dataflow => 'false',
    (grep({ $_->[0] eq 'public_base_url' } @$sys) ? (public_base_url => '') : ()) },
    'system show: fresh values (null empty, booleans false)');

ok_ctl('system', 'set', 'web_domain=pbx.example.com', 'enable_ipv6=true',
    'primary_dns_server=192.0.2.53', 'public_ipv6=2001:db8::1');
is(row("SELECT web_domain, enable_ipv6, primary_dns_server, public_ipv6, "
    . "private_ipv4 IS NULL, enable_dataflow FROM system_settings"),
    'pbx.example.com|t|192.0.2.53|2001:db8::1|t|f', 'system set: stored');
my $h = kvh(ok_ctl('system', 'show'));
is($h->{web_domain}, 'pbx.example.com', 'system show: web_domain');
is($h->{enable_ipv6}, 'true', 'system show: enable_ipv6=true');
is($h->{public_ipv6}, '2001:db8::1', 'system show: value with colons');
is($h->{private_ipv4}, '', 'system show: null is empty');

for my $b (['true', 't'], ['false', 'f'], ['yes', 't'], ['no', 'f'],
    ['on', 't'], ['off', 'f'], ['1', 't'], ['0', 'f'])
{
	ok_ctl('system', 'set', "enable_dataflow=$b->[0]");
	is(row('SELECT enable_dataflow FROM system_settings'), $b->[1],
	    "boolean $b->[0] stored as $b->[1]");
}

ok_ctl('system', 'set', 'web_domain=');
is(row('SELECT web_domain IS NULL FROM system_settings'), 't',
    'system set key= stores NULL');
is(kvh(ok_ctl('system', 'show'))->{web_domain}, '', 'system show: NULL shown empty');

fails([1, 2], qr/bogus/, 'system', 'set', 'bogus=1');
fails([1, 2], qr/enable_ipv6|maybe/, 'system', 'set', 'enable_ipv6=maybe');
fails([1, 2], qr/web_domain|=/, 'system', 'set', 'web_domain');
fails([2], qr/./, 'system', 'frobnicate');
is(row('SELECT enable_ipv6 FROM system_settings'), 't', 'failed sets changed nothing');
is(row('SELECT count(*) FROM system_settings'), 1, 'still one system_settings row');

###############################################################################
# tenant add / show / list

ok_ctl('tenant', 'add', 'acme.example', '--name', 'Acme',
    '--website', 'https://acme.example', '--avatar-url', 'https://acme.example/logo.png',
    '--callback-prefix', 'https://acme.example/cb/',
    '--callback-prefix', 'https://app.acme.example/');
is(row("SELECT $TCOLS FROM tenants WHERE domain = 'acme.example'"),
    'Acme|https://acme.example|https://acme.example/logo.png|t|'
    . 'https://acme.example/cb/,https://app.acme.example/|f|<null>|GLOBAL',
    'tenant add: stored');

$h = kvh(ok_ctl('tenant', 'show', 'ACME.example'));
is($h->{domain}, 'acme.example', 'tenant show (other case): domain as stored');
is($h->{name}, 'Acme', 'tenant show: name');
is($h->{website}, 'https://acme.example', 'tenant show: website');
is($h->{avatar_url}, 'https://acme.example/logo.png', 'tenant show: avatar_url');
is($h->{enabled}, 'true', 'tenant show: enabled=true');
is($h->{callback_prefixes}, 'https://acme.example/cb/,https://app.acme.example/',
    'tenant show: callback_prefixes comma separated');
is($h->{ms365_enabled}, 'false', 'tenant show: ms365_enabled=false');
is($h->{ms365_directory_id}, '', 'tenant show: null directory id empty');

ok_ctl('tenant', 'add', 'Zeta.example', '--name', 'Zeta');
ok_ctl('tenant', 'add', 'beta.example', '--name', 'Beta Corp');
ok_ctl('tenant', 'disable', 'beta.example');
is(ok_ctl('tenant', 'list'),
    "acme.example\tenabled\tAcme\t0\n"
    . "beta.example\tdisabled\tBeta Corp\t0\n"
    . "Zeta.example\tenabled\tZeta\t0\n",
    'tenant list: sorted, tab separated');

fails([1], qr/already exists/, 'tenant', 'add', 'ACME.EXAMPLE', '--name', 'Dup');
fails([1], qr/already exists/, 'tenant', 'add', 'zeta.example', '--name', 'Dup');
is(row("SELECT count(*) FROM tenants WHERE lower(domain) = 'acme.example'"), 1,
    'duplicate not inserted');
is(row("SELECT name FROM tenants WHERE domain = 'acme.example'"), 'Acme',
    'duplicate did not overwrite');
fails([1, 2], qr/name/, 'tenant', 'add', 'noname.example');
is(row("SELECT count(*) FROM tenants WHERE domain = 'noname.example'"), 0,
    'missing --name: nothing inserted');
fails([1, 2], qr/domain|invalid|character/i, 'tenant', 'add', 'bad domain', '--name', 'X');
fails([1, 2], qr/./, 'tenant', 'add', '--name', 'X');

###############################################################################
# tenant set / enable / disable

ok_ctl('tenant', 'set', 'acme.example', 'name=Acme Inc', 'website=',
    'avatar_url=https://cdn.example/a.png', 'enabled=false',
    'callback_prefixes=https://x.example/,https://y.example/cb');
is(row("SELECT $TCOLS FROM tenants WHERE domain = 'acme.example'"),
    'Acme Inc|<null>|https://cdn.example/a.png|f|https://x.example/,https://y.example/cb|'
    . 'f|<null>|GLOBAL',
    'tenant set: every key stored');
# Microsoft 365 settings are ms365 set's (t/ctl_ms365.t); tenant show prints some.
$t->psql("UPDATE tenants SET ms365_enabled = true, ms365_national_cloud = 'CHINA',"
    . " ms365_directory_id = '3f2504e0-4f89-41d3-9a0c-0305e82c3301'"
    . " WHERE domain = 'acme.example'");
$h = kvh(ok_ctl('tenant', 'show', 'acme.example'));
is($h->{ms365_enabled}, 'true', 'tenant show: ms365_enabled');
is($h->{ms365_directory_id}, '3f2504e0-4f89-41d3-9a0c-0305e82c3301',
    'tenant show: ms365_directory_id');
is($h->{ms365_national_cloud}, 'CHINA', 'tenant show: ms365_national_cloud');
is($h->{enabled}, 'false', 'tenant show: enabled=false');
is($h->{website}, '', 'tenant show: NULL website empty');

ok_ctl('tenant', 'set', 'ACME.example', 'callback_prefixes=');
$t->psql("UPDATE tenants SET ms365_enabled = false, ms365_national_cloud = 'GLOBAL',"
    . " ms365_directory_id = NULL WHERE domain = 'acme.example'");
is(row("SELECT coalesce(array_length(callback_prefixes, 1), 0) "
    . "FROM tenants WHERE domain = 'acme.example'"), '0',
    'tenant set (other case): empty prefix list');

ok_ctl('tenant', 'enable', 'acme.example');
is(row("SELECT enabled FROM tenants WHERE domain = 'acme.example'"), 't', 'tenant enable');
ok_ctl('tenant', 'disable', 'Acme.Example');
is(row("SELECT enabled FROM tenants WHERE domain = 'acme.example'"), 'f',
    'tenant disable (other case)');
ok_ctl('tenant', 'enable', 'acme.example');

my $before = row("SELECT $TCOLS FROM tenants WHERE domain = 'acme.example'");
fails([1, 2], qr/colour/, 'tenant', 'set', 'acme.example', 'colour=red');
fails([1, 2], qr/enabled|maybe/, 'tenant', 'set', 'acme.example', 'enabled=maybe');
for my $k ('ms365_enabled=true', 'ms365_directory_id=3f2504e0-4f89-41d3-9a0c-0305e82c3301',
    'ms365_national_cloud=CHINA') {
	fails([2], qr/unknown key 'ms365_/, 'tenant', 'set', 'acme.example', $k);
}
fails([1, 2], qr/bogus/, 'tenant', 'set', 'acme.example', 'name=Ok', 'bogus=1');
is(row("SELECT $TCOLS FROM tenants WHERE domain = 'acme.example'"), $before,
    'failed sets changed nothing (not even the valid key before the bad one)');

for my $cmd (['enable'], ['disable'], ['show'], ['set', 'name=X']) {
	fails([1], qr/no such tenant/, 'tenant', $cmd->[0], 'nosuch.example',
	    @$cmd[1 .. $#$cmd]);
}
is(row("SELECT count(*) FROM tenants WHERE domain = 'nosuch.example'"), 0,
    'unknown tenant not created');

###############################################################################
# hostile strings round-trip exactly (parameterised SQL)

my $evil = q{O'Brien "Q"; DROP TABLE tenants; -- \\ 'x'' ; $1 %s ünï};
ok_ctl('tenant', 'add', 'evil.example', '--name', $evil,
    '--website', q{https://evil.example/?a='1';--});
is(row("SELECT name FROM tenants WHERE domain = 'evil.example'"), $evil,
    'hostile name stored exactly');
is(row("SELECT website FROM tenants WHERE domain = 'evil.example'"),
    q{https://evil.example/?a='1';--}, 'hostile website stored exactly');
is(kvh(ok_ctl('tenant', 'show', 'evil.example'))->{name}, $evil,
    'tenant show prints the hostile name exactly');
like(ok_ctl('tenant', 'list'), qr/^evil\.example\tenabled\t\Q$evil\E\t0$/m,
    'tenant list prints the hostile name exactly');
ok_ctl('tenant', 'set', 'evil.example', "name='; DROP TABLE tenants; --");
is(row("SELECT name FROM tenants WHERE domain = 'evil.example'"),
    q{'; DROP TABLE tenants; --}, 'tenant set with SQL in the value');
fails([1, 2], qr/./, 'tenant', 'show', q{x'; DROP TABLE tenants; --});
# The contract does not say whether system values are validated: either the
# value is stored exactly, or it is refused and nothing changes.
my $wd = row('SELECT web_domain FROM system_settings');
my ($src) = $t->ctl('system', 'set', q{web_domain=a'; DROP TABLE system_settings; --});
is(row('SELECT web_domain FROM system_settings'),
    $src == 0 ? q{a'; DROP TABLE system_settings; --} : $wd,
    "system set with SQL in the value (exit $src)");
is(row('SELECT count(*) FROM system_settings'), 1, 'system_settings intact');
is(row('SELECT count(*) FROM tenants'), 4, 'tenants table intact, 4 tenants');

###############################################################################
# --help everywhere, usage errors

for my $cmd ([], ['migrate'], ['system'], ['system', 'show'], ['system', 'set'],
    ['tenant'], ['tenant', 'add'], ['tenant', 'set'], ['tenant', 'show'],
    ['tenant', 'list'], ['tenant', 'enable'], ['tenant', 'disable'])
{
	my ($rc, $out, $err) = $t->ctl(@$cmd, '--help');
	is($rc, 0, "pbx-authctl @$cmd --help: exit 0") or diag($err);
	like($out, qr/usage/i, "pbx-authctl @$cmd --help: usage on stdout");
}
my ($rc, $hout, $herr) = $t->ctl('--help', { noconf => 1 });
is($rc, 0, 'pbx-authctl --help without -c: exit 0');

($rc, undef, $herr) = $t->ctl('frobnicate');
is($rc, 2, 'unknown command: exit 2');
like($herr, qr/frobnicate|usage/i, 'unknown command: message');
($rc, undef, $herr) = $t->ctl('tenant', 'frobnicate');
is($rc, 2, 'unknown tenant subcommand: exit 2');
like($herr, qr/unknown subcommand 'frobnicate' of tenant/, 'unknown subcommand: named');
($rc, undef, $herr) = $t->ctl('system', 'frob');
like($herr, qr/unknown subcommand 'frob' of system/, 'unknown system subcommand: named');
($rc, undef, $herr) = $t->ctl();
is($rc, 2, 'no command: exit 2');
($rc, undef, $herr) = $t->ctl('tenant', 'enable');
is($rc, 2, 'tenant enable without a domain: exit 2');

###############################################################################
# output for people and programs: TSV when piped, --json, a table on a terminal

my $tsv = ok_ctl('tenant', 'list');
is(ok_ctl('tenant', 'list', '--tsv'), $tsv, '--tsv: the same as piped');
unlike($tsv, qr/DOMAIN/, 'piped: no header');
my $json = JSON::PP->new->decode(ok_ctl('tenant', 'list', '--json'));
is(ref $json, 'ARRAY', 'tenant list --json: an array');
my ($acme) = grep { $_->{domain} eq 'acme.example' } @$json;
is_deeply([ sort keys %$acme ], [qw(domain name status users)],
    'tenant list --json: one object per tenant, named fields') or diag(explain($acme));
is($acme->{users}, '0', 'tenant list --json: users');
my $show = JSON::PP->new->decode(ok_ctl('tenant', 'show', 'acme.example', '--json'));
is($show->{domain}, 'acme.example', 'tenant show --json: an object');
is($show->{ms365_directory_id}, undef, 'tenant show --json: null for none');
like(JSON::PP->new->decode(ok_ctl('system', 'show', '--json'))->{enable_ipv6},
    qr/^(?:true|false)$/, 'system show --json');
($rc, undef, $herr) = $t->ctl('tenant', 'list', '--tsv', '--json');
is($rc, 2, '--tsv with --json: exit 2');

# On a terminal (script(1) gives one): a header row and aligned columns.
my $cmd = join(' ', map { "'$_'" } $t->authctl_bin, '-c', $t->conf_file, 'tenant', 'list');
my $tty = `script -qec "$cmd" /dev/null 2>&1`;
$tty =~ s/\r//g;
my @rows = split /\n/, $tty;
like($rows[0], qr/^DOMAIN +STATUS +NAME +USERS$/, 'terminal: a header row') or diag($tty);
my $col = index($rows[0], 'STATUS');
ok($col > 0 && !(grep { substr($_, $col - 2, 2) ne '  ' || substr($_, $col, 1) eq ' ' }
    @rows[1 .. $#rows]), 'terminal: the columns are aligned') or diag($tty);
is(scalar @rows, 1 + scalar @$json, 'terminal: a row per tenant');

# A configuration it cannot use is a failure, not a crash.
my $badconf = $t->write_file('unreachable.conf', $t->config_text(
    database => 'host=' . $t->dir . '/nowhere port=1 dbname=x user=postgres'));
($rc, undef, $herr) = $t->ctl('tenant', 'list', { conf => $badconf });
is($rc, 1, 'unreachable database: exit 1');
like($herr, qr/\S/, 'unreachable database: message on stderr');

$t->done_testing;
