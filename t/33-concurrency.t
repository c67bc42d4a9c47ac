#!/usr/bin/perl
# The gate under concurrency, through nginx with many connections at once
# (the dev stack runs 4 or more workers): 100 spends against 7 credits,
# exactly 7 succeed and the balance ends at 0 with every success and
# refusal in the ledger; 30 checks against a limit of 10 a minute,
# exactly 10 pass.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::Promise;
use TG;
use TGGate;

my $db = gdb();

# Sends $n GETs of $path at once, each on its own connection.
sub burst {
	my ($n, $path, $headers) = @_;
	my @uas = map { ua() } 1 .. $n;
	my @p = map { $_->get_p(base() . $path => $headers) } @uas;
	my (%codes, @bodies);
	Mojo::Promise->all(@p)->then(sub {
		for (@_) {
			$codes{ $_->[0]->res->code // 0 }++;
			push @bodies, $_->[0]->res->json;
		}
	})->catch(sub { diag("burst: @_") })->wait;
	return (\%codes, \@bodies);
}

my $workers = $ENV{TOLLGATE_SERVER_WORKERS} // conf_get('server', 'workers');
cmp_ok($workers, '>=', 4, "at least 4 workers ($workers)");

# 100 spends against 7 credits.
{
	my $u = new_user();
	my $p = test_plan(rate => 1000, credits => 7, limits => { credits => 7 });
	on_plan($u, $p);
	my ($codes, $bodies) = burst(100, '/demo/spend', bearer($u->{token}));
	is($codes->{200} // 0, 7, 'spends: exactly 7 of 100 succeed');
	is($codes->{403} // 0, 93, 'spends: 93 refused with 403');
	is(scalar(grep { ref $_ eq 'HASH' && ($_->{error}{code} // '') eq 'quota_exceeded' }
	    @$bodies), 93, 'spends: refusals are quota_exceeded');
	my ($bal, $allow) = $db->selectrow_array(q{SELECT allowance + granted, allowance
	    FROM credit_balances WHERE user_id = ?}, undef, $u->{id});
	is($bal, 0, 'spends: the balance ends at 0');
	my %led = map { $_->[0] => [ $_->[1], $_->[2] ] } @{ $db->selectall_arrayref(q{
	    SELECT kind, COUNT(*), SUM(delta) FROM credit_ledger WHERE user_id = ?
	    AND kind IN ('spend', 'refusal', 'allowance') GROUP BY kind}, undef, $u->{id}) };
	is_deeply($led{spend}, [ 7, -7 ], 'ledger: 7 spends of 1');
	is_deeply($led{refusal}, [ 93, 0 ], 'ledger: 93 refusals');
	is_deeply($led{allowance}, [ 1, 7 ], 'ledger: one grant of the period\'s 7');
	my ($min) = $db->selectrow_array(q{SELECT MIN(balance_after) FROM credit_ledger
	    WHERE user_id = ?}, undef, $u->{id});
	cmp_ok($min, '>=', 0, 'ledger: never below zero');
	my ($used) = $db->selectrow_array(q{SELECT used FROM usage_counters
	    WHERE user_id = ? AND meter = 'credits'}, undef, $u->{id});
	is($used, 7, 'the credits meter counts the 7');
}

# 30 checks against 10 a minute.
{
	my $u = new_user();
	my $p = test_plan(rate => 10);
	on_plan($u, $p);
	my ($codes, $bodies) = burst(30, '/demo/echo', bearer($u->{key}));
	is($codes->{200} // 0, 10, 'rate: exactly 10 of 30 pass');
	is($codes->{429} // 0, 20, 'rate: 20 answered 429');
	my ($count) = $db->selectrow_array(q{SELECT count FROM rate_windows
	    WHERE user_id = ? AND bucket = 'gate'}, undef, $u->{id});
	is($count, 10, 'rate: the window counted the 10 allowed');
	my ($calls) = $db->selectrow_array(q{SELECT used FROM usage_counters
	    WHERE user_id = ? AND meter = 'api_calls'}, undef, $u->{id});
	is($calls, 10, 'rate: api_calls counted only what passed');
}

# Both at once on one user: a warm window and counters (the fast path).
{
	my $u = new_user();
	my $p = test_plan(rate => 25, credits => 5, limits => { credits => 5 });
	on_plan($u, $p);
	is(req(GET => '/demo/spend', bearer($u->{token}))->code, 200, 'warm up: one spend');
	my ($codes) = burst(40, '/demo/spend', bearer($u->{token}));
	is($codes->{200} // 0, 4, 'warm: the 4 credits left are spent, no more');
	my ($codes2) = burst(40, '/demo/echo', bearer($u->{token}));
	is($codes2->{200} // 0, 20, 'warm: 25 a minute, 5 used: 20 pass');
	is($codes2->{429} // 0, 20, 'warm: the rest 429');
	my ($bal) = $db->selectrow_array(q{SELECT allowance + granted FROM credit_balances
	    WHERE user_id = ?}, undef, $u->{id});
	is($bal, 0, 'warm: balance 0');
}

done_testing;
