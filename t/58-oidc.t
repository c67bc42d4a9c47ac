#!/usr/bin/perl
# OpenID Connect sign-in (contract section 3, "More ways in") against the
# fake provider of t/fakes/oidc.pl, named [oidc fake] through
# TOLLGATE_OIDC_FAKE_* on a restart of tollgated: the buttons on /login
# and /signup, the authorize redirect (code flow, PKCE S256, state,
# nonce) with its sealed cookie, the whole dance with a cookie jar,
# signing in again, linking a verified account, taking over a
# never-verified one, claiming a guest; the ID token refused with a wrong
# nonce, audience, issuer, signature or algorithm, or expired; keys
# rotated to ES256; every failure on a page, never a 500.

use strict;
use warnings;
use lib 't/lib', 't/fakes';

use Test::More;
use Mojo::URL;
use Mojo::UserAgent::CookieJar;
use TG qw(:DEFAULT restart_tollgated);
use TGMail;
use TGAccount;
use Fakes qw(fake_start fake_post fake_get fake_port);

my $ISS = 'http://127.0.0.1:' . fake_port('oidc');
my $dbh = dbh();
my @made;


sink_start();
fake_start('oidc');
ok(restart_tollgated(TOLLGATE_OIDC_FAKE_ISSUER => $ISS,
    TOLLGATE_OIDC_FAKE_CLIENT_ID => 'oidc-client',
    TOLLGATE_OIDC_FAKE_CLIENT_SECRET => 'oidc-secret'),
    'tollgated restarted with [oidc fake]');
END {
	my $st = $?;
	$dbh->do('DELETE FROM users WHERE id = ?', undef, $_) for @made;
	restart_tollgated();
	$? = $st;
}

sub browser {
	my $ua = ua();
	$ua->cookie_jar(Mojo::UserAgent::CookieJar->new);
	return $ua;
}

