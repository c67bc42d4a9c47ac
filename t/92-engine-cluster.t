#!/usr/bin/perl
# The gate engine across two instances (issue 14): each instance decides
# within leases it took from the database, and the database never grants
# more than the limit or the balance.  Spends and checks sent to A and B
# at once: exactly the credits there are are spent, exactly the rate
# limit passes, nothing is lost; an instance killed while it holds slices
# gives them back when they expire; a change made through one instance
# (or straight in the database, on another Galera node) is seen by the
# other's very next check.
#
# Runs under `contrib/devstack cluster test` (it needs TG_CLUSTER_*).

use strict;
use warnings;
use lib 't/lib';

use DBI;
use Test::More;
use Mojo::Promise;
use Time::HiRes qw(time sleep);
use TG;
use TGGate;

BEGIN {
	unless ($ENV{TG_CLUSTER_FORM}) {
		print "1..0 # SKIP needs the Galera cluster: contrib/devstack "
		    . "cluster test\n";
		exit 0;
	}
}

my %BASE = (A => $ENV{TG_BASE}, B => $ENV{TG_BASE_B});
my $db = gdb();

# Sends $n GETs of $path to each instance, all at once; returns
# ({code => count} per instance, total {code => count}).
sub burst2 {
	my ($n, $path, $headers) = @_;
	my (%per, %all);
	my @p;
	for my $inst (qw(A B)) {
		for (1 .. $n) {
			my $ua = ua();
			push @p, $ua->get_p($BASE{$inst} . $path => $headers)->then(sub {
				my $code = $_[0]->res->code // 0;
				$per{$inst}{$code}++;
				$all{$code}++;
				undef $ua;
			});
		}
	}
	Mojo::Promise->all(@p)->catch(sub { diag("burst2: @_") })->wait;
	return (\%per, \%all);
}

sub at {
	my ($inst, $path, $headers) = @_;
	my $ua = ua();
	return $ua->get($BASE{$inst} . $path => $headers)->res;
}

sub ledger {
	my ($uid) = @_;
	my %k = map { $_->[0] => $_->[1] } @{ $db->selectall_arrayref(q{SELECT
	    kind, COUNT(*) FROM credit_ledger WHERE user_id = ? GROUP BY kind},
	    undef, $uid) };
	my ($bal) = $db->selectrow_array(q{SELECT allowance + granted FROM
	    credit_balances WHERE user_id = ?}, undef, $uid);
	return (\%k, $bal);
}

