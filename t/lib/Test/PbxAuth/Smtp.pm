package Test::PbxAuth::Smtp;

# The SMTP sink of the tests (t/lib/smtp-sink) on a free loopback port, and
# the mail it caught, parsed.
#
#   my $t = Test::PbxAuth->new(need_nginx => 1);
#   my $smtp = Test::PbxAuth::Smtp->new($t);          # options below
#   $t->write_config($smtp->config);                  # smtp_url, smtp_from, ...
#   $smtp->start;
#   $t->start_pg; $t->start_daemon; ...
#   my @m = $smtp->wait_messages(1, 10) or fail(...); # at least 1 within 10 s
#   is($m[0]{to}, 'alice@example.com');
#   like($m[0]{subject}, qr/reset/);                  # decoded (RFC 2047)
#   my ($link) = $m[0]{body} =~ m{(https://\S+)};     # decoded body text
#
# new($t, %opt): tls => 1 offers STARTTLS with a self-signed certificate for
# 127.0.0.1 made in the test directory (config() then sets smtp_ca_file and
# smtp_starttls = required); auth => [$user, $password] requires AUTH
# (config() writes the password file; the password is registered as a
# secret of $t); from => the smtp_from address (noreply@pbx.test); name =>
# the directory under $t->dir where mail lands, and the prefix of the sink's
# files (default smtp: a second sink needs another name).
#
# Methods:
#   start / stop         start or stop the sink (same port each time); stop
#                        waits until the port refuses connections
#   running              whether it runs
#   port, url, dir       its port, smtp://127.0.0.1:PORT, where mail lands
#   config               the pbx-authd keys (a list of key => value pairs)
#   set(%knobs)          change its behaviour from the next connection on
#                        (the mailer opens one per message):
#                        reply_mail, reply_rcpt, reply_data, reply_end (a
#                        reply line such as '451 4.3.0 try later'), delay_end
#                        (seconds), starttls, require_tls, auth_user,
#                        auth_password.  set() with no knobs restores the
#                        options of new().
#   messages             every message caught so far, in arrival order
#   wait_messages($n [, $timeout = 10])
#                        waits until at least $n messages arrived; returns
#                        them all (fewer than $n when it timed out)
#   count                how many messages were caught so far
#   since($n [, $want [, $timeout]])
#                        the messages after the first $n: once $want more
#                        arrived (or $timeout = 20 s passed), or without
#                        $want after $timeout = 1 s; in scalar context, how many
#   clear                forgets (deletes) the messages caught so far
#   transcript           the command lines the sink received, one per line:
#                        "CONN > LINE" (client) and "CONN < LINE" (sink), with
#                        control characters as \xNN and AUTH data redacted
#
# A message is a hash:
#   raw        the DATA as received (bytes, CRLF line ends, dot-unstuffed)
#   head       its header block (bytes)
#   headers    [ [Name, value], ... ] in order, values unfolded, not decoded
#   header     { lc name => value of the first such header }
#   subject    the Subject, RFC 2047 decoded (a character string)
#   from       the From header (decoded)
#   to         the address in the To header
#   body       the body, transfer-decoded and UTF-8 decoded (characters),
#              with "\n" line ends
#   body_bytes the body as sent (after the blank line, CRLF line ends)
#   mail_from, rcpt_to (array)  the envelope; tls (0/1); auth (the user or
#   undef); file (the .eml path)

use strict;
use warnings;

use Encode ();
use JSON::PP;
use MIME::Base64 ();
use MIME::QuotedPrint ();
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use File::Basename qw(dirname);
use IO::Socket::INET;

my $SINK = dirname(__FILE__) . '/../../smtp-sink';

sub new {
	my ($class, $t, %opt) = @_;
	my $self = bless { t => $t, opt => \%opt }, $class;
	$self->{port} = $opt{port} // Test::PbxAuth::free_port();
	$self->{name} = $opt{name} // 'smtp';
	$self->{dir} = $t->dir . "/$self->{name}";
	$self->{from} = $opt{from} // 'noreply@pbx.test';
	mkdir $self->{dir};
	if ($opt{tls}) {
		$self->_make_cert;
	}
	if ($opt{auth}) {
		$t->secret($opt{auth}[1], 'the SMTP password');
		$self->{password_file} = $t->write_file("$self->{name}-password", "$opt{auth}[1]\n");
		chmod 0600, $self->{password_file};
	}
	$self->set;
	push @{$t->{smtp_sinks}}, $self;
	return $self;
}

sub port { $_[0]{port} }
sub dir { $_[0]{dir} }
sub url { "smtp://127.0.0.1:$_[0]{port}" }
sub running { defined $_[0]{pid} }

sub config {
	my ($self) = @_;
	my @c = (smtp_url => $self->url, smtp_from => $self->{from},
	    smtp_starttls => $self->{opt}{tls} ? 'required' : 'off');
	push @c, smtp_ca_file => $self->{cert} if $self->{opt}{tls};
	push @c, smtp_user => $self->{opt}{auth}[0], smtp_password_file => $self->{password_file}
	    if $self->{opt}{auth};
	return @c;
}

