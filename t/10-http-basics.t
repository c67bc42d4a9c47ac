#!/usr/bin/perl
# HTTP basics through nginx: /healthz, security headers, the error bodies
# of 404, 405, 400, 413 and 415, /metrics, and an access log without
# query strings or credentials.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Time::HiRes qw(sleep);
use TG;

# /healthz and the headers every answer of the application carries.
my $res = req(GET => '/healthz');
is($res->code, 200, 'healthz: 200');
like($res->headers->content_type // '', qr{^application/json}, 'healthz: JSON');
is_deeply(eval { $res->json }, { status => 'ok' }, 'healthz: {"status": "ok"}');
my $h = $res->headers;
is($h->header('X-Content-Type-Options'), 'nosniff', 'X-Content-Type-Options: nosniff');
is($h->header('Referrer-Policy'), 'no-referrer', 'Referrer-Policy: no-referrer');
like($h->header('Content-Security-Policy') // '', qr/frame-ancestors/,
    'Content-Security-Policy with frame-ancestors');
like($h->header('Strict-Transport-Security') // '', qr/max-age=\d+/,
    'Strict-Transport-Security');
is(scalar @{ $h->every_header('Strict-Transport-Security') }, 1,
    'one Strict-Transport-Security header');

# Routing errors.
error_ok(req(GET => '/api/v1/nope'), 404, 'not_found', 'unknown path');

$res = req(DELETE => '/healthz');
error_ok($res, 405, 'method_not_allowed', 'DELETE /healthz');
like($res->headers->header('Allow') // '', qr/\bGET\b/, 'Allow names GET');

# Bodies.
error_ok(req(POST => '/api/v1/auth/login',
    { 'Content-Type' => 'application/json' }, '{bad'),
    400, 'bad_request', 'malformed JSON');

error_ok(req(POST => '/api/v1/auth/login',
    { 'Content-Type' => 'text/plain' }, 'email=a@example.com'),
    415, 'unsupported_media_type', 'text/plain body');

$res = req(POST => '/api/v1/auth/login',
    { 'Content-Type' => 'application/json' }, 'x' x (2 * 1024 * 1024));
error_ok($res, 413, 'payload_too_large', '2 MB body (nginx)');
is($res->headers->header('X-Content-Type-Options'), 'nosniff', '413 from nginx: nosniff');
is($res->headers->header('Referrer-Policy'), 'no-referrer', '413 from nginx: no-referrer');
like($res->headers->header('Strict-Transport-Security') // '', qr/max-age=/,
    '413 from nginx: HSTS');

my $big = '{"email": "' . ('a' x (100 * 1024)) . '@example.com", "password": "x"}';
error_ok(req(POST => '/api/v1/auth/login',
    { 'Content-Type' => 'application/json' }, $big),
    413, 'payload_too_large', '100 KB JSON body (tollgate)');

# Metrics: requests by route and status, the latency histogram, counters
# summed over all workers.
sub healthz_count {
	my ($text) = @_;
	my $n = 0;
	for my $line (split /\n/, $text) {
		next unless $line =~ /^tollgate_requests_total\{([^}]*)\}\s+([0-9.e+]+)\s*$/;
		my ($labels, $v) = ($1, $2);
		$n += $v if $labels =~ /\broute="\/healthz"/ && $labels =~ /\bstatus="200"/;
	}
	return $n;
}

$res = req(GET => '/metrics');
is($res->code, 200, 'metrics: 200');
like($res->headers->content_type // '', qr{^text/plain}, 'metrics: text/plain');
my $text = $res->body // '';
like($text, qr/^tollgate_requests_total\{[^}]*route="\/healthz"[^}]*\}/m,
    'metrics: requests_total for /healthz');
like($text, qr/^tollgate_requests_total\{[^}]*status="200"[^}]*\}/m,
    'metrics: requests_total with status 200');
like($text, qr/^tollgate_request_duration_seconds_bucket\{/m,
    'metrics: latency histogram');
like($text, qr/^tollgate_queue_depth\{queue="mail",state="pending"\} \d+$/m,
    'metrics: the mail queue depth');
like($text, qr/^tollgate_queue_depth\{queue="meter_events",state="pending"\} \d+$/m,
    'metrics: the meter-event queue depth');
like($text, qr/^tollgate_gate_decisions_total\{decision="allow",code="ok"\} \d+$/m,
    'metrics: gate decisions');
like($text, qr/^tollgate_credit_spends_total\{result="ok"\} \d+$/m,
    'metrics: credit spends');
my $before = healthz_count($text);
ok($before >= 1, "metrics: /healthz 200 counted ($before)");

my $fine = 0;
for (1 .. 20) {
	$fine++ if (req(GET => '/healthz')->code // 0) == 200;
}
is($fine, 20, '20 more healthz requests answered 200');
my $after = healthz_count(req(GET => '/metrics')->body // '');
cmp_ok($after - $before, '>=', 20,
    "metrics: healthz counter grew by at least 20 ($before -> $after)");

# The access log records neither query strings nor credentials.  The
# query value is not hex: request ids are, and the log outlives a run.
my $log = "$ENV{TG_DEVSTACK}/log/access.log";
my $mark = 'marker' . int(rand(1e9));
req(GET => "/healthz?secret=qsecret-xyz&$mark=1",
    { Authorization => 'Bearer cred-in-header-5e6f7a',
      Cookie => 'tg_session=cred-in-cookie-8b9c0d',
      'User-Agent' => "tg-test-ua-$mark" });
my $line = wait_for(sub {
	open my $fh, '<', $log or return 0;
	my @mine = grep { /tg-test-ua-\Q$mark\E/ } <$fh>;
	return $mine[0] // 0;
}, 5);
ok($line, 'access log has the request (found by its User-Agent)');
$line ||= '';
like($line, qr{"GET /healthz HTTP/[^"]*" 200 }, 'access log: method, path, status');
unlike($line, qr/qsecret-xyz/, 'access log: no query string value');
unlike($line, qr/\?secret=|&\Q$mark\E/, 'access log: no query string');
unlike($line, qr/cred-in-header/, 'access log: no Authorization');
unlike($line, qr/cred-in-cookie/, 'access log: no cookie');
open my $fh, '<', $log or die "$log: $!";
my $all = do { local $/; <$fh> };
unlike($all, qr/qsecret-xyz/, 'access log: the query value nowhere in the file');

done_testing;
