#!/usr/bin/perl
# Level meters at the gate and in POST /api/v1/check (contract section
# 7a, issue 18): a check of cost c on a level meter passes when level + c
# is at most the limit and raises the level by c, exactly, also under
# concurrency (10 concurrent starts against a limit of 2: exactly 2);
# PUT /api/v1/usage/levels/{meter} lowers it again; dry_run and cost 0
# raise nothing.  The dev stack's /demo/workspace location charges the
# level meter `workspaces`.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::JSON qw(encode_json);
use Mojo::Promise;
use TG qw(:DEFAULT ctl);
use TGGate;

my $db = gdb();
my $M = 'workspaces';
END {
	$db->do('DELETE FROM meters WHERE name = ?', undef, $M);
}

my ($skey) = service_key("svc42_$$");
my $S = bearer($skey);
sub check {
	my ($body) = @_;
	return req(POST => '/api/v1/check', { 'Content-Type' => 'application/json',
	    %$S }, encode_json($body))->json // {};
}
sub level {
	my ($uid) = @_;
	return $db->selectrow_array('SELECT level FROM usage_levels WHERE user_id = ? '
	    . 'AND meter = ?', undef, $uid, $M) // 0;
}
sub put_level {
	my ($uid, $n) = @_;
	return req(PUT => "/api/v1/usage/levels/$M", { 'Content-Type' => 'application/json',
	    %$S }, encode_json({ user_id => $uid, level => $n }))->code;
}

is((ctl('meters', 'set', $M, 'kind=level'))[0], 0, 'meters set workspaces kind=level');
my $p = test_plan(rate => 1000);
is((ctl('plans', 'set', $p, "limit.$M=2"))[0], 0, 'plans set limit.workspaces=2');

# --- at the gate --------------------------------------------------------------
{
	my $u = new_user();
	on_plan($u, $p);
	my $h = bearer($u->{key});
	my $r = req(GET => '/demo/workspace', $h);
	is($r->code, 200, 'the first start passes');
	is(($r->json // {})->{meter_remaining}, '1', 'X-Tollgate-Meter-Remaining: 1');
	is(level($u->{id}), 1, 'the level is 1');
	$r = req(GET => '/demo/workspace', $h);
	is($r->code, 200, 'the second passes');
	is(($r->json // {})->{meter_remaining}, '0', 'none left');
	$r = req(GET => '/demo/workspace', $h);
	is($r->code, 403, 'the third: 403');
	is(($r->json // {})->{error}{code}, 'quota_exceeded', 'quota_exceeded');
	is(level($u->{id}), 2, 'the level stays 2');
	is(scalar $db->selectrow_array('SELECT COUNT(*) FROM usage_counters WHERE '
	    . 'user_id = ? AND meter = ?', undef, $u->{id}, $M), 0,
	    'a level is not summed per period');
	is(put_level($u->{id}, 1), 200, 'a workspace stops: the service sets the level to 1');
	is(req(GET => '/demo/workspace', $h)->code, 200, 'one more starts at once');
	is(level($u->{id}), 2, 'level 2');
}

# --- /api/v1/check ----------------------------------------------------------------
{
	my $u = new_user();
	on_plan($u, $p);
	my $c = check({ user_id => $u->{id}, meter => $M, cost => 2, dry_run => Mojo::JSON::true });
	is($c->{allowed}, Mojo::JSON::true, 'dry_run: 2 would fit');
	is(level($u->{id}), 0, 'dry_run raises nothing');
	$c = check({ user_id => $u->{id}, meter => $M, cost => 0 });
	is($c->{allowed}, Mojo::JSON::true, 'cost 0 below the limit: passes');
	is(level($u->{id}), 0, 'cost 0 raises nothing');
	$c = check({ user_id => $u->{id}, meter => $M, cost => 3 });
	is($c->{code}, 'quota_exceeded', 'a cost past the limit: quota_exceeded');
	is_deeply($c->{meter}, { name => $M, used => 0, limit => 2, remaining => 2 },
	    'its meter: the level as used');

	my @uas = map { ua() } 1 .. 10;
	my @res;
	Mojo::Promise->all(map { $_->post_p(base() . '/api/v1/check' => $S => json =>
	    { user_id => $u->{id}, meter => $M }) } @uas)->then(sub {
		push @res, map { $_->[0]->res->json // {} } @_;
	})->catch(sub { diag("burst: @_") })->wait;
	is(scalar(grep { $_->{allowed} } @res), 2,
	    '10 concurrent starts against a limit of 2: exactly 2 pass');
	is(scalar(grep { ($_->{code} // '') eq 'quota_exceeded' } @res), 8,
	    'the other 8: quota_exceeded');
	is(level($u->{id}), 2, 'the level is 2');
	$c = check({ user_id => $u->{id}, meter => $M, cost => 0 });
	is($c->{code}, 'quota_exceeded', 'cost 0 at the limit: refused');
	is_deeply($c->{meter}, { name => $M, used => 2, limit => 2, remaining => 0 },
	    'its meter at the limit');
	is(put_level($u->{id}, 0), 200, 'all stopped: level 0');
	$c = check({ user_id => $u->{id}, meter => $M, cost => 2 });
	is($c->{allowed}, Mojo::JSON::true, 'then 2 at once fit');
	is($c->{meter}{remaining}, 0, 'and fill it');
}

done_testing();
