#!/usr/bin/perl
# The man pages: mandoc -Tlint finds nothing at warning level or above,
# tollgate.conf(5) documents every key of src/core/config.c's table (in its
# section, with its default), tollgatectl(8) every command of its table,
# tollgated(8) every long option, and make install installs all three.

use strict;
use warnings;

use Test::More;
use File::Basename qw(dirname);
use Cwd qw(abs_path);

my $root = $ENV{TG_ROOT} // abs_path(dirname(__FILE__) . '/..');
my @pages = qw(man/tollgated.8 man/tollgatectl.8 man/tollgate.conf.5);

plan skip_all => 'mandoc is not installed (contrib/devstack installs it)'
    unless system('sh', '-c', 'command -v mandoc >/dev/null') == 0;

sub slurp {
	my ($path) = @_;
	open my $fh, '<', "$root/$path" or die "$root/$path: $!";
	local $/;
	return <$fh>;
}

for my $p (@pages) {
	ok(-f "$root/$p", "$p exists") or next;
	# STYLE messages about pages missing from this machine's database
	# (tollgated(8) before it is installed) are below -W warning.
	my $out = `mandoc -Tlint -W warning '$root/$p' 2>&1`;
	is($? >> 8, 0, "$p: mandoc -Tlint exits 0");
	is($out, '', "$p: no lint at warning level or above") or diag($out);
}

# Every key of config.c's table, in its section, with its default.
my $config = slurp('src/core/config.c');
my @keys;
while ($config =~ /^\s*\{\s*"(\w+)",\s*"(\w+)",\s*K_\w+,\s*OFF\(\w+\),\s*(NULL|"[^"]*")/mg) {
	my ($sec, $key, $dflt) = ($1, $2, $3);
	$dflt = $dflt eq 'NULL' ? undef : substr($dflt, 1, -1);
	push @keys, [$sec, $key, $dflt];
}
cmp_ok(scalar @keys, '>=', 37, 'read the key table of src/core/config.c');

my $conf5 = slurp('man/tollgate.conf.5');
my (%doc, $section, $item);
for my $line (split /\n/, $conf5) {
	if ($line =~ /^\.Ss \[(\w+)\]/) {
		$section = $1;
		undef $item;
	} elsif ($section && $line =~ /^\.It Cm (\w+)\s*$/) {
		$item = $1;
		$doc{$section}{$item} = '';
	} elsif ($line =~ /^\.(El|Sh|Ss)\b/) {
		undef $item;
	} elsif (defined $item) {
		$doc{$section}{$item} .= "$line\n";
	}
}
for my $k (@keys) {
	my ($sec, $key, $dflt) = @$k;
	my $text = $doc{$sec}{$key};
	ok(defined $text, "tollgate.conf(5) documents [$sec] $key") or next;
	if (!defined $dflt) {
		like($text, qr/Required/, "[$sec] $key: says it is required");
	} elsif ($dflt eq '') {
		like($text, qr/default is (none|empty)/,
		    "[$sec] $key: says its default is none");
	} else {
		like($text, qr/default is\b.*?\Q$dflt\E/s,
		    "[$sec] $key: gives its default, $dflt");
	}
}
my %known = map { ("$_->[0] $_->[1]" => 1) } @keys;
for my $sec (sort keys %doc) {
	for my $key (sort keys %{ $doc{$sec} }) {
		ok($known{"$sec $key"}, "[$sec] $key of the page is a real key");
	}
}

# Every command of tollgatectl.
my $ctl = slurp('src/ctl/tollgatectl.c');
my $ctl8 = slurp('man/tollgatectl.8');
my ($table) = $ctl =~ /cmds\[\]\s*=\s*\{(.*?)\n\};/s;
my $ncmds = 0;
while (($table // '') =~ /\{\s*"([\w-]+)",\s*(NULL|"([\w-]+)")/g) {
	my $words = defined $3 ? "$1 $3" : $1;
	$ncmds++;
	like($ctl8, qr/^\.It Cm \Q$words\E\b/m,
	    "tollgatectl(8) documents '$words'");
}
cmp_ok($ncmds, '>=', 2, 'read the command table of src/ctl/tollgatectl.c');

# Every long option of tollgated.
my $main = slurp('src/server/main.c');
my $d8 = slurp('man/tollgated.8');
my $nopts = 0;
while ($main =~ /\{\s*"([\w-]+)",\s*(?:no|required|optional)_argument/g) {
	$nopts++;
	(my $esc = $1) =~ s/-/\\-/g;
	like($d8, qr/Fl \\-\Q$esc\E\b/, "tollgated(8) documents --$1");
}
cmp_ok($nopts, '>=', 2, 'read the long options of src/server/main.c');

# make install installs them.
my $am = slurp('Makefile.am');
my ($mans) = $am =~ /^dist_man_MANS\s*=\s*(.*(?:\\\n.*)*)/m;
for my $p (@pages) {
	like($mans // '', qr/(^|\s)\Q$p\E(\s|$)/, "Makefile.am installs $p");
}

done_testing;