# A self-signed certificate for 127.0.0.1 and localhost.
sub _make_cert {
	my ($self) = @_;
	require IO::Socket::SSL::Utils;
	my ($cert, $key) = IO::Socket::SSL::Utils::CERT_create(
	    CA => 1, subject => { commonName => '127.0.0.1' },
	    subjectAltNames => [ [ IP => '127.0.0.1' ], [ DNS => 'localhost' ] ],
	    purpose => 'server,client');
	my $d = $self->{t}->dir . "/$self->{name}";
	IO::Socket::SSL::Utils::PEM_cert2file($cert, "$d-cert.pem");
	IO::Socket::SSL::Utils::PEM_key2file($key, "$d-key.pem");
	$self->{cert} = "$d-cert.pem";
	$self->{key} = "$d-key.pem";
}

sub set {
	my ($self, %knobs) = @_;
	my %c;
	$c{starttls} = 1 if $self->{opt}{tls};
	@c{qw(auth_user auth_password)} = @{$self->{opt}{auth}} if $self->{opt}{auth};
	%c = (%c, %knobs);
	my $text = join '', map { defined $c{$_} ? "$_ = $c{$_}\n" : '' } sort keys %c;
	$self->{t}->write_file("$self->{dir}/control", $text);
	return $self;
}

sub start {
	my ($self) = @_;
	return $self if $self->{pid};
	my @cmd = ($^X, $SINK, '--port', $self->{port}, '--dir', $self->{dir});
	push @cmd, '--cert', $self->{cert}, '--key', $self->{key} if $self->{cert};
	my $log = $self->{t}->dir . "/$self->{name}-sink.log";
	my $h = $self->{t}->spawn(\@cmd, stdout_file => $log, stderr_file => $log, append => 1);
	$self->{pid} = $h->{pid};
	my $ok = $self->{t}->wait_until(sub {
		return 0 if waitpid($self->{pid}, WNOHANG) == $self->{pid} && ($self->{dead} = 1);
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
		    Proto => 'tcp');
		return 0 unless $s;
		my $greeting = <$s>;
		close $s;
		return defined $greeting && $greeting =~ /^220 smtp-sink/;
	}, 10);
	unless ($ok) {
		delete $self->{pid};
		die "Test::PbxAuth::Smtp: the sink did not start:\n" . $self->{t}->read_file($log);
	}
	return $self;
}

sub stop {
	my ($self) = @_;
	my $pid = delete $self->{pid} or return;
	Test::PbxAuth::stop_child($pid, 'TERM');
	return $self;
}

sub _files {
	my ($self) = @_;
	opendir my $d, $self->{dir} or return ();
	my @f = sort grep { /^\d+\.\d+\.\d+\.eml\z/ } readdir $d;
	closedir $d;
	return map { "$self->{dir}/$_" } @f;
}

sub messages {
	my ($self) = @_;
	return map { $self->_parse($_) } $self->_files;
}

sub wait_messages {
	my ($self, $n, $timeout) = @_;
	$self->{t}->wait_until(sub { $self->_files >= $n }, $timeout // 10, 0.1);
	return $self->messages;
}

sub count { return scalar(my @m = $_[0]->messages) }

sub since {
	my ($self, $n, $want, $timeout) = @_;
	my @m = $want ? $self->wait_messages($n + $want, $timeout // 20)
	    : do { sleep($timeout // 1); $self->messages };
	my @new = @m[$n .. $#m];
	return wantarray ? @new : scalar @new;
}

sub clear {
	my ($self) = @_;
	for my $f ($self->_files) {
		(my $j = $f) =~ s/\.eml\z/.json/;
		unlink $f, $j;
	}
	return $self;
}

sub transcript {
	my ($self) = @_;
	return $self->{t}->read_file("$self->{dir}/transcript.txt");
}

sub _decode_words {
	my ($v) = @_;
	return eval { Encode::decode('MIME-Header', $v) } // $v;
}

sub _address {
	my ($v) = @_;
	return $v =~ /<([^>]*)>/ ? $1 : $v;
}

sub _parse {
	my ($self, $file) = @_;
	my $raw = $self->{t}->read_file($file);
	(my $jf = $file) =~ s/\.eml\z/.json/;
	my $env = eval { JSON::PP->new->decode($self->{t}->read_file($jf)) } || {};
	my ($head, $body) = split /\r\n\r\n/, $raw, 2;
	$body //= '';
	my (@headers, %first);
	(my $unfolded = $head // '') =~ s/\r\n(?=[ \t])//g;
	for my $line (split /\r\n/, $unfolded) {
		my ($k, $v) = $line =~ /^([^:\s]+):[ \t]*(.*)$/s or next;
		push @headers, [ $k, $v ];
		$first{lc $k} //= $v;
	}
	my $cte = lc($first{'content-transfer-encoding'} // '7bit');
	my $bytes = $body;
	$bytes = MIME::QuotedPrint::decode_qp($bytes) if $cte eq 'quoted-printable';
	$bytes = MIME::Base64::decode_base64($bytes) if $cte eq 'base64';
	my $text = eval { Encode::decode('UTF-8', $bytes, Encode::FB_CROAK) } // $bytes;
	$text =~ s/\r\n/\n/g;
	return {
		file => $file, raw => $raw, head => $head, headers => \@headers,
		header => \%first,
		subject => _decode_words($first{subject} // ''),
		from => _decode_words($first{from} // ''),
		to => _address($first{to} // ''),
		body => $text, body_bytes => $body,
		mail_from => $env->{mail_from}, rcpt_to => $env->{rcpt_to} || [],
		tls => $env->{tls}, auth => $env->{auth},
	};
}

sub DESTROY {
	my ($self) = @_;
	local ($?, $!, $@);
	$self->stop if $self->{pid};
}

1;
