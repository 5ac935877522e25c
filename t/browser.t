#!/usr/bin/perl

# The sign-in pages (www/) in a real browser: Debian's chromium, headless,
# driven by puppeteer-core (t/browser/run.mjs, its version pinned in
# t/browser/package-lock.json; `npm ci` in t/browser installs it, as
# ./dev.sh test does) through nginx serving the pages at /login/ with their
# security headers, pbx-authd and PostgreSQL, the SMTP sink and the fake
# Microsoft IdP.  run.mjs reports each check as one JSON line that becomes a
# test here, and asks this script for what only the harness can do (read the
# mail the sink caught, run SQL, stop PostgreSQL).  What it covers is listed
# at the top of run.mjs.  Screenshots of each page: $PA_BUILDDIR/t/screenshots/.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Path qw(make_path);
use IO::Handle;
use IO::Select;
use IPC::Open3 qw(open3);
use JSON::PP ();
use MIME::Base64 qw(encode_base64url);
use Symbol qw(gensym);
use Test::More;
use Time::HiRes qw(time);

use Test::PbxAuth;
use Test::PbxAuth::Idp;
use Test::PbxAuth::Smtp;

my $JSON = JSON::PP->new->utf8->canonical;
my $CHROMIUM = '/usr/bin/chromium';
my $NODE_DIR = "$FindBin::Bin/browser";
my $DIR = '6d3f1b2a-8c4e-4f5a-9b7c-0e1d2c3b4a59';
my $APP = '0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f';
my $SECRET = 'fake-idp-client-secret-' . encode_base64url(pack('N4', map { rand(2**32) } 1 .. 4));
my %OID = (alice => '11111111-2222-4333-8444-555555555555',
    tfa => '22222222-3333-4444-8555-666666666666');

# Not skipped: missing tools are a failure of the set-up (dev.sh installs them).
-x $CHROMIUM or BAIL_OUT("$CHROMIUM not found: apt-get install chromium");
-d "$NODE_DIR/node_modules/puppeteer-core"
    or BAIL_OUT("puppeteer-core not installed: (cd t/browser && npm ci --ignore-scripts)");

my $t = Test::PbxAuth->new(need_nginx => 1);
$t->secret($SECRET, 'the client secret');
my $smtp = Test::PbxAuth::Smtp->new($t);
$smtp->start;
my $idp = Test::PbxAuth::Idp->new($t, client_id => $APP, client_secret => $SECRET,
    user => { oid => $OID{alice}, preferred_username => 'alice@acme.example' });
$idp->start;
$t->write_config($smtp->config, cookie_secure => 'off', portal_url => $t->url('/login/'),
    ms365_authority_global => $idp->base, ms365_connect_timeout => 2, ms365_timeout => 3,
    throttle_ip_failures => 0, throttle_account_failures => 3, otp_resend_interval => 2,
    mail_rate_interval => 0);
# the pages as installed, plus a translation: one more file in www/i18n
my $www = $t->dir . '/www';
system('cp', '-R', "$FindBin::Bin/../www", $www) == 0 or die "cp www: $?";
$t->write_file("$www/i18n/de.js", "export default { lang: 'de', 'title.signin': 'Anmelden' };\n");
$t->start_pg->start_daemon->start_nginx(www => $www, form_action => $idp->base);
# PostgreSQL is stopped at the end, with the pages still open
$t->allow_log_errors(qr/PostgreSQL|database|connect|server|socket/i);

$t->ctl_ok('system', 'set', 'public_base_url=' . $t->url(''), 'web_domain=portal.test');
$t->ctl_ok('tenant', 'add', 'acme.example', '--name', 'Acme Telephony', '--avatar-url',
    $t->url('/login/img/pbx.svg'), '--callback-prefix', $t->url('/login/'));
$t->ctl_ok('tenant', 'add', 'plain.example', '--name', 'Plain Ltd');
my $secret_file = $t->write_file('client-secret.txt', "$SECRET\n");
chmod 0600, $secret_file;
$t->ctl_ok('ms365', 'set', 'acme.example', '--directory-id', $DIR, '--application-id', $APP,
    '--client-secret-file', $secret_file, '--enable');
my %PW = (alice => 'Alice-pass-1', tfa => 'Tfa-pass-22', bob => 'Bob-pass-333',
    carol => 'Carol-pass-4444', dave => 'Dave-pass-55555');
$t->secret($_, 'a password') for values %PW;
for my $u (sort keys %PW) {
	$t->ctl_ok('user', 'add', '--domain', 'acme.example', $u, '--email', "$u\@acme.example",
	    ($u eq 'tfa' ? ('--two-factor') : ()), { stdin => "$PW{$u}\n" });
}
$t->ctl_ok('user', 'bind-ms365', '--domain', 'acme.example', 'alice', $OID{alice});
$t->ctl_ok('user', 'bind-ms365', '--domain', 'acme.example', 'tfa', $OID{tfa});

