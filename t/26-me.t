#!/usr/bin/perl
# The account itself (contract section 3): GET /me (also with an API key)
# with the trial and subscription, PATCH /me, the change of email address
# (link to the new address, notice to the old one, effective when
# followed, 409 when the address was taken meanwhile), and DELETE /me
# (the account, its keys and sessions gone; the last admin stays).

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use TG;
use TGMail;
use TGAccount;

sink_start();
my $base = base();
my $dbh = dbh();

# --- GET and PATCH ------------------------------------------------------
my $u = verified_user(tag => 'me');
my $res = req(GET => '/api/v1/me', H(bearer($u->{access})));
is($res->code, 200, 'GET /me: 200');
my $j = eval { $res->json } // {};
is_deeply([sort keys %$j], [qw(subscription trial user)], '{user, trial, subscription}');
is_deeply([sort keys %{ $j->{user} // {} }],
    [qw(created_at email email_verified guest id name plan role)],
    'the user object (guest: section 3, More ways in)');
is_deeply([sort keys %{ $j->{trial} // {} }], [qw(credits_remaining ends_at)],
    'trial {ends_at, credits_remaining}');
is($j->{subscription}, undef, 'subscription null');
$res = req(GET => '/api/v1/me', H(bearer($u->{key})));
is($res->code, 200, 'GET /me with an API key: 200');
is(eval { $res->json->{user}{id} }, $u->{id}, 'the key\'s owner');

$dbh->do('INSERT INTO subscriptions (id, user_id, plan, status, '
    . 'current_period_end, stripe_updated) VALUES (?, ?, ?, ?, '
    . 'UTC_TIMESTAMP(6) + INTERVAL 20 DAY, 1)', undef,
    'sub_test_' . int(rand(1e12)), $u->{id}, 'pro', 'active');
$j = eval { req(GET => '/api/v1/me', H(bearer($u->{access})))->json } // {};
is($j->{subscription}{plan}, 'pro', 'subscription.plan');
is($j->{subscription}{status}, 'active', 'subscription.status');
like($j->{subscription}{current_period_end} // '',
    qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'subscription.current_period_end');
is($j->{user}{plan}, 'pro', 'user.plan follows the subscription');

$res = jreq(PATCH => '/api/v1/me', { name => "Grace \x{2603} Hopper" },
    bearer($u->{access}));
is($res->code, 200, 'PATCH /me: 200');
is(eval { $res->json->{user}{name} }, "Grace \x{2603} Hopper", 'the new name');
for my $bad (['', 'empty'], ['   ', 'blank'], ['x' x 101, '101 bytes'],
    ["a\x{0}b", 'a NUL'], ["a\nb", 'a line break']) {
	$res = jreq(PATCH => '/api/v1/me', { name => $bad->[0] },
	    bearer($u->{access}));
	error_ok($res, 422, 'validation_failed', "name: $bad->[1]");
	ok(exists((eval { $res->json->{error}{fields} } // {})->{name}),
	    "name: $bad->[1]: fields names name");
}
error_ok(jreq(PATCH => '/api/v1/me', { name => 'Key' }, bearer($u->{key})),
    403, 'forbidden', 'PATCH /me with an API key');
error_ok(jreq(PATCH => '/api/v1/me', { name => 'Nobody' }), 401,
    'unauthenticated', 'PATCH /me without a login');

# --- the email address ---------------------------------------------------
my $old = $u->{email};
my $new = unique_email('new');
$res = jpost('/api/v1/me/email', { email => $new, password => 'wrong-pw-123' },
    bearer($u->{access}));
error_ok($res, 422, 'validation_failed', 'email change with a wrong password');
ok(exists((eval { $res->json->{error}{fields} } // {})->{password}),
    'fields names password');
error_ok(jpost('/api/v1/me/email', { email => $old, password => $u->{password} },
    bearer($u->{access})), 422, 'validation_failed', 'the current address');
my $taken = signup(tag => 'taken');
error_ok(jpost('/api/v1/me/email', { email => uc $taken->{email},
    password => $u->{password} }, bearer($u->{access})), 409, 'email_taken',
    'an address another account has');
error_ok(jpost('/api/v1/me/email', { email => $new, password => $u->{password} },
    bearer($u->{key})), 403, 'forbidden', 'with an API key');

$res = jpost('/api/v1/me/email', { email => $new, password => $u->{password} },
    bearer($u->{access}));
is($res->code, 202, 'email change: 202');
my $cm = wait_mail($new, sub { $_[0]{subject} =~ /confirm/i });
ok($cm, 'a link goes to the new address');
my $link = mail_link($cm, '/verify-email');
like($link // '', qr{^\Q$base\E/verify-email\?token=}, 'a /verify-email link');
my $notice = wait_mail($old, sub { $_[0]{subject} =~ /changed/i });
ok($notice, 'a notice goes to the old address');
like($notice->{text} // '', qr/\Q$new\E/, 'naming the new address');
is(eval { req(GET => '/api/v1/me', H(bearer($u->{access})))->json->{user}{email} },
    $old, 'nothing changes until the link is followed');

(my $path = $link) =~ s/^\Q$base\E//;
# Contract section 3 (changed): the GET of the link uses nothing; its
# page's button (a CSRF-protected POST) completes the change.
{
	my $b = ua();
	$res = $b->get("$base$path" => H())->result;
	is($res->code, 200, 'following the link: 200');
	my ($csrf) = $res->body =~ /name="csrf" value="([^"]+)"/;
	my ($tok) = $path =~ /token=([A-Za-z0-9_-]+)/;
	$res = $b->post("$base/verify-email" => H('Content-Type' =>
	    'application/x-www-form-urlencoded') => "token=$tok&csrf="
	    . ($csrf // ''))->result;
	is($res->code, 200, 'its button: 200');
}
is(eval { req(GET => '/api/v1/me', H(bearer($u->{access})))->json->{user}{email} },
    $new, 'the address has changed');
ok(db_row('SELECT 1 AS x FROM trial_history WHERE kind = ? AND subject = ? '
    . 'AND user_id = ?', 'email', lc $new, $u->{id}),
    'the new address counts as having had this account\'s trial');
is(login($new, $u->{password})->code, 200, 'login with the new address');
error_ok(login($old, $u->{password}), 401, 'invalid_credentials',
    'not with the old one');
is(req(GET => $path, H())->code, 400, 'the link again: 400');

# Taken meanwhile.
my $w = verified_user(tag => 'meanwhile');
my $target = unique_email('target');
is(jpost('/api/v1/me/email', { email => $target, password => $w->{password} },
    bearer($w->{access}))->code, 202, 'another change: 202');
my $wm = wait_mail($target, sub { $_[0]{subject} =~ /confirm/i });
signup(email => $target);
error_ok(jpost('/api/v1/auth/verify-email', { token => mail_token($wm,
    '/verify-email') }), 409, 'email_taken', 'the address was taken meanwhile');
is(eval { req(GET => '/api/v1/me', H(bearer($w->{access})))->json->{user}{email} },
    $w->{email}, 'the address stays as it was');

# A change of an unverified account verifies the new address (and only a
# link for the address the account has counts as verification).
my $x = signup(tag => 'unverified');
my $xv = wait_mail($x->{email});
my $xnew = unique_email('xnew');
jpost('/api/v1/me/email', { email => $xnew, password => $x->{password} },
    bearer($x->{access}));
my $xm = wait_mail($xnew, sub { $_[0]{subject} =~ /confirm/i });
is(jpost('/api/v1/auth/verify-email', { token => mail_token($xm,
    '/verify-email') })->code, 200, 'the change link: 200');
$j = eval { req(GET => '/api/v1/me', H(bearer($x->{access})))->json } // {};
ok($j->{user}{email_verified}, 'the new address is verified');
ok($j->{trial}{ends_at}, 'and the trial has started');
error_ok(jpost('/api/v1/auth/verify-email', { token => mail_token($xv,
    '/verify-email') }), 400, 'invalid_token',
    'the old address\'s verification link no longer counts');

# --- DELETE /me -------------------------------------------------------------
my $d = signup(tag => 'delete');
my $dl = eval { login($d->{email}, $d->{password})->json->{tokens} } // {};
$res = jreq(DELETE => '/api/v1/me', { password => 'wrong-pw-123' },
    bearer($d->{access}));
error_ok($res, 422, 'validation_failed', 'delete with a wrong password');
ok(exists((eval { $res->json->{error}{fields} } // {})->{password}),
    'fields names password');
error_ok(jreq(DELETE => '/api/v1/me', { password => $d->{password} },
    bearer($d->{key})), 403, 'forbidden', 'delete with an API key');
error_ok(jreq(DELETE => '/api/v1/me', {}, bearer($d->{access})), 422,
    'validation_failed', 'delete without the password');
is(jreq(DELETE => '/api/v1/me', { password => $d->{password} },
    bearer($d->{access}))->code, 204, 'DELETE /me: 204');
error_ok(req(GET => '/api/v1/me', H(bearer($d->{access}))), 401,
    'unauthenticated', 'its access token stops');
error_ok(req(GET => '/api/v1/me', H(bearer($dl->{access_token}))), 401,
    'unauthenticated', 'so does its other session\'s');
error_ok(req(GET => '/api/v1/me', H(bearer($d->{key}))), 401,
    'unauthenticated', 'and its API key');
error_ok(jpost('/api/v1/auth/refresh', { refresh_token => $dl->{refresh_token} }),
    401, 'unauthenticated', 'and its refresh token');
error_ok(login($d->{email}, $d->{password}), 401, 'invalid_credentials',
    'no login');
for my $t (qw(users api_keys sessions tokens credit_balances)) {
	my $col = $t eq 'users' ? 'id' : 'user_id';
	is(db_row("SELECT COUNT(*) AS n FROM $t WHERE $col = ?", $d->{id})->{n},
	    0, "no rows left in $t");
}
ok(db_row('SELECT 1 AS x FROM audit_log WHERE target_id = ? AND action = ?',
    $d->{id}, 'user.delete'), 'the audit log records it');
ok(wait_mail($d->{email}, sub { $_[0]{subject} =~ /deleted/i }),
    'a last mail says so');

# The last admin cannot leave.  Every other admin is set aside (disabled)
# for the moment of the test and restored at the end.
{
	my $adm = signup(tag => 'admin');
	$dbh->do('UPDATE users SET role = ? WHERE id = ?', undef, 'admin',
	    $adm->{id});
	my $others = $dbh->selectcol_arrayref('SELECT id FROM users WHERE role '
	    . '= ? AND disabled_at IS NULL AND id <> ?', undef, 'admin',
	    $adm->{id});
	my $restore = sub {
		$dbh->do('UPDATE users SET disabled_at = NULL WHERE id = ?',
		    undef, $_) for @$others;
	};
	$dbh->do('UPDATE users SET disabled_at = UTC_TIMESTAMP(6) WHERE id = ?',
	    undef, $_) for @$others;
	my $r = eval { jreq(DELETE => '/api/v1/me', { password => $adm->{password} },
	    bearer($adm->{access})) };
	$restore->();
	error_ok($r, 409, 'last_admin', 'the last admin deletes themself');
	ok(db_row('SELECT 1 AS x FROM users WHERE id = ?', $adm->{id}),
	    'and is still there');
	is(jreq(DELETE => '/api/v1/me', { password => $adm->{password} },
	    bearer($adm->{access}))->code, @$others ? 204 : 409,
	    'with another admin there, an admin may go');
}
throttle_forget(addrs => [addr()], pairs => [[$u->{email}, addr()],
    [$d->{email}, addr()], [$old, addr()]]);

done_testing;
