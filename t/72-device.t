#!/usr/bin/perl
# Device sign-in (contract section 3, RFC 8628): POST /api/v1/auth/device
# (codes, URIs, 600 s, interval 5), the /device page (login first, the
# client's name, approve or deny with CSRF, codes read ignoring case and
# hyphens, unknown or expired codes), and polling
# /api/v1/auth/device/token: authorization_pending, slow_down (the
# interval grows by 5 s), access_denied, expired_token (expired, unknown,
# used), and 200 {tokens, user} exactly once, for a session of kind
# device named after the client, listed in and revocable from
# /api/v1/sessions.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::URL;
use TG;
use TGMail;
use TGAccount;
require './t/70-helpers.pl';

sink_start();
my $base = base();
my $letters = 'BCDFGHJKLMNPQRSTVWXZ';

sub start {
	my ($name) = @_;
	return jpost('/api/v1/auth/device', { client_name => $name });
}
sub poll {
	my ($dc) = @_;
	return jpost('/api/v1/auth/device/token', { device_code => $dc });
}
# Lets the next poll come "after the interval" without waiting for it.
sub backdate_poll {
	my ($uc) = @_;
	dbh()->do('UPDATE device_codes SET last_poll_at = last_poll_at - '
	    . 'INTERVAL 60 SECOND WHERE user_code = ?', undef, $uc);
}
sub norm { (my $c = uc shift) =~ tr/-//d; return $c }

# --- starting ---------------------------------------------------------------
my $res = start('tollgate-cli test');
is($res->code, 200, 'POST /auth/device: 200');
my $d = eval { $res->json } // {};
like($d->{device_code} // '', qr/^[A-Za-z0-9_-]{32,}$/, 'a device_code');
like($d->{user_code} // '', qr/^[$letters]{4}-[$letters]{4}$/,
    'a user_code like WDJB-MJHT, from letters without ambiguous ones');
is($d->{verification_uri}, "$base/device", 'verification_uri');
is($d->{verification_uri_complete}, "$base/device?user_code=$d->{user_code}",
    'verification_uri_complete');
is($d->{expires_in}, 600, 'expires_in 600');
is($d->{interval}, 5, 'interval 5');
my $row = db_row('SELECT * FROM device_codes WHERE user_code = ?',
    norm($d->{user_code}));
ok($row, 'the user code is stored without its hyphen');
isnt($row->{device_code_hash}, $d->{device_code}, 'the device code is hashed');
ok(index($row->{device_code_hash}, $d->{device_code}) < 0, 'not stored as is');
is(db_row('SELECT TIMESTAMPDIFF(SECOND, created_at, expires_at) AS s FROM '
    . 'device_codes WHERE user_code = ?', norm($d->{user_code}))->{s}, 600,
    'it lives 10 minutes');
error_ok(jpost('/api/v1/auth/device', {}), 422, 'validation_failed',
    'no client_name');
error_ok(jpost('/api/v1/auth/device', { client_name => 'x' x 129 }), 422,
    'validation_failed', 'an overlong client_name');
my %codes;
for (1 .. 5) {
	my $c = start('many')->json->{user_code};
	$codes{$c}++;
}
is(scalar keys %codes, 5, 'user codes differ');

# --- polling before a decision ---------------------------------------------------
error_ok(poll($d->{device_code}), 400, 'authorization_pending', 'first poll');
$res = poll($d->{device_code});
error_ok($res, 400, 'slow_down', 'a poll at once after it');
is(db_row('SELECT interval_s FROM device_codes WHERE user_code = ?',
    norm($d->{user_code}))->{interval_s}, 10, 'the interval grew to 10 s');
error_ok(poll($d->{device_code}), 400, 'slow_down', 'and again');
is(db_row('SELECT interval_s FROM device_codes WHERE user_code = ?',
    norm($d->{user_code}))->{interval_s}, 15, 'to 15 s');
dbh()->do('UPDATE device_codes SET last_poll_at = last_poll_at - INTERVAL '
    . '14 SECOND WHERE user_code = ?', undef, norm($d->{user_code}));
error_ok(poll($d->{device_code}), 400, 'slow_down',
    '14 s after the last poll, with an interval of 15');
is(db_row('SELECT interval_s FROM device_codes WHERE user_code = ?',
    norm($d->{user_code}))->{interval_s}, 20, 'which made it 20 s');
dbh()->do('UPDATE device_codes SET last_poll_at = last_poll_at - INTERVAL '
    . '21 SECOND WHERE user_code = ?', undef, norm($d->{user_code}));
error_ok(poll($d->{device_code}), 400, 'authorization_pending',
    '21 s after that poll: pending');
error_ok(poll('tgd_' . 'A' x 43), 400, 'expired_token', 'an unknown device code');
error_ok(poll('not a code at all'), 400, 'expired_token', 'a malformed one');
error_ok(jpost('/api/v1/auth/device/token', {}), 422, 'validation_failed',
    'no device_code');
$res = req(POST => '/api/v1/auth/device/token', H('Content-Type' =>
    'application/x-www-form-urlencoded'), form_body([grant_type =>
    'urn:ietf:params:oauth:grant-type:device_code'], [device_code =>
    $d->{device_code}]));
is($res->code, 400, 'the RFC\'s form body is read too');

# --- the page, not signed in ---------------------------------------------------
$res = req(GET => "/device?user_code=$d->{user_code}", H());
is($res->code, 303, 'GET /device not signed in: 303');
my $loc = Mojo::URL->new($res->headers->location // '');
is($loc->path->to_string, '/login', 'to /login');
is($loc->query->param('next'), "/device?user_code=$d->{user_code}",
    'with next=<this page>');
like($res->headers->location, qr{^\Q$base\E/}, 'on base_url');
$loc = Mojo::URL->new(req(GET => '/device', H())->headers->location // '');
is($loc->query->param('next'), '/device', 'without a code: next=/device');

# --- the page, signed in -------------------------------------------------------------
my $u = verified_user(tag => 'device');	# a magic link to a never-verified account is a takeover (contract section 3)
my $ua = browser_login($u) or BAIL_OUT('cannot sign a browser in');
$res = $ua->get("$base/device" => H())->result;
is($res->code, 200, 'GET /device without a code: 200');
like($res->body, qr{<form method="get" action="/device">.*name="user_code"}s,
    'a form to type the code');
my $typed = lc norm($d->{user_code});
$typed = substr($typed, 0, 2) . '-' . substr($typed, 2);
$res = $ua->get("$base/device?user_code=$typed" => H())->result;
is($res->code, 200, "GET /device?user_code=$typed (case and hyphens as "
    . 'typed): 200');
like($res->headers->content_type, qr{^text/html}, 'a page');
like($res->body, qr{tollgate-cli test}, 'naming the client');
like($res->body, qr{\Q$d->{user_code}\E}, 'showing the code');
like($res->body, qr{<form method="post" action="/device">}, 'a POST form');
like($res->body, qr{value="approve"}, 'to approve');
like($res->body, qr{value="deny"}, 'or deny');
my $csrf = csrf_of($res->body);
ok($csrf, 'with a CSRF field');
my $uc = norm($d->{user_code});

$res = $ua->get("$base/device?user_code=BBBB-BBBB" => H())->result;
is($res->code, 404, 'an unknown code: 404');
like($res->body, qr{not valid}, 'a page saying so');
like($res->body, qr{name="user_code"}, 'with the form to type it again');
is($ua->get("$base/device?user_code=AEIOU" => H())->result->code, 404,
    'a malformed code: 404');

# A client name is text, never markup.
my $evil = start('<script>alert(1)</script>')->json;
$res = $ua->get("$base/device?user_code=$evil->{user_code}" => H())->result;
unlike($res->body, qr{<script>alert}, 'the client name is escaped');
like($res->body, qr{&lt;script&gt;alert}, 'and shown');

# POST without CSRF, from another origin.
my %post = (Origin => $base);
$res = $ua->post("$base/device" => form_headers(%post) =>
    form_body([user_code => $uc], [action => 'approve']))->result;
is($res->code, 403, 'approve without the CSRF field: 403');
$res = $ua->post("$base/device" => form_headers(Origin =>
    'https://evil.example') => form_body([user_code => $uc],
    [action => 'approve'], [csrf => $csrf]))->result;
is($res->code, 403, 'approve from another origin: 403');
$res = $ua->post("$base/device" => form_headers(%post) =>
    form_body([user_code => $uc], [action => 'maybe'], [csrf => $csrf]))
    ->result;
is($res->code, 422, 'an action that is neither: 422');
is(db_row('SELECT status FROM device_codes WHERE user_code = ?', $uc)
    ->{status}, 'pending', 'still pending');
is(req(POST => '/device', form_headers(%post), form_body([user_code => $uc],
    [action => 'approve'], [csrf => $csrf]))->code, 303,
    'POST /device not signed in: 303 to /login');

# --- approve ------------------------------------------------------------------------
$res = $ua->post("$base/device" => form_headers(%post) =>
    form_body([user_code => $typed], [action => 'approve'], [csrf => $csrf]))
    ->result;
is($res->code, 200, 'approve: 200');
like($res->body, qr{tollgate-cli test.*signed in}s, 'the page says so');
is(db_row('SELECT status, user_id FROM device_codes WHERE user_code = ?', $uc)
    ->{user_id}, $u->{id}, 'approved for the user');
$res = $ua->post("$base/device" => form_headers(%post) =>
    form_body([user_code => $uc], [action => 'deny'], [csrf => $csrf]))
    ->result;
is($res->code, 404, 'deciding again: 404');
is(db_row('SELECT status FROM device_codes WHERE user_code = ?', $uc)
    ->{status}, 'approved', 'the decision stands');
is($ua->get("$base/device?user_code=$uc" => H())->result->code, 404,
    'the page of a decided code: 404');

backdate_poll($uc);
$res = poll($d->{device_code});
is($res->code, 200, 'the poll after approval: 200');
my $j = eval { $res->json } // {};
is($j->{user}{id}, $u->{id}, '{user}');
is($j->{user}{email}, $u->{email}, 'with the email');
my $access = $j->{tokens}{access_token};
ok($access && $j->{tokens}{refresh_token}, '{tokens}');
is($j->{tokens}{token_type}, 'Bearer', 'token_type Bearer');
error_ok(poll($d->{device_code}), 400, 'expired_token',
    'polling again: the code is spent');
backdate_poll($uc);
error_ok(poll($d->{device_code}), 400, 'expired_token', 'even later');

is(req(GET => '/api/v1/me', H(bearer($access)))->code, 200,
    'the device\'s access token works');
is(jpost('/api/v1/auth/refresh', { refresh_token => $j->{tokens}{refresh_token} })
    ->code, 200, 'and its refresh token');
$res = req(GET => '/api/v1/sessions', H(bearer($u->{access})));
my ($sess) = grep { ($_->{client_name} // '') eq 'tollgate-cli test' }
    @{ (eval { $res->json }) // [] };
ok($sess, 'GET /api/v1/sessions lists it with its client_name');
is(db_row('SELECT kind FROM sessions WHERE id = ?', $sess->{id} // '')->{kind},
    'device', 'a session of kind device');
is(db_row('SELECT session_id FROM device_codes WHERE user_code = ?', $uc)
    ->{session_id}, $sess->{id}, 'the device code names it');
is(req(DELETE => "/api/v1/sessions/$sess->{id}", H(bearer($u->{access})))
    ->code, 204, 'revoked from /api/v1/sessions: 204');
error_ok(req(GET => '/api/v1/me', H(bearer($access))), 401, 'unauthenticated',
    'the device\'s access token stops at once');

# --- deny ----------------------------------------------------------------------------
my $d2 = start('editor extension')->json;
my $uc2 = norm($d2->{user_code});
$res = $ua->get("$base/device?user_code=$d2->{user_code}" => H())->result;
$res = $ua->post("$base/device" => form_headers(%post) => form_body(
    [user_code => $uc2], [action => 'deny'], [csrf => csrf_of($res->body)]))
    ->result;
is($res->code, 200, 'deny: 200');
like($res->body, qr{denied}, 'the page says so');
error_ok(poll($d2->{device_code}), 400, 'access_denied', 'the poll after denial');
backdate_poll($uc2);
error_ok(poll($d2->{device_code}), 400, 'access_denied', 'and later');
is(db_row('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ? AND '
    . 'client_name = ?', $u->{id}, 'editor extension')->{n}, 0, 'no session');

# --- expiry ----------------------------------------------------------------------------
my $d3 = start('late cli')->json;
my $uc3 = norm($d3->{user_code});
$res = $ua->get("$base/device?user_code=$uc3" => H())->result;
my $csrf3 = csrf_of($res->body);
dbh()->do('UPDATE device_codes SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 '
    . 'SECOND WHERE user_code = ?', undef, $uc3);
error_ok(poll($d3->{device_code}), 400, 'expired_token', 'an expired code\'s poll');
$res = $ua->get("$base/device?user_code=$uc3" => H())->result;
is($res->code, 404, 'its page: 404');
like($res->body, qr{expired}, 'saying it may have expired');
$res = $ua->post("$base/device" => form_headers(%post) => form_body(
    [user_code => $uc3], [action => 'approve'], [csrf => $csrf3]))->result;
is($res->code, 404, 'approving it: 404');
is(db_row('SELECT status FROM device_codes WHERE user_code = ?', $uc3)
    ->{status}, 'pending', 'nothing changed');

# Approved, but collected too late.
my $d4 = start('slow cli')->json;
my $uc4 = norm($d4->{user_code});
$res = $ua->get("$base/device?user_code=$uc4" => H())->result;
$ua->post("$base/device" => form_headers(%post) => form_body(
    [user_code => $uc4], [action => 'approve'], [csrf => csrf_of($res->body)]));
dbh()->do('UPDATE device_codes SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 '
    . 'SECOND WHERE user_code = ?', undef, $uc4);
error_ok(poll($d4->{device_code}), 400, 'expired_token',
    'approved but expired before the poll');

# --- the second factor: approval needs a browser that passed it ----------------------
{
	my $t = verified_user(tag => 'device-totp');
	my ($secret) = totp_on($t);
	my $d5 = start('cli of a TOTP account')->json;
	ok(!browser_login($t), 'TOTP on: no browser session without the code');
	totp_forget_step($t);
	my $s = fresh_step(4);
	my $tua = browser_login($t, totp_code => totp_at_step($secret, $s));
	ok($tua, 'with the code: signed in');
	$res = $tua->get("$base/device?user_code=$d5->{user_code}" => H())
	    ->result;
	$res = $tua->post("$base/device" => form_headers(%post) => form_body(
	    [user_code => $d5->{user_code}], [action => 'approve'],
	    [csrf => csrf_of($res->body)]))->result;
	is($res->code, 200, 'then approves the device');
	$res = poll($d5->{device_code});
	is($res->code, 200, 'whose poll gets its tokens');
	is(eval { $res->json->{user}{id} }, $t->{id}, 'for that user');
	throttle_forget(pairs => [[$t->{email}, addr()]]);
}

# --- a disabled account's approval hands out nothing -------------------------------------
{
	my $v = signup(tag => 'device-disabled');
	my $vua = browser_login($v);
	my $d6 = start('cli of a disabled account')->json;
	$res = $vua->get("$base/device?user_code=$d6->{user_code}" => H())
	    ->result;
	$vua->post("$base/device" => form_headers(%post) => form_body(
	    [user_code => $d6->{user_code}], [action => 'approve'],
	    [csrf => csrf_of($res->body)]));
	dbh()->do('UPDATE users SET disabled_at = UTC_TIMESTAMP(6) WHERE id = ?',
	    undef, $v->{id});
	error_ok(poll($d6->{device_code}), 403, 'account_disabled',
	    'approved, then the account was disabled');
}

done_testing;
