#!/usr/bin/perl
# The guest plan's credits are "3 in all" (contract section 5's table):
# granted once for the guest's whole life, never again when a calendar
# month turns, unlike the free plan's "100 a month".  A guest made last
# month that spent its credits then has none this month: its period is
# its life as a guest (tg_period_start, sql/routines/rules.sql).  Claiming keeps what
# is left (and the id and usage), as granted credits.

use strict;
use warnings;
use lib 't/lib', 't/fakes';

use Test::More;
use TG;
use TGMail;
use TGAccount;

sink_start();
my $dbh = dbh();
my @made;
END { $dbh->do('DELETE FROM users WHERE id = ?', undef, $_) for @made }

sub guest {
	my $res = req(POST => '/api/v1/auth/guest',
	    { 'X-Forwarded-For' => new_addr() });
	die 'guest: ' . ($res->code // 'none') unless ($res->code // 0) == 201;
	my $j = $res->json;
	push @made, $j->{user}{id};
	return { id => $j->{user}{id}, access => $j->{tokens}{access_token} };
}

sub gate { req(GET => $_[0], { bearer($_[1]) }) }

sub left {
	my ($tok) = @_;
	my $j = eval { req(GET => '/api/v1/me', { bearer($tok) })->json } // {};
	return $j->{trial}{credits_remaining};
}

# --- a guest spends its 3 credits ------------------------------------------
my $g = guest();
is(left($g->{access}), 3, 'a new guest: 3 credits');
for my $n (1 .. 3) {
	is(gate('/demo/spend', $g->{access})->code, 200, "spend $n of 3");
}
is(gate('/demo/spend', $g->{access})->code, 403, 'a fourth is refused');
is(left($g->{access}), 0, 'none left');

# --- the month turns: make all of it 40 days older ------------------------
# The account, its allowance's period and its ledger move back together,
# as if the guest had been made and had spent last month.
$dbh->do('UPDATE credit_balances SET allowance_period_start = '
    . 'allowance_period_start - INTERVAL 40 DAY WHERE user_id = ?', undef,
    $g->{id});
$dbh->do('UPDATE users SET created_at = created_at - INTERVAL 40 DAY, '
    . 'updated_at = UTC_TIMESTAMP(6) WHERE id = ?', undef, $g->{id});
is(left($g->{access}), 0, 'a later month: still none (3 in all)');
my $res = gate('/demo/spend', $g->{access});
is($res->code, 403, 'the gate refuses a spend in the later month');
is(db_row("SELECT COUNT(*) AS n FROM credit_ledger WHERE user_id = ? AND "
    . "kind = 'allowance'", $g->{id})->{n}, 1,
    'the allowance was granted once');
my $u = eval { req(GET => '/api/v1/usage', { bearer($g->{access}) })->json }
    // {};
is($u->{credits}{remaining}, 0, '/api/v1/usage agrees');
my $created = db_row('SELECT DATE_FORMAT(created_at, \'%Y-%m-%d\') AS d '
    . 'FROM users WHERE id = ?', $g->{id})->{d};
like($u->{period}{start} // '', qr/^\Q$created\E/,
    'the guest\'s period starts when it was made');
is(gate('/demo/echo', $g->{access})->code, 200,
    'the guest still passes where nothing is spent');

# --- a guest that spent one keeps two through its claim --------------------
my $h = guest();
is(gate('/demo/spend', $h->{access})->code, 200, 'a second guest spends one');
my $email = unique_email('guest-in-all');
$res = jpost('/api/v1/auth/signup', { email => $email,
    password => fresh_password(), name => 'Claimed' }, bearer($h->{access}));
is($res->code, 201, 'the guest signs up with its token');
is(eval { $res->json->{user}{id} }, $h->{id}, 'the same id');
is(db_row('SELECT granted FROM credit_balances WHERE user_id = ?',
    $h->{id})->{granted}, 2, 'its 2 credits left are kept, as granted ones');
is(db_row('SELECT used FROM usage_counters WHERE user_id = ? AND '
    . "meter = 'credits' ORDER BY period_start DESC LIMIT 1", $h->{id})->{used},
    1, 'and its usage');

done_testing();
