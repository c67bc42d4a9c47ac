#!/usr/bin/perl
# Plans, billing periods, usage and usage events (contract section 5):
# GET /api/v1/plans, GET /api/v1/usage, POST /api/v1/usage/events with
# service keys (idempotent, also 20 at once), the 80 % and 100 % notices,
# allowances that lapse at a period's end, the fallback plan, and
# tollgatectl plans and service-key.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::Promise;
use TG qw(:DEFAULT ctl);
use TGGate;

my $db = gdb();
my (@skeys, @ctl_plans);
END {
	$db->do('DELETE FROM plans WHERE name = ?', undef, $_) for @ctl_plans;
	$db->do('DELETE FROM usage_events WHERE service_key_id = ?', undef, $_) for @skeys;
	$db->do('DELETE FROM service_keys WHERE id = ?', undef, $_) for @skeys;
}

# --- Plans ------------------------------------------------------------

my $res = req(GET => '/api/v1/plans');
is($res->code, 200, 'plans: public, 200');
my %plan = map { $_->{name} => $_ } @{ $res->json // [] };
for my $n (qw(trial free pro team)) {
	ok($plan{$n}, "plans: $n listed");
}
is_deeply([ map { exists $plan{trial}{$_} ? 1 : 0 }
    qw(name price currency rate_per_minute credits limits api_keys) ],
    [ (1) x 7 ], 'plans: the contract\'s fields');
is($plan{trial}{rate_per_minute}, 10, 'trial: 10 a minute');
is($plan{free}{credits}, 100, 'free: 100 credits');
is($plan{pro}{limits}{compute_minutes}, 6000, 'pro: 6000 compute minutes');
is($plan{team}{api_keys}, 50, 'team: 50 keys');

# tollgatectl plans list|set|delete.
my ($rc, $out) = ctl('plans', 'list');
is($rc, 0, 'tollgatectl plans list');
like($out, qr/^pro\s+Pro\s+2900\b/m, 'plans list shows pro');
my $pn = sprintf 'ctl32_%d', $$;
push @ctl_plans, $pn;
($rc, $out) = ctl('plans', 'set', $pn, 'display_name=Ctl', 'price=500',
    'rate_per_minute=7', 'credits=3', 'api_keys=4', 'limit.compute_minutes=9');
is($rc, 0, 'tollgatectl plans set (new plan)') or diag($out);
%plan = map { $_->{name} => $_ } @{ req(GET => '/api/v1/plans')->json // [] };
is($plan{$pn}{rate_per_minute}, 7, 'the new plan is public at once');
is($plan{$pn}{limits}{credits}, 3, 'credits also set the credits meter\'s limit');
is($plan{$pn}{limits}{compute_minutes}, 9, 'limit.METER');
($rc, $out) = ctl('plans', 'set', $pn, 'limit.compute_minutes=-', 'rate_per_minute=8');
is($rc, 0, 'tollgatectl plans set (edit)');
%plan = map { $_->{name} => $_ } @{ req(GET => '/api/v1/plans')->json // [] };
ok(!exists $plan{$pn}{limits}{compute_minutes}, 'limit removed');
is($plan{$pn}{rate_per_minute}, 8, 'rate edited');
($rc) = ctl('plans', 'set', $pn, 'rate_per_minute=many');
is($rc, 2, 'plans set: a bad value is refused');
($rc) = ctl('plans', 'delete', 'trial');
isnt($rc, 0, 'plans delete: never the trial');
($rc) = ctl('plans', 'delete', $pn);
is($rc, 0, 'plans delete');

# --- Usage ------------------------------------------------------------

my $u = new_user();
is(req(GET => '/demo/compute', bearer($u->{token}))->code, 200, 'compute once');
is(req(GET => '/demo/spend', bearer($u->{token}))->code, 200, 'spend once');
$res = req(GET => '/api/v1/usage', bearer($u->{key}));
is($res->code, 200, 'usage: 200 with an API key');
my $us = $res->json // {};
is($us->{plan}, 'trial', 'usage: plan');
like($us->{period}{start} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'usage: period start');
like($us->{period}{end} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    'usage: period end (the trial\'s end)');
is_deeply($us->{meters}{compute_minutes}, { used => 5, limit => 60 }, 'usage: compute minutes');
is_deeply($us->{meters}{credits}, { used => 1, limit => 10 }, 'usage: credits meter');
is_deeply($us->{meters}{api_calls}, { used => 0, limit => 1000 }, 'usage: api_calls');
is($us->{credits}{remaining}, 9, 'usage: credits remaining');
error_ok(req(GET => '/api/v1/usage'), 401, 'unauthenticated', 'usage without a credential');
my ($daily) = $db->selectrow_array(q{SELECT used FROM usage_daily WHERE user_id = ?
    AND meter = 'compute_minutes' AND day = UTC_DATE()}, undef, $u->{id});
is($daily, 5, 'usage_daily counts the day');

# The free plan's period is the calendar month, UTC.
my $f = new_user();
on_plan($f, 'free');
$us = req(GET => '/api/v1/usage', bearer($f->{token}))->json // {};
my ($month) = $db->selectrow_array(q{SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-01T00:00:00Z')});
is($us->{period}{start}, $month, 'free: the period starts on the 1st, UTC');
is($us->{credits}{remaining}, 100, 'free: 100 credits (granted at the first spend)');

# A paid plan runs in Stripe's current period; its allowance lapses at
# the end and the next period's is granted.
my $s = new_user();
my $sub = "sub_t32_$$" . int rand 1e6;
$db->do(q{INSERT INTO subscriptions (id, user_id, plan, status, current_period_start,
    current_period_end) VALUES (?, ?, 'pro', 'active', UTC_TIMESTAMP(6) - INTERVAL 3 DAY,
    UTC_TIMESTAMP(6) + INTERVAL 27 DAY)}, undef, $sub, $s->{id});
$res = req(GET => '/demo/spend', bearer($s->{token}));
is($res->code, 200, 'pro: spend');
is(($res->json // {})->{plan}, 'pro', 'pro: the plan from the subscription');
is(($res->json // {})->{credits_remaining}, '9999', 'pro: 10,000 granted, 1 spent');
$us = req(GET => '/api/v1/usage', bearer($s->{token}))->json // {};
my ($ps) = $db->selectrow_array(q{SELECT DATE_FORMAT(current_period_start,
    '%Y-%m-%dT%H:%i:%sZ') FROM subscriptions WHERE id = ?}, undef, $sub);
is($us->{period}{start}, $ps, 'pro: the period is Stripe\'s');
$db->do(q{UPDATE subscriptions SET current_period_start = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND,
    current_period_end = UTC_TIMESTAMP(6) + INTERVAL 30 DAY WHERE id = ?}, undef, $sub);
$db->do('UPDATE credit_balances SET granted = 5 WHERE user_id = ?', undef, $s->{id});
$res = req(GET => '/demo/spend', bearer($s->{token}));
is(($res->json // {})->{credits_remaining}, '10004',
    'next period: the old allowance lapsed, a new one granted, grants kept');
my $kinds = $db->selectcol_arrayref(q{SELECT CONCAT(kind, ':', delta) FROM credit_ledger
    WHERE user_id = ? AND kind <> 'trial' ORDER BY created_at, kind}, undef, $s->{id});
is_deeply($kinds, [ 'lapse:-10', 'allowance:10000', 'spend:-1', 'lapse:-9999',
    'allowance:10000', 'spend:-1' ], 'ledger: every change')
    or diag("@$kinds");
$us = req(GET => '/api/v1/usage', bearer($s->{token}))->json // {};
is_deeply($us->{meters}{credits}, { used => 1, limit => 10000 },
    'next period: the meter counts afresh');

# The fallback plan (@tg_fallback, from [trial] fallback_plan) takes over
# after the trial; without one, 402 (t/30).
{
	my $o = new_user();
	$db->do(q{UPDATE users SET trial_ends_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND
	    WHERE id = ?}, undef, $o->{id});
	my $h = dbh();
	$h->do(q{SET time_zone = '+00:00', @tg_fallback = 'free'});
	# What the engine's lease sees (asking for no slice: a lookup).
	my $sth = $h->prepare(q{CALL tg_lease('t32host000000000000000', 'k', ?, '',
	    'credits', 1, 10, 0, 0, 0)});
	my $hash = `python3 -c 'import hashlib,sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=32, key=bytes.fromhex(sys.argv[2])).hexdigest())' '$o->{key}' '${\ conf_get('crypto', 'key')}'`;
	chomp $hash;
	$sth->execute($hash);
	my $row = $sth->fetchrow_arrayref // [];
	$sth->finish;
	is($row->[0], 0, 'fallback plan: the key is good');
	is($row->[6], 'free', 'fallback plan: free');
	is($row->[15], 100, 'fallback plan: the trial\'s credits ended, free\'s granted');
	$h->do(q{SET @tg_fallback = ''});
	$sth->execute($hash);
	$row = $sth->fetchrow_arrayref // [];
	$sth->finish;
	is($row->[6], undef, 'no fallback plan: no plan (the gate answers 402, t/30)');
}

# --- Usage events (service keys) --------------------------------------

($rc, $out) = ctl('service-key', 'create', "svc32_$$");
is($rc, 0, 'tollgatectl service-key create');
my ($skey) = $out =~ /(tgs_\S+)\s*\z/;
ok($skey, 'the key is the last line');
push @skeys, $db->selectrow_array('SELECT id FROM service_keys WHERE name = ? AND revoked_at IS NULL',
    undef, "svc32_$$");
($rc, $out) = ctl('service-key', 'list');
like($out, qr/svc32_$$/, 'service-key list');
unlike($out, qr/\Q$skey\E/, 'service-key list does not show the key');
my $S = bearer($skey);

my $e = new_user();
my %ev = (user_id => $e->{id}, meter => 'compute_minutes', quantity => 50,
    idempotency_key => 'job-1');
$res = json_post('/api/v1/usage/events', \%ev, $S);
is($res->code, 202, 'event: 202');
$res = json_post('/api/v1/usage/events', \%ev, $S);
is($res->code, 202, 'the same event again: 202');
sub used_of {
	my ($uid, $meter) = @_;
	return (req(GET => '/api/v1/usage', bearer($_[2]))->json // {})->{meters}{$meter}{used};
}
is(used_of($e->{id}, 'compute_minutes', $e->{token}), 50, 'counted once');
# 50 is over 80 % of 60: the notice goes once.
my ($n80) = $db->selectrow_array(q{SELECT COUNT(*) FROM outbox WHERE user_id = ?
    AND kind = 'usage_80'}, undef, $e->{id});
is($n80, 1, '80 % notice queued');
$res = json_post('/api/v1/usage/events', { %ev, quantity => 1000, idempotency_key => 'job-2' }, $S);
is($res->code, 202, 'an event past the limit is still recorded (no limit refuses it)');
is(used_of($e->{id}, 'compute_minutes', $e->{token}), 1050, 'counted');
my ($n100) = $db->selectrow_array(q{SELECT COUNT(*) FROM outbox WHERE user_id = ?
    AND kind = 'usage_100'}, undef, $e->{id});
is($n100, 1, '100 % notice queued');
json_post('/api/v1/usage/events', { %ev, quantity => 1, idempotency_key => 'job-3' }, $S);
my ($nall) = $db->selectrow_array(q{SELECT COUNT(*) FROM outbox WHERE user_id = ?
    AND kind LIKE 'usage_%'}, undef, $e->{id});
is($nall, 2, 'each notice once per period');
my ($notices) = $db->selectrow_array(q{SELECT COUNT(*) FROM usage_notices WHERE user_id = ?},
    undef, $e->{id});
is($notices, 2, 'usage_notices records both');
my $gres = req(GET => '/demo/compute', bearer($e->{token}));
error_ok($gres, 403, 'quota_exceeded', 'the gate refuses compute past the limit');
is(eval { $gres->json->{error}{message} }, 'Compute quota exceeded, upgrade to Pro',
    'the contract\'s message');

# A custom meter, counted without a limit.
is(json_post('/api/v1/usage/events', { %ev, meter => 'gpu_seconds', quantity => 3,
    idempotency_key => 'g-1' }, $S)->code, 202, 'an operator-defined meter');
is_deeply((req(GET => '/api/v1/usage', bearer($e->{token}))->json // {})->{meters}{gpu_seconds},
    { used => 3, limit => undef }, 'custom meter: used, no limit');

# The same event 20 times at once counts once.
{
	my $ua = ua();
	my @p = map { $ua->post_p(base() . '/api/v1/usage/events' => $S => json =>
	    { %ev, meter => 'api_calls', quantity => 7, idempotency_key => 'burst-1' }) } 1 .. 20;
	my %codes;
	Mojo::Promise->all(@p)->then(sub { $codes{ $_->[0]->res->code }++ for @_ })->wait;
	is($codes{202} // 0, 20, '20 at once: all 202');
	is(used_of($e->{id}, 'api_calls', $e->{token}), 7, '20 at once: counted once');
	my ($n) = $db->selectrow_array(q{SELECT COUNT(*) FROM usage_events
	    WHERE idempotency_key = 'burst-1' AND user_id = ?}, undef, $e->{id});
	is($n, 1, '20 at once: one event row');
}

# Who may send events, and what.
error_ok(json_post('/api/v1/usage/events', \%ev), 401, 'unauthenticated', 'event: no credential');
error_ok(json_post('/api/v1/usage/events', \%ev, bearer($e->{token})), 403, 'forbidden',
    'event: a user\'s token');
error_ok(json_post('/api/v1/usage/events', \%ev, bearer($e->{key})), 403, 'forbidden',
    'event: an API key');
error_ok(json_post('/api/v1/usage/events', { %ev, quantity => 0 }, $S), 422,
    'validation_failed', 'event: quantity 0');
error_ok(json_post('/api/v1/usage/events', { %ev, quantity => 1.5 }, $S), 422,
    'validation_failed', 'event: quantity not whole');
error_ok(json_post('/api/v1/usage/events', { %ev, meter => 'Bad Meter' }, $S), 422,
    'validation_failed', 'event: bad meter');
error_ok(json_post('/api/v1/usage/events', { %ev, idempotency_key => undef }, $S), 422,
    'validation_failed', 'event: no idempotency key');
error_ok(json_post('/api/v1/usage/events', { %ev, user_id => 'AAAAAAAAAAAAAAAAAAAAAA',
    idempotency_key => 'x-1' }, $S), 422, 'validation_failed', 'event: unknown user');

($rc) = ctl('service-key', 'revoke', "svc32_$$");
is($rc, 0, 'tollgatectl service-key revoke');
error_ok(json_post('/api/v1/usage/events', { %ev, idempotency_key => 'after' }, $S), 401,
    'unauthenticated', 'a revoked service key stops at once');
($rc) = ctl('service-key', 'revoke', "svc32_$$");
is($rc, 1, 'revoking twice fails');

done_testing;
