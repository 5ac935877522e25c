package Test::PbxAuth::Idp;

# The fake Microsoft identity platform (t/lib/fake-idp) for integration tests:
# start and stop it on a free loopback port, set its knobs, manage its
# signing keys and read what it saw.  State lives in <test dir>/idp.
#
#   my $idp = Test::PbxAuth::Idp->new($t, client_id => $APP, client_secret => $S);
#   $idp->start;
#   $t->write_config(ms365_authority_global => $idp->base);
#   $idp->knobs(token => 'hang', hang_seconds => 10);   # merged into knobs.json
#   $idp->reset_knobs;                                  # back to the defaults
#   $idp->rotate('k2');                                 # new key, published and signing

use strict;
use warnings;

use Crypt::PK::RSA;
use IO::Socket::INET;
use File::Basename qw(dirname);
use File::Path qw(make_path);
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use Test::PbxAuth;

my $JSON = JSON::PP->new->utf8->canonical;
my @ALL;

sub new {
	my ($class, $t, %defaults) = @_;
	my $self = bless { t => $t, dir => $t->dir . '/idp', port => Test::PbxAuth::free_port(),
	    defaults => { jwks_kids => ['k1'], signing_kid => 'k1', %defaults } }, $class;
	make_path("$self->{dir}/keys", "$self->{dir}/codes");
	$self->new_key('k1');
	$self->reset_knobs;
	push @ALL, $self;
	return $self;
}

sub dir { $_[0]{dir} }
sub port { $_[0]{port} }
sub base { "http://127.0.0.1:$_[0]{port}" }

# Generates a 2048-bit RSA key named kid (not yet published).
sub new_key {
	my ($self, $kid) = @_;
	my $k = Crypt::PK::RSA->new;
	$k->generate_key(256, 65537);
	$self->{t}->write_file("$self->{dir}/keys/$kid.pem", $k->export_key_pem('private'));
	return $k;
}

sub _write {
	my ($self) = @_;
	my $f = "$self->{dir}/knobs.json";
	$self->{t}->write_file("$f.tmp", $JSON->encode($self->{knobs}));
	rename "$f.tmp", $f or die "Test::PbxAuth::Idp: $f: $!\n";
}

# Merges %k into the knobs (a value of undef deletes one).
sub knobs {
	my ($self, %k) = @_;
	for (keys %k) {
		if (defined $k{$_}) { $self->{knobs}{$_} = $k{$_} } else { delete $self->{knobs}{$_} }
	}
	$self->_write;
	return $self->{knobs};
}

sub reset_knobs {
	my ($self) = @_;
	$self->{knobs} = { %{$self->{defaults}} };
	$self->_write;
}

# Changes the defaults that reset_knobs returns to (and the knobs now).
sub set_defaults {
	my ($self, %k) = @_;
	$self->{defaults}{$_} = $k{$_} for keys %k;
	$self->knobs(%k);
}

# A new key kid signs from now on; the JWKS publishes it (and the old ones,
# unless only => 1).
sub rotate {
	my ($self, $kid, %o) = @_;
	$self->new_key($kid);
	my @kids = $o{only} ? ($kid) : (@{$self->{defaults}{jwks_kids}}, $kid);
	$self->set_defaults(jwks_kids => \@kids, signing_kid => $kid);
}

sub start {
	my ($self) = @_;
	my $t = $self->{t};
	my $prog = dirname(__FILE__) . '/../../fake-idp';
	my $h = $t->spawn([$^X, $prog, '--port', $self->{port}, '--dir', $self->{dir},
	    '--parent', $$], stdout_file => "$self->{dir}/../fake-idp.out",
	    stderr_file => "$self->{dir}/../fake-idp.err", append => 1);
	$self->{pid} = $h->{pid};
	my $deadline = time + 15;
	while (time < $deadline) {
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
		    Proto => 'tcp', Timeout => 1);
		if ($s) { close $s; return $self }
		die "Test::PbxAuth::Idp: fake-idp exited during start-up\n"
		    if waitpid($self->{pid}, WNOHANG) == $self->{pid};
		sleep 0.05;
	}
	die "Test::PbxAuth::Idp: fake-idp did not listen on $self->{port}\n";
}

sub stop {
	my ($self) = @_;
	my $pid = delete $self->{pid} or return;
	kill 'TERM', $pid;
	for (1 .. 100) {
		last if waitpid($pid, WNOHANG) == $pid;
		sleep 0.05;
	}
	if (kill 0, $pid) {
		kill 'KILL', $pid;
		waitpid($pid, 0);
	}
}

sub _lines {
	my ($self, $name) = @_;
	my $c = $self->{t}->read_file("$self->{dir}/$name");
	return grep { length } split /\n/, $c;
}

# How many requests matched qr (against "METHOD /path").
sub count {
	my ($self, $re) = @_;
	return scalar grep { $_ =~ $re } $self->_lines('requests.log');
}

sub jwks_fetches { $_[0]->count(qr{^GET /[^/]+/discovery/v2\.0/keys$}) }
sub discovery_fetches { $_[0]->count(qr{openid-configuration$}) }

# The token requests the IdP saw, decoded ({ok, why, auth, pkce, …}).
sub token_requests { map { $JSON->decode($_) } $_[0]->_lines('token.log') }
sub last_token_request { my @r = $_[0]->token_requests; return $r[-1] }
sub last_authorize { my $c = $_[0]{t}->read_file("$_[0]{dir}/last_authorize.json");
	return length $c ? $JSON->decode($c) : undef }

# The tokens it handed out (for $t->secret).
sub issued { $_[0]->_lines('issued.log') }

sub DESTROY { $_[0]->stop }

END { $_->stop for @ALL }

1;
