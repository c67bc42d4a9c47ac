#!/usr/bin/perl
# Email verification (contract sections 3, 5 and 9): the mailed link,
# followed as a page and through the API; the trial it starts (days and
# credits from the configuration, in the columns the gate spends from,
# with a ledger row); the welcome mail; one trial per address, ever;
# single-use tokens, also under concurrent use; resend; and the hourly
# mail limit per recipient shared by resend, forgot-password and magic
# links.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::Promise;
use TG;
use TGMail;
use TGAccount;

sink_start();
my $base = base();
my $days = conf_get('trial', 'days') // 30;
my $credits = conf_get('trial', 'credits') // 10;

# --- the link, followed as a page ---------------------------------------
my $u = signup(tag => 'verify');
my $m = wait_mail($u->{email}, sub { $_[0]{subject} =~ /verify/i });
ok($m, 'verification mail arrives');
my $link = mail_link($m, '/verify-email');
like($link // '', qr{^\Q$base\E/verify-email\?token=[A-Za-z0-9_-]{20,}$},
    'the link is <base_url>/verify-email?token=...');
like($m->{raw}, qr{<a href="\Q$link\E">}, 'the HTML part links it too');

my $me = req(GET => '/api/v1/me', H(bearer($u->{access})))->json;
is($me->{trial}{ends_at}, undef, 'before verification: trial.ends_at null');
is($me->{trial}{credits_remaining}, $credits,
    'before verification: the credits the trial will bring');
ok(!$me->{user}{email_verified}, 'not verified yet');
is($me->{user}{plan}, 'trial', 'plan trial before verification');

(my $path = $link) =~ s/^\Q$base\E//;
my $res = req(HEAD => $path, H());
is($res->code, 200, 'HEAD /verify-email?token= (a link checker): 200');
ok(!db_row('SELECT email_verified_at FROM users WHERE id = ?', $u->{id})
    ->{email_verified_at}, 'and it verifies nothing');
