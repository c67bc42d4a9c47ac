#!/usr/bin/perl
# What a newcomer runs into in the first hour (issue 16), each against
# the contract as amended (sections 3, 10 and 12):
#   - [stripe] report_interval takes any value from 1 up;
#   - service-key names with '-';
#   - an admin's negative credit delta takes the allowance first, then
#     granted credits, never below zero, and says what moved;
#   - one credits figure: /api/v1/me, /api/v1/usage and the admin's view
#     agree, also after a grant and after an upgrade;
#   - the /login page's "Email me a login link" works;
#   - GitHub and Stripe, when not set up, are not offered by the pages
#     (and their endpoints answer 404 rather than fail).
# (A refresh with anything but a live refresh token is in
# t/21-refresh-sessions.t, the audit's user ids in t/62-admin-api.t.)

use strict;
use warnings;

use lib 't/lib', 't/fakes';
use Test::More;
use Mojo::JSON qw(encode_json);
use TG;
use TGMail;
use TGGate qw(gdb new_user on_plan);

require "./t/60-helpers.pl";

my $db = gdb();
my ($admin, $admin_id) = temp_admin();
END { drop_user($admin_id) if $admin_id }

sub ctl {
	my ($env, @args) = @_;
	local @ENV{ keys %$env } = values %$env;
	my $out = `$ENV{TG_BUILD}/src/tollgatectl -c $ENV{TG_CONF} @args 2>&1`;
	return ($? >> 8, $out);
}

# --- [stripe] report_interval: any value from 1 up ----------------------

my ($rc, $out) = ctl({ TOLLGATE_STRIPE_REPORT_INTERVAL => 5 }, 'version');
is($rc, 0, 'report_interval 5: tollgatectl starts') or diag($out);
($rc, $out) = ctl({ TOLLGATE_STRIPE_REPORT_INTERVAL => 1 }, 'migrate');
is($rc, 0, 'report_interval 1: tollgatectl migrate runs') or diag($out);
($rc, $out) = ctl({ TOLLGATE_STRIPE_REPORT_INTERVAL => 0 }, 'version');
isnt($rc, 0, 'report_interval 0 is refused');
like($out, qr/\[stripe\] report_interval/, 'naming the key');

# --- Service keys named with '-' ---------------------------------------

my $sk = "video-export-$$";
END {
	if ($db) {
		$db->do('DELETE FROM usage_events WHERE service_key_id IN (SELECT id '
		    . 'FROM service_keys WHERE name = ?)', undef, $sk);
		$db->do('DELETE FROM service_keys WHERE name = ?', undef, $sk);
	}
}
($rc, $out) = ctl({}, 'service-key', 'create', $sk);
is($rc, 0, "service-key create $sk") or diag($out);
my ($skey) = $out =~ /(tgs_\S+)\s*\z/;
ok($skey, 'the key is the last line');
my $u = new_user();
my $res = json_post('/api/v1/usage/events', { user_id => $u->{id},
    meter => 'compute_minutes', quantity => 3, idempotency_key => "k-$$" },
    { Authorization => "Bearer $skey" });
is($res->code, 202, 'the dashed service key reports usage');
($rc, $out) = ctl({}, 'service-key', 'create', 'Video_Export-2');
is($rc, 0, 'upper case, digits, - and _ are letters of a name');
$db->do("DELETE FROM service_keys WHERE name = 'Video_Export-2'");
($rc, $out) = ctl({}, 'service-key', 'create', 'video.export');
is($rc, 2, 'a dot is refused (usage error)');
like($out, qr/letters, digits, - and _/, 'saying what a name may hold');
($rc, $out) = ctl({}, 'service-key', 'revoke', $sk);
is($rc, 0, 'revoked by its dashed name');

# --- Negative admin credit deltas and one credits figure -----------------

# A trial user with 10 credits spends one: 9 left.
my $t = new_user();
$res = req(GET => '/demo/spend', { Authorization => "Bearer $t->{key}" });
is($res->code, 200, 'a spend through the gate');
sub figures {
	my ($who) = @_;
	my $me = req(GET => '/api/v1/me', { Authorization => "Bearer $who->{key}" })->json;
	my $us = req(GET => '/api/v1/usage', { Authorization => "Bearer $who->{key}" })->json;
	my $ad = api(GET => "/api/v1/admin/users/$who->{id}", $admin)->json;
	return ($me && $me->{trial}{credits_remaining},
	    $us && $us->{credits}{remaining}, $ad && $ad->{credits}{remaining});
}
is_deeply([figures($t)], [9, 9, 9], '9 left: /me, /usage and the admin agree');