# A person at the fake provider; returns {key, sub, email}.
sub person {
	my (%o) = @_;
	my $u = int rand 1e9;
	my $p = { key => "p$u", sub => $o{sub} // "sub-$u",
	    email => $o{email} // "oidc$u\@example.com" };
	fake_post('oidc', '/_fake/users', { $p->{key} => { sub => $p->{sub},
	    email => $p->{email}, name => 'Open Id',
	    email_verified => exists $o{verified} ? $o{verified} : 1 } });
	return $p;
}

# The whole dance in browser $ua for person $p; returns the callback's
# response.  %o: headers (on the start), deny, state (replaces the state
# sent back), next (overrides of the next ID token).
sub dance {
	my ($ua, $p, %o) = @_;
	my $res = $ua->get(base() . '/api/v1/auth/oidc/fake',
	    $o{headers} // {})->res;
	return $res unless $res->code == 302;
	my $auth = Mojo::URL->new($res->headers->location // '');
	$auth->query->merge(fake_user => $p->{key});
	$auth->query->merge(fake_deny => 1) if $o{deny};
	fake_post('oidc', '/_fake/next_id_token', $o{next}) if $o{next};
	my $back = $ua->get($auth)->res;
	return $back unless $back->code == 302;
	my $cb = Mojo::URL->new($back->headers->location);
	$cb->query->merge(state => $o{state}) if $o{state};
	return $ua->get($cb)->res;
}

sub signed_in_ok {
	my ($res, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($res->code, 302, "$name: 302");
	like($res->headers->location // '', qr{/profile$}, "$name: to /profile");
	ok(grep({ /^(?:__Host-)?tg_session=[^;]+/ } @{ $res->headers->every_header(
	    'Set-Cookie') }), "$name: a session cookie");
}

sub page_ok {
	my ($res, $status, $re, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($res->code, $status, "$name: $status");
	like($res->headers->content_type // '', qr{^text/html}, "$name: a page");
	like($res->body // '', $re, "$name: says what happened");
	ok(!grep({ /^(?:__Host-)?tg_session=[^;]/ } @{ $res->headers->every_header(
	    'Set-Cookie') }), "$name: no session");
}

sub user_of_sub {
	my ($sub) = @_;
	my $r = db_row('SELECT user_id FROM external_ids WHERE provider = ? '
	    . 'AND subject = ?', 'oidc:fake', $sub);
	return $r ? $r->{user_id} : undef;
}

# --- buttons ----------------------------------------------------------------
like(req(GET => '/login')->body, qr{href="/api/v1/auth/oidc/fake">Log in with Fake<},
    '/login: a button per provider');
like(req(GET => '/signup')->body,
    qr{href="/api/v1/auth/oidc/fake">Sign up with Fake<}, '/signup too');

# --- the redirect -------------------------------------------------------------
my $ua = browser();
my $res = $ua->get(base() . '/api/v1/auth/oidc/fake')->res;
is($res->code, 302, 'start: 302');
my $auth = Mojo::URL->new($res->headers->location // '');
is($auth->path->to_string, '/authorize', 'to the discovered authorization endpoint');
is($auth->host_port, '127.0.0.1:' . fake_port('oidc'), 'of the provider');
my $q = $auth->query;
is($q->param('response_type'), 'code', 'response_type=code');
is($q->param('client_id'), 'oidc-client', 'client_id');
is($q->param('redirect_uri'), base() . '/api/v1/auth/oidc/fake/callback',
    'redirect_uri on base_url');
like($q->param('scope') // '', qr/\bopenid\b/, 'scope has openid');
like($q->param('state') // '', qr/^[A-Za-z0-9_-]{32,}$/, 'a random state');
like($q->param('nonce') // '', qr/^[A-Za-z0-9_-]{32,}$/, 'a random nonce');
is($q->param('code_challenge_method'), 'S256', 'PKCE S256');
like($q->param('code_challenge') // '', qr/^[A-Za-z0-9_-]{43}$/, 'a challenge');
my ($sc) = grep { /^tg_oidc=/ } @{ $res->headers->every_header('Set-Cookie') };
like($sc // '', qr/HttpOnly/, 'state cookie HttpOnly');
like($sc // '', qr/Secure/, 'Secure');
like($sc // '', qr/SameSite=Lax/, 'SameSite=Lax');
like($sc // '', qr{Path=/api/v1/auth/oidc}, 'limited to these routes');
page_ok(req(GET => '/api/v1/auth/oidc/nosuch'), 404, qr/no such way/i,
    'an unknown provider');

# --- a new person ----------------------------------------------------------------
my $p = person();
$res = dance(browser(), $p);
signed_in_ok($res, 'first sign-in');
my $uid = user_of_sub($p->{sub});
push @made, $uid if $uid;
ok($uid, 'the subject is linked to an account');
my $row = db_row('SELECT email, email_verified_at, password_hash, '
    . 'trial_started_at FROM users WHERE id = ?', $uid // '') // {};
is($row->{email}, $p->{email}, 'with the verified email');
ok($row->{email_verified_at} && $row->{trial_started_at},
    'verified, its trial started');
is($row->{password_hash}, undef, 'no password');
my $st = fake_get('oidc', '/_fake/state');
my $tr = $st->{token_requests}[-1] // {};
is($tr->{grant_type}, 'authorization_code', 'token: grant_type');
like($tr->{code_verifier} // '', qr/^[A-Za-z0-9_-]{43,}$/, 'token: the verifier');
is($tr->{client_secret}, 'oidc-secret', 'token: the client secret');
my $b2 = browser();
signed_in_ok(dance($b2, $p), 'again');
is(user_of_sub($p->{sub}), $uid, 'the same account');
is($b2->get(base() . '/profile')->res->code, 200, 'the browser is signed in');

# --- linking and takeover -----------------------------------------------------------
my $v = signup(tag => 'oidc-link');
push @made, $v->{id};
$dbh->do('UPDATE users SET email_verified_at = UTC_TIMESTAMP(6) WHERE id = ?',
    undef, $v->{id});
my $pv = person(email => $v->{email});
signed_in_ok(dance(browser(), $pv), 'a verified account\'s address');
is(user_of_sub($pv->{sub}), $v->{id}, 'links that account');
is(login($v->{email}, $v->{password})->code, 200, 'its password still works');

my $sq = signup(tag => 'oidc-squat');
push @made, $sq->{id};
my $ps = person(email => $sq->{email});
signed_in_ok(dance(browser(), $ps), 'a never-verified account\'s address');
is(user_of_sub($ps->{sub}), $sq->{id}, 'takes that account over');
error_ok(login($sq->{email}, $sq->{password}), 401, 'invalid_credentials',
    'the squatter\'s password is gone');
is(req(GET => '/api/v1/me', { bearer($sq->{access}) })->code, 401,
    'its access token is dead');
is(req(GET => '/api/v1/me', { bearer($sq->{key}) })->code, 401,
    'its API key is dead');

my $w = signup(tag => 'oidc-unverified-claim');
push @made, $w->{id};
$dbh->do('UPDATE users SET email_verified_at = UTC_TIMESTAMP(6) WHERE id = ?',
    undef, $w->{id});
my $pw = person(email => $w->{email}, verified => 0);
signed_in_ok(dance(browser(), $pw), 'an unverified email claim');
my $other = user_of_sub($pw->{sub});
push @made, $other if $other;
isnt($other // '', $w->{id}, 'links nothing: an account of its own');

# The address's account linked to another subject: 409.
my $pv2 = person(email => $v->{email});
page_ok(dance(browser(), $pv2), 409, qr/different account/,
    'another subject with a linked account\'s address');

# --- a guest ----------------------------------------------------------------------
my $gres = req(POST => '/api/v1/auth/guest', { 'X-Forwarded-For' => addr() });
my $g = eval { $gres->json } // {};
my $gid = $g->{user}{id};
push @made, $gid if $gid;
my $gtok = $g->{tokens}{access_token} // '';
is(req(GET => '/demo/spend', { bearer($gtok) })->code, 200,
    'a guest spends a credit');
my $pg = person();
signed_in_ok(dance(browser(), $pg, headers => { bearer($gtok) }),
    'OIDC started with the guest\'s token');
is(user_of_sub($pg->{sub}), $gid, 'the guest became that account');
is(db_row('SELECT email FROM users WHERE id = ?', $gid)->{email},
    $pg->{email}, 'with the provider\'s email');
is(db_row("SELECT COUNT(*) AS n FROM credit_ledger WHERE user_id = ? AND "
    . "kind = 'spend'", $gid)->{n}, 1, 'its usage kept');
is(eval { req(GET => '/api/v1/me', { bearer($gtok) })->json->{trial}
    {credits_remaining} }, 12, 'its credits kept beside the trial\'s');

# --- refusals -----------------------------------------------------------------------
my $n = person();
page_ok(dance(browser(), $n, state => 'forged'), 400, qr/state/,
    'a wrong state');
page_ok(dance(browser(), $n, next => { claims => { nonce => 'other' } }), 400,
    qr/did not pass our checks/, 'a wrong nonce');
page_ok(dance(browser(), $n, next => { claims => { aud => 'someone' } }), 400,
    qr/did not pass our checks/, 'a wrong audience');
page_ok(dance(browser(), $n, next => { claims => { iss => 'http://evil' } }),
    400, qr/did not pass our checks/, 'a wrong issuer');
page_ok(dance(browser(), $n, next => { claims => { exp => time - 600 } }),
    400, qr/did not pass our checks/, 'an expired ID token');
page_ok(dance(browser(), $n, next => { alg => 'none' }), 400,
    qr/did not pass our checks/, 'alg none');
page_ok(dance(browser(), $n, next => { alg => 'HS256' }), 400,
    qr/did not pass our checks/, 'HS256 keyed with the public key');
page_ok(dance(browser(), $n, next => { claims => { azp => 'other' } }), 400,
    qr/did not pass our checks/, 'another azp');
page_ok(dance(browser(), $n, deny => 1), 403, qr/not signed in/,
    'consent denied');
ok(!user_of_sub($n->{sub}), 'none of them made an account');
# The callback URL replayed: its state cookie is gone.
my $ub = browser();
$res = $ub->get(base() . '/api/v1/auth/oidc/fake')->res;
$auth = Mojo::URL->new($res->headers->location);
$auth->query->merge(fake_user => $n->{key});
my $cb = $ub->get($auth)->res->headers->location;
signed_in_ok($ub->get($cb)->res, 'a good callback');
push @made, user_of_sub($n->{sub}) // ();
page_ok($ub->get($cb)->res, 400, qr/state/, 'the same callback again');

# --- rotation to an ES256 key ----------------------------------------------------------
my $k = fake_post('oidc', '/_fake/keys', { rotate => 'EC' });
my $pe = person();
sleep 1.2;
signed_in_ok(dance(browser(), $pe), 'an ID token of a new ES256 key');
push @made, user_of_sub($pe->{sub}) // ();
ok(user_of_sub($pe->{sub}), 'signed in');

done_testing();
