#!/usr/bin/perl
# POST /api/v1/check (contract section 7a, issue 18): the gate's decision
# for services, with a service key: for a JWT, an API key or a bare
# user id; only a bad service key is 401, every denial is 200 with
# allowed:false and the gate's code and message; dry_run counts nothing;
# the same idempotency_key counts once, also when duplicates arrive at
# once; 40 concurrent spends of 3 credits against 20: exactly 6 pass and
# the ledger agrees.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::JSON qw(encode_json);
use Mojo::Promise;
use TG qw(:DEFAULT ctl);
use TGGate;

my $db = gdb();

my ($skey, $skid, $rc, $out) = service_key("svc40_$$");
is($rc, 0, 'a service key') or diag($out);
my $S = bearer($skey);

sub check {
	my ($body, $h) = @_;
	return req(POST => '/api/v1/check', { 'Content-Type' => 'application/json',
	    %{ $h // $S } }, encode_json($body));
}

# $n checks at once, each on its own connection; returns the answers' JSON.
sub burst {
	my ($n, $body) = @_;
	my @uas = map { ua() } 1 .. $n;
	my @p = map { $_->post_p(base() . '/api/v1/check' => $S => json => $body) } @uas;
	my @out;
	Mojo::Promise->all(@p)->then(sub {
		push @out, map { [ $_->[0]->res->code // 0, $_->[0]->res->json ] } @_;
	})->catch(sub { diag("burst: @_") })->wait;
	return @out;
}

sub used {
	my ($uid, $meter) = @_;
	return $db->selectrow_array('SELECT COALESCE(SUM(used), 0) FROM usage_counters '
	    . 'WHERE user_id = ? AND meter = ?', undef, $uid, $meter // 'api_calls');
}

# --- who may ask ---------------------------------------------------------------
my $u = new_user();
is(check({ user_id => $u->{id} }, bearer('tgs_' . 'x' x 43))->code, 401,
    'a bad service key: 401');
is(check({ user_id => $u->{id} }, {})->code, 401, 'no credential: 401');
my $res = check({ user_id => $u->{id} }, bearer($u->{token}));
is($res->code, 403, 'a user\'s own token is no service key: 403');
is(check({})->code, 422, 'neither credential nor user_id: 422');
is(check({ user_id => $u->{id}, credential => $u->{key} })->code, 422, 'both: 422');
is(check({ user_id => $u->{id}, cost => -1 })->code, 422, 'a negative cost: 422');
is(check({ user_id => $u->{id}, meter => 'Bad Meter' })->code, 422, 'a bad meter: 422');

# --- the three ways to name the user -----------------------------------------
my $before = used($u->{id});
$res = check({ credential => $u->{token} });
is($res->code, 200, 'a JWT: 200');
my $j = $res->json // {};
is($j->{allowed}, Mojo::JSON::true, 'allowed');
is($j->{code}, undef, 'no code when allowed');
is($j->{user_id}, $u->{id}, 'user_id');
is($j->{plan}, 'trial', 'plan');
is($j->{role}, 'user', 'role');
is($j->{credits_remaining}, 10, 'credits_remaining');
is($j->{meter}{name}, 'api_calls', 'the default meter');
is($j->{meter}{used}, $before + 1, 'meter.used counts this check');
is($j->{rate}{limit}, 10, 'rate.limit: the trial\'s 10 a minute');
is($j->{rate}{remaining}, 9, 'rate.remaining');
cmp_ok($j->{rate}{reset}, '>', 0, 'rate.reset');
is(used($u->{id}), $before + 1, 'counted once in the database');

is((check({ credential => "Bearer $u->{key}" })->json // {})->{user_id}, $u->{id},
    'a credential with its "Bearer " as the user sent it');
$before = used($u->{id});
$res = check({ credential => $u->{key} });
is(($res->json // {})->{allowed}, Mojo::JSON::true, 'an API key: allowed');
is(($res->json // {})->{user_id}, $u->{id}, 'an API key: its user');
$res = check({ user_id => $u->{id}, cost => 2 });
is(($res->json // {})->{allowed}, Mojo::JSON::true, 'a user id: allowed');
is(used($u->{id}), $before + 3, 'a cost of 2 counts 2');
is(($res->json // {})->{rate}{remaining}, 6, 'every allowed check took a rate slot');

# --- dry_run ------------------------------------------------------------------
$before = used($u->{id});
$res = check({ user_id => $u->{id}, dry_run => Mojo::JSON::true, cost => 5 });
is(($res->json // {})->{allowed}, Mojo::JSON::true, 'dry_run: would be allowed');
is(used($u->{id}), $before, 'dry_run: nothing counted');
$res = check({ user_id => $u->{id}, meter => 'credits', cost => 11,
    dry_run => Mojo::JSON::true });
is(($res->json // {})->{code}, 'trial_credits_exhausted', 'dry_run: a refusal is told');
is(scalar $db->selectrow_array(q{SELECT COUNT(*) FROM credit_ledger WHERE user_id = ?
    AND kind = 'refusal'}, undef, $u->{id}), 0, 'dry_run: no refusal in the ledger');

# --- every denial, as the gate would say it ----------------------------------
sub denied {
	my ($body, $code, $what) = @_;
	my $r = check($body);
	my $j = $r->json // {};
	is($r->code, 200, "$what: 200");
	ok(defined $j->{allowed} && !$j->{allowed}, "$what: allowed false");
	is($j->{code}, $code, "$what: $code");
	like($j->{message} // '', qr/\S/, "$what: a message");
	return $j;
}
denied({ credential => 'not-a-token' }, 'unauthenticated', 'a bad JWT');
denied({ credential => 'tgk_' . 'A' x 40 }, 'unauthenticated', 'an unknown API key');
denied({ credential => $skey }, 'unauthenticated', 'a service key as the credential');
denied({ user_id => 'AAAAAAAAAAAAAAAAAAAAAA' }, 'unauthenticated', 'an unknown user id');
{
	my $v = new_user(unverified => 1);
	denied({ user_id => $v->{id} }, 'email_not_verified', 'an unverified user');
	my $d = new_user();
	$db->do('UPDATE users SET disabled_at = UTC_TIMESTAMP(6) WHERE id = ?', undef,
	    $d->{id});
	denied({ credential => $d->{token} }, 'account_disabled', 'a disabled user');
	my $x = new_user();
	$db->do(q{UPDATE users SET trial_ends_at = UTC_TIMESTAMP(6) - INTERVAL 1 DAY
	    WHERE id = ?}, undef, $x->{id});
	denied({ user_id => $x->{id} }, 'subscription_required', 'a trial that ended');
	my $t = new_user();
	my $jj = denied({ user_id => $t->{id}, meter => 'credits', cost => 11 },
	    'trial_credits_exhausted', 'more than the trial\'s credits');
	is($jj->{message}, 'Trial credits exhausted. Please upgrade to continue.',
	    'the contract\'s message');
	my $p = test_plan(rate => 2, limits => { compute_minutes => 5 });
	my $q = new_user();
	on_plan($q, $p);
	$jj = denied({ user_id => $q->{id}, meter => 'compute_minutes', cost => 6 },
	    'quota_exceeded', 'past the meter\'s limit');
	like($jj->{message}, qr/^Compute.* quota exceeded/, 'the quota message names the meter');
	is_deeply($jj->{meter}, { name => 'compute_minutes', used => 0, limit => 5,
	    remaining => 5 }, 'meter figures of a refusal');
	my $ok = check({ user_id => $q->{id}, meter => 'compute_minutes', cost => 5 })->json // {};
	is($ok->{allowed}, Mojo::JSON::true, 'exactly the limit passes');
	is_deeply($ok->{meter}, { name => 'compute_minutes', used => 5, limit => 5,
	    remaining => 0 }, 'meter figures after it');
	is((check({ user_id => $q->{id} })->json // {})->{allowed}, Mojo::JSON::true,
	    'the second check of 2 a minute');
	$jj = denied({ user_id => $q->{id} }, 'rate_limited', 'the third check of 2 a minute');
	is($jj->{rate}{remaining}, 0, 'rate.remaining 0');
}

# --- idempotency ----------------------------------------------------------------
{
	my $i = new_user();
	my $key = "idem-$$-" . int rand 1e9;
	my $a = check({ user_id => $i->{id}, cost => 3, idempotency_key => $key })->json // {};
	my $b = check({ user_id => $i->{id}, cost => 3, idempotency_key => $key })->json // {};
	is($a->{allowed}, Mojo::JSON::true, 'idempotent: the first is allowed');
	is_deeply($b, $a, 'the same key: the first answer again');
	is(used($i->{id}), 3, 'the same key twice counts once');
	my $c = check({ user_id => $i->{id}, cost => 3, idempotency_key => "$key-2" })->json // {};
	is(used($i->{id}), 6, 'another key counts again');
	is($c->{meter}{used}, 6, 'and says so');

	$db->do(q{UPDATE check_requests SET created_at = UTC_TIMESTAMP(6) - INTERVAL 25 HOUR
	    WHERE service_key_id = ? AND idempotency_key = ?}, undef, $skid, $key);
	my $d = check({ user_id => $i->{id}, cost => 3, idempotency_key => $key })->json // {};
	is($d->{meter}{used}, 9, 'the same key after 24 hours is a new check');
	$db->do(q{INSERT INTO check_requests (service_key_id, idempotency_key, created_at)
	    VALUES (?, ?, UTC_TIMESTAMP(6) - INTERVAL 61 SECOND)}, undef, $skid, "$key-lost");
	$d = check({ user_id => $i->{id}, cost => 1, idempotency_key => "$key-lost" })->json // {};
	is($d->{meter}{used}, 10, 'a claim left unanswered for a minute is void: decided afresh');
	is(used($i->{id}), 10, 'counted');

	my $ckey = "idem-c-$$-" . int rand 1e9;
	my @r = burst(12, { user_id => $i->{id}, cost => 2, idempotency_key => $ckey });
	is(scalar(grep { $_->[0] == 200 } @r), 12, '12 concurrent duplicates: all 200');
	is(scalar(grep { encode_json($_->[1]) eq encode_json($r[0][1]) } @r), 12,
	    'all with the same answer');
	is(used($i->{id}), 12, 'counted once');
}

# --- the 80 and 100 % notices, as the gate sends them -------------------------
{
	my $p = test_plan(rate => 1000, limits => { compute_minutes => 10 });
	my $n = new_user();
	on_plan($n, $p);
	my $count = sub {
		my ($kind) = @_;
		return scalar $db->selectrow_array(q{SELECT COUNT(*) FROM outbox
		    WHERE user_id = ? AND kind = ?}, undef, $n->{id}, $kind);
	};
	check({ user_id => $n->{id}, meter => 'compute_minutes', cost => 7 });
	is($count->('usage_80'), 0, 'below 80 %: no notice');
	check({ user_id => $n->{id}, meter => 'compute_minutes', cost => 1,
	    dry_run => Mojo::JSON::true });
	is($count->('usage_80'), 0, 'a dry run sends none');
	check({ user_id => $n->{id}, meter => 'compute_minutes', cost => 1 });
	ok(wait_for(sub { $count->('usage_80') == 1 }, 5), '80 %: the notice is queued');
	check({ user_id => $n->{id}, meter => 'compute_minutes', cost => 2 });
	ok(wait_for(sub { $count->('usage_100') == 1 }, 5), '100 %: the notice is queued');
}

# --- 40 concurrent spends of 3 against 20 credits ---------------------------
{
	my $p = test_plan(rate => 1000, credits => 20);
	my $c = new_user();
	on_plan($c, $p);
	my @r = burst(40, { user_id => $c->{id}, meter => 'credits', cost => 3 });
	is(scalar(grep { $_->[0] == 200 } @r), 40, '40 spends: all answered 200');
	my @ok = grep { $_->[1]{allowed} } @r;
	is(scalar @ok, 6, 'exactly 6 of 40 spends of 3 pass against 20 credits');
	is(scalar(grep { ($_->[1]{code} // '') eq 'quota_exceeded' } @r), 34,
	    '34 refused with quota_exceeded');
	my ($bal) = $db->selectrow_array('SELECT allowance + granted FROM credit_balances '
	    . 'WHERE user_id = ?', undef, $c->{id});
	is($bal, 2, 'the balance is 2');
	my %led = map { $_->[0] => [ $_->[1], $_->[2] ] } @{ $db->selectall_arrayref(q{
	    SELECT kind, COUNT(*), SUM(delta) FROM credit_ledger WHERE user_id = ?
	    AND kind IN ('spend', 'refusal') GROUP BY kind}, undef, $c->{id}) };
	is_deeply($led{spend}, [ 6, -18 ], 'ledger: 6 spends of 3');
	is_deeply($led{refusal}, [ 34, 0 ], 'ledger: 34 refusals');
	my ($min) = sort { $a <=> $b } map { $_->[1]{credits_remaining} } @ok;
	is($min, 2, 'the last spend says 2 remain');
	my $after = check({ user_id => $c->{id}, meter => 'credits', cost => 0 })->json // {};
	is($after->{credits_remaining}, 2, 'a check of cost 0 reads the balance: 2');
	is($after->{meter}{remaining}, 2, 'meter credits: remaining is the balance');
}

done_testing();
