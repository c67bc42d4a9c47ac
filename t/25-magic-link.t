#!/usr/bin/perl
# Magic links (contract section 3): requested for any address (202, mail
# only to an account), used through the API (200 {user, tokens}) or the
# page (GET shows a button and leaves the token alone; the CSRF-protected
# POST signs the browser in with a session cookie and 303 to /profile);
# single use, 15 minutes, the address counts as verified; an account with
# TOTP on is asked for its second factor before the token is spent.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Crypt::JWT qw(decode_jwt);
use Mojo::Util qw(url_escape);
use TG;
use TGMail;
use TGAccount;

sink_start();
my $base = base();
my $secret = conf_get('jwt', 'secret');

sub magic_mail {
	my ($u, $not) = @_;
	return wait_mail($u->{email}, sub { $_[0]{subject} =~ /sign-in/i
	    && (!$not || $_[0]{file} ne $not->{file}) });
}

# --- the API ----------------------------------------------------------
my $u = signup(tag => 'magic');
my $res = jpost('/api/v1/auth/magic-link', { email => $u->{email} });
is($res->code, 202, 'magic-link: 202');
my $nobody = unique_email('nobody');
my $res2 = jpost('/api/v1/auth/magic-link', { email => $nobody });
is($res2->code, 202, 'magic-link for nobody: 202');
is($res2->body, $res->body, 'the same body');
error_ok(jpost('/api/v1/auth/magic-link', { email => 'x' }), 422,
    'validation_failed', 'a bad email');

my $m = magic_mail($u);
ok($m, 'the sign-in mail arrives');
like(mail_link($m, '/auth/magic') // '',
    qr{^\Q$base\E/auth/magic\?token=[A-Za-z0-9_-]{20,}$},
    'link <base_url>/auth/magic?token=');
my $tok = mail_token($m, '/auth/magic');
is(db_row('SELECT TIMESTAMPDIFF(SECOND, created_at, expires_at) AS s FROM '
    . 'tokens WHERE user_id = ? AND kind = ?', $u->{id}, 'magic')->{s}, 900,
    'it lives 15 minutes');
is(db_row('SELECT COUNT(*) AS n FROM outbox WHERE to_addr = ?', $nobody)->{n},
    0, 'nothing is mailed to an address without an account');

$res = jpost('/api/v1/auth/magic-link/verify', { token => $tok });
is($res->code, 200, 'magic-link/verify: 200');
my $j = eval { $res->json } // {};
is($j->{user}{id}, $u->{id}, '{user}');
ok($j->{user}{email_verified}, 'the address counts as verified');
my $claims = eval { decode_jwt(token => $j->{tokens}{access_token},
    key => $secret, accepted_alg => 'HS256') } // {};
is($claims->{sub}, $u->{id}, 'the access token is the user\'s');
is(db_row('SELECT kind FROM sessions WHERE id = ?', $claims->{sid} // '')
    ->{kind}, 'magic', 'a session of kind magic');
is(req(GET => '/api/v1/me', H(bearer($j->{tokens}{access_token})))->code, 200,
    'the tokens work');
ok(jpost('/api/v1/auth/refresh', { refresh_token => $j->{tokens}{refresh_token} })
    ->code == 200, 'and refresh');
error_ok(jpost('/api/v1/auth/magic-link/verify', { token => $tok }), 400,
    'invalid_token', 'the same link again');

jpost('/api/v1/auth/magic-link', { email => $u->{email} });
my $m2 = magic_mail($u, $m);
dbh()->do('UPDATE tokens SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 '
    . 'SECOND WHERE user_id = ? AND kind = ? AND used_at IS NULL', undef,
    $u->{id}, 'magic');
error_ok(jpost('/api/v1/auth/magic-link/verify', { token => mail_token($m2,
    '/auth/magic') }), 400, 'invalid_token', 'an expired link');

# A disabled account: no new link, and an old one does not sign in.
{
	my $d = signup(tag => 'magic-disabled');
	jpost('/api/v1/auth/magic-link', { email => $d->{email} });
	my $dm = magic_mail($d);
	dbh()->do('UPDATE users SET disabled_at = UTC_TIMESTAMP(6) WHERE id = ?',
	    undef, $d->{id});
	error_ok(jpost('/api/v1/auth/magic-link/verify', { token => mail_token($dm,
	    '/auth/magic') }), 403, 'account_disabled', 'a disabled account\'s link');
	my $n = outbox_count($d->{id});
	is(jpost('/api/v1/auth/magic-link', { email => $d->{email} })->code, 202,
	    'a link for a disabled account: 202');
	is(jpost('/api/v1/auth/password/forgot', { email => $d->{email} })->code,
	    202, 'a reset for a disabled account: 202');
	is(outbox_count($d->{id}), $n, 'and nothing is mailed');
}

# --- the page -----------------------------------------------------------
my $b = signup(tag => 'magic-page');
jpost('/api/v1/auth/magic-link', { email => $b->{email} });
my $bm = magic_mail($b);
my $btok = mail_token($bm, '/auth/magic');
my $ua = ua();	# a browser of its own, with its own cookies
$res = $ua->get("$base/auth/magic?token=$btok" => H())->result;
is($res->code, 200, 'GET /auth/magic?token=: 200');
like($res->headers->content_type // '', qr{^text/html}, 'a page');
my $html = $res->body;
like($html, qr{<form method="post" action="/auth/magic">}, 'a POST form');
like($html, qr{name="token" value="\Q$btok\E"}, 'the token hidden in it');
my ($csrf) = $html =~ /name="csrf" value="([^"]+)"/;
ok($csrf, 'a CSRF field');
like($html, qr{<button type="submit">}, 'one button');
ok(!db_row('SELECT used_at FROM tokens WHERE user_id = ? AND kind = ?',
    $b->{id}, 'magic')->{used_at}, 'GET does not use the token');
