#!/usr/bin/perl
# GitHub login (contract sections 3 and 12) against the fake GitHub:
# the authorize redirect with state and PKCE, the whole dance with a
# cookie jar, signing in again, linking a verified account, taking over
# an unverified one, one trial per email and per GitHub id, the second
# factor, and every failure ending on a page (never a 500).

use strict;
use warnings;
use lib 't/lib', 't/fakes';

use Test::More;
use Mojo::URL;
use Mojo::UserAgent::CookieJar;
use TG;
use Fakes qw(fake_start fake_post fake_get fake_port);
use BillingTest;

fake_start('github');
my $GH = 'http://127.0.0.1:' . fake_port('github');

# A GitHub user on the fake; returns {key, id, email, login}.
sub gh_user {
	my (%o) = @_;
	my $u = unique();
	my $key = "u$u";
	my $email = $o{email} // "gh$u\@example.com";
	my $id = $o{id} // 10_000_000 + int(rand 900_000_000);
	my $emails = $o{emails} // [
	    { email => "other$u\@example.com", primary => \0, verified => \1 },
	    { email => $email, primary => \1, verified => \1 } ];
	fake_post('github', '/_fake/users', { $key => { id => $id,
	    login => "octo$u", name => $o{name} // 'Octo Cat',
	    emails => $emails } });
	return { key => $key, id => $id, email => $email, login => "octo$u" };
}

# A browser: its own user agent and cookie jar.
sub browser {
	my $ua = ua();
	$ua->cookie_jar(Mojo::UserAgent::CookieJar->new);
	return $ua;
}

