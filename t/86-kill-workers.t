#!/usr/bin/perl
# Faults under load (issue 8), 1 of 4: workers killed with SIGKILL, one
# after another, under a steady wrk load of spends and gate checks
# through nginx.  The master replaces each; no committed spend is lost
# (every 200 has its ledger row), none is counted twice (ledger spends <=
# the 200s plus what was in flight at the kills or abandoned when wrk
# stopped), the ledger, balance and meters agree exactly, and the only
# failures are requests in flight at a kill.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Time::HiRes qw(sleep time);
use TG;
use TGGate;
use TGLoad;

my $conns = soak_s(4, 8);
my $kills = soak_s(3, 10);
my $gap = soak_s(1.5, 3);
my $dur = int(2 + $kills * $gap + soak_s(4, 10));

my $master = master_pid();
my @before = worker_pids();
ok($master && @before >= 2, "master $master, workers @before");

my $u = load_user();
my $b = snapshot($u);
my $h = load_start(duration => $dur, conns => $conns, streams => [
    { name => 'spend', path => '/demo/spend', token => $u->{token} },
    { name => 'echo', path => '/demo/echo', token => $u->{key} } ]);
sleep 1.5;

my (%killed, $n);
for my $i (1 .. $kills) {
	# A worker that has not been killed yet (one of the first ones while
	# they last), so each kill hits a live worker.
	my @w = worker_pids();
	my ($victim) = grep { !$killed{$_} } @w;
	last unless $victim;
	$n++ if kill 'KILL', $victim;
	$killed{$victim} = 1;
	sleep $gap;
}
is($n, $kills, "$kills workers killed with SIGKILL, ${gap} s apart");

ok(wait_for(sub {
	my @w = worker_pids();
	return @w == @before && !grep { $killed{$_} } @w;
}, 15), 'the master replaced every killed worker');
is(master_pid(), $master, 'the same master');
my $res = load_wait($h);
my ($s, $e) = @{$res}{qw(spend echo)};
ok($s->{requests} > 50 && $e->{requests} > 50,
    "the load ran: $s->{requests} spends, $e->{requests} checks");
for my $k (qw(spend echo)) {
	diag("$k: " . join(' ', map { "$_ => $res->{$k}{codes}{$_}" }
	    sort keys %{ $res->{$k}{codes} }) . ', socket errors '
	    . $res->{$k}{socket_errors});
}
# Each connection has at most one request in flight at a kill.
my $inflight = $conns * $kills;
for my $k (qw(spend echo)) {
	my $r = $res->{$k};
	is($r->{socket_errors}, 0, "$k: no connection reset (nginx answers)");
	cmp_ok($r->{failed}, '<=', $inflight,
	    "$k: failures ($r->{failed}) within those in flight at the kills");
	is(scalar(grep { !/^(200|503)$/ } keys %{ $r->{codes} }), 0,
	    "$k: only 200, or 503 for a request whose worker died");
}

my $a = snapshot($u);
my ($lost, $dup, $unans) = spend_totals('kill -9', $b, $a, $s,
    inflight => $inflight);
# Checks: api_calls counts every check that passed.
my $ok = $e->{codes}{200} // 0;
my $calls = $a->{api_calls} - $b->{api_calls};
cmp_ok($calls, '>=', $ok, "api_calls ($calls) >= checks answered 200 ($ok)");
cmp_ok($calls - $ok, '<=', $inflight + $conns,
    'api_calls: nothing beyond in flight and abandoned');

figures(scenario => "kill -9 x$kills", requests => $s->{requests} + $e->{requests},
    errors => $s->{failed} + $e->{failed}, lost => $lost, duplicated => $dup,
    note => "spends $s->{requests}, 200s " . ($s->{codes}{200} // 0)
    . ", ledger " . ($a->{spends} - $b->{spends})
    . ", committed without a 200 $unans");

done_testing;
