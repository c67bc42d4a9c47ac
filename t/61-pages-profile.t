#!/usr/bin/perl
# /profile (name, email, password, API keys shown once, regenerate and
# revoke, sessions), /usage (meters and the SVG chart of daily use) and
# /billing (plans side by side, checkout, payments): each form's success,
# its messages in the page, CSRF refusal, and another user's objects.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use TG;
require './t/60-helpers.pl';

my $dbh = dbh();
my ($email, $pw, $su) = make_user('profile', 'Profile <Person>');
my $uid = $su->{user}{id};
my $ua = browser();
is(page_login($ua, $email, $pw)->code, 303, 'logged in through the form');

my $res = bget($ua, '/profile');
is($res->code, 200, 'profile: 200');
html_headers_ok($res, 'profile');
like($res->body, qr{Profile &lt;Person&gt;}, 'profile: the name, escaped');
like($res->body, qr{not verified yet}, 'profile: the email is not verified');
like($res->body, qr{<section id="keys">}, 'profile: the API keys');
like($res->body, qr{<section id="sessions">}, 'profile: the sessions');
like($res->body, qr{Two-factor authentication}, 'profile: the second factor');
like($res->body, qr{this browser}, 'profile: this browser\'s session is marked');
like($res->body, qr{<code>\Q${\ substr($su->{api_key}{key}, 0, 12)}\E…</code>},
    'profile: the signup key by its preview');
unlike($res->body, qr{\Q$su->{api_key}{key}\E}, 'profile: never the whole key');

# Name.
$res = bpost($ua, '/profile/name', { name => '   ' });
is($res->code, 422, 'name: blank: 422');
like($res->body, qr{id="name-error">Name is required\.<}, 'name 422: the message at the field');
$res = bpost($ua, '/profile/name', { csrf => undef, name => 'New Name' });
is($res->code, 403, 'name without CSRF: 403');
$res = bpost($ua, '/profile/name', { name => 'New "Name"' });
is($res->code, 303, 'name: 303');
like(location($res), qr{^/profile\?notice=name}, 'name: back to the profile');
like(bget($ua, '/profile?notice=name')->body, qr{value="New &quot;Name&quot;"}, 'name: saved and escaped');

# Password: the current one is checked.
$res = bpost($ua, '/profile/password', { current_password => 'not my password', new_password => 'brand new password' });
is($res->code, 422, 'password with a wrong current one: 422');
like($res->body, qr{id="current_password-error">Current password is wrong\.<}, 'password 422: the message');
$res = bpost($ua, '/profile/password', { current_password => $pw, new_password => 'short' });
is($res->code, 422, 'password too short: 422');
like($res->body, qr{id="new_password-error">New password must be at least 10 characters\.<},
    'password 422: the message at the new password');
my $other = browser();
page_login($other, $email, $pw);
is(bget($other, '/profile')->code, 200, 'a second browser is logged in');
$res = bpost($ua, '/profile/password', { current_password => $pw, new_password => 'brand new password' });
is($res->code, 303, 'password: 303');
is(bget($ua, '/profile')->code, 200, 'password: this browser stays logged in');
is(bget($other, '/profile')->code, 303, 'password: the other session is logged out');
$pw = 'brand new password';

# Email: password checked, taken addresses refused, a link sent.
my ($taken) = make_user('profile-taken');
$res = bpost($ua, '/profile/email', { email => $taken, password => $pw });
is($res->code, 409, 'email taken: 409');
like($res->body, qr{id="email-error">An account with this email already exists\.<}, 'email 409: the message');
$res = bpost($ua, '/profile/email', { email => 'new-' . $email, password => 'wrong password' });
is($res->code, 422, 'email with a wrong password: 422');
like($res->body, qr{id="password-error">Your password is wrong\.<}, 'email 422: the message');
$res = bpost($ua, '/profile/email', { email => 'bad', password => $pw });
is($res->code, 422, 'email malformed: 422');
$res = bpost($ua, '/profile/email', { email => "new-$email", password => $pw });
is($res->code, 303, 'email: 303');
my ($link) = $dbh->selectrow_array("SELECT COUNT(*) FROM outbox WHERE to_addr = ? AND body_text LIKE '%/verify-email?token=%'",
    undef, "new-$email");