# the shipped example site serves the pages (the snippet this test serves)
# and sends portal_url's default, the site's root, to them
{
	my $site = $t->read_file($t->render_nginx('pbx-auth-site.conf.in',
	    PA_NGINX_DIR => '/etc/pbx-auth/nginx', PA_SERVER_NAME => 'auth.example.com',
	    PA_HTTP_LISTEN => 80, PA_HTTPS_LISTEN => 443,
	    PA_TLS_CERT => '/c.pem', PA_TLS_KEY => '/k.pem'));
	like($site, qr{^\s*include /etc/pbx-auth/nginx/pbx-auth-www\.conf;}m,
	    'the example site includes the sign-in pages');
	like($site, qr{location = / \{\s*return 302 /login/;}, 'the example site sends / to /login/');
}

# every file of www/ is installed (Makefile.am)
{
	my $am = $t->read_file("$FindBin::Bin/../Makefile.am");
	my ($list) = $am =~ /^nobase_dist_pkgdata_DATA\s*=((?:.*\\\n)*.*)$/m;
	my %listed = map { $_ => 1 } grep { m{^www/} } split /[\s\\]+/, $list // '';
	my @files = map { s{^\Q$FindBin::Bin\E/\.\./}{}r }
	    grep { -f } glob("$FindBin::Bin/../www/* $FindBin::Bin/../www/*/*");
	is_deeply([ sort grep { !$listed{$_} } @files ], [], 'Makefile.am installs every file of www/');
}

###############################################################################
# run.mjs, and the calls it makes

my $shots = ($ENV{PA_BUILDDIR} || $t->dir) . '/t/screenshots';
make_path($shots);
unlink glob "$shots/*.png";

my %calls = (
	# the messages caught after the first $n (waiting for $want of them)
	mail_since => sub {
		my ($n, $want) = @_;
		my @m = $smtp->since($n, $want, 15);
		return [ map { { to => $_->{to}, subject => $_->{subject}, body => $_->{body} } } @m ];
	},
	mail_count => sub { $smtp->count },
	psql => sub { $t->psql($_[0]) },
	stop_pg => sub { $t->stop_pg; 1 },
	secret => sub { $t->secret($_[0], $_[1]); 1 },
	idp_knobs => sub { $_[0] ? $idp->knobs(%{$_[0]}) : $idp->reset_knobs; 1 },
	register_idp_tokens => sub { $t->secret($_, 'a token the IdP issued') for $idp->issued; 1 },
);

my %env = (PA_URL => $t->url(''), PA_IDP => $idp->base, PA_CHROMIUM => $CHROMIUM,
    PA_SCREENSHOTS => $shots, PA_PROFILE => $t->dir . '/chromium-profile',
    PA_PASSWORDS => $JSON->encode(\%PW));
local @ENV{keys %env} = values %env;
my $err_file = $t->dir . '/run.mjs.err';
open my $err_fh, '>', $err_file or die "$err_file: $!";
my ($to_node, $from_node);
my $pid = open3($to_node, $from_node, '>&' . fileno($err_fh), 'node', "$NODE_DIR/run.mjs");
$to_node->autoflush(1);

my $t0 = time;
my ($done, $buf) = (0, '');
my $sel = IO::Select->new($from_node);
LINE: while (time - $t0 < 300) {
	next unless $sel->can_read(1);
	my $n = sysread($from_node, $buf, 65536, length $buf);
	last unless $n;
	while ($buf =~ s/^([^\n]*)\n//) {
		my $line = $1;
		my $m = eval { $JSON->decode($line) };
		if (!$m) {
			diag("run.mjs: $line");
			next;
		}
		if (exists $m->{ok}) {
			ok($m->{ok}, $m->{name}) or diag($m->{diag} // '');
		} elsif ($m->{call}) {
			my $f = $calls{$m->{call}} or die "run.mjs asked for $m->{call}";
			my $r = eval { $f->(@{$m->{args} || []}) };
			my $e = $@;
			print $to_node $JSON->encode({ id => $m->{id}, result => $r,
			    error => $e ? "$e" : undef }), "\n";
		} elsif (exists $m->{note}) {
			note($m->{note});
		} elsif ($m->{done}) {
			$done = 1;
			last LINE;
		}
	}
}
ok($done, 'run.mjs ran to its end') or kill 'KILL', $pid;
close $to_node;
waitpid($pid, 0);
is($? >> 8, 0, 'run.mjs exit status 0');
close $err_fh;
my $stderr = $t->read_file($err_file);
diag("run.mjs stderr:\n$stderr") if length $stderr;
note(sprintf 'browser part: %.1f s; screenshots in %s', time - $t0, $shots);

$t->done_testing;
