#!/usr/bin/perl
# /admin: the user list with search and paging, a user's page, and its
# forms (plan, role, disable, credits, trial, delete), each audited as
# the admin API is; 403 for non-admins; CSRF refusals; the last admin.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use TG;
require './t/60-helpers.pl';

my $dbh = dbh();
my $tag = 'Adm' . int(rand 1e9);
my ($email, $pw, $su) = make_user('admpage', "$tag <b>one</b>");
my $uid = $su->{user}{id};

# A non-admin: 403 pages.
my $user = browser();
page_login($user, $email, $pw);
for my $path ('/admin', "/admin/users/$uid") {
	my $res = bget($user, $path);
	is($res->code, 403, "GET $path as a user: 403");
	like($res->headers->content_type // '', qr{^text/html}, "GET $path as a user: a page");
}
is(bpost($user, "/admin/users/$uid", { role => 'admin' })->code, 403, 'POST as a user: 403');
my ($role) = $dbh->selectrow_array('SELECT role FROM users WHERE id = ?', undef, $uid);
is($role, 'user', 'the user did not make itself an admin');
unlike(bget($user, '/profile')->body, qr{href="/admin"}, 'no Admin tab for a user');

# The admin.
my $ua = browser();
is(page_login($ua, $ENV{TG_ADMIN_EMAIL}, $ENV{TG_ADMIN_PASSWORD})->code, 303, 'the admin logs in');
my $res = bget($ua, '/admin');
is($res->code, 200, '/admin: 200');
html_headers_ok($res, '/admin');
like($res->body, qr{href="/admin"[^>]*aria-current="page"}, 'the Admin tab');
like($res->body, qr{id="user-count">\d+ users?<}, 'the count of users');
like($res->body, qr{<section id="payments">}, 'the recent payments');
like($res->body, qr{<section id="recent-audit">}, 'the recent changes');
$res = bget($ua, "/admin?q=$tag");
like($res->body, qr{id="user-count">1 user match<}, 'search by name: one');
like($res->body, qr{href="/admin/users/\Q$uid\E">\Q$email\E</a>}, 'search: the user, linked');
like($res->body, qr{\Q$tag\E &lt;b&gt;one&lt;/b&gt;}, 'search: the name, escaped');
like($res->body, qr{value="\Q$tag\E"}, 'search: the query kept in the box');
$res = bget($ua, '/admin?q=%3Cscript%3E');
unlike($res->body, qr{<script>}, 'a query with markup is escaped');
$res = bget($ua, '/admin?page=abc');
is($res->code, 200, 'a bad page number: the first page');

# Paging: 51 matching users make two pages.
my $ptag = 'Pg' . int(rand 1e9);
my @made;
for my $i (1 .. 51) {
	my $id = substr("pg$ptag$i" . ('x' x 22), 0, 22);
	$dbh->do('INSERT INTO users (id, email, email_lc, name) VALUES (?, ?, ?, ?)', undef,
	    $id, "$ptag-$i\@example.com", lc("$ptag-$i\@example.com"), "paging $i");
	push @made, $id;
}
$res = bget($ua, "/admin?q=$ptag");
like($res->body, qr{id="user-count">51 users match<}, 'paging: 51 match');
like($res->body, qr{Page 1 of 2}, 'paging: page 1 of 2');
like($res->body, qr{<a rel="next" href="/admin\?page=2&amp;q=\Q$ptag\E">}, 'paging: a link to page 2');
my @rows = $res->body =~ /<tr><td><a href="\/admin\/users\//g;
is(scalar @rows, 50, 'paging: 50 on the first page');
$res = bget($ua, "/admin?page=2&q=$ptag");
@rows = $res->body =~ /<tr><td><a href="\/admin\/users\//g;
is(scalar @rows, 1, 'paging: 1 on the second');
like($res->body, qr{rel="prev"}, 'paging: a link back');
$dbh->do('DELETE FROM users WHERE id IN (' . join(',', ('?') x @made) . ')', undef, @made);

# A user's page.
$res = bget($ua, "/admin/users/$uid");
is($res->code, 200, "a user's page: 200");
html_headers_ok($res, "a user's page");
like($res->body, qr{<h2>\Q$email\E</h2>}, "the user's email");
like($res->body, qr{id="user-plan">trial<}, "the user's plan");
like($res->body, qr{<section id="audit">}, 'the audit trail');
is(bget($ua, '/admin/users/nosuchuserxxxxxxxxxxxx')->code, 404, 'an unknown user: 404');

# Plan and role.
is(bpost($ua, "/admin/users/$uid", { csrf => undef, plan => 'pro' })->code, 403,
    'a change without CSRF: 403');
$res = bpost($ua, "/admin/users/$uid", { plan => 'pro', role => 'user' });
is($res->code, 303, 'plan: 303');
like(location($res), qr{^/admin/users/\Q$uid\E\?notice=saved}, 'plan: back to the user');
$res = bget($ua, "/admin/users/$uid?notice=saved");
like($res->body, qr{id="user-plan">pro <small>}, 'plan: pro, set by an admin');
like($res->body, qr{<td>user\.plan</td>}, 'plan: in the audit trail');
$res = bpost($ua, "/admin/users/$uid", { plan => 'nosuch' });
is($res->code, 422, 'an unknown plan: 422');
like($res->body, qr{There is no such plan\.}, 'an unknown plan: the message');
$res = bpost($ua, "/admin/users/$uid", { plan => '' });
like(bget($ua, "/admin/users/$uid")->body, qr{id="user-plan">trial<}, 'plan: back to automatic');

# Disable and enable.
$res = bpost($ua, "/admin/users/$uid", { disabled => 'true' });
is($res->code, 303, 'disable: 303');
is(bget($user, '/profile')->code, 403, 'the disabled user is refused at once');
like(bget($ua, "/admin/users/$uid")->body, qr{id="user-state">disabled}, 'disable: shown');
bpost($ua, "/admin/users/$uid", { disabled => 'false' });
# Issue 15: a session from before the disable stays dead once the account
# is enabled again; the user signs in anew.
is(bget($user, '/profile')->code, 303, 'enabled again: the old session is over');
is(page_login($user, $email, $pw)->code, 303, 'enabled again: a new login');
is(bget($user, '/profile')->code, 200, 'enabled again');

# Credits and trial.
$res = bpost($ua, "/admin/users/$uid/credits", { delta => '', reason => '' });
is($res->code, 422, 'credits without values: 422');
like($res->body, qr{id="delta-error">}, 'credits 422: the message at the amount');
like($res->body, qr{id="reason-error">Reason is required\.<}, 'credits 422: the message at the reason');
$res = bpost($ua, "/admin/users/$uid/credits", { delta => '12', reason => 'thanks <3' });
is($res->code, 303, 'credits: 303');
# The one credits figure (sql/routines/rules.sql, tg_credits): the 10 the trial
# will bring (the user is not verified yet) and the 12 granted, as
# /api/v1/me and /api/v1/usage say too.
like(bget($ua, "/admin/users/$uid")->body, qr{id="user-credits">22 \(}, 'credits: 12 granted, 22 in all');
$res = bpost($ua, "/admin/users/$uid/extend-trial", { days => '5' });
is($res->code, 303, 'trial: 303');
like(bget($ua, "/admin/users/$uid")->body, qr{id="user-trial">ends <time}, 'trial: its end shown');
$res = bget($ua, "/admin/users/$uid");
like($res->body, qr{<td>user\.credits</td>}, 'credits: audited');
like($res->body, qr{<td>user\.extend_trial</td>}, 'trial: audited');
like($res->body, qr{thanks &lt;3}, 'the audit detail, escaped');

# The user's keys and sessions, revoked from the admin page.
my ($kid) = $dbh->selectrow_array('SELECT id FROM api_keys WHERE user_id = ?', undef, $uid);
my ($usid) = $dbh->selectrow_array('SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL '
    . 'AND cookie_hash IS NOT NULL', undef, $uid);
$res = bget($ua, "/admin/users/$uid");
like($res->body, qr{/admin/users/\Q$uid\E/keys/\Q$kid\E/delete}, 'the user\'s key, with revoke');
like($res->body, qr{/admin/users/\Q$uid\E/sessions/\Q$usid\E/delete}, 'the user\'s session, with revoke');
my ($oe, $opw, $os) = make_user('admpage-other');
my ($okid) = $dbh->selectrow_array('SELECT id FROM api_keys WHERE user_id = ?', undef, $os->{user}{id});
is(bpost($ua, "/admin/users/$uid/keys/$okid/delete", {})->code, 404, "another user's key by this user's path: 404");
is(bpost($ua, "/admin/users/$uid/keys/$kid/delete", { csrf => undef })->code, 403, 'revoke without CSRF: 403');
$res = bpost($ua, "/admin/users/$uid/keys/$kid/delete", {});
is($res->code, 303, 'revoke the key: 303');
my ($kleft) = $dbh->selectrow_array('SELECT COUNT(*) FROM api_keys WHERE id = ?', undef, $kid);
is($kleft, 0, 'the key is gone');
is(bget($user, '/profile')->code, 200, 'the user is still logged in');
$res = bpost($ua, "/admin/users/$uid/sessions/$usid/delete", {});
is($res->code, 303, 'revoke the session: 303');
is(bget($user, '/profile')->code, 303, "the user's browser is logged out");
$res = bget($ua, "/admin/users/$uid");
like($res->body, qr{<td>api_key\.delete</td>}, 'the key revocation is audited');
like($res->body, qr{<td>session\.revoke</td>}, 'the session revocation is audited');
drop_user($os->{user}{id});

# The last admin: the page shows 409 with the message.
my ($admin_id) = $dbh->selectrow_array('SELECT id FROM users WHERE email_lc = ?', undef, lc $ENV{TG_ADMIN_EMAIL});
my ($nadmins) = $dbh->selectrow_array("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL");
SKIP: {
	skip "other admins exist ($nadmins)", 3 unless $nadmins == 1;
	$res = bpost($ua, "/admin/users/$admin_id", { role => 'user' });
	is($res->code, 409, 'demoting the last admin: 409');
	like($res->body, qr{This is the last admin}, 'the message in the page');
	$res = bpost($ua, "/admin/users/$admin_id/delete", { confirm => $ENV{TG_ADMIN_EMAIL} });
	is($res->code, 409, 'deleting the last admin: 409');
}

# Delete: the email must be typed.
$res = bpost($ua, "/admin/users/$uid/delete", { confirm => 'someone@else.example' });
is($res->code, 422, 'delete with the wrong confirmation: 422');
like($res->body, qr{id="confirm-error">}, 'delete 422: the message at the field');
$res = bpost($ua, "/admin/users/$uid/delete", { confirm => $email });
is($res->code, 303, 'delete: 303');
is(location($res), '/admin', 'delete: back to the list');
my ($left) = $dbh->selectrow_array('SELECT COUNT(*) FROM users WHERE id = ?', undef, $uid);
is($left, 0, 'delete: the user is gone');
my ($aud) = $dbh->selectrow_array("SELECT COUNT(*) FROM audit_log WHERE target_id = ? AND action = 'user.delete' "
    . 'AND actor_id = ? AND target_email = ?', undef, $uid, $admin_id, $email);
is($aud, 1, 'delete: audited with who and whom');

done_testing;
