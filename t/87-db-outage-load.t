#!/usr/bin/perl
# Faults under load (issue 8), 2 of 4: MariaDB stopped for a while (8 s
# here, 20 s under contrib/soak) and started again, under a steady wrk
# load of spends and gate checks.  Meanwhile 503 unavailable with
# Retry-After; nothing half-written (ledger spends == credits taken from
# the balance == the credits meter); recovery by itself within seconds of
# the restart, the same master; totals exact (every 200 in the ledger,
# nothing beyond what was in flight at the stop or abandoned at the end).

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Time::HiRes qw(sleep time);
use TG;
use TGGate;
use TGLoad;

my $conns = soak_s(4, 8);
my $down = soak_s(8, 20);
my $dur = int($down + 9);

my $master = master_pid();
ok($master, "master $master");

my $u = load_user();
my $b = snapshot($u);
my $stopped = 0;
END { devstack('db-start') if $stopped }

my $h = load_start(duration => $dur, conns => $conns, streams => [
    { name => 'spend', path => '/demo/spend', token => $u->{token} },
    { name => 'echo', path => '/demo/echo', token => $u->{key} } ]);
sleep 1.5;

my $t0 = time;
gdb()->{mariadb_auto_reconnect} = 1;	# the test's own handle, afterwards
ok(devstack('db-stop'), 'devstack db-stop under load');
$stopped = 1;

# What a client sees meanwhile: the gate and the API fail closed.
my $res = req(GET => '/demo/spend', bearer($u->{token}));
error_ok($res, 503, 'unavailable', 'a spend while the database is down');
like($res->headers->header('Retry-After') // '', qr/^\d+$/,
    'the spend: Retry-After in seconds');
$res = req(GET => '/api/v1/me', bearer($u->{token}));
error_ok($res, 503, 'unavailable', 'GET /api/v1/me while the database is down');
like($res->headers->header('Retry-After') // '', qr/^\d+$/,
    '/api/v1/me: Retry-After in seconds');

my $left = $down - (time - $t0);
sleep $left if $left > 0;
ok(devstack('db-start'), sprintf 'devstack db-start after %.1f s', time - $t0);
$stopped = 0;
my $t1 = time;
ok(wait_for(sub { (req(GET => '/demo/spend', bearer($u->{token}))->code // 0)
    == 200 }, 15), 'spends succeed again by themselves');
my $rec = time - $t1;
cmp_ok($rec, '<', 5, sprintf 'within %.1f s of the restart', $rec);
is(master_pid(), $master, 'the same master');

my $all = load_wait($h);
my ($s, $e) = @{$all}{qw(spend echo)};
for my $k (qw(spend echo)) {
	my $r = $all->{$k};
	diag("$k: " . join(' ', map { "$_ => $r->{codes}{$_}" }
	    sort keys %{ $r->{codes} }) . ", socket errors $r->{socket_errors}");
	ok(($r->{codes}{503} // 0) > 0, "$k: 503s during the outage");
	ok(($r->{codes}{200} // 0) > 0, "$k: 200s around it");
	is(scalar(grep { !/^(200|503)$/ } keys %{ $r->{codes} }), 0,
	    "$k: nothing but 200 and 503");
	is($r->{socket_errors}, 0, "$k: no connection reset");
}

# The probe spends above: 503s, then the recovery loop's one 200.
my $a = snapshot($u);
my ($lost, $dup, $unans) = spend_totals('database outage', $b, $a, $s,
    inflight => $conns, probes => 1);
my $ok = $e->{codes}{200} // 0;
my $calls = $a->{api_calls} - $b->{api_calls};
cmp_ok($calls, '>=', $ok, "api_calls ($calls) >= checks answered 200 ($ok)");
cmp_ok($calls - $ok, '<=', 2 * $conns,
    'api_calls: nothing beyond in flight at the stop and abandoned');

figures(scenario => "MariaDB down ${down} s", requests => $s->{requests}
    + $e->{requests}, errors => $s->{failed} + $e->{failed}, lost => $lost,
    duplicated => $dup, note => sprintf('503s %d (expected, the outage); '
    . 'recovered %.1f s after the restart; committed without a 200 %d',
    ($s->{codes}{503} // 0) + ($e->{codes}{503} // 0), $rec, $unans));

done_testing;
