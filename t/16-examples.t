#!/usr/bin/perl
# The programs in contrib/examples/, each run against the dev stack with
# the nginx locations of contrib/examples/nginx.conf (which
# contrib/devstack includes):
#   upstream.py     a service behind the gate reading X-Tollgate-*
#   usage-event.sh  a service reporting usage with a service key
#   ws-server.pl and ws-client.pl   a WebSocket through the gate
#   spa/            a single-page app on another origin using the JSON
#                   API with CORS (server cors_origins)
# (device-login.sh has t/73-device-example.t.)

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use POSIX ();
use IO::Socket::INET;
use Mojo::JSON qw(decode_json);
use Mojo::UserAgent;
use TG qw(:DEFAULT run_with ctl);
use TGGate;
use TGChromium ();

my $root = $ENV{TG_ROOT};
my $ex = "$root/contrib/examples";
my $cert = "$ENV{TG_DEVSTACK}/etc/cert.pem";
my ($up_port, $spa_port, $ws_port) = map { $ENV{TG_PORT} + $_ } 15, 16, 17;
my $spa_origin = "http://127.0.0.1:$spa_port";

# Starts a program in the background (its own session, output to a log);
# stopped when the test ends.
my @kids;
sub spawn {
	my ($name, @cmd) = @_;
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		POSIX::setsid();
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', "$ENV{TG_DEVSTACK}/log/example-$name.log";
		open STDERR, '>&', \*STDOUT;
		exec @cmd or POSIX::_exit(127);
	}
	push @kids, $pid;
	return $pid;
}
END {
	my $st = $?;
	for (@kids) { kill 'TERM', $_; waitpid $_, 0 }
	$? = $st;
}
sub listening {
	my ($port) = @_;
	return wait_for(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
	    Timeout => 1) }, 15);
}


my $u = new_user();
my $db = gdb();
sub used {
	my ($meter) = @_;
	my $r = req(GET => '/api/v1/usage', bearer($u->{key}));
	return $r->json && $r->json->{meters}{$meter}{used};
}

# --- upstream.py: a service behind the gate ---------------------------

spawn('upstream', 'python3', "$ex/upstream.py", $up_port);
ok(listening($up_port), 'upstream.py listens');

my $res = req(GET => '/examples/hello', { %{ bearer($u->{key}) },
    'X-Tollgate-User-Id' => 'someone-else' });
