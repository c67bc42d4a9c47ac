#!/usr/bin/perl
# /metrics in Prometheus's conventions, checked by Prometheus's own tool:
# `promtool check metrics` (Debian package prometheus) finds nothing to
# say about the dev stack's /metrics after traffic that fills every
# family; every family has # HELP and # TYPE; no series appears twice; a
# route serving several methods has a series per method; a gate denial
# carries its error code; tollgate_build_info names the version.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempfile);
use TG;

my $promtool = `sh -c 'command -v promtool'`;
chomp $promtool;
plan skip_all => 'promtool is not installed (Debian package prometheus)'
    unless $promtool;

# Traffic: two methods on one route, an allowed and a denied gate check.
my $n = time . $$;
my $res = json_post('/api/v1/auth/signup', { email => "metrics$n\@example.com",
    password => 'correct horse battery', name => 'Metrics' });
is($res->code, 201, 'a sign-up');
my $tok = $res->json->{tokens}{access_token} // '';
my %auth = (Authorization => "Bearer $tok");
is(req(GET => '/api/v1/api-keys', \%auth)->code, 200, 'GET /api/v1/api-keys');
is(json_post('/api/v1/api-keys', { name => 'm' }, \%auth)->code, 201,
    'POST /api/v1/api-keys');
is(req(GET => '/demo/echo')->code, 401, 'a gate check without a credential: 401');
is(req(GET => '/demo/echo', { Authorization => 'Bearer tgk_nonsense' })->code,
    401, 'a gate check with a bad key: 401');

$res = req(GET => '/metrics');
is($res->code, 200, '/metrics: 200');
like($res->headers->content_type // '', qr{^text/plain; version=0\.0\.4},
    '/metrics: the text format, version 0.0.4');
my $text = $res->body // '';

# promtool reads the exposition on stdin; it prints problems and exits 1.
my ($fh, $file) = tempfile('tollgate-metrics-XXXXXX', TMPDIR => 1, UNLINK => 1);
print $fh $text;
close $fh;
my $out = `'$promtool' check metrics <'$file' 2>&1`;
is($? >> 8, 0, 'promtool check metrics: exit 0') or diag($out);
is($out, '', 'promtool check metrics: nothing to say');

# Every family: # HELP and # TYPE before its first sample.
my (%help, %type, %seen, @dups);
for my $line (split /\n/, $text) {
	if ($line =~ /^# HELP (\S+) \S/) {
		$help{$1} = 1;
	} elsif ($line =~ /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/) {
		$type{$1} = $2;
	} elsif ($line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+\S+$/) {
		my ($name, $labels) = ($1, $2 // '');
		my $fam = $type{$name} ? $name : $name =~ s/_(bucket|sum|count)$//r;
		ok($help{$fam} && $type{$fam}, "$fam has # HELP and # TYPE")
		    unless $seen{"family $fam"}++;
		push @dups, "$name$labels" if $seen{"$name$labels"}++;
	}
}
is("@dups", '', 'no series appears twice');
for my $c (grep { $type{$_} eq 'counter' } keys %type) {
	like($c, qr/_total$/, "counter $c ends in _total");
}

like($text, qr/^tollgate_build_info\{[^}]*version="[^"]+"[^}]*\} 1$/m,
    'tollgate_build_info names the version');
like($text, qr/^tollgate_requests_total\{route="\/api\/v1\/api-keys",method="GET",status="200"\} \d+$/m,
    'requests: GET /api/v1/api-keys has its series');
like($text, qr/^tollgate_requests_total\{route="\/api\/v1\/api-keys",method="POST",status="201"\} \d+$/m,
    'requests: POST /api/v1/api-keys has its own');
like($text, qr/^tollgate_request_duration_seconds_bucket\{route="\/api\/v1\/api-keys",method="POST",le="\+Inf"\} \d+$/m,
    'latency: a histogram per route and method');
my ($unauth) = $text =~
    /^tollgate_gate_decisions_total\{decision="deny",code="unauthenticated"\} (\d+)$/m;
cmp_ok($unauth // 0, '>=', 2, 'gate denials carry their code (unauthenticated)');
like($text, qr/^tollgate_gate_decisions_total\{decision="allow",code="ok"\} \d+$/m,
    'gate allows: decision="allow", code="ok"');
unlike($text, qr/decision="40\d"/, 'no decision lumps denials by status');

done_testing;
