#!/usr/bin/perl
# The gate (contract section 7) through nginx: /demo/echo, /demo/spend and
# /demo/compute behind the shipped snippet.  Every status the gate can
# answer, the headers the client and the upstream see, the order of the
# checks, credential attacks, forged headers, cookies, WebSocket.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::JSON qw(encode_json);
use MIME::Base64 qw(encode_base64url);
use Digest::SHA qw(hmac_sha256);
use TG;
use TGGate;

my $db = gdb();

# The contract's denial: status, JSON body, and the rate headers.
sub denied_ok {
	my ($res, $status, $code, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	error_ok($res, $status, $code, $name);
	for my $h (qw(X-RateLimit-Limit X-RateLimit-Remaining X-RateLimit-Reset)) {
		like($res->headers->header($h) // '', qr/^\d+$/, "$name: $h");
	}
	unlike($res->body, qr/"user_id"/, "$name: the upstream was not reached");
}

# --- No credential, bad credentials -----------------------------------

my $res = req(GET => '/demo/echo');
denied_ok($res, 401, 'unauthenticated', 'no credential');
is($res->headers->www_authenticate, 'Bearer', 'no credential: WWW-Authenticate');

$res = req(GET => '/demo/echo', { Authorization => 'Basic Zm9vOmJhcg==' });
denied_ok($res, 401, 'unauthenticated', 'Basic credentials');

$res = req(GET => '/demo/echo', bearer('tgk_' . 'A' x 43));
denied_ok($res, 401, 'unauthenticated', 'unknown API key');

$res = req(GET => '/demo/echo?access_token=x&api_key=tgk_x');
denied_ok($res, 401, 'unauthenticated', 'credentials in the query string');

my $u = new_user();

# JWT attacks.
my $secret = conf_get('jwt', 'secret');
my $kid = `python3 -c 'import hashlib,sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=8).hexdigest())' '$secret'`;
chomp $kid;
my ($h64, $p64) = split /\./, $u->{token};
sub jwt_with {
	my ($header, $claims, $key) = @_;
	my $hp = encode_base64url(encode_json($header)) . '.'
	    . encode_base64url(encode_json($claims));
	return "$hp." . (defined $key ? encode_base64url(hmac_sha256($hp, $key)) : '');
}
my $sid = $db->selectrow_array('SELECT id FROM sessions WHERE user_id = ?',
    undef, $u->{id});
my %claims = (sub => $u->{id}, sid => $sid, typ => 'access', iat => time,
    exp => time + 600);
my $good = jwt_with({ alg => 'HS256', typ => 'JWT', kid => $kid }, \%claims,
    $secret);
$res = req(GET => '/demo/echo', bearer($good));
is($res->code, 200, 'a JWT made with the right key passes (the harness is right)');

denied_ok(req(GET => '/demo/echo', bearer(jwt_with({ alg => 'none', kid => $kid },
    \%claims))), 401, 'unauthenticated', 'JWT alg none');
denied_ok(req(GET => '/demo/echo', bearer(jwt_with({ alg => 'HS256', kid => $kid },
    \%claims, 'x' x 40))), 401, 'unauthenticated', 'JWT wrong signature');
denied_ok(req(GET => '/demo/echo', bearer(jwt_with({ alg => 'HS256', kid => $kid },
    { %claims, sub => new_user()->{id} }, 'x' x 40))), 401, 'unauthenticated',
    'JWT for another user, wrong key');
denied_ok(req(GET => '/demo/echo', bearer(jwt_with({ alg => 'HS256', kid => $kid },
    { %claims, iat => time - 1000, exp => time - 100 }, $secret))), 401,
    'token_expired', 'JWT expired');
denied_ok(req(GET => '/demo/echo', bearer(jwt_with({ alg => 'HS256', kid => $kid },
    { %claims, typ => 'refresh' }, $secret))), 401, 'unauthenticated',
    'JWT of another type');
denied_ok(req(GET => '/demo/echo', bearer(jwt_with({ alg => 'HS256', kid => $kid },
    { %claims, sid => 'AAAAAAAAAAAAAAAAAAAAAA' }, $secret))), 401,
    'unauthenticated', 'JWT naming a session that does not exist');
denied_ok(req(GET => '/demo/echo', bearer($u->{refresh})), 401, 'unauthenticated',
    'refresh token as an access token');
denied_ok(req(GET => '/demo/echo', bearer("$h64.$p64.")), 401, 'unauthenticated',
    'JWT without a signature');

# --- Allowed: what the client and the upstream see --------------------

$res = req(GET => '/demo/echo', {
	Authorization => "Bearer $u->{token}",
	'X-Tollgate-User-Id' => 'forged-user',
	'X-Tollgate-Plan' => 'team',
	'X-Tollgate-Credits-Remaining' => '999999',
	Cookie => 'theme=dark; tg_session=abcdef; lang=en',
});
is($res->code, 200, 'allowed: 200 from the upstream');
my $seen = $res->json // {};
is($seen->{user_id}, $u->{id}, 'upstream sees tollgate\'s user id, not the forged one');
is($seen->{plan}, 'trial', 'upstream sees the plan');
is($seen->{credits_remaining}, '10', 'upstream sees the credits left');
is($seen->{authorization}, undef, 'the client\'s Authorization is not passed on');
is($seen->{cookie}, 'theme=dark; lang=en', 'the session cookie is cut out, others pass');
is($res->headers->header('X-RateLimit-Limit'), 10, 'allowed: X-RateLimit-Limit');
like($res->headers->header('X-RateLimit-Remaining') // '', qr/^\d+$/,
    'allowed: X-RateLimit-Remaining');
like($res->headers->header('X-RateLimit-Reset') // '', qr/^\d+$/,
    'allowed: X-RateLimit-Reset');
ok(!defined $res->headers->header('X-Tollgate-Status'), 'no gate internals leak');

$res = req(GET => '/demo/echo', { Authorization => "Bearer $u->{key}",
    Cookie => 'tg_session=abc' });
is($res->code, 200, 'an API key passes the gate');
is(($res->json // {})->{user_id}, $u->{id}, 'API key: its owner\'s id');
is(($res->json // {})->{cookie}, undef, 'only the session cookie: no Cookie upstream');

$res = req(GET => '/demo/keep', { Authorization => "Bearer $u->{key}",
    Cookie => 'tg_session=abc; x=1' });
is(($res->json // {})->{authorization}, "Bearer $u->{key}",
    'a location that keeps credentials passes Authorization');
is(($res->json // {})->{cookie}, 'tg_session=abc; x=1',
    'a location that keeps credentials passes the cookie');

$res = req(HEAD => '/demo/echo', bearer($u->{token}));
is($res->code, 200, 'HEAD is gated and allowed');
$res = req(POST => '/demo/echo', { %{ bearer($u->{token}) },
    'Content-Type' => 'application/json' }, '{"a":1}');
is($res->code, 200, 'POST with a body is gated and allowed');

# --- Credits, quotas, the order of the checks -------------------------

my $c = new_user();
$res = req(GET => '/demo/compute', bearer($c->{token}));
is($res->code, 200, 'compute: allowed');
my ($used) = $db->selectrow_array(q{SELECT used FROM usage_counters
    WHERE user_id = ? AND meter = 'compute_minutes'}, undef, $c->{id});
is($used, 5, 'compute costs 5 compute minutes');
is(($res->json // {})->{credits_remaining}, '10', 'compute leaves credits alone');

my $p = test_plan(rate => 100, credits => 2,
    limits => { compute_minutes => 7, credits => 2 });
on_plan($c, $p);
$res = req(GET => '/demo/compute', bearer($c->{token}));
is($res->code, 200, 'compute 5 of 7 on the test plan');
$res = req(GET => '/demo/compute', bearer($c->{token}));
denied_ok($res, 403, 'quota_exceeded', 'compute past the limit');
like(eval { $res->json->{error}{message} } // '', qr/^Compute quota exceeded/,
    'the message names the meter');

$res = req(GET => '/demo/spend', bearer($c->{token}));
is($res->code, 200, 'spend 1 of the plan\'s 2');
is(($res->json // {})->{credits_remaining}, '1', 'one left');
$res = req(GET => '/demo/spend', bearer($c->{token}));
is($res->code, 200, 'spend the last');
$res = req(GET => '/demo/spend', bearer($c->{token}));
denied_ok($res, 403, 'quota_exceeded', 'credits out on a plan');
is(eval { $res->json->{error}{meter} }, 'credits', 'the meter is credits');
my ($bal) = $db->selectrow_array(q{SELECT allowance + granted FROM credit_balances
    WHERE user_id = ?}, undef, $c->{id});
is($bal, 0, 'the balance is 0, never below');
my ($refusals) = $db->selectrow_array(q{SELECT COUNT(*) FROM credit_ledger
    WHERE user_id = ? AND kind = 'refusal'}, undef, $c->{id});
is($refusals, 1, 'the refusal is in the ledger');
my ($lapse) = $db->selectrow_array(q{SELECT COUNT(*) FROM credit_ledger
    WHERE user_id = ? AND kind = 'lapse' AND delta = -10}, undef, $c->{id});
is($lapse, 1, 'the trial\'s credits lapsed when the plan changed');

# Admin-granted credits are spent after the allowance and never lapse.
$db->do('UPDATE credit_balances SET granted = 1 WHERE user_id = ?', undef, $c->{id});
$res = req(GET => '/demo/spend', bearer($c->{token}));
is($res->code, 200, 'a granted credit is spent');
denied_ok(req(GET => '/demo/spend', bearer($c->{token})), 403, 'quota_exceeded',
    'then out again');

# The trial's own message.
my $t = new_user();
$db->do(q{UPDATE credit_balances SET allowance = 1 WHERE user_id = ?}, undef, $t->{id});
is(req(GET => '/demo/spend', bearer($t->{key}))->code, 200, 'trial: last credit');
$res = req(GET => '/demo/spend', bearer($t->{key}));
denied_ok($res, 403, 'trial_credits_exhausted', 'trial out of credits');
is(eval { $res->json->{error}{message} },
    'Trial credits exhausted. Please upgrade to continue.', 'trial: the exact message');
is(req(GET => '/demo/echo', bearer($t->{key}))->code, 200,
    'api_calls still pass without credits');

# Unverified: 403 email_not_verified, before the plan and credits.
my $nv = new_user(unverified => 1);
denied_ok(req(GET => '/demo/echo', bearer($nv->{token})), 403, 'email_not_verified',
    'unverified email');

# Trial over and no fallback plan: 402.
my $over = new_user();
$db->do(q{UPDATE users SET trial_ends_at = UTC_TIMESTAMP(6) - INTERVAL 1 DAY
    WHERE id = ?}, undef, $over->{id});
$res = req(GET => '/demo/echo', bearer($over->{token}));
SKIP: {
	skip 'a fallback plan is configured', 6 if conf_get('trial', 'fallback_plan');
	denied_ok($res, 402, 'subscription_required', 'trial over, no plan');
}

# Rate limit: 429 with Retry-After; only allowed checks count.
my $r = new_user();
my $rp = test_plan(rate => 3, limits => { compute_minutes => 0 });
on_plan($r, $rp);
denied_ok(req(GET => '/demo/compute', bearer($r->{token})), 403, 'quota_exceeded',
    'a denied check');
my @codes = map { req(GET => '/demo/echo', bearer($r->{token}))->code } 1 .. 3;
is("@codes", '200 200 200', 'three allowed: the denial did not count');
$res = req(GET => '/demo/echo', bearer($r->{token}));
denied_ok($res, 429, 'rate_limited', 'the fourth');
like($res->headers->header('Retry-After') // '', qr/^[1-9]\d*$/, '429: Retry-After');
is($res->headers->header('X-RateLimit-Remaining'), 0, '429: nothing remaining');
cmp_ok($res->headers->header('X-RateLimit-Reset') // 99, '<=', 60, '429: reset within 60 s');
# The order: rate limit before email verification and quotas.
$db->do('UPDATE users SET email_verified_at = NULL WHERE id = ?', undef, $r->{id});
denied_ok(req(GET => '/demo/compute', bearer($r->{token})), 429, 'rate_limited',
    'rate limit comes before email verification');
# Disabled comes before the rate limit.
$db->do('UPDATE users SET disabled_at = UTC_TIMESTAMP(6) WHERE id = ?', undef, $r->{id});
denied_ok(req(GET => '/demo/echo', bearer($r->{token})), 403, 'account_disabled',
    'disabled account (JWT)');
denied_ok(req(GET => '/demo/echo', bearer($r->{key})), 403, 'account_disabled',
    'disabled account (API key)');

# A window that ran out starts again at the next counted check.
$db->do(q{UPDATE users SET disabled_at = NULL, email_verified_at = UTC_TIMESTAMP(6)
    WHERE id = ?}, undef, $r->{id});
$db->do(q{UPDATE rate_windows SET window_start = window_start - INTERVAL 61 SECOND
    WHERE user_id = ? AND bucket = 'gate'}, undef, $r->{id});
$res = req(GET => '/demo/echo', bearer($r->{token}));
is($res->code, 200, 'a new window after 60 s');
is($res->headers->header('X-RateLimit-Remaining'), 2, 'the new window counts from 1');

# --- Keys and sessions that stop at once ------------------------------

my $k = new_user();
is(req(GET => '/demo/echo', bearer($k->{key}))->code, 200, 'key works');
$res = req(POST => "/api/v1/api-keys/$k->{key_id}/regenerate", bearer($k->{token}));
is($res->code, 200, 'regenerate');
my $newkey = eval { $res->json->{key} } // '';
denied_ok(req(GET => '/demo/echo', bearer($k->{key})), 401, 'unauthenticated',
    'the regenerated key\'s old value');
is(req(GET => '/demo/echo', bearer($newkey))->code, 200, 'the new value works');
$db->do(q{UPDATE api_keys SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND
    WHERE id = ?}, undef, $k->{key_id});
denied_ok(req(GET => '/demo/echo', bearer($newkey)), 401, 'token_expired', 'expired key');
is(req(DELETE => "/api/v1/api-keys/$k->{key_id}", bearer($k->{token}))->code, 204,
    'delete the key');
denied_ok(req(GET => '/demo/echo', bearer($newkey)), 401, 'unauthenticated', 'deleted key');

is(json_post('/api/v1/auth/logout', {}, bearer($k->{token}))->code, 204, 'logout');
denied_ok(req(GET => '/demo/echo', bearer($k->{token})), 401, 'unauthenticated',
    'access token of a revoked session');

my $gone = new_user();
$db->do('DELETE FROM users WHERE id = ?', undef, $gone->{id});
denied_ok(req(GET => '/demo/echo', bearer($gone->{token})), 401, 'unauthenticated',
    'deleted account (JWT)');
denied_ok(req(GET => '/demo/echo', bearer($gone->{key})), 401, 'unauthenticated',
    'deleted account (API key)');

# --- Session cookies: same origin only --------------------------------

my $ck = new_user();
my $cookie = 'ck' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 40);
my $ckey = conf_get('crypto', 'key');
my $chash = `python3 -c 'import hashlib,sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=32, key=bytes.fromhex(sys.argv[2])).hexdigest())' '$cookie' '$ckey'`;
chomp $chash;
$db->do(q{INSERT INTO sessions (id, user_id, kind, cookie_hash, expires_at)
    VALUES (?, ?, 'password', ?, UTC_TIMESTAMP(6) + INTERVAL 1 DAY)}, undef,
    substr("ck$$" . ('x' x 22), 0, 22), $ck->{id}, $chash);
$res = req(GET => '/demo/echo', { Cookie => "__Host-tg_session=$cookie" });
denied_ok($res, 403, 'forbidden', 'cookie without Origin');
$res = req(GET => '/demo/echo', { Cookie => "__Host-tg_session=$cookie",
    Origin => 'https://evil.example' });
denied_ok($res, 403, 'forbidden', 'cookie from another origin');
$res = req(GET => '/demo/echo', { Cookie => "__Host-tg_session=$cookie",
    Origin => base() });
is($res->code, 200, 'cookie with our Origin passes');
is(($res->json // {})->{user_id}, $ck->{id}, 'cookie: the session\'s user');
$res = req(GET => '/demo/echo', { Cookie => "__Host-tg_session=$cookie",
    'Sec-Fetch-Site' => 'same-origin' });
is($res->code, 200, 'cookie with Sec-Fetch-Site: same-origin passes');
denied_ok(req(GET => '/demo/echo', { Cookie => "__Host-tg_session=nope$cookie",
    Origin => base() }), 401, 'unauthenticated', 'unknown cookie');

# --- The internal location --------------------------------------------

$res = req(GET => '/_tollgate/check', bearer($u->{token}));
is($res->code, 404, '/_tollgate/check is not reachable from outside');
$res = req(GET => '/_tollgate/variables');
is($res->code, 404, 'nor its variables');

# --- WebSocket upgrade through the gate -------------------------------

{
	my $ws_ua = ua();
	(my $wsbase = base()) =~ s/^https/wss/;
	my ($greeting, $echo, $code);
	$ws_ua->websocket("$wsbase/demo/ws" => { Authorization => "Bearer $u->{token}" }
	    => sub {
		my ($ua, $tx) = @_;
		$code = $tx->res->code;
		unless ($tx->is_websocket) { Mojo::IOLoop->stop; return; }
		$tx->on(message => sub {
			my ($tx, $msg) = @_;
			if (!defined $greeting) { $greeting = $msg; $tx->send('ping') }
			else { $echo = $msg; $tx->finish }
		});
		$tx->on(finish => sub { Mojo::IOLoop->stop });
	});
	my $timer = Mojo::IOLoop->timer(10 => sub { Mojo::IOLoop->stop });
	Mojo::IOLoop->start;
	Mojo::IOLoop->remove($timer);
	is($code, 101, 'WebSocket: upgraded through the gate');
	like($greeting // '', qr/"user_id":"\Q$u->{id}\E"/, 'WebSocket: the upstream has the user id');
	is($echo, 'echo: ping', 'WebSocket: messages flow');

	my $tx = $ws_ua->build_websocket_tx("$wsbase/demo/ws");
	$tx = $ws_ua->start($tx);
	is($tx->res->code, 401, 'WebSocket without a credential: 401');
	ok(!$tx->is_websocket, 'WebSocket without a credential: not upgraded');
}

done_testing;