is($res->code, 200, 'upstream.py through the gate: 200');
my $j = $res->json // {};
is($j->{hello}, $u->{id}, 'it is handed the caller\'s id, not the client\'s copy');
is($j->{plan}, 'trial', 'and the plan');
like($j->{credits_remaining} // '', qr/^\d+$/, 'and the credits left');
$res = req(GET => '/examples/hello');
error_ok($res, 401, 'unauthenticated', 'without a credential the gate answers');
my $direct = Mojo::UserAgent->new->get("http://127.0.0.1:$up_port/examples/hello")->res;
is($direct->code, 403, 'upstream.py refuses a request that did not come through the gate');

is(used('compute_minutes'), 0, 'no compute minutes yet');
$res = req(GET => '/examples/render', bearer($u->{key}));
is($res->code, 200, '/examples/render: 200');
is(used('compute_minutes'), 5, '/examples/render counts 5 compute minutes');

# --- usage-event.sh: a service reports usage --------------------------

my $name = "examples_$$";
my ($rc, $out) = ctl('service-key', 'create', $name);
my ($skey) = $out =~ /(tgs_\S+)\s*\z/;
ok($skey, 'a service key') or diag($out);
END {
	$db->do('DELETE FROM usage_events WHERE service_key_id IN (SELECT id FROM '
	    . 'service_keys WHERE name = ?)', undef, $name) if $db;
	$db->do('DELETE FROM service_keys WHERE name = ?', undef, $name) if $db;
}
my %env = (TOLLGATE_URL => base(), TOLLGATE_SERVICE_KEY => $skey // '',
    CURL_CA_BUNDLE => $cert);
($rc, $out) = run_with(\%env, "$ex/usage-event.sh", $u->{id}, 'compute_minutes',
    7, "render-$$");
is($rc, 0, 'usage-event.sh: exit 0') or diag($out);
like($out, qr/^recorded 7 compute_minutes for \Q$u->{id}\E/m, 'usage-event.sh says so');
($rc, $out) = run_with(\%env, "$ex/usage-event.sh", $u->{id}, 'compute_minutes',
    7, "render-$$");
is($rc, 0, 'the same report again: exit 0');
is(used('compute_minutes'), 12, 'counted once: 5 + 7');
($rc, $out) = run_with({ %env, TOLLGATE_SERVICE_KEY => 'tgs_not_a_key' },
    "$ex/usage-event.sh", $u->{id}, 'compute_minutes', 1);
isnt($rc, 0, 'a bad service key: usage-event.sh fails');
like($out, qr/answered 401/, 'and says tollgate answered 401');

# --- ws-server.pl and ws-client.pl: a WebSocket through the gate -------

spawn('ws', 'perl', "$ex/ws-server.pl", 'daemon', '-l', "http://127.0.0.1:$ws_port");
ok(listening($ws_port), 'ws-server.pl listens');
my $wss = "wss://127.0.0.1:$ENV{TG_PORT}/examples/ws";
($rc, $out) = run_with({ TOLLGATE_KEY => $u->{key}, CA_FILE => $cert },
    'perl', "$ex/ws-client.pl", $wss, 'hi there');
is($rc, 0, 'ws-client.pl: exit 0') or diag($out);
my ($greet, $echo) = split /\n/, $out;
is(eval { decode_json($greet // '')->{hello} }, $u->{id},
    'the WebSocket server greets the caller by id');
is($echo, 'echo: hi there', 'and echoes');
($rc, $out) = run_with({ TOLLGATE_KEY => 'tgk_not_a_key', CA_FILE => $cert },
    'perl', "$ex/ws-client.pl", $wss);
is($rc, 1, 'ws-client.pl with a bad key: exit 1');
like($out, qr/^refused: 401 .*unauthenticated/, 'the gate refused the upgrade with 401');

# --- spa/: a page on another origin ------------------------------------

spawn('spa', 'python3', '-m', 'http.server', '--bind', '127.0.0.1', $spa_port,
    '-d', "$ex/spa");
ok(listening($spa_port), 'the page is served on its own origin');
my $page = Mojo::UserAgent->new->get("$spa_origin/index.html")->res;
like($page->body // '', qr{<script type="module" src="app.js">}, 'index.html loads app.js');
is(conf_get('server', 'cors_origins'), $spa_origin,
    'the dev stack lists the page\'s origin in cors_origins');

# The browser's preflights.
$res = req(OPTIONS => '/api/v1/auth/login', { Origin => $spa_origin,
    'Access-Control-Request-Method' => 'POST',
    'Access-Control-Request-Headers' => 'content-type' });
is($res->code, 204, 'preflight of login: 204');
is($res->headers->header('Access-Control-Allow-Origin'), $spa_origin,
    'preflight: the origin is allowed');
like($res->headers->header('Access-Control-Allow-Methods') // '', qr/\bPOST\b/,
    'preflight: POST allowed');
like($res->headers->header('Access-Control-Allow-Headers') // '', qr/\bContent-Type\b/i,
    'preflight: Content-Type allowed');
$res = req(OPTIONS => '/api/v1/me', { Origin => $spa_origin,
    'Access-Control-Request-Method' => 'GET',
    'Access-Control-Request-Headers' => 'authorization' });
like($res->headers->header('Access-Control-Allow-Headers') // '', qr/\bAuthorization\b/i,
    'preflight of /me: Authorization allowed');
$res = req(OPTIONS => '/api/v1/me', { Origin => 'http://evil.example',
    'Access-Control-Request-Method' => 'GET' });
ok(!defined $res->headers->header('Access-Control-Allow-Origin'),
    'another origin gets no CORS headers');

# The page's client, run in Node as the page would run it.
($rc, $out) = run_with({ NODE_EXTRA_CA_CERTS => $cert, TG_ROOT => $root },
    'node', "$root/t/examples/spa-node.mjs", base(), $spa_origin, $u->{email},
    'correct horse battery');
my $spa = eval { decode_json((split /\n/, $out)[-1] // '') } // {};
is($rc, 0, 'the page\'s client runs') or diag($out);
is($spa->{error}, undef, 'without an error');
is($spa->{user} && $spa->{user}{id}, $u->{id}, 'it logs in');
like($spa->{credits} // '', qr/^\d+$/, 'reads the credits from /me');
is($spa->{meters} && $spa->{meters}{compute_minutes}{used}, 12, 'reads the usage');
like($spa->{new_key} // '', qr/^tgk_/, 'makes a key');
is($spa->{keys_added}, 1, 'and lists it');
is($spa->{after_logout}, 'unauthenticated', 'logs out');
my @bad = grep { ($_->{acao} // '') ne $spa_origin } @{ $spa->{seen} // [] };
ok(@{ $spa->{seen} // [] } >= 7 && !@bad,
    'every answer allowed the page\'s origin') or diag(explain(\@bad));

# The page itself in a real browser (Chromium enforces CORS): from its
# origin it logs in, reads the account and makes a key; served from an
# origin that cors_origins does not list, the browser blocks the calls.
SKIP: {
	skip("the browser part: $TGChromium::why", 9) unless TGChromium::start();
	my $b = new_user();
	my $page = "$spa_origin/index.html?tollgate=" . base();
	ok(TGChromium::navigate($page), 'the page loads in Chromium');
	ok(TGChromium::wait_js('document.body.dataset.ready === "1"'), 'its script runs');
	TGChromium::type_into('#email', $b->{email});
	TGChromium::type_into('#password', 'correct horse battery');
	TGChromium::js('document.querySelector("#login button").click()');
	ok(TGChromium::wait_js('!document.getElementById("account").hidden'),
	    'logged in from another origin') or diag(TGChromium::js(
	    'document.getElementById("error").textContent'));
	is(TGChromium::js('document.getElementById("who").textContent'),
	    "$b->{email} (trial)", 'the page shows the account');
	like(TGChromium::js('document.getElementById("meters").textContent'),
	    qr/api_calls: 0 of \d+/, 'and its usage');
	TGChromium::js('document.getElementById("newkey").click()');
	ok(TGChromium::wait_js('document.getElementById("shown-key").textContent.includes("tgk_")'),
	    'a new key, shown once');
	TGChromium::shot('spa-signed-in');

	my $other = $ENV{TG_PORT} + 18;
	spawn('spa-other', 'python3', '-m', 'http.server', '--bind', '127.0.0.1',
	    $other, '-d', "$ex/spa");
	ok(listening($other), 'the same page on an origin not listed');
	TGChromium::navigate("http://127.0.0.1:$other/index.html?tollgate=" . base());
	TGChromium::wait_js('document.body.dataset.ready === "1"');
	TGChromium::type_into('#email', $b->{email});
	TGChromium::type_into('#password', 'correct horse battery');
	TGChromium::js('document.querySelector("#login button").click()');
	ok(TGChromium::wait_js('document.getElementById("error").textContent.length > 0'),
	    'there the browser refuses the answer (no CORS headers)');
	ok(TGChromium::js('document.getElementById("account").hidden'),
	    'and nobody is signed in');
	TGChromium::shot('spa-other-origin');
}

done_testing();
