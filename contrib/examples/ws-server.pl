#!/usr/bin/env perl
# ws-server.pl: a WebSocket service behind tollgate's gate (the location
# is in contrib/examples/nginx.conf).  The gate has checked the upgrade
# request, so the user id header is authentic; the server greets the
# user and echoes what it is sent.  Needs Mojolicious (libmojolicious-perl).
#
#   contrib/examples/ws-server.pl daemon -l http://127.0.0.1:9001
use Mojolicious::Lite -signatures;

websocket '/examples/ws' => sub ($c) {
	my $user = $c->req->headers->header('X-Tollgate-User-Id')
	    or return $c->rendered(403);	# not through the gate
	$c->inactivity_timeout(300);
	$c->send({json => {hello => $user,
	    plan => $c->req->headers->header('X-Tollgate-Plan')}});
	$c->on(message => sub ($c, $msg) { $c->send("echo: $msg") });
};

app->log->level('warn');
app->start;
