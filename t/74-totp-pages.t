#!/usr/bin/perl
# The second factor in the browser (contract sections 3 and 11): the
# profile's forms (enrolment with a QR code in inline SVG, confirmation
# with the recovery codes shown once, removal with password and code,
# CSRF), and the code step of a browser sign-in (/login/totp) that comes
# before any session: after GitHub, with a wrong code (counted), the
# right one, a recovery code, an expired or forged step.

use strict;
use warnings;
use lib 't/lib', 't/fakes';

use Test::More;
use Mojo::URL;
use TG;
use TGMail;
use TGAccount;
use Fakes qw(fake_start fake_post fake_port);
require './t/70-helpers.pl';

sink_start();
my $base = base();
my (@pairs);
END { throttle_forget(addrs => [addr()], pairs => \@pairs) }

# The CSRF field of this browser (any of its forms carries the same).
sub csrf {
	my ($ua) = @_;
	my $res = $ua->get("$base/auth/magic?token=" . ('x' x 32) => H())->result;
	return csrf_of($res->body);
}
sub post_form {
	my ($ua, $path, @f) = @_;
	return $ua->post("$base$path" => form_headers(Origin => $base) =>
	    form_body(@f))->result;
}
sub cookie_of {
	my ($ua, $name) = @_;
	my ($c) = grep { $_->name eq $name } @{ $ua->cookie_jar->all };
	return $c;
}

# --- the profile's forms -----------------------------------------------------
my $u = verified_user(tag => 'totp-page');	# a magic link to a never-verified account is a takeover (contract section 3)
push @pairs, [$u->{email}, addr()];
my $ua = browser_login($u) or BAIL_OUT('cannot sign a browser in');
my $csrf = csrf($ua);
ok($csrf, 'a CSRF field');

my $res = post_form($ua, '/profile/totp');
is($res->code, 403, 'start without the CSRF field: 403');
is(req(POST => '/profile/totp', form_headers(Origin => $base),
    form_body([csrf => $csrf]))->headers->location, "$base/login?next=%2Fprofile",
    'start without a login: 303 to /login');
$res = post_form($ua, '/profile/totp', [csrf => $csrf]);
is($res->code, 200, 'POST /profile/totp: 200');
my $html = $res->body;
like($html, qr{<svg xmlns="http://www.w3.org/2000/svg"[^>]*>.*</svg>}s,
    'a QR code as inline SVG');
unlike($html, qr{style=}, 'without style attributes (CSP)');
my ($shown) = $html =~ m{<code id="totp-secret">([A-Z2-7 ]+)</code>};
(my $secret = $shown // '') =~ tr/ //d;
like($secret, qr/^[A-Z2-7]{32}$/, 'the key, in groups');
like($html, qr{href="otpauth://totp/tollgate:[^"]*secret=\Q$secret\E}, 'the otpauth link');
like($html, qr{action="/profile/totp/confirm"}, 'the confirm form');
ok(!db_row('SELECT enabled_at FROM totp_secrets WHERE user_id = ?', $u->{id})
    ->{enabled_at}, 'not on yet');

my $s = fresh_step(4);
$res = post_form($ua, '/profile/totp/confirm', [csrf => $csrf],
    [code => totp_at_step($secret, $s + 3)]);
is($res->code, 422, 'a wrong code: 422');
like($res->body, qr{code is wrong}, 'the page says so');
like($res->body, qr{\Q$shown\E}, 'and shows the same key again');
$res = post_form($ua, '/profile/totp/confirm', [csrf => $csrf],
    [code => totp_at_step($secret, $s)]);
is($res->code, 200, 'the right code: 200');
my @codes = $res->body =~ m{<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>}g;
is(scalar @codes, 10, 'ten recovery codes, shown');
ok(db_row('SELECT enabled_at FROM totp_secrets WHERE user_id = ?', $u->{id})
    ->{enabled_at}, 'the second factor is on');
is(post_form($ua, '/profile/totp', [csrf => $csrf])->code, 409,
    'starting again while on: 409');
error_ok(login($u->{email}, $u->{password}), 401, 'totp_required',
    'the API login asks for the code now');

# Turning it off from the page.
totp_forget_step($u);
$s = fresh_step(4);
$res = post_form($ua, '/profile/totp/off', [csrf => $csrf],
    [password => 'not-my-password'], [code => totp_at_step($secret, $s)]);
is($res->code, 422, 'off with a wrong password: 422');
like($res->body, qr{password is wrong}, 'the page says which');
$res = post_form($ua, '/profile/totp/off', [csrf => $csrf],
    [password => $u->{password}], [code => '000000']);
is($res->code, 422, 'off with a wrong code: 422');
like($res->body, qr{code is wrong}, 'the page says which');
like($res->body, qr{action="/profile/totp/off"}, 'with the form again');
$res = post_form($ua, '/profile/totp/off', [csrf => $csrf],
    [password => $u->{password}], [code => $codes[0]]);
