#!/usr/bin/perl
# Faults under load (issue 8), 4 of 4: SIGHUP and SIGTERM to the master
# under a steady wrk load of spends and gate checks.  A reload replaces
# every worker without dropping requests (at most 2 failures per
# reload); SIGTERM stops the master only once its workers have answered
# what they hold (logins in flight at the signal get their answer, nginx
# sees no upstream connection cut mid-request), then `contrib/devstack
# restart-tollgated` starts it again from the same build.  The ledger's
# totals hold across both.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::Promise;
use Mojo::IOLoop;
use Time::HiRes qw(sleep time);
use TG;
use TGGate;
use TGLoad;

# On SIGTERM the master removes the socket file (new connections: 503)
# and makes the socket non-blocking; the workers answer the connections
# nginx had already queued before they exit, so none is reset.
my $conns = soak_s(4, 8);
my $reloads = soak_s(2, 6);
my $elog = "$ENV{TG_DEVSTACK}/log/nginx-error.log";
my $tlog = "$ENV{TG_DEVSTACK}/log/tollgated.log";

# nginx's error-log lines since offset $off that tell of an upstream
# connection cut while a request was on it.
sub cut_lines {
	my ($off, $re) = @_;
	open my $fh, '<', $elog or return ();
	seek $fh, $off, 0;
	return grep { /$re/i && /upstream/ } <$fh>;
}

my $master = master_pid();
my @before = worker_pids();
ok($master && @before, "master $master, workers @before");
my $u = load_user();

# --- SIGHUP ---------------------------------------------------------------
{
	my $b = snapshot($u);
	my $h = load_start(duration => int(3 + 2.5 * $reloads), conns => $conns,
	    streams => [
	    { name => 'spend', path => '/demo/spend', token => $u->{token} },
	    { name => 'echo', path => '/demo/echo', token => $u->{key} } ]);
	sleep 1.5;
	my $n = 0;
	for (1 .. $reloads) {
		$n++ if devstack('reload');
		sleep 2.5;
	}
	is($n, $reloads, "$reloads reloads (SIGHUP) under load");
	my $res = load_wait($h);
	my ($s, $e) = @{$res}{qw(spend echo)};
	is(master_pid(), $master, 'the same master');
	my @now = worker_pids();
	is(scalar @now, scalar @before, 'as many workers as before');
	my %old = map { ($_ => 1) } @before;
	is(scalar(grep { $old{$_} } @now), 0, 'every worker replaced');
	my $failed = $s->{failed} + $e->{failed};
	for my $k (qw(spend echo)) {
		diag("reload $k: " . join(' ', map { "$_ => $res->{$k}{codes}{$_}" }
		    sort keys %{ $res->{$k}{codes} })
		    . ", socket errors $res->{$k}{socket_errors}");
	}
	cmp_ok($failed, '<=', 2 * $reloads,
	    "reload: failures ($failed) at most 2 a reload");
	my $a = snapshot($u);
	my ($lost, $dup, $unans) = spend_totals('reload', $b, $a, $s,
	    inflight => 2 * $reloads);
	figures(scenario => "SIGHUP x$reloads", requests => $s->{requests}
	    + $e->{requests}, errors => $failed, lost => $lost,
	    duplicated => $dup, note => "workers replaced; committed without "
	    . "a 200 $unans");
}

