#!/usr/bin/perl

# The per-worker /api/info cache: a tenant's change drops only that tenant's
# entry (others stay cached and reachable), renames and inserts replace
# cached 404s, a system settings change or TRUNCATE drops everything, a
# full cache evicts one entry per new one without wrong answers, and the
# fill caches tenants nobody asked for yet.
#
# To see what is cached, rows are changed "silently" (triggers off through
# session_replication_role): a silent change shows only once the entry is
# dropped, so a cached entry answers with the old value.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Math::BigInt;
use Test::More;
use Time::HiRes qw(sleep time);

use Test::PbxAuth;

# One worker, so that there is one cache to reason about; 16 entries
# (32 slots) so that probe runs collide and evictions must shift entries.
my $t = Test::PbxAuth->new(need_nginx => 1);
$t->write_config(workers => 1, tenant_cache_size => 16);
$t->start_pg->start_daemon->start_nginx;

# The cache's hash (src/meta.c): 64-bit FNV-1a of the lower-case domain,
# masked to the 32 slots of a 16-entry cache.
sub home_slot {
	my ($s) = @_;
	my $h = Math::BigInt->new('14695981039346656037');
	my $mod = Math::BigInt->new(2)->bpow(64);
	for my $c (unpack 'C*', lc $s) {
		$h->bxor($c)->bmul('1099511628211')->bmod($mod);
	}
	return $h->band(31)->numify;
}

# Eight domains with the same home slot form one probe run; four more with
# another home sit right after it. Evicting from the middle of such runs
# is what must keep the rest reachable.
my (%by_slot, @dom);
for my $i (1 .. 2000) {
	my $d = "c$i.cache.test";
	push @{$by_slot{home_slot($d)}}, $d;
}
my ($s1, $s2) = (7, 8);
@dom = (@{$by_slot{$s1}}[0 .. 7], @{$by_slot{$s2}}[0 .. 3]);
is(scalar(grep { defined } @dom), 12, 'twelve domains chosen to collide');
$t->psql("INSERT INTO tenants (domain, name) VALUES "
    . join(', ', map { "('$_', 'v1')" } @dom));

sub name_of {
	my ($d) = @_;
	my $r = $t->get("/api/info?domain=$d");
	return $r->{status} == 200 ? $r->{json}{name} : $r->{status};
}

sub silently {
	my ($sql) = @_;
	$t->psql("SET session_replication_role = replica;\n$sql;");
}

