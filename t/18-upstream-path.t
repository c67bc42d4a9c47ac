#!/usr/bin/perl
# The path the upstream acts on (contract section 7): the gate decides on
# nginx's normalised $uri, so a raw path that an upstream would route
# differently (..%2F, %2e%2e, ..;, a doubled slash, an encoded backslash)
# must either reach the upstream as the normalised path the gate decided
# on, or be refused with 400 bad_request.  Driven as an attacker would:
# raw request lines over TLS, so no client library tidies the path.
#
# Also here: every tg_* cookie (any spelling, the __Host- ones too) is cut
# before the upstream, beside the session cookie the contract names.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use IO::Socket::SSL;
use Mojo::JSON qw(decode_json);
use TG;
use TGGate;

my ($port) = base() =~ m{:(\d+)$};

# Sends one raw HTTP/1.1 request line (the path exactly as given) with
# headers; returns (status, headers text, body).
sub raw_get {
	my ($path, %h) = @_;
	my $s = IO::Socket::SSL->new(PeerAddr => '127.0.0.1', PeerPort => $port,
	    SSL_verify_mode => SSL_VERIFY_NONE, Timeout => 10)
	    or die "connect: $IO::Socket::SSL::SSL_ERROR";
	my $req = "GET $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
	    . "Connection: close\r\n";
	$req .= "$_: $h{$_}\r\n" for sort keys %h;
	print $s "$req\r\n";
	local $/;
	my $all = <$s> // '';
	close $s;
	my ($head, $body) = split /\r\n\r\n/, $all, 2;
	my ($status) = ($head // '') =~ m{^HTTP/1\.1 (\d+)};
	if (($head // '') =~ /^Transfer-Encoding:\s*chunked/mi) {
		my $out = '';
		while ($body =~ s/^([0-9a-fA-F]+)\r\n//) {
			my $n = hex $1;
			last if $n == 0;
			$out .= substr($body, 0, $n, '');
			$body =~ s/^\r\n//;
		}
		$body = $out;
	}
	return ($status // 0, $head // '', $body // '');
}

my $plan = test_plan(rate => 100000, credits => 1000000);
my $u = new_user();
on_plan($u, $plan);
my %auth = (Authorization => "Bearer $u->{token}");

# The control: the plain path reaches the upstream as itself.
my ($st, $head, $body) = raw_get('/demo/echo', %auth);
is($st, 200, 'plain /demo/echo: 200');
my $seen = eval { decode_json($body) } // {};
is($seen->{path}, '/demo/echo', 'the upstream reports the path it got');

# Each trick is normalised by nginx to /demo/echo (cost 1 on api_calls),
# while the raw request names /demo/spend (credits) or something else.
my @tricks = (
	'/demo/spend/../echo',
	'/demo/spend/..%2Fecho',
	'/demo/spend/..%2fecho',
	'/demo/spend/%2e%2e/echo',
	'/demo/spend/.%2E/echo',
	'/demo/spend%2F..%2Fecho',
	'/demo//echo',
	'/demo/./echo',
);
for my $t (@tricks) {
	my ($s, $h, $b) = raw_get($t, %auth);
	my $j = eval { decode_json($b) } // {};
	if ($s == 400) {
		is($j->{error}{code}, 'bad_request', "$t: refused, 400 bad_request");
		unlike($b, qr/"user_id"/, "$t: the upstream was not reached");
	} elsif ($s == 200) {
		is($j->{path}, '/demo/echo',
		    "$t: the upstream acts on the path the gate decided on");
	} else {
		fail("$t: status $s is neither 400 nor a normalised 200");
		diag(substr($b, 0, 200));
	}
}

# A path parameter (Tomcat and Spring strip ";...": /demo/echo;x/../spend
# is /demo/spend to them).  nginx routes on the raw segment; the upstream
# must not get a path whose meaning depends on who parses it.
for my $t ('/demo/echo;/../spend', '/demo/spend/..;/echo',
    '/demo/spend/..%3B/echo', '/demo/echo/..%5C..%5Cspend') {
	my ($s, $h, $b) = raw_get($t, %auth);
	my $j = eval { decode_json($b) } // {};
	ok($s == 400 || $s == 404 || ($s == 200 &&
	    ($j->{path} // '') !~ /;|%3B|%5C|\\/i),
	    "$t: never forwarded with its ';' or backslash (status $s)")
	    or diag(substr($b, 0, 200));
}

# The query string still reaches the upstream's path check unharmed.
($st, $head, $body) = raw_get('/demo/echo?a=1&b=%2F', %auth);
is($st, 200, 'a query with an encoded slash is no path trick: 200');

# --- tg_* cookies are cut before the upstream ---------------------------
my $cookies = join '; ', 'theme=dark', 'tg_csrf=c1', 'tg_2fa=t2',
    'tg_github=g3', 'TG_SESSION=s4', '__Host-tg_session=h5',
    '__Host-tg_csrf=h6', 'tg_session=s7', 'lang=en';
($st, $head, $body) = raw_get('/demo/echo', %auth, Cookie => $cookies);
is($st, 200, 'with many cookies: 200');
$seen = eval { decode_json($body) } // {};
unlike($seen->{cookie} // '', qr/tg_/i, 'no tg_* cookie reaches the upstream');
like($seen->{cookie} // '', qr/theme=dark/, 'other cookies pass');
like($seen->{cookie} // '', qr/lang=en/, 'the last one too');

done_testing();
