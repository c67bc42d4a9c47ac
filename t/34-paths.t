#!/usr/bin/perl
# The gate decides on nginx's normalised URI: dot segments, encoded dots,
# doubled slashes, overlong and malformed request lines never reach a
# protected upstream without a check.  And with the database down the
# gate fails closed: 503 with Retry-After.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use IO::Socket::SSL;
use TG;

# Sends a raw HTTP/1.1 request line (and headers) over TLS; returns the
# status code and the whole answer.
sub raw {
	my ($line, @headers) = @_;
	my $s = IO::Socket::SSL->new(PeerHost => '127.0.0.1', PeerPort => $ENV{TG_PORT},
	    SSL_verify_mode => SSL_VERIFY_NONE, Timeout => 10) or return (0, '');
	print $s join("\r\n", $line, 'Host: 127.0.0.1', @headers, 'Connection: close', '', '');
	local $/;
	my $answer = <$s> // '';
	close $s;
	my ($code) = $answer =~ m{^HTTP/1\.[01] (\d{3})};
	return ($code // 0, $answer);
}

# None of these may reach the demo upstream without a credential.
my @tricks = (
	'/demo/echo',
	'/demo/./echo',
	'/demo/x/../echo',
	'//demo//echo',
	'/demo/%2e/echo',
	'/demo/x/%2e%2e/echo',
	'/demo/x/%2E%2E/echo',
	'/demo/ech%6f',
	'/%64emo/echo',
	'/demo/echo/',
	'/demo/echo%2f',
	'/demo/echo;a=b',
	'/demo/echo?x=../../admin',
	'/demo/echo#frag',
	'/demo/../demo/echo',
	'/demo/../admin',
	'/demo/%2e%2e/admin',
	'/demo/%2e%2e/_tollgate/check',
	'/_tollgate/check',
	'/_tollgate//check',
	'/demo/%2e%2e/%2e%2e/etc/passwd',
	'/demo/..%2fadmin',
	'/demo/%252e%252e/echo',
	'/demo/echo%00',
	'/demo/echo%20',
	'/demo/ws/../echo',
);
for my $path (@tricks) {
	my ($code, $answer) = raw("GET $path HTTP/1.1");
	# A path that normalises to a page (/admin) may send the browser to
	# /login instead: it is refused all the same.
	ok($code >= 400 || ($code == 303 &&
	    $answer =~ m{^Location: \S+/login\?}mi), "$path: refused ($code)");
	unlike($answer, qr/"user_id"/, "$path: the upstream is not reached");
}
# The normalised path that is a protected location is gated, not bypassed.
for my $path ('/demo/x/../echo', '//demo//echo', '/demo/%2e/echo', '/demo/ech%6f') {
	my ($code, $answer) = raw("GET $path HTTP/1.1");
	is($code, 401, "$path: the gate answered (401)");
	like($answer, qr/"unauthenticated"/, "$path: with the contract's body");
}

# Overlong and malformed request lines.
my ($code, $answer) = raw('GET /demo/echo?' . ('a' x 20000) . ' HTTP/1.1');
ok($code == 414 || $code == 400, "overlong request line: $code");
unlike($answer, qr/"user_id"/, 'overlong: the upstream is not reached');
($code, $answer) = raw('GET /demo/' . ('a/' x 5000) . '../echo HTTP/1.1');
ok($code >= 400, "long path with dot segments: $code");
unlike($answer, qr/"user_id"/, 'long path: the upstream is not reached');
for my $line ('GET demo/echo HTTP/1.1', 'GET /demo/echo HTTP/9.9',
    "GET /demo/\x01echo HTTP/1.1", 'GET  /demo/echo  HTTP/1.1 extra',
    'GET /demo/echo HTTP/1.1 junk', "GET /demo/echo\tHTTP/1.1", 'GET /../demo/echo HTTP/1.1',
    'GET http://127.0.0.1/demo/echo HTTP/1.1', 'GET /demo/echo') {
	($code, $answer) = raw($line);
	(my $name = $line) =~ s/[^\x20-\x7e]/?/g;
	ok($code != 200, "malformed '$name': not 200 ($code)");
	unlike($answer, qr/"user_id"/, "malformed '$name': the upstream is not reached");
}
# A huge header does not slip past either.
($code, $answer) = raw('GET /demo/echo HTTP/1.1', 'X-Big: ' . ('b' x 70000));
ok($code >= 400, "huge header: $code");
unlike($answer, qr/"user_id"/, 'huge header: the upstream is not reached');

# The database down: the gate fails closed with 503 and Retry-After.
my $email = sprintf 'paths34.%d.%06d@example.com', $$, int rand 1e6;
my $res = json_post('/api/v1/auth/signup', { email => $email,
    password => 'correct horse battery', name => 'P' });
is($res->code, 201, 'signup');
my $token = eval { $res->json->{tokens}{access_token} } // '';
my $uid = eval { $res->json->{user}{id} };
END { dbh()->do('DELETE FROM users WHERE id = ?', undef, $uid) if $uid }
my $stopped = 0;
END { devstack('db-start') if $stopped }
ok(devstack('db-stop'), 'devstack db-stop');
$stopped = 1;
my $all503 = 1;
for (1 .. 10) {
	my $r = req(GET => '/demo/echo', { Authorization => "Bearer $token" });
	$all503 = 0 unless ($r->code // 0) == 503;
	$res = $r;
}
ok($all503, 'every gate check answers 503 while the database is down');
error_ok($res, 503, 'unavailable', 'gate without database');
like($res->headers->header('Retry-After') // '', qr/^\d+$/, '503: Retry-After');
like($res->headers->header('X-RateLimit-Limit') // '', qr/^\d+$/, '503: X-RateLimit-Limit');
unlike($res->body, qr/"user_id"/, '503: the upstream is not reached');
ok(devstack('db-start'), 'devstack db-start');
$stopped = 0;
ok(wait_for(sub { (req(GET => '/healthz')->code // 0) == 200 }, 30), 'database back');

done_testing;