# Waits up to 1 s for $d to answer $want.
sub becomes {
	my ($d, $want, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $deadline = time + 1.0;
	my $got;
	while (1) {
		$got = name_of($d);
		last if $got eq $want || time > $deadline;
		sleep 0.05;
	}
	is($got, $want, $name);
}

is(name_of($_), 'v1', "$_ cached as v1") for @dom;
silently("UPDATE tenants SET name = 'v2' WHERE domain LIKE '%.cache.test'");
is(name_of($_), 'v1', "$_ still answered from the cache after a silent change") for @dom;

# Evict entries one at a time, in an order that breaks probe runs apart.
my @evicted;
for my $i (2, 7, 0, 11, 5, 9, 1) {
	my $d = $dom[$i];
	$t->psql("UPDATE tenants SET name = 'v3' WHERE domain = '$d'");
	push @evicted, $d;
	my %ev = map { $_ => 1 } @evicted;
	# Ask for the others first: asking for $d would refill its slot and
	# hide a probe run broken by the eviction. The notification arrives in
	# milliseconds; the pause only makes it likely to be read before them.
	sleep 0.2;
	my @wrong = grep { !$ev{$_} && name_of($_) ne 'v1' } @dom;
	is("@wrong", '', "after evicting $d, every other tenant is still cached");
	becomes($d, 'v3', "$d: its own change is visible");
}

# A cached 404 is replaced when the domain appears, by rename or insert.
is(name_of('renamed.cache.test'), 404, 'renamed.cache.test unknown (404 cached)');
is(name_of('new.cache.test'), 404, 'new.cache.test unknown (404 cached)');
$t->psql("UPDATE tenants SET domain = 'renamed.cache.test' WHERE domain = '$dom[3]'");
becomes('renamed.cache.test', 'v2', 'a renamed tenant answers under its new domain');
becomes($dom[3], 404, 'and no longer under its old one');
$t->psql("INSERT INTO tenants (domain, name) VALUES ('NEW.cache.test', 'fresh')");
becomes('new.cache.test', 'fresh', 'an inserted tenant replaces the cached 404');
$t->psql("DELETE FROM tenants WHERE domain = 'NEW.cache.test'");
becomes('new.cache.test', 404, 'a deleted tenant is gone');
is(name_of($dom[6]), 'v1', 'unrelated entries survived renames, inserts and deletes');

# A change of the system settings drops everything.
my ($rc, undef, $err) = $t->ctl('system', 'set', 'web_domain=cache.example');
is($rc, 0, 'system set') or diag($err);
becomes($dom[6], 'v2', 'system settings change drops the tenant entries too');
is($t->get('/api/info')->{json}{web_domain}, 'cache.example', 'system metadata refreshed');

# TRUNCATE drops everything (statement trigger).
is(name_of($dom[4]), 'v2', "$dom[4] cached again");
$t->psql('TRUNCATE tenants CASCADE');    # users reference tenants
becomes($dom[4], 404, 'TRUNCATE empties the cache');

# More distinct domains than the cache holds: it evicts, answers stay right.
$t->psql("INSERT INTO tenants (domain, name) SELECT 'f' || i || '.cache.test', 'f' || i"
    . " FROM generate_series(1, 30) i");
my @bad;
for my $round (1 .. 3) {
	for my $i (1 .. 30) {
		my $got = name_of("f$i.cache.test");
		push @bad, "f$i: $got" if $got ne "f$i";
		my $miss = name_of("missing$i.cache.test");
		push @bad, "missing$i: $miss" if $miss ne '404';
	}
}
is("@bad", '', 'a cache that fills up evicts and keeps answering correctly');

# A full cache evicts one entry per new one, not everything: cache 16
# tenants (the fill takes g01 to g16, the first 16 in lower(domain) order),
# change them silently, ask for one more; then most of the 16 still answer
# from the cache (each miss of this pass evicts one more entry, so not all
# of them; a cache that started over would answer none).
$t->psql("TRUNCATE tenants CASCADE;\nINSERT INTO tenants (domain, name)"
    . " SELECT 'g' || to_char(i, 'FM00') || '.cache.test', 'v1' FROM generate_series(1, 17) i");
becomes('g01.cache.test', 'v1', 'g01 after TRUNCATE and INSERT');
name_of(sprintf 'g%02d.cache.test', $_) for 1 .. 16;
silently("UPDATE tenants SET name = 'v2' WHERE domain LIKE 'g%.cache.test'");
is(name_of('g17.cache.test'), 'v2', 'a 17th tenant in a cache of 16');
my $cached = grep { name_of(sprintf 'g%02d.cache.test', $_) eq 'v1' } 1 .. 16;
cmp_ok($cached, '>=', 8, "$cached of 16 tenants still cached after one eviction");

# The fill: once the cache has been emptied, the answer to the next request
# is followed by loading the enabled tenants, page by page in lower(domain)
# order up to the cache's size, so tenants nobody asked for are cached too.
# (g01 answering 404 shows the TRUNCATE's notification was read.)
$t->psql("TRUNCATE tenants CASCADE;\nINSERT INTO tenants (domain, name, enabled)"
    . " SELECT 'h' || i || '.cache.test', 'v1', i <> 12 FROM generate_series(1, 12) i");
becomes('g01.cache.test', 404, 'TRUNCATE read');
silently("UPDATE tenants SET name = 'v2' WHERE domain LIKE 'h%.cache.test'");
is(join(' ', map { name_of("h$_.cache.test") } 1 .. 12), join(' ', ('v1') x 11, 404),
    'the 11 enabled tenants, never asked for, answer from the cache; the disabled one 404');

$t->done_testing;