# Contract section 3 (changed this round): the GET uses nothing; its
# page's one button, a CSRF-protected POST, verifies the address.
my $bua = ua();
$res = $bua->get("$base$path" => H())->result;
is($res->code, 200, 'GET /verify-email?token=: 200');
like($res->headers->content_type // '', qr{^text/html}, 'a page');
ok(!db_row('SELECT email_verified_at FROM users WHERE id = ?', $u->{id})
    ->{email_verified_at}, 'the GET verifies nothing');
my ($vcsrf) = $res->body =~ /name="csrf" value="([^"]+)"/;
my ($vtok) = $path =~ /token=([A-Za-z0-9_-]+)/;
$res = $bua->post("$base/verify-email" => H('Content-Type' =>
    'application/x-www-form-urlencoded') => "token=$vtok&csrf="
    . ($vcsrf // ''))->result;
is($res->code, 200, 'its button: 200');
like($res->headers->content_type // '', qr{^text/html}, 'a page');
like($res->body, qr/verified/i, 'the page says so');

$me = req(GET => '/api/v1/me', H(bearer($u->{access})))->json;
ok($me->{user}{email_verified}, 'email_verified is true');
is($me->{user}{plan}, 'trial', 'plan trial');
like($me->{trial}{ends_at} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    'trial.ends_at is RFC 3339');
is($me->{trial}{credits_remaining}, $credits, "credits_remaining $credits");

my $row = db_row('SELECT TIMESTAMPDIFF(SECOND, trial_started_at, '
    . 'trial_ends_at) AS len, TIMESTAMPDIFF(SECOND, trial_started_at, '
    . 'UTC_TIMESTAMP(6)) AS ago, email_verified_at IS NOT NULL AS v FROM '
    . 'users WHERE id = ?', $u->{id});
is($row->{len}, $days * 86400, "the trial lasts [trial] days ($days)");
ok($row->{ago} >= 0 && $row->{ago} < 60, 'and started now');
$row = db_row('SELECT cb.allowance, cb.allowance_plan, cb.granted, '
    . 'cb.allowance_period_start = u.trial_started_at AS s, '
    . 'cb.allowance_period_end = u.trial_ends_at AS e FROM credit_balances '
    . 'cb JOIN users u ON u.id = cb.user_id WHERE cb.user_id = ?', $u->{id});
is($row->{allowance}, $credits, 'credit_balances.allowance = trial credits');
is($row->{allowance_plan}, 'trial', "allowance_plan 'trial'");
ok($row->{s} && $row->{e}, 'allowance period = the trial');
is($row->{granted}, 0, 'granted untouched');
$row = db_row('SELECT kind, delta, balance_after FROM credit_ledger WHERE '
    . 'user_id = ?', $u->{id});
is_deeply($row, { kind => 'trial', delta => $credits,
    balance_after => $credits }, 'a ledger row of kind trial');
ok(db_row('SELECT 1 AS x FROM trial_history WHERE kind = ? AND subject = ?',
    'email', lc $u->{email}), 'trial_history remembers the address');

my $w = wait_mail($u->{email}, sub { $_[0]{subject} =~ /welcome/i });
ok($w, 'welcome mail');
like($w->{text} // '', qr/trial has started/, 'it announces the trial');

# The link is single use.
$res = req(GET => $path, H());
is($res->code, 400, 'the same link again: 400');
like($res->headers->content_type // '', qr{^text/html}, 'as a page');
like($res->body, qr/not valid/, 'with the invalid-token message');
error_ok(jpost('/api/v1/auth/verify-email', { token => mail_token($m,
    '/verify-email') }), 400, 'invalid_token', 'used token through the API');
error_ok(jpost('/api/v1/auth/verify-email', { token => 'A' x 43 }), 400,
    'invalid_token', 'unknown token');
error_ok(jpost('/api/v1/auth/verify-email', { token => 'short!' }), 400,
    'invalid_token', 'malformed token');
error_ok(jpost('/api/v1/auth/verify-email', {}), 422, 'validation_failed',
    'no token');
is(req(GET => '/verify-email', H())->code, 400, 'page without a token: 400');
is(outbox_count($u->{id}, 'welcome'), 1, 'one welcome mail only');

# --- through the API; resend -------------------------------------------
my $v = signup(tag => 'resend');
error_ok(jpost('/api/v1/auth/resend-verification', undef), 401,
    'unauthenticated', 'resend without a login');
error_ok(jpost('/api/v1/auth/resend-verification', undef, bearer($v->{key})),
    403, 'forbidden', 'resend with an API key');
$res = jpost('/api/v1/auth/resend-verification', undef, bearer($v->{access}));
is($res->code, 202, 'resend: 202');
my @vm;
ok(wait_for(sub { @vm = grep { $_->{subject} =~ /verify/i }
    mails_to($v->{email}); @vm >= 2 }, 20), 'a second verification mail');
my $tok = mail_token($vm[-1], '/verify-email');
$res = jpost('/api/v1/auth/verify-email', { token => $tok });
is($res->code, 200, 'POST verify-email: 200');
is(eval { $res->json->{user}{id} }, $v->{id}, '{user}');
ok(eval { $res->json->{user}{email_verified} }, 'user.email_verified');
# The first link still works: the address is verified already, nothing new.
$res = jpost('/api/v1/auth/verify-email', { token => mail_token($vm[0],
    '/verify-email') });
is($res->code, 200, 'the older link of the same address: 200');
is(outbox_count($v->{id}, 'welcome'), 1, 'still one welcome mail');
is(db_row('SELECT COUNT(*) AS n FROM credit_ledger WHERE user_id = ?',
    $v->{id})->{n}, 1, 'still one trial grant');
my $before = outbox_count($v->{id}, 'verification');
is(jpost('/api/v1/auth/resend-verification', undef, bearer($v->{access}))
    ->code, 202, 'resend when verified: 202');
is(outbox_count($v->{id}, 'verification'), $before, 'and nothing is sent');

# Expired.
my $x = signup(tag => 'expired');
my $xm = wait_mail($x->{email});
dbh()->do('UPDATE tokens SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 '
    . 'SECOND WHERE user_id = ?', undef, $x->{id});
error_ok(jpost('/api/v1/auth/verify-email', { token => mail_token($xm,
    '/verify-email') }), 400, 'invalid_token', 'expired token');

# Two uses at once: exactly one succeeds.
{
	my $c = signup(tag => 'race');
	my $cm = wait_mail($c->{email});
	my $ct = mail_token($cm, '/verify-email');
	my $ua = ua();
	my @codes;
	Mojo::Promise->all(map {
		$ua->post_p("$base/api/v1/auth/verify-email" => H() => json =>
		    { token => $ct })
	} 1 .. 4)->then(sub { @codes = sort map { $_->[0]->res->code } @_ })
	    ->wait;
	is("@codes", '200 400 400 400', 'one token used 4 times at once: one 200');
	is(outbox_count($c->{id}, 'welcome'), 1, 'one welcome mail');
}

# --- one trial per address, ever -----------------------------------------
my $again = $u->{email};
is(jreq(DELETE => '/api/v1/me', { password => $u->{password} },
    bearer($u->{access}))->code, 204, 'the first account is deleted');
my $u2 = signup(email => $again);
my $m2 = wait_mail($again, sub { $_[0]{subject} =~ /verify/i
    && $_[0]{text} ne $m->{text} });
is(jpost('/api/v1/auth/verify-email', { token => mail_token($m2,
    '/verify-email') })->code, 200, 'the new account verifies the same address');
$me = req(GET => '/api/v1/me', H(bearer($u2->{access})))->json;
is($me->{trial}{credits_remaining}, 0, 'no trial credits the second time');
$row = db_row('SELECT trial_ends_at <= UTC_TIMESTAMP(6) AS ended, '
    . 'trial_started_at IS NOT NULL AS started FROM users WHERE id = ?',
    $u2->{id});
ok($row->{started} && $row->{ended}, 'its trial is over at once');
my $fallback = conf_get('trial', 'fallback_plan') // '';
is($me->{user}{plan}, $fallback eq '' ? undef : $fallback,
    'plan: the fallback (none here)');
is(db_row('SELECT allowance FROM credit_balances WHERE user_id = ?',
    $u2->{id})->{allowance}, 0, 'allowance 0');
my $w2 = wait_mail($again, sub { $_[0]{subject} =~ /welcome/i
    && $_[0]{text} =~ /trial before/ });
ok($w2, 'the welcome mail says the address had its trial');
ok(db_row('SELECT 1 AS x FROM trial_notices WHERE user_id = ? AND kind = ?',
    $u2->{id}, 'ended'), 'no "trial ended" mail will follow');

# --- the hourly mail limit per recipient --------------------------------
{
	my $t = signup(tag => 'mail-limit');
	my $per = conf_get('limits', 'mail_per_hour') // 5;
	my @calls = (
	    sub { jpost('/api/v1/auth/resend-verification', undef,
		bearer($t->{access})) },
	    sub { jpost('/api/v1/auth/password/forgot', { email => $t->{email} }) },
	    sub { jpost('/api/v1/auth/magic-link', { email => $t->{email} }) },
	);
	my @codes;
	for my $i (0 .. $per + 2) {
		push @codes, $calls[$i % 3]->()->code;
	}
	is(scalar(grep { $_ == 202 } @codes), $per + 3, 'every request: 202');
	my $sent = db_row('SELECT COUNT(*) AS n FROM outbox WHERE user_id = ? '
	    . 'AND kind IN (\'password_reset\', \'magic_link\', '
	    . '\'verification\') AND created_at > UTC_TIMESTAMP(6) - INTERVAL '
	    . '1 HOUR', $t->{id})->{n};
	is($sent - 1, $per, "at most $per mails an hour (besides signup's)");
}

done_testing;
