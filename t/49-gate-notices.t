#!/usr/bin/perl
# The 80 % and 100 % usage notices (contract section 9) for use counted by
# the gate itself, whose engine decides in memory: each goes once per
# period, as for usage events (t/32-usage.t).  Also: a gated check is
# answered from the engine's journal, and what it counted shows at once in
# GET /api/v1/usage on this host (the API waits for the journal).

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use TG;
use TGGate;

my $db = gdb();
my $plan = test_plan(rate => 1000, limits => { compute_minutes => 25 });
my $u = new_user();
on_plan($u, $plan);

sub notices {
	my ($kind) = @_;
	return scalar $db->selectrow_array(q{SELECT COUNT(*) FROM outbox
	    WHERE user_id = ? AND kind = ?}, undef, $u->{id}, $kind);
}

sub used {
	my $us = req(GET => '/api/v1/usage', bearer($u->{token}))->json // {};
	return $us->{meters}{compute_minutes}{used};
}

# /demo/compute costs 5 of compute_minutes: 5, 10, 15 stay below 80 %.
for my $i (1 .. 3) {
	my $res = req(GET => '/demo/compute', bearer($u->{key}));
	is($res->code, 200, "check $i: allowed");
	is(used(), 5 * $i, "check $i: /api/v1/usage shows it at once");
}
is(notices('usage_80'), 0, 'below 80 %: no notice');

# 20 of 25 is 80 %.
is(req(GET => '/demo/compute', bearer($u->{key}))->code, 200, '80 %: allowed');
ok(wait_for(sub { notices('usage_80') == 1 }, 5), '80 %: the notice is queued');
is(notices('usage_100'), 0, '80 %: no 100 % notice yet');

# 25 of 25 is 100 %; the next check is refused.
is(req(GET => '/demo/compute', bearer($u->{key}))->code, 200, '100 %: allowed');
ok(wait_for(sub { notices('usage_100') == 1 }, 5), '100 %: the notice is queued');
error_ok(req(GET => '/demo/compute', bearer($u->{key})), 403, 'quota_exceeded',
    'past the limit: refused');
is(used(), 25, 'the refused check counted nothing');

# Once each per period, even when the engine forgets the user (a change
# in the log drops its cached state) and learns it again.
$db->do('UPDATE users SET name = ? WHERE id = ?', undef, 'Gate again', $u->{id});
error_ok(req(GET => '/demo/compute', bearer($u->{key})), 403, 'quota_exceeded',
    'still refused');
is(notices('usage_80'), 1, 'the 80 % notice went once');
is(notices('usage_100'), 1, 'the 100 % notice went once');
is(scalar $db->selectrow_array(q{SELECT COUNT(*) FROM usage_notices
    WHERE user_id = ? AND meter = 'compute_minutes'}, undef, $u->{id}), 2,
    'usage_notices records both thresholds');

done_testing();
