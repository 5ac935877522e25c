# Every configuration key of src/config.c is documented in the README's table,
# pbx-auth.conf(5) and deploy/pbx-auth.conf.example (their .in templates), and nothing documented
# is unknown.
use strict;
use warnings;
use Test::More;
use File::Basename qw(dirname);

my $src = $ENV{PA_SRCDIR} // dirname(__FILE__) . '/..';
sub slurp { open(my $f, '<', $_[0]) or die "$_[0]: $!"; local $/; <$f> }

my @keys = slurp("$src/src/config.c") =~ /^\s*\{ "(\w+)", T_\w+, OFF\(/mg;
cmp_ok(scalar @keys, '>=', 10, 'config keys found in src/config.c');
my $readme = slurp("$src/README.md");
my $example = slurp("$src/deploy/pbx-auth.conf.example.in");
my $man = slurp("$src/man/pbx-auth.conf.5.in");
for my $k (@keys) {
	like($man, qr/^\.It Cm \Q$k\E$/m, "pbx-auth.conf(5) documents $k");
	like($readme, qr/^\| `\Q$k\E` \|/m, "README documents $k");
	like($example, qr/^#?\Q$k\E\s*=/m, "example configuration has $k");
}
my %known = map { $_ => 1 } @keys;
for my $k ($readme =~ /^\| `(\w+)` \|/mg) {
	ok($known{$k}, "README key $k exists");
}
for my $k ($man =~ /^\.It Cm (\w+)$/mg) {
	ok($known{$k}, "pbx-auth.conf(5) key $k exists");
}
for my $k ($example =~ /^#?(\w+)\s*=/mg) {
	ok($known{$k}, "example key $k exists");
}
done_testing();