# --- Spends at A and B at once ----------------------------------------
{
	my $u = new_user();
	on_plan($u, test_plan(rate => 100000, credits => 40,
	    limits => { credits => 40 }));
	is(at('A', '/demo/spend', bearer($u->{token}))->code, 200, 'a spend at A');
	is(at('B', '/demo/spend', bearer($u->{token}))->code, 200,
	    'a spend at B: both hold slices now');
	my ($per, $all) = burst2(60, '/demo/spend', bearer($u->{token}));
	diag('spends: A ' . join(' ', map { "$_=$per->{A}{$_}" } sort keys %{ $per->{A} })
	    . '; B ' . join(' ', map { "$_=$per->{B}{$_}" } sort keys %{ $per->{B} }));
	is($all->{200} // 0, 38, 'exactly the 38 credits left are spent, across A and B');
	is($all->{403} // 0, 82, 'the other 82 are refused');
	my ($k, $bal) = ledger($u->{id});
	is($bal, 0, 'the balance ends at 0');
	is($k->{spend} // 0, 40, 'the ledger has the 40 spends');
	is($k->{refusal} // 0, 82, 'and the 82 refusals');
}

# --- The rate limit across A and B ------------------------------------
{
	my $u = new_user();
	on_plan($u, test_plan(rate => 10));
	my ($per, $all) = burst2(15, '/demo/echo', bearer($u->{key}));
	is($all->{200} // 0, 10, 'exactly 10 of 30 checks at A and B pass (10/min)');
	is($all->{429} // 0, 20, 'the other 20 answer 429');
}

# --- A change through A, or on another node, at B's next check --------
{
	my $u = new_user();
	is(at('B', '/demo/echo', bearer($u->{key}))->code, 200, 'the key works at B');
	my $res = ua()->delete("$BASE{A}/api/v1/api-keys/$u->{key_id}" =>
	    bearer($u->{token}))->res;
	is($res->code, 204, 'the key is deleted through A');
	is(at('B', '/demo/echo', bearer($u->{key}))->code, 401,
	    'B refuses it at its very next check');
	my $port3 = (split /,/, $ENV{TG_CLUSTER_SQL_PORTS} // '')[2];
	my $n3 = DBI->connect("DBI:MariaDB:database=tollgate;host=127.0.0.1;"
	    . "port=$port3", $ENV{TG_DB_USER}, $ENV{TG_DB_PASSWORD},
	    { RaiseError => 1, AutoCommit => 1 });
	is(at('A', '/demo/echo', bearer($u->{token}))->code, 200, 'the JWT works at A');
	my $t0 = time;
	$n3->do('UPDATE users SET disabled_at = UTC_TIMESTAMP(6) WHERE id = ?',
	    undef, $u->{id});
	my $code = at('A', '/demo/echo', bearer($u->{token}))->code;
	is($code, 403, 'disabled on node 3: A refuses the next check');
	diag(sprintf 'a change on node 3 to the refusal at A: %.1f ms',
	    (time - $t0) * 1000);
}

# --- An instance killed while it holds slices -------------------------
{
	my $u = new_user();
	on_plan($u, test_plan(rate => 100000, credits => 400,
	    limits => { credits => 400 }));
	my $ok = 0;
	for (1 .. 3) {
		$ok++ if at('A', '/demo/spend', bearer($u->{token}))->code == 200;
	}
	is($ok, 3, 'three spends at A (A holds a slice of the rest)');
	my ($held) = $db->selectrow_array(q{SELECT SUM(granted - used) FROM
	    gate_leases WHERE user_id = ? AND res = 'credits'}, undef, $u->{id});
	cmp_ok($held // 0, '>', 1, "A holds $held credits it has not spent");
	my $pidfile = "$ENV{TG_CLUSTER_DIR}/a/run/tollgated.pid";
	my $master = do { local (@ARGV, $/) = ($pidfile); <> } // '';
	chomp $master;
	my @kids = split ' ', `pgrep -P $master`;
	ok($master && kill('KILL', $master), "kill -9 A's master $master");
	kill 'KILL', @kids;
	# B spends what is free now, then the rest once A's slice expires.
	my $t0 = time;
	my ($spent, $refused_early) = (0, 0);
	while (time - $t0 < 60) {
		my @p;
		my %c;
		for (1 .. 25) {
			my $ua = ua();
			push @p, $ua->get_p("$BASE{B}/demo/spend" => bearer($u->{token}))
			    ->then(sub { $c{ $_[0]->res->code // 0 }++; undef $ua });
		}
		Mojo::Promise->all(@p)->wait;
		$spent += $c{200} // 0;
		last if $spent >= 397;
		$refused_early += $c{403} // 0;
		sleep 1 if !$c{200};
	}
	my $waited = time - $t0;
	is($spent, 397, sprintf('B spent the other 397 credits, A\'s slice '
	    . 'included once it expired (%.0f s)', $waited));
	is(at('B', '/demo/spend', bearer($u->{token}))->code, 403, 'then none is left');
	my ($k, $bal) = ledger($u->{id});
	is($bal, 0, 'the balance is 0');
	is($k->{spend} // 0, 400, 'the ledger has exactly 400 spends');
	ok(devstack('cluster', 'up'), 'instance A started again');
}

done_testing;
