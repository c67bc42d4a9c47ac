#!/usr/bin/perl
# Metered usage to Stripe (contract section 8): usage of paying users
# summed per user, meter and interval (tg_meter_report_add, what the gate
# calls), each sum sent by the sender as one meter event once its
# interval is over (identifier and Idempotency-Key from the sum's id),
# exactly once across a Stripe outage (errors, then the fake gone
# altogether) and sender restarts (graceful, and killed mid-call).  Also
# the queued cancellations of deleted accounts' subscriptions.
#
# An interval is made to end now by moving the row's times back, rather
# than waiting for [stripe] report_interval (an hour on the dev stack) to pass.

use strict;
use warnings;
use lib 't/lib', 't/fakes';

use Test::More;
use Time::HiRes qw(sleep);
use TG;
use Fakes qw(fake_start fake_stop fake_post fake_get);
use BillingTest;

my $STATE = "$ENV{TG_DEVSTACK}/tmp/fake-stripe-53.json";
unlink $STATE;
fake_start('stripe', FAKE_STATE_FILE => $STATE);
fake_post('stripe', '/_fake/reset');

my $dbh = dbh();
$dbh->do("SET time_zone = '+00:00'");

sub add_usage {
	my ($uid, $meter, $qty, $interval) = @_;
	$dbh->do('CALL tg_meter_report_add(?, ?, ?, ?)', undef, $uid, $meter,
	    $qty, $interval // 3600);
}

sub report {
	my ($uid, $meter, $id) = @_;
	return $dbh->selectrow_hashref('SELECT id, quantity, status, attempts, '
	    . 'last_error, stripe_customer_id, TIMESTAMPDIFF(SECOND, '
	    . 'interval_start, interval_end) AS len, TIMESTAMPDIFF(SECOND, '
	    . 'interval_end, next_attempt_at) AS grace, TIMESTAMPDIFF(SECOND, '
	    . "TIMESTAMP('1970-01-01'), interval_start) AS start_unix, "
	    . 'TIMESTAMPDIFF(MICROSECOND, interval_end, sent_at) / 1e6 AS '
	    . 'late FROM meter_reports WHERE user_id = ? AND meter = ? '
	    . 'AND id = COALESCE(?, id) ORDER BY interval_start DESC LIMIT 1',
	    undef, $uid, $meter, $id);
}

# Ends the interval of report $id now; it falls due in $in seconds.
sub end_interval {
	my ($id, $in) = @_;
	$dbh->do('UPDATE meter_reports SET interval_start = UTC_TIMESTAMP() - '
	    . 'INTERVAL 3601 SECOND, interval_end = UTC_TIMESTAMP() - INTERVAL '
	    . '1 SECOND, next_attempt_at = UTC_TIMESTAMP(6) + INTERVAL ? '
	    . 'SECOND WHERE id = ?', undef, $in // 0, $id);
}

sub status_of {
	return db_one('SELECT status FROM meter_reports WHERE id = ?', $_[0]);
}

# What the fake saw: the meter-event requests and accepted events of id.
sub seen {
	my ($id) = @_;
	my $s = fake_get('stripe', '/_fake/state') // {};
	my @req = grep { $_->{path} eq '/v1/billing/meter_events' &&
	    ($_->{params}{identifier} // '') eq "tg-mr-$id" }
	    @{ $s->{requests} // [] };
	return (\@req, $s->{meter_events}{"tg-mr-$id"});
}

sub sender_pid {
	open my $fh, '<', "$ENV{TG_DEVSTACK}/run/sender.pid" or return;
	my $pid = <$fh>;
	chomp $pid;
	return $pid;
}

# --- Usage is summed per user, meter and interval. ------------------------
my $u = new_user();
my $s = uid_subscribe($u, 'pro');
add_usage($u->{id}, 'api_calls', 5) for 1 .. 3;
my $sum = db_one('SELECT SUM(quantity) FROM meter_reports WHERE user_id = ? '
    . "AND meter = 'api_calls'", $u->{id});
is($sum, 15, 'three additions: summed');
my $r = report($u->{id}, 'api_calls');
is($r->{len}, 3600, 'the interval is report_interval long');
is($r->{grace}, 10, 'due 10 s after the interval ends');
is($r->{status}, 'pending', 'pending');
is($r->{stripe_customer_id}, $s->{customer}, "the user's Stripe customer");
is($r->{start_unix} % 3600, 0, 'intervals start on multiples of the length');
add_usage($u->{id}, 'api_calls', 0);
add_usage($u->{id}, 'api_calls', -3);
is(db_one('SELECT SUM(quantity) FROM meter_reports WHERE user_id = ? AND '
    . "meter = 'api_calls'", $u->{id}), 15, 'zero and negative add nothing');

my $free = new_user();
add_usage($free->{id}, 'api_calls', 5);
is(db_one('SELECT COUNT(*) FROM meter_reports WHERE user_id = ?',
    $free->{id}), 0, 'a user without a subscription: nothing queued');

# --- Sent once its interval is over. ---------------------------------------
end_interval($r->{id}, 2);
sleep 1;
my ($req, $ev) = seen($r->{id});
is(scalar @$req, 0, 'not sent before it is due');
ok(wait_for(sub { status_of($r->{id}) eq 'sent' }, 15), 'then sent');
($req, $ev) = seen($r->{id});
is(scalar @$req, 1, 'one request to Stripe');
is($req->[0]{idempotency_key}, "tg-mr-$r->{id}",
    "Idempotency-Key derived from the sum's id");
ok($req->[0]{auth_ok}, 'with the secret key');
is($ev->{event_name}, 'api_calls', 'event_name: the meter');
is($ev->{payload}{stripe_customer_id}, $s->{customer},
    'payload[stripe_customer_id]');
is($ev->{payload}{value}, 15, 'payload[value]: the sum');
is($ev->{identifier}, "tg-mr-$r->{id}", "identifier derived from the sum's id");
$r = report($u->{id}, 'api_calls', $r->{id});
is($ev->{timestamp}, $r->{start_unix}, "timestamp: the interval's start");
ok($r->{late} < 60, "sent within a minute of the interval's end");
is($r->{attempts}, 1, 'one attempt');
add_usage($u->{id}, 'api_calls', 4);
is(status_of($r->{id}), 'sent', 'later usage does not touch a sent sum');
my $next = report($u->{id}, 'api_calls');
isnt($next->{id}, $r->{id}, 'later usage goes into the next interval');
is($next->{quantity}, 4, 'the next interval has it');

# --- An outage: Stripe answers 503, then recovers. -------------------------
add_usage($u->{id}, 'compute_minutes', 7);
add_usage($u->{id}, 'credits', 3);
my $c1 = report($u->{id}, 'compute_minutes');
my $c2 = report($u->{id}, 'credits');
fake_post('stripe', '/_fake/mode', { fail_all => 1 });
end_interval($_->{id}) for $c1, $c2;
ok(wait_for(sub { db_one('SELECT MIN(attempts) FROM meter_reports WHERE id '
    . 'IN (?, ?)', $c1->{id}, $c2->{id}) >= 2 }, 15),
    'outage: tried again with backoff');
is(status_of($c1->{id}), 'pending', 'outage: still pending');
like(db_one('SELECT last_error FROM meter_reports WHERE id = ?', $c1->{id})
    // '', qr/503/, 'outage: the error is kept');
fake_post('stripe', '/_fake/mode', { fail_all => 0 });
ok(wait_for(sub { status_of($c1->{id}) eq 'sent' &&
    status_of($c2->{id}) eq 'sent' }, 20), 'outage over: both sent');
my (undef, $e1) = seen($c1->{id});
my (undef, $e2) = seen($c2->{id});
is($e1->{payload}{value}, 7, 'outage: compute_minutes 7 arrived');
is($e2->{payload}{value}, 3, 'outage: credits 3 arrived');

# --- Stripe gone altogether (the fake stopped), then back. ------------------
add_usage($u->{id}, 'api_calls', 11);
my $d = report($u->{id}, 'api_calls');
fake_stop('stripe');
end_interval($d->{id});
ok(wait_for(sub { db_one('SELECT attempts FROM meter_reports WHERE id = ?',
    $d->{id}) >= 1 }, 10), 'Stripe gone: tried');
like(db_one('SELECT last_error FROM meter_reports WHERE id = ?', $d->{id})
    // '', qr/connect/i, 'Stripe gone: could not connect');
is(status_of($d->{id}), 'pending', 'Stripe gone: still pending');
fake_start('stripe', FAKE_STATE_FILE => $STATE);
ok(wait_for(sub { status_of($d->{id}) eq 'sent' }, 20), 'Stripe back: sent');
my (undef, $ed) = seen($d->{id});
is($ed->{payload}{value}, $d->{quantity}, 'Stripe back: the sum arrived');

# --- The sender restarted while a call is in flight. -----------------------
fake_post('stripe', '/_fake/mode', { delay => 3 });
add_usage($u->{id}, 'api_calls', 2);
my $g = report($u->{id}, 'api_calls');
end_interval($g->{id});
ok(wait_for(sub { scalar @{ (seen($g->{id}))[0] } }, 10),
    'graceful restart: the call is in flight');
ok(devstack('restart-sender'), 'contrib/devstack restart-sender');
ok(wait_for(sub { status_of($g->{id}) eq 'sent' }, 15),
    'graceful restart: sent');
is(scalar @{ (seen($g->{id}))[0] }, 1, 'graceful restart: asked once');

add_usage($u->{id}, 'api_calls', 9);
my $k = report($u->{id}, 'api_calls');
end_interval($k->{id});
ok(wait_for(sub { scalar @{ (seen($k->{id}))[0] } }, 10),
    'killed: the call is in flight');
my $pid = sender_pid();
ok($pid && kill('KILL', $pid), 'killed: SIGKILL to the sender');
sleep 0.2;
is(status_of($k->{id}), 'pending', 'killed: the sum is not marked sent');
fake_post('stripe', '/_fake/mode', { delay => 0 });
ok(devstack('restart-sender'), 'killed: the sender started again');
ok(wait_for(sub { status_of($k->{id}) eq 'sent' }, 15),
    'killed: sent after the restart (the dead lease released)');
my ($kreq, $kev) = seen($k->{id});
ok(@$kreq >= 1, 'killed: asked again with the same identifier');
is(scalar(grep { $_->{idempotency_key} ne "tg-mr-$k->{id}" } @$kreq), 0,
    'killed: every try with the same Idempotency-Key');
is($kev->{payload}{value}, $k->{quantity}, 'killed: the sum arrived once');

# --- The gate queues a paying user's usage (the flusher, tg_flush). ------
SKIP: {
	skip 'the gate (/demo/compute) has not landed on this branch', 2
	    unless gate_ready();
	$dbh->do('UPDATE users SET email_verified_at = UTC_TIMESTAMP(6) '
	    . 'WHERE id = ?', undef, $u->{id});
	my $qsum = sub { db_one('SELECT COALESCE(SUM(quantity), 0) FROM '
	    . "meter_reports WHERE user_id = ? AND meter = 'compute_minutes' "
	    . "AND status = 'pending'", $u->{id}) };
	my $before = $qsum->();
	my $res = req(GET => '/demo/compute', bearer($u->{access}));
	is($res->code, 200, 'the gate lets a paying user through');
	is($qsum->() - $before, 5, "the check's cost is queued for Stripe");
}

# --- Everything, once. ----------------------------------------------------
my $st = fake_get('stripe', '/_fake/state');
my @mine = grep { $_->{payload}{stripe_customer_id} eq $s->{customer} }
    values %{ $st->{meter_events} };
my $sent = $dbh->selectall_arrayref('SELECT id, meter, quantity FROM '
    . "meter_reports WHERE user_id = ? AND status = 'sent'",
    { Slice => {} }, $u->{id});
is(scalar @mine, scalar @$sent, 'one meter event per sent sum');
my %want = map { ("tg-mr-$_->{id}" => $_->{quantity}) } @$sent;
my %got = map { ($_->{identifier} => $_->{payload}{value}) } @mine;
is_deeply(\%got, \%want, 'each with its sum: nothing lost, nothing twice');

# --- Cancellations queued by an account deletion. -------------------------
my $x = new_user();
my $sx = uid_subscribe($x, 'pro');
$dbh->do('INSERT INTO stripe_cancellations (subscription_id, user_id) '
    . 'VALUES (?, ?)', undef, $sx->{subscription}, $x->{id});
ok(wait_for(sub { db_one('SELECT status FROM stripe_cancellations WHERE '
    . 'subscription_id = ?', $sx->{subscription}) eq 'done' }, 10),
    'a queued cancellation is done');
my @del = grep { $_->{method} eq 'DELETE' && $_->{path} eq
    "/v1/subscriptions/$sx->{subscription}" }
    @{ fake_get('stripe', '/_fake/state')->{requests} };
is(scalar @del, 1, 'DELETE /v1/subscriptions/{id}, once');
ok($del[0]{auth_ok}, 'with the secret key');

my $y = new_user();
my $sy = uid_subscribe($y, 'pro');
my $res = req(DELETE => '/api/v1/me', { %{ bearer($y->{access}) },
    'Content-Type' => 'application/json' },
    Mojo::JSON::encode_json({ password => $y->{password} }));
# DELETE /api/v1/me queues its subscriptions' cancellation in its
# transaction; the sender cancels them at Stripe.
SKIP: {
	skip 'DELETE /api/v1/me has not landed on this branch (accounts)', 2
	    if $res->code == 404 || $res->code == 405;
	is($res->code, 204, 'DELETE /api/v1/me: 204');
	ok(wait_for(sub { grep { $_ eq $sy->{subscription} }
	    @{ fake_get('stripe', '/_fake/state')->{cancelled} } }, 10),
	    'deleting the account cancels its subscription at Stripe');
}

$dbh->do('DELETE FROM users WHERE id IN (?, ?, ?, ?)', undef, $u->{id},
    $free->{id}, $x->{id}, $y->{id});
done_testing();
