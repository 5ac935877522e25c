# The manual pages are well-formed mdoc (mandoc -Tlint, warnings count).
use strict;
use warnings;
use Test::More;
use File::Basename qw(dirname);

my $src = $ENV{PA_SRCDIR} // dirname(__FILE__) . '/..';
my @pages = glob "$src/man/*.[0-9]";
cmp_ok(scalar @pages, '>=', 3, 'manual pages found');
for my $p (@pages) {
	my $out = `mandoc -Tlint -Wwarning '$p' 2>&1`;
	is($?, 0, "mandoc -Tlint accepts $p");
	is($out, '', "no lint output for $p");
}
done_testing();
