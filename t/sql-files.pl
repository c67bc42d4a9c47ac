#!/usr/bin/perl
# The sql directory's rule (sql/README), checked by make check.
#
# 1. A numbered step (sql/NNN-name.sql) holds tables, indexes and data,
#    never a stored function, procedure or trigger: those live in
#    sql/routines/, which tollgatectl migrate creates after the steps.
# 2. Each routine is defined once in sql/routines/: one copy of each rule.
# 3. A routines file defines routines (CREATE OR REPLACE) and changes no
#    table: it is run again on every change.
#
# Prints TAP.  The srcdir is the first argument, else the checkout this
# script lives in.

use strict;
use warnings;
use File::Basename qw(basename dirname);

my $top = $ARGV[0] // dirname(dirname(__FILE__));
my @steps = sort glob("$top/sql/[0-9]*.sql");
my @routines = sort glob("$top/sql/routines/*.sql");
my $n = 0;

sub ok {
	my ($ok, $name, @diag) = @_;
	$n++;
	print(($ok ? '' : 'not '), "ok $n - $name\n");
	print "# $_\n" for @diag;
}

# Statements at the top level of a file: comments dropped, each
# statement starts at the beginning of a line.
sub heads {
	my ($file) = @_;
	open(my $fh, '<', $file) or die "$file: $!";
	my @h;
	while (my $l = <$fh>) {
		next if $l =~ /^\s*(--.*)?$/;
		push @h, [$., $l] if $l =~ /^[A-Z]/;
	}
	return @h;
}

my $routine = qr/^CREATE\s+(?:OR\s+REPLACE\s+)?(?:DEFINER\s*=\s*\S+\s+)?
    (FUNCTION|PROCEDURE|TRIGGER)\s+(?:IF\s+NOT\s+EXISTS\s+)?`?(\w+)/xi;

ok(@steps > 0 && @routines > 0, 'sql/ has numbered steps and routines',
    "steps: " . scalar(@steps), "routines files: " . scalar(@routines));

my @bad;
for my $f (@steps) {
	for my $h (heads($f)) {
		push @bad, basename($f) . ":$h->[0]: $2 $1"
		    if $h->[1] =~ $routine;
	}
}
ok(!@bad, 'no numbered step defines a routine or trigger', @bad);

my (%where, @twice, @other);
for my $f (@routines) {
	for my $h (heads($f)) {
		my $l = $h->[1];
		if ($l =~ $routine) {
			my $name = lc $2;
			push @twice, "$name: $where{$name} and " . basename($f)
			    . ":$h->[0]" if $where{$name};
			$where{$name} //= basename($f) . ":$h->[0]";
		} elsif ($l =~ /^(ALTER|DROP|DELETE|TRUNCATE|RENAME|GRANT)\b|
		    ^CREATE\s+(?!OR\s+REPLACE\s+(FUNCTION|PROCEDURE|TRIGGER))/xi) {
			push @other, basename($f) . ":$h->[0]: $l";
		}
	}
}
ok(!@twice, 'each routine is defined once in sql/routines', @twice);
ok(!@other, 'no routines file changes a table', @other);
ok(keys(%where) >= 10, 'the routines are found',
    join(' ', sort keys %where));
print "1..$n\n";
