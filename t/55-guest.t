#!/usr/bin/perl
# Guest accounts (contract section 3, "More ways in"): POST
# /api/v1/auth/guest makes an account with no email on the `guest` plan,
# usable at the gate within that plan's limits (5 a minute, 3 credits, no
# compute); creation is throttled per client address; a guest is claimed
# without losing its id, usage or credits by sign-up, a magic link or
# GitHub presented with its own token; guests never claimed are deleted
# after [guest] days without activity; the admin console shows guests.

use strict;
use warnings;
use lib 't/lib', 't/fakes';

use Test::More;
use Mojo::URL;
use Mojo::UserAgent::CookieJar;
use TG;
use TGMail;
use TGAccount;
use Fakes qw(fake_start fake_post);
require './t/60-helpers.pl';

sink_start();
my $dbh = dbh();
my @made;
END { $dbh->do('DELETE FROM users WHERE id = ?', undef, $_) for @made }

# A new guest from address $addr (this file's by default); returns the
# response.
sub guest_res {
	my ($addr) = @_;
	return req(POST => '/api/v1/auth/guest',
	    { 'X-Forwarded-For' => $addr // addr() });
}

# A new guest: {id, access, refresh}.
sub guest {
	my $res = guest_res();
	die 'guest: ' . ($res->code // 'none') . ' ' . ($res->body // '')
	    unless ($res->code // 0) == 201;
	my $j = $res->json;
	push @made, $j->{user}{id};
	return { id => $j->{user}{id}, access => $j->{tokens}{access_token},
	    refresh => $j->{tokens}{refresh_token}, json => $j };
}

sub gate {
	my ($path, $token) = @_;
	return req(GET => $path, { bearer($token) });
}

sub me {
	my ($token) = @_;
	return eval { req(GET => '/api/v1/me', { bearer($token) })->json } // {};
}

sub ledger_spends {
	my ($uid) = @_;
	return db_row("SELECT COUNT(*) AS n FROM credit_ledger WHERE "
	    . "user_id = ? AND kind = 'spend'", $uid)->{n};
}

# --- a guest ------------------------------------------------------------
my $res = guest_res();
is($res->code, 201, 'POST /api/v1/auth/guest: 201');
my $j = eval { $res->json } // {};
push @made, $j->{user}{id} if $j->{user}{id};
ok(exists $j->{user}{email} && !defined $j->{user}{email}, 'email: null');
is($j->{user}{plan}, 'guest', 'plan: guest');
ok(!$j->{user}{email_verified}, 'email_verified: false (there is none)');
is($j->{tokens}{token_type}, 'Bearer', 'tokens');
like($j->{tokens}{refresh_token} // '', qr/\S/, 'a refresh token');
my $g = { id => $j->{user}{id}, access => $j->{tokens}{access_token} };
is(me($g->{access})->{user}{id}, $g->{id}, '/api/v1/me with its token');
is(db_row('SELECT plan_override AS p FROM users WHERE id = ?',
    $g->{id})->{p}, 'guest', 'the guest plan is its plan');

# --- the gate within the guest plan -------------------------------------
$res = gate('/demo/echo', $g->{access});
is($res->code, 200, 'the gate lets a guest through');
my $up = eval { $res->json } // {};
is($up->{user_id}, $g->{id}, 'the upstream gets the guest id');
is($up->{plan}, 'guest', 'X-Tollgate-Plan: guest');
$res = gate('/demo/compute', $g->{access});
error_ok($res, 403, 'quota_exceeded', 'compute on the guest plan (limit 0)');
for my $n (1 .. 2) {
	$res = gate('/demo/spend', $g->{access});
	is($res->code, 200, "spend $n of 3 credits");
}
is((eval { $res->json } // {})->{credits_remaining}, 1, '1 credit left');
$res = gate('/demo/spend', $g->{access});
is($res->code, 200, 'spend 3 of 3');
$res = gate('/demo/spend', $g->{access});
is($res->code, 403, 'a fourth spend is refused: 3 credits in all');
# The plan's rate: 5 a minute (echo, two spends and one more spend made 4
# allowed checks so far; compute and the fourth spend were refused).
$res = gate('/demo/echo', $g->{access});
is($res->code, 200, 'the fifth allowed check in the minute');
is($res->headers->header('X-RateLimit-Limit'), 5, 'the guest plan\'s rate');
$res = gate('/demo/echo', $g->{access});
error_ok($res, 429, 'rate_limited', 'the sixth in the minute');

# The operator sets the guest plan like any other.
$dbh->do("UPDATE plans SET rate_per_minute = 7 WHERE name = 'guest'");
$res = gate('/demo/echo', $g->{access});
is($res->headers->header('X-RateLimit-Limit'), 7,
    'the operator changed the guest plan\'s rate');
$dbh->do("UPDATE plans SET rate_per_minute = 5 WHERE name = 'guest'");

# --- what asks for a password: a guest has none (422, never a crash) ----
for my $c ([POST => '/api/v1/me/email', { email => unique_email('ge'),
    password => 'x' x 12 }, 'password'],
    [POST => '/api/v1/me/password', { current_password => 'x' x 12,
    new_password => 'y' x 12 }, 'current_password'],
    [DELETE => '/api/v1/me', { password => 'x' x 12 }, 'password']) {
	my $r = jreq($c->[0], $c->[1], $c->[2], bearer($g->{access}));
	is($r->code, 422, "$c->[0] $c->[1] of a guest: 422");
	ok(exists((eval { $r->json->{error}{fields} } // {})->{$c->[3]}),
	    "$c->[0] $c->[1]: names $c->[3]");
}
is(me($g->{access})->{user}{id}, $g->{id}, 'the guest is still there');

# --- the throttle per address --------------------------------------------
my $per_hour = 20;
my $a = new_addr();
my @codes = map { guest_res($a)->code } 1 .. $per_hour;
is(scalar(grep { $_ == 201 } @codes), $per_hour,
    "$per_hour guests from one address in an hour");
$res = guest_res($a);
error_ok($res, 429, 'rate_limited', 'one more from that address');
like($res->headers->header('Retry-After') // '', qr/^[1-9]\d*$/,
    'Retry-After');
is(guest_res(new_addr())->code, 201, 'another address is not held back');
$dbh->do("DELETE FROM users WHERE guest_at IS NOT NULL AND email IS NULL "
    . "AND id IN (SELECT user_id FROM sessions WHERE address = ?)", undef, $a);

# --- claim by sign-up ----------------------------------------------------
my $g1 = guest();
is(gate('/demo/spend', $g1->{access})->code, 200, 'guest 1 spends a credit');
my $email = unique_email('guest-signup');
$res = jpost('/api/v1/auth/signup', { email => $email,
    password => fresh_password(), name => 'Was A Guest' },
    bearer($g1->{access}));
is($res->code, 201, 'sign-up with the guest\'s token: 201');
$j = eval { $res->json } // {};
is($j->{user}{id}, $g1->{id}, 'the same id');
is($j->{user}{email}, $email, 'now with its email');
ok(!$j->{user}{guest}, 'no longer a guest');
is($j->{user}{plan}, 'trial', 'on the trial now');
like($j->{api_key}{key} // '', qr/^tgk_/, 'and its first API key');
is(ledger_spends($g1->{id}), 1, 'its usage is kept');
my $m = wait_mail($email, sub { $_[0]{subject} =~ /verif/i });
ok($m, 'a verification mail');
$res = jpost('/api/v1/auth/verify-email',
    { token => mail_token($m, '/verify-email') });
is($res->code, 200, 'verified');
my $me = me($g1->{access});
is($me->{user}{id}, $g1->{id}, 'the guest\'s old token is the account\'s');
is($me->{trial}{credits_remaining}, 2 + 10,
    'credits: the guest\'s 2 left plus the trial\'s 10');
is(db_row('SELECT guest_at FROM users WHERE id = ?', $g1->{id})->{guest_at},
    undef, 'guest_at cleared');
# A sign-up with a token that is no guest's is an ordinary sign-up.
my $u = signup(tag => 'not-guest');
$res = jpost('/api/v1/auth/signup', { email => unique_email('plain'),
    password => fresh_password(), name => 'X' }, bearer($u->{access}));
is($res->code, 201, 'sign-up with a full account\'s token: 201');
isnt(eval { $res->json->{user}{id} }, $u->{id}, 'a new account, not that one');
push @made, eval { $res->json->{user}{id} } // ();
# The claimed guest cannot be claimed again.
$res = jpost('/api/v1/auth/signup', { email => unique_email('again'),
    password => fresh_password(), name => 'X' }, bearer($g1->{access}));
isnt(eval { $res->json->{user}{id} } // '', $g1->{id},
    'a claimed guest is not claimed twice');
push @made, eval { $res->json->{user}{id} } // ();

# --- claim by magic link -------------------------------------------------
my $g2 = guest();
is(gate('/demo/spend', $g2->{access})->code, 200, 'guest 2 spends a credit');
my $email2 = unique_email('guest-magic');
$res = jpost('/api/v1/auth/magic-link', { email => $email2 },
    bearer($g2->{access}));
is($res->code, 202, 'magic-link with the guest\'s token: 202');
$m = wait_mail($email2, sub { $_[0]{subject} =~ /sign-in/i });
ok($m, 'the link goes to the new address');
is(db_row('SELECT email FROM users WHERE id = ?', $g2->{id})->{email}, undef,
    'still a guest until the link is followed');
$res = jpost('/api/v1/auth/magic-link/verify',
    { token => mail_token($m, '/auth/magic') });
is($res->code, 200, 'magic-link/verify: 200');
$j = eval { $res->json } // {};
is($j->{user}{id}, $g2->{id}, 'the guest\'s id');
is($j->{user}{email}, $email2, 'its new email');
ok($j->{user}{email_verified}, 'verified by following the link');
is($j->{user}{plan}, 'trial', 'the trial started');
is(ledger_spends($g2->{id}), 1, 'usage kept');
is(me($j->{tokens}{access_token})->{trial}{credits_remaining}, 12,
    'credits kept (2) beside the trial\'s 10');
$res = jpost('/api/v1/auth/magic-link/verify',
    { token => mail_token($m, '/auth/magic') });
error_ok($res, 400, 'invalid_token', 'the link works once');
error_ok(req(GET => '/api/v1/me', { bearer($g2->{access}) }), 401,
    'unauthenticated', 'the guest\'s old token stops working: the link\'s '
    . 'follower holds the account');
# A guest asking for a link to an address with an account is not merged.
my $g3 = guest();
my $owner = signup(tag => 'owned');
push @made, $owner->{id};
$res = jpost('/api/v1/auth/magic-link', { email => $owner->{email} },
    bearer($g3->{access}));
is($res->code, 202, 'magic-link for a taken address: 202');
$m = wait_mail($owner->{email}, sub { $_[0]{subject} =~ /sign-in/i });
$res = jpost('/api/v1/auth/magic-link/verify',
    { token => mail_token($m, '/auth/magic') });
is(eval { $res->json->{user}{id} }, $owner->{id},
    'that link signs into the owner\'s account');
is(db_row('SELECT email FROM users WHERE id = ?', $g3->{id})->{email}, undef,
    'the guest stays a guest');

# --- claim by GitHub -----------------------------------------------------
fake_start('github');
my $g4 = guest();
is(gate('/demo/spend', $g4->{access})->code, 200, 'guest 4 spends a credit');
my $uq = int(rand 1e9);
my $ghemail = "gh-guest$uq\@example.com";
my $ghid = 20_000_000 + int(rand 900_000_000);
fake_post('github', '/_fake/users', { "g$uq" => { id => $ghid,
    login => "guest$uq", name => 'Guest Cat', emails => [
    { email => $ghemail, primary => \1, verified => \1 } ] } });
my $ua = browser();
$res = $ua->get(base() . '/api/v1/auth/github', { bearer($g4->{access}) })->res;
is($res->code, 302, 'GitHub sign-in started with the guest\'s token');
my $auth = Mojo::URL->new($res->headers->location // '');
$auth->query->merge(fake_user => "g$uq");
my $back = $ua->get($auth)->res;
$res = $ua->get($back->headers->location // '')->res;
is($res->code, 302, 'callback: 302');
like($res->headers->location // '', qr{/profile$}, 'to /profile');
my $row = db_row('SELECT id, email, github_id, guest_at, plan_override '
    . 'FROM users WHERE github_id = ?', $ghid) // {};
is($row->{id}, $g4->{id}, 'GitHub signed the guest\'s own account in');
is($row->{email}, $ghemail, 'with GitHub\'s verified email');
ok(!defined $row->{guest_at} && !defined $row->{plan_override},
    'no longer a guest');
is(ledger_spends($g4->{id}), 1, 'usage kept');
is(me($g4->{access})->{trial}{credits_remaining}, 12, 'credits kept');
# Without the guest's token, GitHub makes a new account as before.
my $g5 = guest();
$uq = int(rand 1e9);
fake_post('github', '/_fake/users', { "h$uq" => { id => 30_000_000 +
    int(rand 900_000_000), login => "h$uq", name => 'H',
    emails => [ { email => "gh-new$uq\@example.com", primary => \1,
    verified => \1 } ] } });
$ua = browser();
$res = $ua->get(base() . '/api/v1/auth/github')->res;
$auth = Mojo::URL->new($res->headers->location // '');
$auth->query->merge(fake_user => "h$uq");
$back = $ua->get($auth)->res;
$res = $ua->get($back->headers->location // '')->res;
is($res->code, 302, 'a plain GitHub sign-in');
$row = db_row('SELECT id FROM users WHERE email_lc = ?', "gh-new$uq\@example.com");
push @made, $row->{id} if $row;
isnt($row->{id} // '', $g5->{id}, 'makes its own account, no guest claimed');

# --- the admin console ---------------------------------------------------
my ($aemail, $apw, $aj) = make_user('guest-admin', 'Guest Admin');
push @made, $aj->{user}{id};
$dbh->do("UPDATE users SET role = 'admin' WHERE id = ?", undef,
    $aj->{user}{id});
$res = api(GET => "/api/v1/admin/users/$g5->{id}",
    $aj->{tokens}{access_token});
ok(eval { $res->json->{user}{guest} }, 'the admin API says guest');
my $b = browser();
page_login($b, $aemail, $apw);
$res = bget($b, "/admin/users/$g5->{id}");
is($res->code, 200, 'the admin page of a guest');
like($res->body, qr/Guest \(no email yet\)/, 'shown as a guest');
$res = bget($b, '/admin');
like($res->body, qr{<a href="/admin/users/[^"]+"><em>guest</em></a>},
    'guests marked in the user list');

# --- unclaimed guests go after [guest] days without activity --------------
my $old = guest();
my $busy = guest();
$dbh->do('UPDATE users SET guest_at = UTC_TIMESTAMP(6) - INTERVAL 31 DAY, '
    . 'created_at = UTC_TIMESTAMP(6) - INTERVAL 31 DAY WHERE id IN (?, ?)',
    undef, $old->{id}, $busy->{id});
$dbh->do('UPDATE sessions SET created_at = UTC_TIMESTAMP(6) - INTERVAL 31 '
    . 'DAY, last_used_at = UTC_TIMESTAMP(6) - INTERVAL 31 DAY WHERE '
    . 'user_id = ?', undef, $old->{id});
ok(wait_for(sub { !db_row('SELECT 1 AS x FROM users WHERE id = ?',
    $old->{id}) }, 20), 'an idle guest of 31 days is deleted by the sender');
ok(db_row('SELECT 1 AS x FROM users WHERE id = ?', $busy->{id}),
    'one used within the last 30 days stays');
ok(db_row('SELECT 1 AS x FROM users WHERE id = ?', $g1->{id}),
    'a claimed guest is never collected');
error_ok(req(GET => '/api/v1/me', { bearer($old->{access}) }), 401,
    'unauthenticated', 'the deleted guest\'s token');
my $gc = `"$ENV{TG_ROOT}/contrib/devstack" ctl gc 2>&1`;
is($?, 0, 'tollgatectl gc: exit 0');
like($gc, qr/^idle guests: \d+ deleted$/m, 'tollgatectl gc collects guests too');

done_testing();
