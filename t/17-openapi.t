#!/usr/bin/perl
# docs/openapi.yaml cannot drift from the code: it is valid OpenAPI 3.1
# (checked by @seriousme/openapi-schema-validator from npm, pinned in
# t/openapi/package-lock.json), and its operations are exactly the
# /api/v1 routes of the route table (routes.c), method by method.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use File::Find;
use Mojo::JSON qw(decode_json);
use TG;

my $root = $ENV{TG_ROOT};
my $mods = $ENV{TG_NODE_MODULES} // "$ENV{TG_DEVSTACK}/npm/node_modules";
ok(-d "$mods/\@seriousme/openapi-schema-validator",
    'the validator is installed (contrib/devstack test runs npm ci)')
    or BAIL_OUT("no validator in $mods");

# Runs the checker on a file; returns its decoded answer.
sub check {
	my ($file) = @_;
	local $ENV{TG_NODE_MODULES} = $mods;
	my $out = `node '$root/t/openapi/check.mjs' '$file' 2>&1`;
	my $j = eval { decode_json($out) };
	diag("check.mjs: $out") unless $j;
	return $j // {};
}

my $doc = check("$root/docs/openapi.yaml");
is($doc->{version}, '3.1', 'docs/openapi.yaml is OpenAPI 3.1');
ok($doc->{valid}, 'docs/openapi.yaml is valid')
    or diag(explain($doc->{errors}));

# The validator can say no: a copy with a bad security scheme fails.
{
	open my $in, '<', "$root/docs/openapi.yaml" or die $!;
	local $/;
	my $y = <$in>;
	close $in;
	$y =~ s/^(\s+)type: http$/$1type: htttp/m or die 'no http scheme';
	my $bad = "$ENV{TG_DEVSTACK}/tmp/openapi-bad-$$.yaml";
	open my $out, '>', $bad or die "$bad: $!";
	print $out $y;
	close $out;
	my $j = check($bad);
	unlink $bad;
	is($j->{valid} ? 1 : 0, 0, 'a broken copy is found invalid');
}

# The route table: "{ M_POST, "/api/v1/...", h_..." lines of routes.c.
my $routes_c;
find(sub { $routes_c = $File::Find::name if $_ eq 'routes.c' }, "$root/src");
ok($routes_c, 'the route table is found') or BAIL_OUT('no routes.c');
open my $fh, '<', $routes_c or die "$routes_c: $!";
my $src = do { local $/; <$fh> };
close $fh;
my %table;
while ($src =~ /\{\s*((?:M_[A-Z]+\s*\|?\s*)+),\s*"(\/api\/v1\/[^"]*)"/g) {
	my ($m, $path) = ($1, $2);
	for my $one ($m =~ /M_([A-Z]+)/g) {
		next if $one eq 'HEAD' || $one eq 'OTHER';
		$table{"$one $path"} = 1;
	}
}
cmp_ok(scalar keys %table, '>=', 40, 'the route table has its /api/v1 routes');

my %documented = map { $_ => 1 } @{ $doc->{operations} // [] };
my @missing = grep { !$documented{$_} } sort keys %table;
my @extra = grep { !$table{$_} } sort keys %documented;
is_deeply(\@missing, [], 'every /api/v1 route is documented')
    or diag("add to docs/openapi.yaml: @missing");
is_deeply(\@extra, [], 'every documented operation is a route')
    or diag("not in the route table: @extra");

# And the live stack agrees on a public one: GET /api/v1/plans answers
# the documented shape.
my $res = req(GET => '/api/v1/plans');
is($res->code, 200, 'GET /api/v1/plans: 200');
my $plans = $res->json // [];
ok(@$plans && !grep({ my $p = $_; grep { !exists $p->{$_} } qw(name price
    currency rate_per_minute credits limits api_keys) } @$plans),
    'every plan has the documented members');

done_testing();
