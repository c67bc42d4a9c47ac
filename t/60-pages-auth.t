#!/usr/bin/perl
# The pages of signing up, in and out, and of a forgotten password:
# success, the messages of bad fields shown in the page next to their
# field (422), CSRF refusals (403), cookie flags, the security headers,
# redirects to /login with next, and next followed only when relative.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use TG;
require './t/60-helpers.pl';

# The stylesheet and the form pages.
my $res = req(GET => '/static/tollgate.css');
is($res->code, 200, 'stylesheet: 200');
like($res->headers->content_type // '', qr{^text/css}, 'stylesheet: text/css');
like($res->body, qr/\@media \(max-width/, 'stylesheet: a narrow-screen rule');

for my $path (qw(/signup /login /forgot-password)) {
	my $ua = browser();
	my $r = bget($ua, $path);
	is($r->code, 200, "GET $path: 200");
	html_headers_ok($r, "GET $path");
	ok(csrf_of($r->body), "GET $path: the form has a CSRF field");
	my ($c) = grep { $_->name eq '__Host-tg_csrf' } @{ $r->cookies };
	ok($c && $c->httponly && $c->secure && lc($c->samesite // '') eq 'lax',
	    "GET $path: the CSRF cookie is HttpOnly, Secure, SameSite=Lax");
}

# Pages that need a login send the browser to /login with next.
{
	my $ua = browser();
	for my $path ('/profile', '/usage', '/billing', '/admin',
	    '/admin/users/abcdefghijklmnopqrstuv') {
		my $r = bget($ua, $path);
		is($r->code, 303, "GET $path without a session: 303");
		is(location($r), '/login?next=' . $path =~ s{\?}{%3F}r =~ s{=}{%3D}gr,
		    "GET $path: to /login?next=...");
	}
	my $r = bget($ua, '/usage?x=1');
	is(location($r), '/login?next=/usage%3Fx%3D1', 'next keeps the query');
	like($r->headers->location // '', qr{^\Q${\ base()}\E/}, 'redirects are built on base_url');
}

# Sign-up: bad fields come back in the form, next to each field.
my $ua = browser();
my $email = new_email('signup');
$res = bpost($ua, '/signup', { email => 'not-an-email', name => "Zo\x{eb} <Tester>",
    password => 'short' });
is($res->code, 422, 'signup with bad fields: 422');
html_headers_ok($res, 'signup 422');
like($res->body, qr{<p class="field-error" id="email-error">Email is not an email address\.</p>},
    'signup 422: the email message next to the email field');
like($res->body, qr{id="password-error">Password must be at least 10 characters\.<},
    'signup 422: the password message');
like($res->body, qr{value="not-an-email"}, 'signup 422: the email typed is kept');
like($res->body, qr{value="Zo\x{c3}\x{ab} &lt;Tester&gt;"}, 'signup 422: the name kept, escaped');
unlike($res->body, qr{<Tester>}, 'signup 422: nothing unescaped');
like($res->body, qr{aria-invalid="true"}, 'signup 422: the bad fields are marked');

# Without the CSRF field, or from another origin: refused.
$res = bpost($ua, '/signup', { csrf => undef, email => $email, password => 'long enough pw' });
is($res->code, 403, 'signup without CSRF: 403');
like($res->headers->content_type // '', qr{^text/html}, 'signup without CSRF: an HTML page');
$res = bpost($ua, '/signup', { csrf => 'f' x 64, email => $email, password => 'long enough pw' });
is($res->code, 403, 'signup with a wrong CSRF value: 403');
$res = browser()->post(base() . '/signup' => { Origin => base() }
    => form => { csrf => csrf($ua), email => $email, password => 'long enough pw' })->res;
is($res->code, 403, "signup with another browser's CSRF value: 403");

# A good sign-up: a session cookie, 303 to /profile, a verification mail.
$res = bpost($ua, '/signup', { email => $email, name => 'Page Person',
    password => 'long enough pw' });
is($res->code, 303, 'signup: 303');
like(location($res), qr{^/profile}, 'signup: to /profile');
my ($sc) = grep { $_->name eq '__Host-tg_session' } @{ $res->cookies };
ok($sc, 'signup: a tg_session cookie');
ok($sc && $sc->httponly && $sc->secure && lc($sc->samesite // '') eq 'lax',
    'signup: the session cookie is HttpOnly, Secure, SameSite=Lax');
$res = bget($ua, '/profile?notice=welcome');
is($res->code, 200, 'profile after signup: 200');
like($res->body, qr{\Q$email\E}, 'profile shows the email');
like($res->body, qr{Page Person}, 'profile shows the name');
my $dbh = dbh();
my ($mails) = $dbh->selectrow_array(
    "SELECT COUNT(*) FROM outbox WHERE to_addr = ? AND body_text LIKE '%/verify-email?token=%'",
    undef, $email);
is($mails, 1, 'signup: one verification mail with its link');

# The same email again: 409 in the form.
$res = bpost(browser(), '/signup', { email => uc($email) =~ s/EXAMPLE\.COM/example.com/r,
    password => 'long enough pw' });
is($res->code, 409, 'signup with a taken email (other case): 409');
like($res->body, qr{id="email-error">An account with this email already exists\.<},
    'signup 409: the message next to the email field');

# Log out: POST with CSRF; the session is revoked and the cookie cleared.
my $csrf = csrf($ua);
$res = bpost($ua, '/logout', { csrf => undef });
is($res->code, 403, 'logout without CSRF: 403');
is(bget($ua, '/profile')->code, 200, 'still logged in after the refused logout');
$res = bget($ua, '/logout');
is($res->code, 405, 'GET /logout: 405');
$res = bpost($ua, '/logout', {});
is($res->code, 303, 'logout: 303');
like(location($res), qr{^/login}, 'logout: to /login');
like($res->headers->header('Set-Cookie') // '', qr/tg_session=;.*Max-Age=0/i,
    'logout: the session cookie is expired');
is(bget($ua, '/profile')->code, 303, 'after logout /profile redirects');
my ($live) = $dbh->selectrow_array(
    "SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id "
    . "WHERE u.email_lc = ? AND s.revoked_at IS NULL AND s.kind = 'signup'", undef, lc $email);
is($live, 0, 'logout revoked the session in the database');

# Log in: wrong password shown in the form; right one: a fresh session.
$res = page_login($ua, $email, 'wrong password!');
is($res->code, 401, 'login with a wrong password: 401');
html_headers_ok($res, 'login 401');
like($res->body, qr{The email or password is wrong\.}, 'login 401: the message in the page');
like($res->body, qr{value="\Q$email\E"}, 'login 401: the email is kept');
$res = page_login($ua, '', '');
is($res->code, 422, 'login with empty fields: 422');
like($res->body, qr{id="username-error">Email is required\.<}, 'login 422: message at the email');
$res = bpost($ua, '/login', { csrf => undef, username => $email, password => 'long enough pw' });
is($res->code, 403, 'login without CSRF: 403');

# Session fixation: a cookie planted before login is not the one after.
$ua->cookie_jar->add(Mojo::Cookie::Response->new(name => '__Host-tg_session',
    value => 'planted-session-value-0123456789abcdef', domain => '127.0.0.1', path => '/'));
$res = page_login($ua, $email, 'long enough pw', '/usage');
is($res->code, 303, 'login: 303');
is(location($res), '/usage', 'login: to the relative next');
($sc) = grep { $_->name eq '__Host-tg_session' } @{ $res->cookies };
ok($sc && $sc->value ne 'planted-session-value-0123456789abcdef' && length($sc->value) >= 40,
    'login: a fresh session id in the cookie');
ok($sc && $sc->httponly && $sc->secure && lc($sc->samesite // '') eq 'lax',
    'login: the cookie is HttpOnly, Secure, SameSite=Lax');
is(bget($ua, '/usage')->code, 200, 'logged in: /usage 200');
$res = bget($ua, '/login?next=/billing');
is($res->code, 303, 'GET /login when logged in: 303');
is(location($res), '/billing', 'GET /login when logged in: on to next');
my $first = $sc->value;
$res = page_login($ua, $email, 'long enough pw');
is(location($res), '/profile', 'login without next: to /profile');
($sc) = grep { $_->name eq '__Host-tg_session' } @{ $res->cookies };
isnt($sc->value, $first, 'a second login: another session id');
my ($old) = $dbh->selectrow_array('SELECT revoked_at IS NOT NULL FROM sessions WHERE cookie_hash IS NOT NULL '
    . 'AND user_id = (SELECT id FROM users WHERE email_lc = ?) ORDER BY created_at ASC LIMIT 1 OFFSET 1',
    undef, lc $email);
ok($old, "the browser's previous session ended at the new login");

for my $bad ('https://evil.example/', '//evil.example/x', '/\\evil.example', 'javascript:alert(1)') {
	$res = page_login(browser(), $email, 'long enough pw', $bad);
	is(location($res), '/profile', "next '$bad' is not followed");
}

# A forgotten password: the same answer for anyone; a link for members.
$res = bpost(browser(), '/forgot-password', { email => 'nobody-' . int(rand 1e9) . '@example.com' });
is($res->code, 202, 'forgot-password, unknown email: 202');
my $unknown_body = $res->body =~ s/name="csrf" value="[^"]*"//r;
$res = bpost(browser(), '/forgot-password', { email => $email });
is($res->code, 202, 'forgot-password, known email: 202');
like($res->body, qr{a link to choose a new password is on its way}, 'forgot-password: the page says so');
is($res->body =~ s/name="csrf" value="[^"]*"//r, $unknown_body, 'forgot-password: the same page either way');
$res = bpost(browser(), '/forgot-password', { email => 'nope' });
is($res->code, 422, 'forgot-password, bad email: 422');
like($res->body, qr{id="email-error">Email is not an email address\.<}, 'forgot 422: message at the field');
$res = bpost(browser(), '/forgot-password', { csrf => undef, email => $email });
is($res->code, 403, 'forgot-password without CSRF: 403');

my ($text) = $dbh->selectrow_array(
    "SELECT body_text FROM outbox WHERE to_addr = ? AND body_text LIKE '%/reset-password?token=%' "
    . 'ORDER BY created_at DESC LIMIT 1', undef, $email);
my ($token) = ($text // '') =~ m{/reset-password\?token=([A-Za-z0-9_-]+)};
ok($token, 'the reset mail carries the link');
$token //= 'x' x 43;

$res = bget(browser(), "/reset-password?token=$token");
is($res->code, 200, 'GET /reset-password: 200');
like($res->body, qr{name="token" value="\Q$token\E"}, 'the reset form carries the token');
$res = bget(browser(), '/reset-password');
is($res->code, 400, 'GET /reset-password without a token: 400');
$res = bpost(browser(), '/reset-password', { token => $token, password => 'short' });
is($res->code, 422, 'reset with a short password: 422');
like($res->body, qr{id="password-error">New password must be at least 10 characters\.<},
    'reset 422: message at the field');
$res = bpost(browser(), '/reset-password', { token => $token, password => 'a new long password' });
is($res->code, 303, 'reset: 303');
like(location($res), qr{^/login\?notice=reset}, 'reset: to /login');
is(bget($ua, '/profile')->code, 303, 'reset revoked the other sessions');
$res = bpost(browser(), '/reset-password', { token => $token, password => 'another long password' });
is($res->code, 400, 'the reset link works once: 400');
like($res->body, qr{not valid}, 'used link: the message in the page');
$res = page_login(browser(), $email, 'a new long password');
is($res->code, 303, 'login with the new password');

# A login link by mail (/login/magic, the other page that mails a link):
# the same answer for anyone; a link for members.
my ($memail) = make_user('pa-magic');
$res = bget(browser(), '/login/magic');
is($res->code, 200, 'GET /login/magic: 200');
like($res->body, qr{<form method="post" action="/login/magic"}, 'with its form');
$res = bpost(browser(), '/login/magic', { email => 'nobody-' . int(rand 1e9) . '@example.com' });
is($res->code, 202, 'login link, unknown email: 202');
my $unknown_magic = $res->body =~ s/name="csrf" value="[^"]*"//r;
$res = bpost(browser(), '/login/magic', { email => $memail });
is($res->code, 202, 'login link, known email: 202');
like($res->body, qr{a login link is on its way}, 'login link: the page says so');
is($res->body =~ s/name="csrf" value="[^"]*"//r, $unknown_magic, 'login link: the same page either way');
my ($mtext) = $dbh->selectrow_array(
    "SELECT body_text FROM outbox WHERE to_addr = ? AND kind = 'magic_link'", undef, $memail);
like($mtext // '', qr{expires in 15 minutes}, 'the member is mailed a login link');
$res = bpost(browser(), '/login/magic', { email => 'nope' });
is($res->code, 422, 'login link, bad email: 422');
$res = bpost(browser(), '/login/magic', { csrf => undef, email => $memail });
is($res->code, 403, 'login link without CSRF: 403');

done_testing;
