# The manual pages, as rendered by make from man/*.in, are well-formed mdoc
# (mandoc -Tlint, warnings count) with every placeholder filled.
use strict;
use warnings;
use Test::More;
use File::Basename qw(dirname);

my $src = $ENV{PA_SRCDIR} // dirname(__FILE__) . '/..';
my $build = $ENV{PA_BUILDDIR} // $src;
my @pages = glob "$build/man/*.[0-9]";
cmp_ok(scalar @pages, '>=', 3, 'manual pages found');
for my $p (@pages) {
	my $out = `mandoc -Tlint -Wwarning '$p' 2>&1`;
	is($?, 0, "mandoc -Tlint accepts $p");
	is($out, '', "no lint output for $p");
	open(my $f, '<', $p) or die "$p: $!";
	my @left = grep { /\@\w+\@/ } <$f>;
	is(join('', @left), '', "no placeholder left in $p");
}
done_testing();
