#!/usr/bin/perl
# More from a gate location (contract section 7, issue 18), through nginx
# and the shipped snippet: $tollgate_bucket (a rate bucket of its own,
# limited by the plan's rate.NAME, else rate_per_minute; also the bucket
# of POST /api/v1/check), $tollgate_role admin (others 403 forbidden),
# X-Tollgate-Role and X-Tollgate-Meter-Remaining for the upstream (never
# the client's copies), and cost 0 as a pure check (passes while use is
# below the limit, refuses at it, counts nothing).

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::JSON qw(encode_json);
use Mojo::Promise;
use TG qw(:DEFAULT ctl);
use TGGate;

my $db = gdb();

my ($skey) = service_key("svc41_$$");
sub check {
	my ($body) = @_;
	return req(POST => '/api/v1/check', { 'Content-Type' => 'application/json',
	    %{ bearer($skey) } }, encode_json($body))->json // {};
}
sub code_of { my ($r) = @_; return ($r->json // {})->{error}{code} // '' }

# --- buckets ------------------------------------------------------------------
{
	my $p = test_plan(rate => 3);
	is((ctl('plans', 'set', $p, 'rate.poll=2'))[0], 0, 'plans set rate.poll=2');
	my $u = new_user();
	on_plan($u, $p);
	my $h = bearer($u->{token});
	my $r = req(GET => '/demo/poll', $h);
	is($r->code, 200, 'bucket poll: the first check passes');
	is($r->headers->header('X-RateLimit-Limit'), 2, 'the bucket\'s limit: rate.poll');
	is($r->headers->header('X-RateLimit-Remaining'), 1, 'one left in the bucket');
	is(req(GET => '/demo/poll', $h)->code, 200, 'the second passes');
	$r = req(GET => '/demo/poll', $h);
	is($r->code, 429, 'the third: 429');
	is(code_of($r), 'rate_limited', 'rate_limited');
	is($r->headers->header('X-RateLimit-Remaining'), 0, 'none left');
	like($r->headers->header('Retry-After') // '', qr/^\d+$/, 'Retry-After');
	$r = req(GET => '/demo/echo', $h);
	is($r->code, 200, 'the default bucket is its own');
	is($r->headers->header('X-RateLimit-Limit'), 3, 'the plan\'s rate_per_minute');
	is($r->headers->header('X-RateLimit-Remaining'), 2, 'the poll checks did not count there');
	my $c = check({ user_id => $u->{id}, bucket => 'poll' });
	is($c->{code}, 'rate_limited', '/api/v1/check shares the location\'s bucket');
	is($c->{rate}{limit}, 2, 'with its limit');
	$c = check({ user_id => $u->{id}, bucket => 'other' });
	is($c->{allowed}, Mojo::JSON::true, 'a bucket without rate.NAME');
	is($c->{rate}{limit}, 3, 'uses rate_per_minute');
	is($c->{rate}{remaining}, 2, 'counted in its own window');
	$c = check({ user_id => $u->{id}, bucket => 'other', dry_run => Mojo::JSON::true });
	is($c->{rate}{remaining}, 2, 'dry_run takes nothing from a bucket');

	# Exact under concurrency: 20 at once against rate.burst=5.
	my $bp = test_plan(rate => 1000);
	ctl('plans', 'set', $bp, 'rate.burst=5');
	my $b = new_user();
	on_plan($b, $bp);
	my @uas = map { ua() } 1 .. 20;
	my @res;
	Mojo::Promise->all(map { $_->post_p(base() . '/api/v1/check' => bearer($skey) =>
	    json => { user_id => $b->{id}, bucket => 'burst' }) } @uas)->then(sub {
		push @res, map { $_->[0]->res->json // {} } @_;
	})->catch(sub { diag("burst: @_") })->wait;
	is(scalar(grep { $_->{allowed} } @res), 5, '20 concurrent checks, bucket of 5: exactly 5 pass');
	is(scalar(grep { ($_->{code} // '') eq 'rate_limited' } @res), 15, '15 rate_limited');
	my @gate;
	Mojo::Promise->all(map { $_->get_p(base() . '/demo/poll' => bearer($b->{token})) }
	    map { ua() } 1 .. 12)->then(sub {
		push @gate, map { $_->[0]->res->code // 0 } @_;
	})->catch(sub { diag("burst: @_") })->wait;
	is(scalar(grep { $_ == 200 } @gate), 12, 'the poll bucket (rate_per_minute 1000) is apart');

	# A check refused after the rate gives its slot back.
	my $q = test_plan(rate => 5, limits => { compute_minutes => 1 });
	my $v = new_user();
	on_plan($v, $q);
	$c = check({ user_id => $v->{id}, bucket => 'render', meter => 'compute_minutes',
	    cost => 2 });
	is($c->{code}, 'quota_exceeded', 'refused on the quota');
	is($c->{rate}{remaining}, 5, 'the refused check took no slot');
	is(scalar $db->selectrow_array(q{SELECT count FROM bucket_windows WHERE user_id = ?
	    AND bucket = 'render'}, undef, $v->{id}), 0, 'the window counts nothing');
}

# --- role ---------------------------------------------------------------------
{
	my $u = new_user();
	my $r = req(GET => '/demo/admin', bearer($u->{token}));
	is($r->code, 403, '$tollgate_role admin: a user is refused');
	is(code_of($r), 'forbidden', 'forbidden');
	like(($r->json // {})->{error}{message} // '', qr/admin/, 'the message says admins');
	$r = req(GET => '/demo/echo', { %{ bearer($u->{token}) },
	    'X-Tollgate-Role' => 'admin', 'X-Tollgate-Meter-Remaining' => 'forged' });
	my $seen = $r->json // {};
	is($seen->{role}, 'user', 'the upstream gets X-Tollgate-Role: user, not the forged copy');
	my $trial = $db->selectrow_array(q{SELECT period_limit FROM plan_limits
	    WHERE plan = 'trial' AND meter = 'api_calls'});
	is($seen->{meter_remaining}, defined $trial ? $trial - 1 : undef,
	    'X-Tollgate-Meter-Remaining: the trial\'s api_calls left, not the forged copy');
	my $free = test_plan(rate => 100);
	on_plan($u, $free);
	$seen = req(GET => '/demo/echo', { %{ bearer($u->{token}) },
	    'X-Tollgate-Meter-Remaining' => 'forged' })->json // {};
	is($seen->{meter_remaining}, undef, 'no limit on the meter: empty, not the forged copy');
	my $a = new_user();
	$db->do(q{UPDATE users SET role = 'admin' WHERE id = ?}, undef, $a->{id});
	$r = req(GET => '/demo/admin', bearer($a->{token}));
	is($r->code, 200, 'an admin passes');
	is(($r->json // {})->{role}, 'admin', 'and the upstream hears admin');
	$db->do(q{UPDATE users SET role = 'user' WHERE id = ?}, undef, $a->{id});
	is(req(GET => '/demo/admin', bearer($a->{token}))->code, 403,
	    'demoted: refused at once');
	is(check({ user_id => $a->{id} })->{role}, 'user', '/api/v1/check: role');
}

# --- meter remaining and cost 0 ----------------------------------------------
{
	my $p = test_plan(rate => 100, credits => 5, limits => { compute_minutes => 10 });
	my $u = new_user();
	on_plan($u, $p);
	my $h = bearer($u->{key});
	my $r = req(GET => '/demo/compute', $h);
	is($r->code, 200, 'a compute check (cost 5)');
	is(($r->json // {})->{meter_remaining}, '5', 'X-Tollgate-Meter-Remaining: 5');
	$r = req(GET => '/demo/peek', $h);
	is($r->code, 200, 'cost 0 below the limit: passes');
	is(($r->json // {})->{meter_remaining}, '5', 'and counts nothing');
	is(req(GET => '/demo/compute', $h)->code, 200, 'the second compute check (10 of 10)');
	$r = req(GET => '/demo/peek', $h);
	is($r->code, 403, 'cost 0 at the limit: refused');
	is(code_of($r), 'quota_exceeded', 'quota_exceeded');
	is(scalar $db->selectrow_array(q{SELECT used FROM usage_counters WHERE user_id = ?
	    AND meter = 'compute_minutes'}, undef, $u->{id}), 10, 'used is 10');
	my $c = check({ user_id => $u->{id}, meter => 'compute_minutes', cost => 0 });
	is($c->{code}, 'quota_exceeded', '/api/v1/check, cost 0 at the limit: refused');
	is_deeply($c->{meter}, { name => 'compute_minutes', used => 10, limit => 10,
	    remaining => 0 }, 'its meter');
	my $s = new_user();
	on_plan($s, $p);
	$r = req(GET => '/demo/spend', bearer($s->{token}));
	is(($r->json // {})->{meter_remaining}, '4', 'meter credits: the balance left (4 of 5)');
}

done_testing();
