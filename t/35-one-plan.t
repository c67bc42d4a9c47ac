#!/usr/bin/perl
# One copy of each business rule (sql/routines/rules.sql): for a matrix of
# users (trial, unverified, lapsed trial, admin override, subscription,
# a lapsed allowance with granted credits), GET /api/v1/me,
# GET /api/v1/usage, the gate's X-Tollgate-Plan and
# X-Tollgate-Credits-Remaining (seen by the demo upstream) and the
# admin's user detail all report the same plan and the same credits.
# The fallback plan, which only the configuration sets, is checked at the
# SQL level: the functions and the gate's procedure agree.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use TG;
use TGGate;
require './t/60-helpers.pl';

my $db = gdb();
my ($admin, $admin_id) = temp_admin();
END { drop_user($admin_id) if $admin_id }

# What each view of the user says: [plan, credits] per source.
sub views {
	my ($u) = @_;
	my %v;
	my $me = req(GET => '/api/v1/me', bearer($u->{token}))->json // {};
	$v{me} = [ $me->{user}{plan}, $me->{trial}{credits_remaining} ];
	my $us = req(GET => '/api/v1/usage', bearer($u->{token}))->json // {};
	$v{usage} = [ $us->{plan}, $us->{credits}{remaining} ];
	my $ad = api(GET => "/api/v1/admin/users/$u->{id}", $admin)->json // {};
	$v{admin} = [ $ad->{user}{plan}, $ad->{credits}{remaining} ];
	# The gate's view.  Twice in some thirty full CI runs (never in a
	# run of this file alone, nor in 8 runs after t/33 and t/34) the
	# first check of the file's first user came back 200 from the demo
	# upstream without X-Tollgate-Plan and -Credits-Remaining.  Such an
	# answer is shown (for whoever meets it next) and the check asked
	# again; a wrong plan or credits is never asked again.
	my $res = req(GET => '/demo/echo', bearer($u->{key}));
	if (($res->code // 0) == 200 && !defined(($res->json // {})->{plan})) {
		diag('the gate passed without its headers: ' . $res->body);
		$res = req(GET => '/demo/echo', bearer($u->{key}));
	}
	if (($res->code // 0) == 200) {
		my $g = $res->json // {};
		$v{gate} = [ $g->{plan}, $g->{credits_remaining} ];
	} else {
		$v{gate} = [ undef, undef, $res->code ];
	}
	return \%v;
}

# Every view agrees with the expected plan and credits.
sub agree {
	my ($u, $plan, $credits, $name, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $v = views($u);
	for my $src (qw(me usage admin)) {
		is($v->{$src}[0], $plan, "$name: $src plan");
		is($v->{$src}[1], $credits, "$name: $src credits");
	}
	if ($o{gate_status}) {
		is($v->{gate}[2], $o{gate_status}, "$name: the gate answers "
		    . $o{gate_status});
	} else {
		is($v->{gate}[0], $plan, "$name: gate X-Tollgate-Plan");
		is($v->{gate}[1], "$credits",
		    "$name: gate X-Tollgate-Credits-Remaining");
	}
}

my $trial = new_user();
agree($trial, 'trial', 10, 'trial');

my $unver = new_user(unverified => 1);
my $v = views($unver);
is($v->{me}[0], 'trial', 'unverified: me plan trial');
is($v->{me}[1], $v->{usage}[1], 'unverified: me and usage credits agree');
is($v->{admin}[1], $v->{usage}[1], 'unverified: admin and usage credits agree');

my $lapsed = new_user();
$db->do(q{UPDATE users SET trial_ends_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND
    WHERE id = ?}, undef, $lapsed->{id});
agree($lapsed, undef, 0, 'lapsed trial', gate_status => 402);

my $over = new_user();
on_plan($over, 'pro');
my ($pro_credits) = $db->selectrow_array(
    q{SELECT credits FROM plans WHERE name = 'pro'});
agree($over, 'pro', $pro_credits, 'admin override');

my $sub = new_user();
$db->do(q{INSERT INTO subscriptions (id, user_id, plan, status,
    current_period_start, current_period_end, stripe_updated)
    VALUES (?, ?, 'team', 'active', UTC_TIMESTAMP(6) - INTERVAL 1 DAY,
    UTC_TIMESTAMP(6) + INTERVAL 29 DAY, 1)}, undef, "sub_t35_$$", $sub->{id});
my ($team_credits) = $db->selectrow_array(
    q{SELECT credits FROM plans WHERE name = 'team'});
agree($sub, 'team', $team_credits, 'subscription');
$db->do(q{UPDATE subscriptions SET status = 'canceled', stripe_updated = 2
    WHERE id = ?}, undef, "sub_t35_$$");
agree($sub, 'trial', 10, 'subscription canceled: back to the trial');
$db->do('DELETE FROM subscriptions WHERE id = ?', undef, "sub_t35_$$");

# Granted credits count everywhere, also after the allowance lapsed.
my $granted = new_user();
is(api(POST => "/api/v1/admin/users/$granted->{id}/credits", $admin,
    { delta => 5, reason => 't35' })->code, 200, 'an admin grants 5');
agree($granted, 'trial', 15, 'trial with 5 granted');
on_plan($granted, 'pro');
agree($granted, 'pro', $pro_credits + 5, 'pro with 5 granted');

# The fallback plan: the rule's functions and the gate's procedure agree.
{
	my $o = new_user();
	$db->do(q{UPDATE users SET trial_ends_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND
	    WHERE id = ?}, undef, $o->{id});
	my $h = dbh();
	$h->do(q{SET time_zone = '+00:00', @tg_fallback = 'free'});
	my ($plan, $credits) = $h->selectrow_array(
	    'SELECT tg_plan(?), tg_credits(?, 10)', undef, $o->{id}, $o->{id});
	is($plan, 'free', 'fallback: tg_plan is the fallback plan');
	my $hash = `python3 -c 'import hashlib,sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=32, key=bytes.fromhex(sys.argv[2])).hexdigest())' '$o->{key}' '${\ conf_get('crypto', 'key')}'`;
	chomp $hash;
	# The engine's lease, asking for no slice (a lookup).
	my $sth = $h->prepare(q{CALL tg_lease('t35host000000000000000', 'k', ?, '',
	    'api_calls', 1, 10, 0, 0, 0)});
	$sth->execute($hash);
	my $row = $sth->fetchrow_arrayref // [];
	$sth->finish;
	is($row->[0], 0, 'fallback: the key is good');
	is($row->[6], $plan, 'fallback: the lease\'s plan is tg_plan');
	is($row->[15], $credits, 'fallback: the lease\'s credits are tg_credits');
	$h->do(q{SET @tg_fallback = ''});
	is(($h->selectrow_array('SELECT tg_plan(?)', undef, $o->{id}))[0], undef,
	    'no fallback: no plan');
}

done_testing();