# Starts the flow in $ua; returns (response, authorize URL).
sub start_flow {
	my ($ua) = @_;
	my $res = $ua->get(base() . '/api/v1/auth/github')->result;
	return ($res, Mojo::URL->new($res->headers->location // ''));
}

# The whole dance for GitHub user $gh in browser $ua; returns the
# callback's response.  %o: deny => 1.
sub dance {
	my ($ua, $gh, %o) = @_;
	my ($res, $auth) = start_flow($ua);
	return $res unless $res->code == 302;
	$auth->query->merge(fake_user => $gh->{key});
	$auth->query->merge(fake_deny => 1) if $o{deny};
	my $back = $ua->get($auth)->result;
	return $back unless $back->code == 302;
	return $ua->get($back->headers->location)->result;
}

sub session_cookie {
	my ($ua) = @_;
	my ($c) = grep { $_->name eq '__Host-tg_session' }
	    @{ $ua->cookie_jar->all };
	return $c;
}

# Asserts an HTML failure page with $status mentioning $re.
sub page_ok {
	my ($res, $status, $re, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($res->code, $status, "$name: $status");
	like($res->headers->content_type // '', qr{^text/html},
	    "$name: an HTML page");
	like($res->body // '', $re, "$name: the page says what happened");
	ok(!grep({ /^__Host-tg_session=[^;]/ } @{ $res->headers->every_header(
	    'Set-Cookie') }), "$name: no session cookie");
}

# --- The redirect to GitHub. ---------------------------------------------
my $ua = browser();
my ($res, $auth) = start_flow($ua);
is($res->code, 302, 'GET /api/v1/auth/github: 302');
is($auth->host_port, '127.0.0.1:' . fake_port('github'),
    'to the configured authorize URL');
is($auth->path->to_string, '/login/oauth/authorize', 'authorize path');
my $q = $auth->query;
is($q->param('client_id'), 'devstack-client', 'client_id');
is($q->param('redirect_uri'), base() . '/api/v1/auth/github/callback',
    'redirect_uri on base_url');
is($q->param('scope'), 'read:user user:email', 'scope');
is($q->param('code_challenge_method'), 'S256', 'code_challenge_method S256');
like($q->param('code_challenge') // '', qr/^[A-Za-z0-9_-]{43}$/,
    'code_challenge: base64url of SHA-256');
like($q->param('state') // '', qr/^[A-Za-z0-9_-]{32,}$/, 'a random state');
my ($set) = grep { /^tg_github=/ }
    @{ $res->headers->every_header('Set-Cookie') };
ok($set, 'a state cookie');
like($set // '', qr/;\s*HttpOnly/i, 'state cookie: HttpOnly');
like($set // '', qr/;\s*Secure/i, 'state cookie: Secure');
like($set // '', qr/;\s*SameSite=Lax/i, 'state cookie: SameSite=Lax');
like($set // '', qr/;\s*Max-Age=\d{2,3}\b/i, 'state cookie: short-lived');
unlike($set // '', qr/\Q@{[ $q->param('state') ]}\E/,
    'state cookie: the state is not in clear');
my ($res2, $auth2) = start_flow(browser());
isnt($auth2->query->param('state'), $q->param('state'),
    'each start has its own state');
isnt($auth2->query->param('code_challenge'), $q->param('code_challenge'),
    'and its own challenge');

# --- A new account through the whole dance. --------------------------------
my $gh = gh_user();
$ua = browser();
$res = dance($ua, $gh);
is($res->code, 302, 'callback: 302');
is($res->headers->location, base() . '/profile', 'callback: to /profile');
my $sc = session_cookie($ua);
ok($sc, 'callback: a session cookie');
my ($setc) = grep { /^__Host-tg_session=/ }
    @{ $res->headers->every_header('Set-Cookie') };
like($setc // '', qr/HttpOnly/i, 'session cookie: HttpOnly');
like($setc // '', qr/Secure/i, 'session cookie: Secure');
like($setc // '', qr/SameSite=Lax/i, 'session cookie: SameSite=Lax');
ok(grep({ /^tg_github=;.*Max-Age=0/ }
    @{ $res->headers->every_header('Set-Cookie') }),
    'callback: the state cookie is cleared');

my $r = $ua->get(base() . '/api/v1/sessions')->result;
is($r->code, 200, 'the session cookie logs in');
is(scalar @{ $r->json // [] }, 1, 'one session');
my $dbh = dbh();
my $row = $dbh->selectrow_hashref('SELECT id, email, name, github_id, '
    . 'github_login, password_hash, email_verified_at, trial_started_at, '
    . 'trial_ends_at > trial_started_at AS trial_live FROM users '
    . 'WHERE email_lc = ?', undef, lc $gh->{email});
ok($row, 'an account for the verified primary email');
is($row->{github_id}, $gh->{id}, 'linked to the GitHub id');
is($row->{github_login}, $gh->{login}, 'with the GitHub login');
is($row->{name}, 'Octo Cat', 'named after the GitHub name');
ok(!defined $row->{password_hash}, 'no password');
ok(defined $row->{email_verified_at}, 'email verified');
ok($row->{trial_live}, 'trial started');
is(db_one('SELECT allowance FROM credit_balances WHERE user_id = ?',
    $row->{id}), conf_get('trial', 'credits') // 10, 'trial credits granted');
is(db_one("SELECT kind FROM sessions WHERE user_id = ?", $row->{id}),
    'github', 'a session of kind github');
my $uid = $row->{id};
$r = $ua->get(base() . '/api/v1/billing')->result;
is($r->json->{plan}, 'trial', 'on the trial plan');

# What tollgate sent to the token endpoint.
my $st = fake_get('github', '/_fake/state');
my $treq = $st->{token_requests}[-1];
like($treq->{accept} // '', qr{application/json}, 'token: asks for JSON');
is($treq->{params}{client_id}, 'devstack-client', 'token: client_id');
is($treq->{params}{client_secret}, 'devstack-secret', 'token: client_secret');
is($treq->{params}{redirect_uri}, base() . '/api/v1/auth/github/callback',
    'token: redirect_uri');
like($treq->{params}{code_verifier} // '', qr/^[A-Za-z0-9_-]{43,128}$/,
    'token: a code_verifier (the fake checked it against the challenge)');
ok(defined $treq->{params}{code}, 'token: the code');

# --- Signing in again: the same account. -----------------------------------
my $ua2 = browser();
$res = dance($ua2, $gh);
is($res->code, 302, 'second sign-in: 302');
ok(session_cookie($ua2), 'second sign-in: a session cookie');
is(db_one('SELECT COUNT(*) FROM users WHERE github_id = ?', $gh->{id}), 1,
    'second sign-in: still one account');
is(db_one('SELECT COUNT(*) FROM sessions WHERE user_id = ?', $uid), 2,
    'second sign-in: a second session of the same account');

# --- Failures end on pages. -------------------------------------------------
$res = dance(browser(), gh_user(), deny => 1);
page_ok($res, 403, qr/did not allow/i, 'denied consent');

$res = browser()->get(base() . '/api/v1/auth/github/callback?code=abc')
    ->result;
page_ok($res, 400, qr/state/i, 'missing state');

$ua = browser();
($res, $auth) = start_flow($ua);
$auth->query->merge(fake_user => gh_user()->{key});
my $back = Mojo::URL->new($ua->get($auth)->result->headers->location);
my $code = $back->query->param('code');
$back->query->merge(state => 'x' . $back->query->param('state'));
page_ok($ua->get($back)->result, 400, qr/state/i, 'wrong state');
# The same code with the right state but from another browser (no cookie).
$back->query->merge(state => $auth->query->param('state'));
page_ok(browser()->get($back)->result, 400, qr/state/i,
    'right state without the cookie (another browser)');

# A code used once does not work again, even with a fresh state.
$ua = browser();
($res, $auth) = start_flow($ua);
my $reuse = base() . "/api/v1/auth/github/callback?code=$treq->{params}{code}"
    . '&state=' . $auth->query->param('state');
page_ok($ua->get($reuse)->result, 400, qr/already used|expired/i,
    'reused code');

# PKCE: a code issued to one browser's challenge, brought back with
# another browser's state cookie (and so its verifier), is refused.
my $uaA = browser();
my (undef, $authA) = start_flow($uaA);
$authA->query->merge(fake_user => gh_user()->{key});
my $codeA = Mojo::URL->new($uaA->get($authA)->result->headers->location)
    ->query->param('code');
my $uaB = browser();
my (undef, $authB) = start_flow($uaB);
$res = $uaB->get(base() . "/api/v1/auth/github/callback?code=$codeA&state="
    . $authB->query->param('state'))->result;
page_ok($res, 400, qr/already used or has expired/i,
    'a code with another verifier (PKCE)');
is(fake_get('github', '/_fake/state')->{token_requests}[-1]{params}{code},
    $codeA, 'PKCE: the fake was asked with that code');

# GitHub down.
fake_post('github', '/_fake/mode', { down => 1 });
$res = dance(browser(), gh_user());
page_ok($res, 503, qr/GitHub could not be reached/i, 'GitHub down');
fake_post('github', '/_fake/mode', { down => 0 });

# No verified primary email.
my $noemail = gh_user(emails => [
    { email => 'unverified' . unique() . '@example.com', primary => \1,
      verified => \0 },
    { email => 'second' . unique() . '@example.com', primary => \0,
      verified => \1 } ]);
$res = dance(browser(), $noemail);
page_ok($res, 400, qr/no verified primary email/i, 'no verified email');
is(db_one('SELECT COUNT(*) FROM users WHERE github_id = ?', $noemail->{id}),
    0, 'no verified email: no account');

# --- Linking an account whose email is verified. ---------------------------
my $u = new_user();
dbh()->do('UPDATE users SET email_verified_at = UTC_TIMESTAMP(6), '
    . 'trial_started_at = UTC_TIMESTAMP(6), trial_ends_at = '
    . 'UTC_TIMESTAMP(6) + INTERVAL 30 DAY WHERE id = ?', undef, $u->{id});
my $ghl = gh_user(email => uc($u->{email}));	# emails ignore ASCII case
$ua = browser();
$res = dance($ua, $ghl);
is($res->code, 302, 'link: 302');
is(db_one('SELECT id FROM users WHERE github_id = ?', $ghl->{id}), $u->{id},
    'link: the account with that email is linked');
$r = json_post('/api/v1/auth/login', { email => $u->{email},
    password => $u->{password} }, { 'X-Forwarded-For' => '127.0.50.201' });
is($r->code, 200, 'link: the password still works');
$r = req(GET => '/api/v1/sessions', bearer($u->{access}));
is($r->code, 200, 'link: its other sessions still work');
is(db_one("SELECT COUNT(*) FROM trial_history WHERE kind = 'github' AND "
    . 'subject = ?', $ghl->{id}), 1,
    'link: the GitHub id counts as having had a trial');

# --- Taking over an account whose email was never verified. ---------------
my $v = new_user();
my $ght = gh_user(email => $v->{email});
$ua = browser();
$res = dance($ua, $ght);
is($res->code, 302, 'takeover: 302');
is(db_one('SELECT id FROM users WHERE github_id = ?', $ght->{id}), $v->{id},
    'takeover: the same account, now linked');
ok(!defined db_one('SELECT password_hash FROM users WHERE id = ?', $v->{id}),
    'takeover: the password is removed');
error_ok(req(GET => '/api/v1/sessions', bearer($v->{access})), 401,
    'unauthenticated', 'takeover: the old access token');
error_ok(req(GET => '/api/v1/billing', bearer($v->{api_key})), 401,
    'unauthenticated', 'takeover: the old API key');
error_ok(json_post('/api/v1/auth/login', { email => $v->{email},
    password => $v->{password} }, { 'X-Forwarded-For' => '127.0.50.202' }),
    401, 'invalid_credentials', 'takeover: the old password');
error_ok(json_post('/api/v1/auth/refresh', { refresh_token =>
    $v->{refresh} }), 401, 'unauthenticated', 'takeover: the old refresh token');
$r = $ua->get(base() . '/api/v1/sessions')->result;
is($r->code, 200, 'takeover: the GitHub session works');
is(scalar @{ $r->json // [] }, 1, 'takeover: only the GitHub session');
ok(defined db_one('SELECT email_verified_at FROM users WHERE id = ?',
    $v->{id}), 'takeover: the email counts as verified');

# --- One trial per email and per GitHub id, ever. ---------------------------
my $gh1 = gh_user();
$res = dance(browser(), $gh1);
my $first = db_one('SELECT id FROM users WHERE github_id = ?', $gh1->{id});
ok($first, 'trial history: an account made');
dbh()->do('DELETE FROM users WHERE id = ?', undef, $first);
$ua = browser();
$res = dance($ua, $gh1);
is($res->code, 302, 'the same GitHub id again (account deleted): 302');
$row = dbh()->selectrow_hashref('SELECT id, trial_ends_at <= '
    . 'UTC_TIMESTAMP(6) AS ended FROM users WHERE github_id = ?', undef,
    $gh1->{id});
isnt($row->{id}, $first, 'a new account');
ok($row->{ended}, 'its trial is over at once');
$r = $ua->get(base() . '/api/v1/billing')->result;
isnt($r->json->{plan}, 'trial', 'not on the trial plan');
dbh()->do('DELETE FROM users WHERE id = ?', undef, $row->{id});
# Another GitHub id with that email.
my $gh2 = gh_user(email => $gh1->{email});
dance(browser(), $gh2);
ok(db_one('SELECT trial_ends_at <= UTC_TIMESTAMP(6) FROM users WHERE '
    . 'github_id = ?', $gh2->{id}), 'an email that had a trial: trial over');
is(db_one("SELECT COUNT(*) FROM trial_history WHERE kind = 'github' AND "
    . 'subject = ?', $gh2->{id}), 0,
    'and that GitHub id is not marked as having had one');
dbh()->do('DELETE FROM users WHERE github_id = ?', undef, $gh2->{id});
# The first GitHub id with a new email.
my $gh3 = gh_user(id => $gh1->{id});
dance(browser(), $gh3);
ok(db_one('SELECT trial_ends_at <= UTC_TIMESTAMP(6) FROM users WHERE '
    . 'github_id = ?', $gh1->{id}), 'a GitHub id that had a trial: trial over');
is(db_one("SELECT COUNT(*) FROM trial_history WHERE kind = 'email' AND "
    . 'subject = ?', lc $gh3->{email}), 0,
    'and that email is not marked as having had one');

# --- The second factor and disabled accounts. ------------------------------
my $ghz = gh_user();
dance(browser(), $ghz);
my $zid = db_one('SELECT id FROM users WHERE github_id = ?', $ghz->{id});
dbh()->do('INSERT INTO totp_secrets (user_id, secret_enc, enabled_at) '
    . 'VALUES (?, ?, UTC_TIMESTAMP(6))', undef, $zid, 'x' x 40);
my $before = db_one('SELECT COUNT(*) FROM sessions WHERE user_id = ?', $zid);
$ua = browser();
$res = dance($ua, $ghz);
is($res->code, 200, 'TOTP on: a page, not a redirect');
like($res->body // '', qr/two-factor|second factor/i,
    'TOTP on: the page says a second factor is needed');
ok(!session_cookie($ua), 'TOTP on: no session cookie');
is(db_one('SELECT COUNT(*) FROM sessions WHERE user_id = ?', $zid), $before,
    'TOTP on: no session made');

dbh()->do('UPDATE users SET disabled_at = UTC_TIMESTAMP(6) WHERE id = ?',
    undef, $zid);
dbh()->do('DELETE FROM totp_secrets WHERE user_id = ?', undef, $zid);
page_ok(dance(browser(), $ghz), 403, qr/disabled/i, 'disabled account');

# An email whose account is linked to another GitHub id.
my $ghx = gh_user(email => $gh->{email});
page_ok(dance(browser(), $ghx), 409, qr/different GitHub account/i,
    'email linked to another GitHub id');

# Clean up what this file made.
$dbh->do('DELETE FROM users WHERE id IN (?, ?, ?, ?, ?)', undef, $uid,
    $u->{id}, $v->{id}, $zid, db_one('SELECT id FROM users WHERE '
    . 'github_id = ?', $gh1->{id}) // '');

done_testing();