is($res->code, 200, 'off with the password and a recovery code: 200');
ok(!db_row('SELECT 1 AS x FROM totp_secrets WHERE user_id = ?', $u->{id}),
    'the second factor is off');

# --- the code step after GitHub -------------------------------------------------
fake_start('github');
my $n = 0;
sub gh_user {
	my $k = sprintf 'u%d%d%d', $$, time, ++$n;
	my $id = 10_000_000 + int(rand 900_000_000);
	my $email = "gh-totp-$k\@example.com";
	fake_post('github', '/_fake/users', { $k => { id => $id,
	    login => "octo$k", name => 'Octo Totp', emails => [ { email => $email,
	    primary => \1, verified => \1 } ] } });
	return { key => $k, id => $id, email => $email };
}
sub dance {
	my ($b, $gh) = @_;
	my $r = $b->get("$base/api/v1/auth/github" => H())->result;
	my $auth = Mojo::URL->new($r->headers->location // '');
	$auth->query->merge(fake_user => $gh->{key});
	my $back = $b->get($auth)->result;
	return $back unless $back->code == 302;
	return $b->get($back->headers->location => H())->result;
}

my $gh = gh_user();
my $b1 = ua();
is(dance($b1, $gh)->code, 302, 'a first GitHub sign-in: 302');
my $gid = db_row('SELECT id FROM users WHERE github_id = ?', $gh->{id})->{id};
push @pairs, [$gh->{email}, addr()];
# TOTP on, through the API with the browser's cookie.
my $cookie = cookie_of($b1, '__Host-tg_session');
my %ck = (Cookie => '__Host-tg_session=' . $cookie->value, Origin => $base);
$res = jpost('/api/v1/me/totp', undef, %ck);
is($res->code, 200, 'enrol with the session cookie');
my $gsecret = eval { $res->json->{secret} } // '';
$s = fresh_step(4);
$res = jpost('/api/v1/me/totp/confirm', { code => totp_at_step($gsecret, $s) },
    %ck);
is($res->code, 200, 'confirm');
my $grec = eval { $res->json->{recovery_codes} } // [];

my $sessions = sub { db_row('SELECT COUNT(*) AS n FROM sessions WHERE '
    . 'user_id = ? AND revoked_at IS NULL', $gid)->{n} };
my $before = $sessions->();
my $b2 = ua();
$res = dance($b2, $gh);
is($res->code, 200, 'GitHub sign-in with TOTP on: the code page');
like($res->body, qr{<form method="post" action="/login/totp">}, 'a form');
like($res->body, qr{name="totp_code"}, 'for the code');
like($res->body, qr{name="recovery_code"}, 'or a recovery code');
ok(!cookie_of($b2, '__Host-tg_session'), 'no session cookie yet');
is($sessions->(), $before, 'no session made yet');
my $pend = cookie_of($b2, '__Host-tg_2fa');
ok($pend, 'a pending sign-in cookie');
ok($pend && $pend->httponly && $pend->secure, 'HttpOnly, Secure');
ok($pend && index($pend->value, $gid) < 0, 'sealed: it does not show the user');
my $pcsrf = csrf_of($res->body);

is($b2->get("$base/login/totp" => H())->result->code, 200,
    'GET /login/totp: the form again');
$res = $b2->post("$base/login/totp" => form_headers() =>
    form_body([csrf => $pcsrf], [totp_code => '000000']))->result;
is($res->code, 401, 'a wrong code: 401 page');
like($res->body, qr{code is wrong}, 'saying so');
is($sessions->(), $before, 'still no session');
$res = $b2->post("$base/login/totp" => form_headers() =>
    form_body([totp_code => totp_at_step($gsecret, $s + 1)]))->result;
is($res->code, 403, 'without the CSRF field: 403');
$res = $b2->post("$base/login/totp" => form_headers() =>
    form_body([csrf => $pcsrf]))->result;
is($res->code, 401, 'no code: 401 page');
totp_forget_step({ id => $gid });
$s = fresh_step(4);
$res = $b2->post("$base/login/totp" => form_headers() =>
    form_body([csrf => $pcsrf], [totp_code => totp_at_step($gsecret, $s)]))
    ->result;
is($res->code, 303, 'the right code: 303');
is($res->headers->location, "$base/profile", 'to /profile');
ok(cookie_of($b2, '__Host-tg_session'), 'a session cookie');
is($sessions->(), $before + 1, 'one session made');
is(db_row('SELECT kind FROM sessions WHERE user_id = ? ORDER BY created_at '
    . 'DESC LIMIT 1', $gid)->{kind}, 'github', 'of kind github');
$res = $b2->post("$base/login/totp" => form_headers(Origin => $base) =>
    form_body([csrf => $pcsrf], [totp_code => totp_at_step($gsecret, $s)]))
    ->result;
is($res->code, 400, 'the step is finished: its cookie is gone (400)');

# A recovery code works there too; a copied pending cookie needs a new code.
my $b3 = ua();
dance($b3, $gh);
my $copy = cookie_of($b3, '__Host-tg_2fa')->value;
$res = $b3->post("$base/login/totp" => form_headers() => form_body(
    [csrf => csrf_of($b3->get("$base/login/totp" => H())->result->body)],
    [recovery_code => $grec->[0]]))->result;
is($res->code, 303, 'a recovery code: 303');
my $b4 = ua();
my $c4 = csrf($b4);
$res = $b4->post("$base/login/totp" => form_headers(Cookie =>
    "__Host-tg_2fa=$copy") => form_body([csrf => $c4],
    [recovery_code => $grec->[0]]))->result;
is($res->code, 401, 'the same cookie elsewhere with the used code: 401');

# A forged or expired pending cookie.
$res = $b4->post("$base/login/totp" => form_headers(Cookie =>
    '__Host-tg_2fa=' . ('A' x 120)) => form_body([csrf => $c4],
    [totp_code => '123456']))->result;
is($res->code, 400, 'a forged pending cookie: 400');
is($b4->get("$base/login/totp" => H(Cookie => '__Host-tg_2fa=xyz'))->result->code,
    303, 'GET /login/totp without a pending sign-in: 303 to /login');

# Wrong codes count toward the login throttle.
my $limit = conf_get('limits', 'login_failures') // 10;
my $b5 = ua();
dance($b5, $gh);
my $c5 = csrf_of($b5->get("$base/login/totp" => H())->result->body);
for (1 .. $limit) {
	$b5->post("$base/login/totp" => form_headers() => form_body(
	    [csrf => $c5], [totp_code => '000000']));
}
totp_forget_step({ id => $gid });
$s = fresh_step(4);
$res = $b5->post("$base/login/totp" => form_headers() => form_body(
    [csrf => $c5], [totp_code => totp_at_step($gsecret, $s)]))->result;
is($res->code, 429, "after $limit wrong codes even the right one: 429");
ok(($res->headers->header('Retry-After') // 0) > 0, 'with Retry-After');

# --- the /login page ----------------------------------------------------------------
SKIP: {
	my $lp = ua()->get("$base/login" => H())->result;
	skip 'no /login page on this branch', 14 unless ($lp->code // 0) == 200;
	my $w = verified_user(tag => 'totp-login-page');
	push @pairs, [$w->{email}, addr()];
	my ($wsecret, $wcodes) = totp_on($w);
	my $b = ua();
	my $lcsrf = csrf_of($b->get("$base/login" => H())->result->body);
	my @cred = ([csrf => $lcsrf], [username => $w->{email}],
	    [password => $w->{password}]);
	$res = $b->post("$base/login" => form_headers() => form_body(@cred,
	    [next => '/device']))->result;
	is($res->code, 200, '/login with TOTP on: the code step');
	like($res->body, qr{action="/login/totp"}, 'its form');
	ok(!cookie_of($b, '__Host-tg_session'), 'no session yet');
	totp_forget_step($w);
	$s = fresh_step(4);
	$res = $b->post("$base/login/totp" => form_headers() => form_body(
	    [csrf => csrf_of($res->body)], [totp_code => totp_at_step($wsecret,
	    $s)]))->result;
	is($res->code, 303, 'the code: 303');
	is($res->headers->location, "$base/device", 'to next');
	ok(cookie_of($b, '__Host-tg_session'), 'signed in');
	is(db_row('SELECT kind FROM sessions WHERE user_id = ? ORDER BY '
	    . 'created_at DESC LIMIT 1', $w->{id})->{kind}, 'password',
	    'a password session');

	# The code in the login form itself.
	my $b2 = ua();
	$lcsrf = csrf_of($b2->get("$base/login" => H())->result->body);
	@cred = ([csrf => $lcsrf], [username => $w->{email}],
	    [password => $w->{password}]);
	$res = $b2->post("$base/login" => form_headers() => form_body(@cred,
	    [totp_code => totp_at_step($wsecret, $s)]))->result;
	is($res->code, 401, 'a used code in the login form: 401');
	like($res->body, qr{name="totp_code"}, 'the form asks for it');
	ok(!cookie_of($b2, '__Host-tg_session'), 'no session');
	$res = $b2->post("$base/login" => form_headers() => form_body(@cred,
	    [totp_code => totp_at_step($wsecret, $s + 1)]))->result;
	is($res->code, 303, 'the next code in the login form: 303');
	ok(cookie_of($b2, '__Host-tg_session'), 'signed in');
	my $b3 = ua();
	$lcsrf = csrf_of($b3->get("$base/login" => H())->result->body);
	$res = $b3->post("$base/login" => form_headers() => form_body(
	    [csrf => $lcsrf], [username => $w->{email}],
	    [password => $w->{password}], [recovery_code => $wcodes->[0]]))
	    ->result;
	is($res->code, 303, 'a recovery code in the login form: 303');

	# The profile shows the section and its forms.
	my $pr = $b3->get("$base/profile" => H())->result;
	like($pr->body, qr{<section id="totp">.*action="/profile/totp/off"}s,
	    '/profile: two-factor is on, with the form to turn it off');
}

done_testing;
