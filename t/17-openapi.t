#!/usr/bin/perl
# docs/openapi.yaml cannot drift from the code: it is valid OpenAPI 3.1
# (checked by @seriousme/openapi-schema-validator from npm, pinned in
# t/openapi/package-lock.json), its operations are exactly the /api/v1
# routes of the route table (routes.c), method by method, and the real
# answers of the live stack to a tour of the API (successes and errors)
# match the schemas it gives for them (ajv, JSON Schema 2020-12).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use File::Find;
use Mojo::JSON qw(decode_json);
use TG;
use Mojo::JSON qw(encode_json);
require './t/60-helpers.pl';

my $root = $ENV{TG_ROOT};
my $mods = $ENV{TG_NODE_MODULES} // "$ENV{TG_DEVSTACK}/npm/node_modules";
ok(-d "$mods/\@seriousme/openapi-schema-validator",
    'the validator is installed (contrib/devstack test runs npm ci)')
    or BAIL_OUT("no validator in $mods");

# Runs the checker on a file (and samples); returns its decoded answer.
sub check {
	my ($file, $samples) = @_;
	local $ENV{TG_NODE_MODULES} = $mods;
	my $out = `node '$root/t/openapi/check.mjs' '$file' @{[ $samples // '' ]} 2>&1`;
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

# --- The live stack's answers against the document's schemas ----------

my @samples;
# Calls METHOD PATH (as sent) and keeps the answer under DOC_PATH (as the
# document writes it); returns the response.
sub sample {
	my ($method, $path, $doc_path, $token, $body) = @_;
	my $res = defined $token ? api($method, $path, $token, $body)
	    : req($method => $path, defined $body
	    ? ({ 'Content-Type' => 'application/json' }, encode_json($body)) : ());
	my $json = eval { $res->json };
	push @samples, { method => $method, path => $doc_path,
	    status => $res->code, body => $json // ($res->body // '') };
	return $res;
}

my ($admin, $admin_id) = temp_admin();
END { drop_user($admin_id) if $admin_id }
my $email = new_email('openapi');
my $su = sample(POST => '/api/v1/auth/signup', '/api/v1/auth/signup', undef,
    { email => $email, password => 'correct horse battery', name => 'Doc' });
my $sj = $su->json // {};
my ($uid, $tok) = ($sj->{user}{id}, $sj->{tokens}{access_token});
END { drop_user($uid) if $uid }
sample(POST => '/api/v1/auth/signup', '/api/v1/auth/signup', undef,
    { email => $email, password => 'correct horse battery' });	# 409
sample(POST => '/api/v1/auth/signup', '/api/v1/auth/signup', undef,
    { email => 'nope', password => 'short' });			# 422
my $li = sample(POST => '/api/v1/auth/login', '/api/v1/auth/login', undef,
    { email => $email, password => 'correct horse battery' });
sample(POST => '/api/v1/auth/refresh', '/api/v1/auth/refresh', undef,
    { refresh_token => ($li->json // {})->{tokens}{refresh_token} });
sample(POST => '/api/v1/auth/refresh', '/api/v1/auth/refresh', undef,
    { refresh_token => 'tgr_unknown' });				# 401
sample(POST => '/api/v1/auth/magic-link', '/api/v1/auth/magic-link', undef,
    { email => $email });						# 202
sample(POST => '/api/v1/auth/device', '/api/v1/auth/device', undef,
    { client_name => 'openapi test' });
sample(GET => '/api/v1/me', '/api/v1/me', $tok);
sample(GET => '/api/v1/me', '/api/v1/me', undef);			# 401
sample(PATCH => '/api/v1/me', '/api/v1/me', $tok, { name => 'Doc Two' });
sample(GET => '/api/v1/sessions', '/api/v1/sessions', $tok);
sample(GET => '/api/v1/api-keys', '/api/v1/api-keys', $tok);
my $k = sample(POST => '/api/v1/api-keys', '/api/v1/api-keys', $tok,
    { name => 'doc' });
sample(POST => '/api/v1/api-keys', '/api/v1/api-keys', $tok,
    { name => 'one too many' });					# 403 quota
sample(GET => '/api/v1/usage', '/api/v1/usage', $tok);
sample(GET => '/api/v1/plans', '/api/v1/plans', undef);
sample(GET => '/api/v1/billing', '/api/v1/billing', $tok);
sample(GET => '/api/v1/billing/payments', '/api/v1/billing/payments', $tok);
sample(GET => '/api/v1/admin/users', '/api/v1/admin/users', $tok);	# 403
sample(GET => "/api/v1/admin/users?q=$email", '/api/v1/admin/users', $admin);
sample(GET => "/api/v1/admin/users/$uid", '/api/v1/admin/users/{id}', $admin);
sample(GET => '/api/v1/admin/users/nosuchuserxxxxxxxxxxxx',
    '/api/v1/admin/users/{id}', $admin);				# 404
sample(PATCH => "/api/v1/admin/users/$uid", '/api/v1/admin/users/{id}', $admin,
    { plan => 'free' });
sample(POST => "/api/v1/admin/users/$uid/credits",
    '/api/v1/admin/users/{id}/credits', $admin, { delta => -2, reason => 'doc' });
sample(POST => "/api/v1/admin/users/$uid/extend-trial",
    '/api/v1/admin/users/{id}/extend-trial', $admin, { days => 1 });
sample(GET => "/api/v1/admin/audit?user_id=$uid", '/api/v1/admin/audit', $admin);
sample(GET => '/api/v1/admin/payments', '/api/v1/admin/payments', $admin);
my $kid = ($k->json // {})->{id} // 'none';
sample(POST => "/api/v1/api-keys/$kid/regenerate",
    '/api/v1/api-keys/{id}/regenerate', $tok);
sample(DELETE => "/api/v1/api-keys/$kid", '/api/v1/api-keys/{id}', $tok);

my $sfile = "$ENV{TG_DEVSTACK}/tmp/openapi-samples-$$.json";
open my $sf, '>', $sfile or die "$sfile: $!";
print $sf encode_json(\@samples);
close $sf;
my $live = check("$root/docs/openapi.yaml", $sfile);
unlink $sfile;
is(scalar @{ $live->{samples} // [] }, scalar @samples, 'every answer was checked');
for my $r (@{ $live->{samples} // [] }) {
	ok($r->{ok}, "$r->{method} $r->{path} $r->{status}: the answer matches the document")
	    or diag(explain($r->{errors}));
}
my %codes = map { $_->{status} => 1 } @samples;
ok($codes{$_}, "the samples include a $_") for qw(200 201 202 204 401 403 404 409 422);

done_testing();
