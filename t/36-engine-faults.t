#!/usr/bin/perl
# The gate engine under faults (issue 14): under a steady wrk load of
# spends and checks, kill -9 the flusher, then the engine process (the
# change-log poller), then the master.  Whatever the journal held is committed by the
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

# --- kill -9 of the flusher, then of the engine process ---------------
{
	my $master = master_pid();
	my $e0 = engine_pid();
	my $f0 = flusher_pid();
	ok($master && $e0 && $f0, "master $master, engine $e0, flusher $f0");
	my $u = load_user();
	my $b = snapshot($u);
	my $h = load_start(duration => 8, conns => $conns, streams => [
	    { name => 'spend', path => '/demo/spend', token => $u->{token} },
	    { name => 'echo', path => '/demo/echo', token => $u->{key} } ]);
	my %killed;
	for my $which ([flusher => \&flusher_pid], [engine => \&engine_pid]) {
		my ($name, $pid_of) = @$which;
		sleep 2;
		my $e = $pid_of->();
		ok($e && !$killed{$e} && kill('KILL', $e), "kill -9 $name $e");
		$killed{$e} = 1;
		ok(wait_for(sub { my $n = $pid_of->(); $n && !$killed{$n} }, 10),
		    "the master started a new $name");
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
	ok(wait_for(sub { (engine_metric('tollgate_gate_journal_pending')
	    // -1) == 0 }, 10), 'the journal empties afterwards: all of it '
	    . 'committed');
	my $a = snapshot($u);
	my ($lost, $dup, $unans) = spend_totals('engine kill -9', $b, $a, $s,
	    inflight => $conns * 2);
	my $ok = $c->{codes}{200} // 0;
	my $calls = $a->{api_calls} - $b->{api_calls};
	cmp_ok($calls, '>=', $ok, "api_calls ($calls) >= checks answered 200 ($ok)");
	figures(scenario => 'flusher and engine kill -9', requests => $s->{requests}
	    + $c->{requests}, errors => $s->{failed} + $c->{failed},
	    lost => $lost, duplicated => $dup, note => "ledger "
	    . ($a->{spends} - $b->{spends}) . ", committed without a 200 $unans");
}

# --- kill -9 of the master --------------------------------------------
{
	my $master = master_pid();
	my @orphans = worker_pids();
	my @gates = gate_pids();
	my @engine = (@gates, grep { defined } engine_pid(), flusher_pid());
	ok(@gates > 0 && @engine == @gates + 2, 'gate workers, engine, flusher: '
	    . "@engine");
	my $u = load_user();
	my $b = snapshot($u);
	my $h = load_start(duration => 8, conns => $conns, streams => [
	    { name => 'spend', path => '/demo/spend', token => $u->{token} } ]);
	sleep 2;
	ok(kill('KILL', $master), "kill -9 master $master");
	# Its gate workers and engine stop with it (they commit what they
	# decided first); its FastCGI workers are orphans: end them.
	ok(wait_for(sub { !grep { kill 0, $_ } @engine }, 15),
	    'no gate worker, engine or flusher is left of the old master');
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