is($link, 1, 'email: a link goes to the new address');

# API keys: created and shown once, regenerated, revoked.
$res = bpost($ua, '/profile/keys', { key_name => '', expires_in_days => '' });
is($res->code, 422, 'key without a name: 422');
like($res->body, qr{id="key_name-error">Name is required\.<}, 'key 422: the message at the name');
$res = bpost($ua, '/profile/keys', { key_name => 'ci <key>', expires_in_days => 'soon' });
is($res->code, 422, 'key with a bad expiry: 422');
like($res->body, qr{id="expires_in_days-error">}, 'key 422: the message at the expiry');
$res = bpost($ua, '/profile/keys', { csrf => undef, key_name => 'x' });
is($res->code, 403, 'key without CSRF: 403');
$res = bpost($ua, '/profile/keys', { key_name => 'ci <key>', expires_in_days => '30' });
is($res->code, 201, 'key: 201');
my ($key) = $res->body =~ m{<code id="new-key">(tgk_[A-Za-z0-9_-]+)</code>};
ok($key, 'key: shown in the page');
like($res->body, qr{ci &lt;key&gt;}, 'key: its name, escaped');
like($res->body, qr{not shown\s+again}, 'key: the page says it is shown once');
$res = bget($ua, '/profile');
unlike($res->body, qr{\Q$key\E}, 'key: not shown again') if $key;
my ($kid) = $dbh->selectrow_array("SELECT id FROM api_keys WHERE user_id = ? AND name = 'ci <key>'", undef, $uid);
ok($kid, 'key: stored');
my ($exp) = $dbh->selectrow_array('SELECT DATEDIFF(expires_at, UTC_TIMESTAMP()) FROM api_keys WHERE id = ?', undef, $kid);
ok($exp >= 29 && $exp <= 30, "key: expires in 30 days ($exp)");
my ($stored) = $dbh->selectrow_array('SELECT key_hash FROM api_keys WHERE id = ?', undef, $kid);
isnt($stored, $key, 'key: stored as a hash');

# Past the plan's limit (trial: 2 keys; the signup made one).
$res = bpost($ua, '/profile/keys', { key_name => 'third' });
is($res->code, 403, 'a key past the plan\'s limit: 403');
like($res->body, qr{as many API keys as your plan allows}, 'the limit is explained at the field');

