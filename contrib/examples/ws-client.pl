#!/usr/bin/env perl
# ws-client.pl: opens a WebSocket through tollgate's gate with an API key
# (or an access token), prints the server's greeting, sends a line and
# prints the answer.  Needs Mojolicious (libmojolicious-perl).
#
#   TOLLGATE_KEY=tgk_... contrib/examples/ws-client.pl [URL] [MESSAGE]
#
# URL defaults to wss://127.0.0.1:8443/examples/ws.  A refusal by the gate
# (401, 402, 403, 429) comes back as the HTTP answer to the upgrade, with
# tollgate's JSON error body; it is printed and the exit status is 1.
# CA_FILE names a CA for a self-signed certificate (the dev stack's is
# .devstack/etc/cert.pem).
use strict;
use warnings;
use Mojo::UserAgent;

my $url = shift // 'wss://127.0.0.1:8443/examples/ws';
my $say = shift // 'hello';
my $key = $ENV{TOLLGATE_KEY} or die "TOLLGATE_KEY is not set\n";
my $ua = Mojo::UserAgent->new;
$ua->ca($ENV{CA_FILE}) if $ENV{CA_FILE};
my $rc = 1;

$ua->websocket($url => {Authorization => "Bearer $key"} => sub {
	my ($ua, $tx) = @_;
	unless ($tx->is_websocket) {
		printf "refused: %s %s\n", $tx->res->code // 'no answer',
		    $tx->res->body;
		Mojo::IOLoop->stop;
		return;
	}
	my $n = 0;
	$tx->on(message => sub {
		my ($tx, $msg) = @_;
		print "$msg\n";
		if (++$n == 1) {
			$tx->send($say);
		} else {
			$rc = 0;
			$tx->finish;
		}
	});
	$tx->on(finish => sub { Mojo::IOLoop->stop });
});
Mojo::IOLoop->timer(10 => sub { print "timed out\n"; Mojo::IOLoop->stop });
Mojo::IOLoop->start;
exit $rc;