# --- SIGTERM --------------------------------------------------------------
{
	$master = master_pid();
	my $b = snapshot($u);
	my $eoff = -s $elog // 0;
	my $toff = -s $tlog // 0;
	my $h = load_start(duration => 8, conns => $conns, streams => [
	    { name => 'spend', path => '/demo/spend', token => $u->{token} },
	    { name => 'echo', path => '/demo/echo', token => $u->{key} } ]);
	sleep 1.5;

	# Two logins (a slow handler: Argon2id) in flight when the master
	# hears SIGTERM.
	my @uas = map { ua() } 1 .. 2;
	my @p = map {
		$uas[$_ - 1]->post_p(base() . '/api/v1/auth/login' =>
		    { 'X-Forwarded-For' => "127.0.89.$_" } => json => {
		    email => "nobody89.$$.$_\@example.com",
		    password => 'not-the-password-89' })
	} 1 .. 2;
	my $termed = 0;
	Mojo::IOLoop->timer(0.05 => sub { $termed = kill 'TERM', $master });
	my @logins;
	Mojo::Promise->all_settled(@p)->then(sub {
		@logins = map { $_->{status} eq 'fulfilled'
		    ? ($_->{value}[0]->res->code // 0) : 0 } @_;
	})->wait;
	$termed ||= kill 'TERM', $master;
	ok($termed, 'SIGTERM to the master under load');
	is(scalar(grep { $_ == 0 } @logins), 0, 'the logins got an answer '
	    . "(@logins), no client connection reset");
	# tollgate answers what reached it (401); what nginx had not handed
	# on yet when the socket went away is refused (503); none is reset.
	is(scalar(grep { $_ != 401 && $_ != 503 } @logins), 0,
	    "the logins in flight were answered 401 or refused 503 (@logins)");
	ok(wait_for(sub { !kill 0, $master }, 20),
	    'the master exited once its workers were done');
	my $stopped_log = do { open my $fh, '<', $tlog; seek $fh, $toff, 0;
	    local $/; <$fh> } // '';
	like($stopped_log, qr/\bstopped\b/, 'tollgated logged its stop');
	unlike($stopped_log, qr/stop_timeout/, 'no worker had to be killed');

	ok(devstack('restart-tollgated'), 'contrib/devstack restart-tollgated');
	ok(wait_for(sub { (req(GET => '/healthz')->code // 0) == 200 }, 20),
	    'healthz 200 again');
	isnt(master_pid(), $master, 'a new master');
	ok(wait_for(sub { worker_pids() == @before }, 10), 'with its workers');
	my $build = `cat $ENV{TG_DEVSTACK}/run/build`;
	chomp $build;
	my $exe = readlink('/proc/' . master_pid() . '/exe') // '';
	like($exe, qr/^\Q$build\E/, "from the same build ($build)");

	my $res = load_wait($h);
	my ($s, $e) = @{$res}{qw(spend echo)};
	for my $k (qw(spend echo)) {
		my $r = $res->{$k};
		diag("term $k: " . join(' ', map { "$_ => $r->{codes}{$_}" }
		    sort keys %{ $r->{codes} }) . ", socket errors $r->{socket_errors}");
		is($r->{socket_errors}, 0, "$k: no client connection reset");
		is(scalar(grep { !/^(200|503)$/ } keys %{ $r->{codes} }), 0,
		    "$k: 200, or 503 while tollgated was down");
		ok(($r->{codes}{200} // 0) > 0, "$k: 200s again after the restart");
	}
	# A worker that left a request it had accepted: nginx reads EOF.
	my @cut = cut_lines($eoff, qr/prematurely closed|broken pipe/);
	is(scalar @cut, 0, 'no worker left a request it had accepted '
	    . '(no "upstream prematurely closed")') or diag(join '', @cut[0 ..
	    ($#cut > 4 ? 4 : $#cut)]);
	# The FastCGI workers' listen queue (the gate workers' kept-alive
	# HTTP connections close with the gate; their checks answer 503).
	my @reset = grep { !/gate\.sock/ } cut_lines($eoff, qr/reset by peer/);
	is(scalar @reset, 0, 'no connection queued for a worker reset');
	my $a = snapshot($u);
	my ($lost, $dup, $unans) = spend_totals('SIGTERM', $b, $a, $s,
	    inflight => $conns);
	figures(scenario => 'SIGTERM + restart', requests => $s->{requests}
	    + $e->{requests}, errors => $s->{failed} + $e->{failed},
	    lost => $lost, duplicated => $dup, note => sprintf('503s %d while '
	    . 'down (expected), of them backlog connections reset %d; '
	    . 'committed without a 200 %d', ($s->{codes}{503} // 0)
	    + ($e->{codes}{503} // 0), scalar @reset, $unans));
}

done_testing;