$res = bpost($ua, "/profile/keys/$kid/regenerate", {});
is($res->code, 200, 'regenerate: 200');
my ($key2) = $res->body =~ m{<code id="new-key">(tgk_[A-Za-z0-9_-]+)</code>};
ok($key2 && $key2 ne ($key // ''), 'regenerate: a new key, shown');
my ($h2) = $dbh->selectrow_array('SELECT key_hash FROM api_keys WHERE id = ?', undef, $kid);
isnt($h2, $stored, 'regenerate: the old key\'s hash is gone');

# Another user's key and session: 403.
my ($oe, $opw, $os) = make_user('profile-other');
my ($okid) = $dbh->selectrow_array('SELECT id FROM api_keys WHERE user_id = ?', undef, $os->{user}{id});
my ($osid) = $dbh->selectrow_array('SELECT id FROM sessions WHERE user_id = ?', undef, $os->{user}{id});
is(bpost($ua, "/profile/keys/$okid/regenerate", {})->code, 403, "regenerate another's key: 403");
is(bpost($ua, "/profile/keys/$okid/delete", {})->code, 403, "revoke another's key: 403");
is(bpost($ua, "/profile/sessions/$osid/delete", {})->code, 403, "revoke another's session: 403");
my ($still) = $dbh->selectrow_array('SELECT COUNT(*) FROM api_keys WHERE id = ?', undef, $okid);
is($still, 1, "the other user's key is untouched");

$res = bpost($ua, "/profile/keys/$kid/delete", {});
is($res->code, 303, 'revoke: 303');
my ($gone) = $dbh->selectrow_array('SELECT COUNT(*) FROM api_keys WHERE id = ?', undef, $kid);
is($gone, 0, 'revoke: the key is gone');

# Sessions: revoke another of mine; then this one (logs out).
my $third = browser();
page_login($third, $email, $pw);
my ($tsid) = $dbh->selectrow_array('SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL '
    . 'ORDER BY created_at DESC LIMIT 1', undef, $uid);
like(bget($ua, '/profile')->body, qr{/profile/sessions/\Q$tsid\E/delete}, 'sessions: listed with revoke');
$res = bpost($ua, "/profile/sessions/$tsid/delete", {});
is($res->code, 303, 'revoke a session: 303');
is(bget($third, '/profile')->code, 303, 'the revoked session is logged out');
is(bget($ua, '/profile')->code, 200, 'this browser is not');

# Usage: meters, credits, and the chart from usage_daily.
$dbh->do('INSERT INTO usage_daily (user_id, meter, day, used) VALUES '
    . '(?, "compute_minutes", UTC_DATE(), 7), (?, "api_calls", UTC_DATE(), 3)', undef, $uid, $uid);
$res = bget($ua, '/usage');
is($res->code, 200, 'usage: 200');
html_headers_ok($res, 'usage');
like($res->body, qr{<tr id="meter-compute_minutes">}, 'usage: compute minutes');
like($res->body, qr{<tr id="meter-credits">}, 'usage: credits');
like($res->body, qr{<tr id="meter-api_calls">}, 'usage: API calls');
like($res->body, qr{id="credits-left">\d+<}, 'usage: credits left');
like($res->body, qr{<svg viewBox="0 0 \d+ \d+" role="img"}, 'usage: an SVG chart');
my $today = $dbh->selectrow_array("SELECT DATE_FORMAT(UTC_DATE(), '%Y-%m-%d')");
like($res->body, qr{<title>\Q$today\E: 7</title>}, "usage: today's compute bar with its value");
like($res->body, qr{Compute minutes per day, [0-9-]+ to [0-9-]+: 7 in all}, 'usage: the chart\'s title');

# Billing: plans side by side, the current one marked, checkout.
$res = bget($ua, '/billing');
is($res->code, 200, 'billing: 200');
html_headers_ok($res, 'billing');
for my $plan (qw(free pro team)) {
	like($res->body, qr{<article class="plan[^"]*" id="plan-$plan">}, "billing: the $plan plan");
}
like($res->body, qr{id="current-plan">trial<}, 'billing: the current plan');
like($res->body, qr{<input type="hidden" name="plan" value="pro">}, 'billing: an upgrade to pro');
$res = bpost($ua, '/billing/checkout', { csrf => undef, plan => 'pro' });
is($res->code, 403, 'checkout without CSRF: 403');
$res = bpost($ua, '/billing/checkout', { plan => 'pro' });
ok($res->code == 303 || $res->code == 503, 'checkout: 303 to Stripe, or 503 while billing is off (' . $res->code . ')');
my $inv = 'in_p_' . int(rand 1e9);
$dbh->do("INSERT INTO payments (id, user_id, stripe_invoice_id, amount, currency, status, invoice_url) "
    . "VALUES (?, ?, ?, 2900, 'usd', 'paid', 'https://invoice.example/x?a=1&b=2')",
    undef, substr($inv . ('x' x 22), 0, 22), $uid, $inv);
$res = bget($ua, '/billing');
like($res->body, qr{29\.00 USD}, 'billing: the payment, in units');
like($res->body, qr{href="https://invoice\.example/x\?a=1&amp;b=2"}, 'billing: the invoice link, escaped');

done_testing;