$res = api(POST => "/api/v1/admin/users/$t->{id}/credits", $admin,
    { delta => -3, reason => 'correction' });
is($res->code, 200, 'credits -3: 200');
is($res->json->{applied}, -3, '-3 from the allowance: applied -3');
is($res->json->{credits}{remaining}, 6, '6 remaining');
is_deeply([figures($t)], [6, 6, 6], '6 everywhere');

$res = api(POST => "/api/v1/admin/users/$t->{id}/credits", $admin,
    { delta => 5, reason => 'goodwill' });
is($res->json->{credits}{remaining}, 11, '+5: 11 remaining');
is_deeply([figures($t)], [11, 11, 11], 'after a grant, 11 everywhere');

# The allowance first: -8 takes the 6 left of the allowance and 2 granted.
$res = api(POST => "/api/v1/admin/users/$t->{id}/credits", $admin,
    { delta => -8, reason => 'allowance first' });
is($res->json->{applied}, -8, '-8: applied -8');
is_deeply([ $db->selectrow_array('SELECT allowance, granted FROM credit_balances '
    . 'WHERE user_id = ?', undef, $t->{id}) ], [0, 3],
    'the allowance went first, then granted credits');
$res = api(POST => "/api/v1/admin/users/$t->{id}/credits", $admin,
    { delta => -100, reason => 'all of it' });
is($res->json->{applied}, -3, '-100 with 3 left: applied -3');
is($res->json->{credits}{remaining}, 0, 'never below zero');
is_deeply([figures($t)], [0, 0, 0], '0 everywhere');
my $ledger = $db->selectall_arrayref(q{SELECT delta, balance_after FROM
    credit_ledger WHERE user_id = ? AND kind = 'grant' ORDER BY created_at},
    undef, $t->{id});
is_deeply($ledger, [[-3, 6], [5, 11], [-8, 3], [-3, 0]],
    'the ledger has each change with the balance after it');
$res = req(GET => '/demo/spend', { Authorization => "Bearer $t->{key}" });
is($res->code, 403, 'and the gate agrees: nothing left to spend');

# Not verified yet: the trial's credits are still to come (verification
# grants them), counted in the one figure; a negative delta can take only
# granted credits, and no trial credits are granted early.
my $nv = new_user(unverified => 1);
$res = api(POST => "/api/v1/admin/users/$nv->{id}/credits", $admin,
    { delta => 5, reason => 'early' });
is($res->json->{credits}{remaining}, 15, 'not verified, +5: 15 (10 to come)');
is_deeply([figures($nv)], [15, 15, 15], 'not verified: 15 everywhere');
$res = api(POST => "/api/v1/admin/users/$nv->{id}/credits", $admin,
    { delta => -100, reason => 'late' });
is($res->json->{applied}, -5, 'not verified, -100: only the 5 granted go');
is_deeply([figures($nv)], [10, 10, 10], 'the trial\'s 10 still to come');
is($db->selectrow_array(q{SELECT COUNT(*) FROM credit_ledger WHERE user_id = ?
    AND kind = 'trial'}, undef, $nv->{id}), 0, 'no trial credits granted before verification');

# A paid plan whose allowance was never granted yet (lazily, at the first
# spend): a negative delta takes from it all the same.
my $p = new_user();
on_plan($p, 'pro');
my ($pro_credits) = $db->selectrow_array("SELECT credits FROM plans WHERE name = 'pro'");
is_deeply([figures($p)], [($pro_credits) x 3], "pro: $pro_credits everywhere before any spend");
$res = api(POST => "/api/v1/admin/users/$p->{id}/credits", $admin,
    { delta => -10, reason => 'pro' });
is($res->json->{applied}, -10, 'pro -10: applied -10 from the period\'s allowance');
is($res->json->{credits}{remaining}, $pro_credits - 10, 'pro: the rest remains');
is_deeply([figures($p)], [($pro_credits - 10) x 3], 'pro: the same everywhere');
$res = req(GET => '/demo/spend', { Authorization => "Bearer $p->{key}" });
is($res->code, 200, 'pro: a spend');
is_deeply([figures($p)], [($pro_credits - 11) x 3],
    'pro: the gate took it from the same allowance (not granted anew)');