$res = $ua->get("$base/auth/magic?token=$btok" => H())->result;
is($res->code, 200, 'GET again (a mail scanner, say): still 200');

sub form { join '&', map { "$_->[0]=" . url_escape($_->[1]) } @_ }
my %ft = ('Content-Type' => 'application/x-www-form-urlencoded');
my $other = ua();
$res = $other->post("$base/auth/magic" => H(%ft) =>
    form([token => $btok], [csrf => $csrf]))->result;
is($res->code, 403, 'POST from a browser without the CSRF cookie: 403');
$res = $ua->post("$base/auth/magic" => H(%ft) =>
    form([token => $btok], [csrf => 'A' x 64]))->result;
is($res->code, 403, 'POST with a wrong CSRF field: 403');
like($res->headers->content_type // '', qr{^text/html}, 'as a page');
ok(!db_row('SELECT used_at FROM tokens WHERE user_id = ? AND kind = ?',
    $b->{id}, 'magic')->{used_at}, 'a refused POST leaves the token');

$res = $ua->post("$base/auth/magic" => H(%ft) =>
    form([token => $btok], [csrf => $csrf]))->result;
is($res->code, 303, 'POST /auth/magic: 303');
is($res->headers->location, "$base/profile", 'to <base_url>/profile');
my ($cookie) = grep { /^__Host-tg_session=/ } @{ $res->headers->every_header('Set-Cookie') };
ok($cookie, 'a session cookie');
like($cookie // '', qr/;\s*HttpOnly/i, 'HttpOnly');
like($cookie // '', qr/;\s*Secure/i, 'Secure');
like($cookie // '', qr/;\s*SameSite=Lax/i, 'SameSite=Lax');
my ($cv) = ($cookie // '') =~ /^__Host-tg_session=([^;]+)/;
my %ck = (Cookie => "__Host-tg_session=$cv");
$res = req(GET => '/api/v1/me', H(%ck));
is($res->code, 200, 'the cookie signs the browser in');
is(eval { $res->json->{user}{id} }, $b->{id}, 'as the user');
ok(eval { $res->json->{user}{email_verified} }, 'the address counts as verified');
error_ok(jreq(PATCH => '/api/v1/me', { name => 'X' }, %ck), 403, 'forbidden',
    'a change with the cookie and no Origin');
is(jreq(PATCH => '/api/v1/me', { name => 'Cookie Name' }, %ck,
    Origin => $base)->code, 200, 'with Origin = base_url: 200');
$res = $ua->post("$base/auth/magic" => H(%ft) =>
    form([token => $btok], [csrf => $csrf]))->result;
is($res->code, 400, 'the link again: 400');
like($res->body, qr/not valid/, 'with the invalid-token message');
is($ua->get("$base/auth/magic" => H())->result->code, 400,
    'the page without a token: 400');

# --- TOTP on: the second factor before the token is spent ------------------
# (A verified account: a magic link to a never-verified one is a takeover
# that drops whatever second factor was enrolled, contract section 3.)
my $t = verified_user(tag => 'magic-totp');
dbh()->do('INSERT INTO totp_secrets (user_id, secret_enc, enabled_at) VALUES '
    . '(?, ?, UTC_TIMESTAMP(6))', undef, $t->{id}, 'not-a-real-secret');
jpost('/api/v1/auth/magic-link', { email => $t->{email} });
my $tm = magic_mail($t);
my $ttok = mail_token($tm, '/auth/magic');
$res = jpost('/api/v1/auth/magic-link/verify', { token => $ttok });
error_ok($res, 401, 'totp_required', 'TOTP on, no code');
is($res->headers->header('WWW-Authenticate'), 'Bearer', 'WWW-Authenticate: Bearer');
ok(!db_row('SELECT used_at FROM tokens WHERE user_id = ? AND kind = ?',
    $t->{id}, 'magic')->{used_at}, 'the token is not spent');
$res = jpost('/api/v1/auth/magic-link/verify', { token => $ttok,
    totp_code => '000000' });
isnt($res->code, 200, 'a code that cannot be right does not sign in');
is($res->code, 401, 'it answers 401');
error_ok(login($t->{email}, $t->{password}), 401, 'totp_required',
    'password login of the same account: totp_required');
my $tua = ua();
$res = $tua->get("$base/auth/magic?token=$ttok" => H())->result;
($csrf) = $res->body =~ /name="csrf" value="([^"]+)"/;
$res = $tua->post("$base/auth/magic" => H(%ft) =>
    form([token => $ttok], [csrf => $csrf // '']))->result;
is($res->code, 401, 'the page: 401');
like($res->body, qr/name="totp_code"/, 'a form asks for the code');
like($res->body, qr/name="token" value="\Q$ttok\E"/, 'carrying the token');
ok(!grep({ /^__Host-tg_session=/ } @{ $res->headers->every_header('Set-Cookie') }),
    'and no session cookie');
throttle_forget(addrs => [addr()], pairs => [[$t->{email}, addr()]]);

done_testing;
