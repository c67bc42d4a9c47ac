#!/usr/bin/perl
# The layers of src/ (README, "Where things go"), checked by make check.
#
# 1. A file includes only its own layer's header and the headers of the
#    layers below it, by the path from src/ ("db/db.h"), never by "../".
# 2. No cycle between files: a file that calls a function defined in
#    another file depends on it; within a layer too, those dependencies
#    must form no loop (a loop means one of the files holds a piece that
#    belongs lower down).
#
# Prints TAP.  The srcdir is the first argument, else the checkout this
# script lives in.

use strict;
use warnings;
use File::Basename qw(dirname);

my $top = $ARGV[0] // dirname(dirname(__FILE__));
my $src = "$top/src";

# Lowest first; a file may include the headers of its rank and below.
my @layers = qw(core db engine http app pages sender ctl server);
my %rank;
@rank{@layers} = (0 .. $#layers);

my @files = sort glob("$src/*/*.c $src/*/*.h");
my @top_level = grep { -f } glob("$src/*.c $src/*.h");

my @fail;
for my $f (@top_level) {
	push @fail, "$f: a source file outside the layer folders";
}
for my $f (@files) {
	my ($layer) = $f =~ m{/src/([^/]+)/[^/]+$};
	if (!exists $rank{$layer}) {
		push @fail, "$f: folder $layer is not a layer";
		next;
	}
	open(my $fh, '<', $f) or die "$f: $!";
	while (my $line = <$fh>) {
		next unless $line =~ /^\s*#\s*include\s+"([^"]+)"/;
		my $inc = $1;
		if ($inc !~ m{^([a-z]+)/[a-z_]+\.h$}) {
			push @fail, "$f:$.: include \"$inc\" is not LAYER/NAME.h";
			next;
		}
		my $to = $1;
		if (!exists $rank{$to}) {
			push @fail, "$f:$.: include \"$inc\": no such layer";
		} elsif ($rank{$to} > $rank{$layer}) {
			push @fail, "$f:$.: $layer includes the higher layer $to";
		}
	}
	close $fh;
}

print "1..2\n";
if (@fail) {
	print "not ok 1 - every include goes to the same layer or below\n";
	print "# $_\n" for @fail;
} else {
	print "ok 1 - every include goes to the same layer or below (",
	    scalar(@files), " files)\n";
}

# Which file defines each function: a name at the start of a line,
# followed by "(", in a .c file (the house style puts the return type on
# the line above).
my (%defined_in, %text);
for my $f (grep { /\.c$/ } @files) {
	open(my $fh, '<', $f) or die "$f: $!";
	local $/;
	my $t = <$fh>;
	close $fh;
	# Comments and strings say nothing about calls.
	$t =~ s{/\*.*?\*/}{ }gs;
	$t =~ s{"(?:\\.|[^"\\\n])*"}{""}g;
	$text{$f} = $t;
	my $static = join '|', $t =~ /^static\b[^;{]*?\n([a-z_][a-z0-9_]*)\(/mg;
	for my $name ($t =~ /^([a-z_][a-z0-9_]*)\(/mg) {
		next if $static ne '' && $name =~ /^(?:$static)$/;
		$defined_in{$name} //= $f;
	}
}

# file -> files whose functions it names (calls, or takes the address).
my %dep;
for my $f (keys %text) {
	my %seen;
	for my $word ($text{$f} =~ /\b([a-z_][a-z0-9_]*)\b/g) {
		my $g = $defined_in{$word};
		next unless defined $g && $g ne $f && !$seen{$g}++;
		$dep{$f}{$g} = $word;
	}
}

# Tarjan's strongly connected components: any with two files or more
# is a cycle.
my ($index, @stack, %idx, %low, %on, @cycles) = (0);
my $visit;
$visit = sub {
	my ($v) = @_;
	$idx{$v} = $low{$v} = $index++;
	push @stack, $v;
	$on{$v} = 1;
	for my $w (sort keys %{ $dep{$v} // {} }) {
		if (!defined $idx{$w}) {
			$visit->($w);
			$low{$v} = $low{$w} if $low{$w} < $low{$v};
		} elsif ($on{$w}) {
			$low{$v} = $idx{$w} if $idx{$w} < $low{$v};
		}
	}
	if ($low{$v} == $idx{$v}) {
		my @c;
		while (1) {
			my $w = pop @stack;
			$on{$w} = 0;
			push @c, $w;
			last if $w eq $v;
		}
		push @cycles, [sort @c] if @c > 1;
	}
};
$visit->($_) for grep { !defined $idx{$_} } sort keys %text;

my $nedges = 0;
$nedges += keys %{ $dep{$_} } for keys %dep;
if (@cycles) {
	print "not ok 2 - no cycle between files\n";
	for my $c (@cycles) {
		my %in = map { $_ => 1 } @$c;
		print "# cycle:\n";
		for my $f (@$c) {
			for my $g (sort keys %{ $dep{$f} }) {
				next unless $in{$g};
				(my $a = $f) =~ s{^.*/src/}{};
				(my $b = $g) =~ s{^.*/src/}{};
				print "#   $a -> $b ($dep{$f}{$g})\n";
			}
		}
	}
} else {
	print "ok 2 - no cycle between files (", scalar(keys %text),
	    " files, $nedges dependencies)\n";
}