# --- /login: "Email me a login link" -------------------------------------

sink_start();
my $ua = browser();
$res = bget($ua, '/login');
like($res->body, qr{<a href="/login/magic">Email me a login link</a>},
    '/login links to the login-link form');
$res = bget($ua, '/login/magic');
is($res->code, 200, 'GET /login/magic: 200');
like($res->body, qr{<form method="post" action="/login/magic"}, 'with a form');
html_headers_ok($res, '/login/magic');
my ($email, $pw) = make_user('magicpage');
$res = bpost($ua, '/login/magic', { email => $email });
is($res->code, 202, 'POST /login/magic: 202');
like($res->body, qr/If an account has this email, a login link is on its way/,
    'the page says a link is on its way');
my $m = wait_mail($email, sub { ($_[0]{text} // '') =~ m{/auth/magic\?token=} });
my $link = mail_link($m, '/auth/magic');
ok($link, 'the mail carries the login link');
(my $path = $link // '') =~ s/^\Q@{[ base() ]}\E//;
$res = bget($ua, $path);
is($res->code, 200, 'the link opens its page');
my $tok = mail_token($m, '/auth/magic');
$res = bpost($ua, '/auth/magic', { token => $tok });
is($res->code, 303, 'its button logs the browser in');
is(location($res), '/profile', 'to /profile');
is(bget($ua, '/profile')->code, 200, 'signed in');
my $nobody = new_email('nobody');
$res = bpost(browser(), '/login/magic', { email => $nobody });
is($res->code, 202, 'an unknown address: the same 202');
$res = bpost(browser(), '/login/magic', { email => 'not an email' });
is($res->code, 422, 'a bad address: 422 with the form');
$res = bpost(browser(), '/login/magic', { email => $email, csrf => undef });
is($res->code, 403, 'without the CSRF field: 403');

# --- GitHub and Stripe not set up: not offered ----------------------------

# Set up on the dev stack: offered.
my $pu = new_user();
my $pb = browser();
is(page_login($pb, $pu->{email}, 'correct horse battery')->code, 303, 'a user logs in');
like(bget(browser(), '/login')->body, qr{/api/v1/auth/github}, 'set up: /login offers GitHub');
like(bget($pb, '/billing')->body, qr{action="/billing/checkout"}, 'set up: /billing offers an upgrade');

{
	local $ENV{TOLLGATE_GITHUB_CLIENT_ID} = '';
	local $ENV{TOLLGATE_STRIPE_SECRET_KEY} = '';
	ok(devstack('restart-tollgated'), 'tollgated without GitHub and Stripe');
}
my $restored = 0;
END { devstack('restart-tollgated') unless $restored }
ok(wait_for(sub { (req(GET => '/healthz')->code // 0) == 200 }, 30), 'it answers');
$res = bget(browser(), '/login');
is($res->code, 200, '/login: 200');
unlike($res->body, qr{github}i, 'not set up: /login offers no GitHub');
$res = bget($pb, '/billing');
is($res->code, 200, '/billing: 200');
unlike($res->body, qr{action="/billing/(?:checkout|portal)"}, 'not set up: no upgrade or portal form');
like($res->body, qr{id="billing-off"}, 'and it says so');
like($res->body, qr{id="plan-pro"}, 'the plans are still shown');
$res = req(GET => '/api/v1/auth/github');
is($res->code, 404, 'GET /api/v1/auth/github: 404 page');
like($res->body, qr/not set up/, 'saying GitHub sign-in is not set up');
error_ok(api(POST => '/api/v1/billing/checkout', $pu->{token}, { plan => 'pro' }),
    404, 'not_found', 'checkout when billing is not set up');
error_ok(api(POST => '/api/v1/billing/portal', $pu->{token}, {}),
    404, 'not_found', 'portal when billing is not set up');
$res = bpost($pb, '/billing/checkout', { plan => 'pro' });
is($res->code, 404, 'the page\'s checkout: 404');

ok($restored = devstack('restart-tollgated'), 'tollgated as it was');
ok(wait_for(sub { (req(GET => '/healthz')->code // 0) == 200 }, 30), 'it answers');
like(bget(browser(), '/login')->body, qr{/api/v1/auth/github}, 'GitHub is offered again');

done_testing();
