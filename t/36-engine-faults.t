#!/usr/bin/perl
# The gate engine under faults (issue 14): under a steady wrk load of
# spends and checks, kill -9 the engine process (the flusher) twice,
# then kill -9 the master.  Whatever the journal held is committed by the
# next engine (replayed from the shared file), so no spend is lost and
# none is counted twice: every 200 has its ledger row, the ledger, the
# balance and the credits meter agree, and the only failures are checks
# in flight at a kill (answered 503).

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Time::HiRes qw(sleep time);
use TG;
use TGGate;
use TGLoad;

my $conns = soak_s(4, 8);

sub engine_metric {
	my ($name) = @_;
	my $body = req(GET => '/metrics')->body // '';
	return $body =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

# --- kill -9 of the engine process, twice -----------------------------
{
	my $master = master_pid();
	my $e0 = engine_pid();
	ok($master && $e0, "master $master, engine $e0");
	my $u = load_user();
	my $b = snapshot($u);
	my $h = load_start(duration => 8, conns => $conns, streams => [
	    { name => 'spend', path => '/demo/spend', token => $u->{token} },
	    { name => 'echo', path => '/demo/echo', token => $u->{key} } ]);
	my %killed;
	for my $i (1 .. 2) {
		sleep 2;
		my $e = engine_pid();
		ok($e && !$killed{$e} && kill('KILL', $e), "kill -9 engine $e");
		$killed{$e} = 1;
		ok(wait_for(sub { my $n = engine_pid(); $n && !$killed{$n} }, 10),
		    'the master started a new engine');
	}
	my $res = load_wait($h);
	my ($s, $c) = @{$res}{qw(spend echo)};
	ok($s->{requests} > 50 && $c->{requests} > 50,
	    "the load ran: $s->{requests} spends, $c->{requests} checks");
	for my $k (qw(spend echo)) {
		diag("engine kill $k: " . join(' ', map { "$_ => $res->{$k}{codes}{$_}" }
		    sort keys %{ $res->{$k}{codes} }) . ', socket errors '
		    . $res->{$k}{socket_errors});
		is($res->{$k}{socket_errors}, 0, "$k: no connection reset");
		is(scalar(grep { !/^(200|503)$/ } keys %{ $res->{$k}{codes} }), 0,
		    "$k: only 200, or 503 while no engine ran");
	}
	is(engine_metric('tollgate_gate_journal_pending') // -1, 0,
	    'the journal is empty afterwards: all of it committed');
	my $a = snapshot($u);
	my ($lost, $dup, $unans) = spend_totals('engine kill -9', $b, $a, $s,
	    inflight => ($s->{'5xx'} // 0) + $conns * 2);
	my $ok = $c->{codes}{200} // 0;
	my $calls = $a->{api_calls} - $b->{api_calls};
	cmp_ok($calls, '>=', $ok, "api_calls ($calls) >= checks answered 200 ($ok)");
	figures(scenario => 'engine kill -9 x2', requests => $s->{requests}
	    + $c->{requests}, errors => $s->{failed} + $c->{failed},
	    lost => $lost, duplicated => $dup, note => "ledger "
	    . ($a->{spends} - $b->{spends}) . ", committed without a 200 $unans");
}

# --- kill -9 of the master --------------------------------------------
{
	my $master = master_pid();
	my @orphans = worker_pids();
	my $u = load_user();
	my $b = snapshot($u);
	my $h = load_start(duration => 8, conns => $conns, streams => [
	    { name => 'spend', path => '/demo/spend', token => $u->{token} } ]);
	sleep 2;
	ok(kill('KILL', $master), "kill -9 master $master");
	# Its gate workers and engine stop with it (they commit what they
	# decided first); its FastCGI workers are orphans: end them.
	ok(wait_for(sub { !gate_pids() && !engine_pid() }, 15),
	    'no gate worker or engine is left of the old master');
	kill 'TERM', @orphans;
	sleep 0.5;
	ok(devstack('restart-tollgated'), 'tollgated started again');
	ok(wait_for(sub { (req(GET => '/healthz')->code // 0) == 200 }, 30),
	    'healthy again');
	my $res = load_wait($h);
	my $s = $res->{spend};
	diag("master kill spend: " . join(' ', map { "$_ => $s->{codes}{$_}" }
	    sort keys %{ $s->{codes} }) . ', socket errors ' . $s->{socket_errors});
	is(scalar(grep { !/^(200|503)$/ } keys %{ $s->{codes} }), 0,
	    'only 200, or 503 while tollgated was down');
	my $a = snapshot($u);
	my ($lost, $dup, $unans) = spend_totals('master kill -9', $b, $a, $s,
	    inflight => $conns);
	figures(scenario => 'master kill -9', requests => $s->{requests},
	    errors => $s->{failed}, lost => $lost, duplicated => $dup,
	    note => "ledger " . ($a->{spends} - $b->{spends})
	    . ", committed without a 200 $unans");
}

done_testing;
