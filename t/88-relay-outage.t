#!/usr/bin/perl
# Faults under load (issue 8), 3 of 4: the SMTP relay and Stripe both
# down (15 s here, a minute under contrib/soak) while a paying user's
# spends and checks run under wrk (its usage queued for Stripe's meters)
# and new accounts and password resets queue mail.  Afterwards every mail
# and every meter event is delivered exactly once: the SMTP sink gets
# each outbox id once (Message-ID <id@tollgate>), the Stripe fake each
# meter report identifier once, with the sums the ledger and the usage
# counters hold.
#
# The short form moves the pending rows' next attempt to now once both
# are back (the retry backoff would make it wait up to 40 s); contrib/soak
# waits for the backoff.

use strict;
use warnings;
use lib 't/lib', 't/fakes';

use Test::More;
use Time::HiRes qw(sleep time);
use TG;
use TGGate;
use TGLoad;
use TGMail qw(sink_start sink_stop mails_to);
use Fakes qw(fake_start fake_stop fake_get);
use BillingTest qw(uid_subscribe);

my $conns = soak_s(4, 8);
my $down = soak_s(15, 60);
my $db = gdb();

my $STATE = "$ENV{TG_DEVSTACK}/tmp/fake-stripe-88.json";
unlink $STATE;
END { unlink $STATE if $STATE }

# Both are down from here (neither the sink nor the fake is running).
my $t0 = time;
my $u = load_user();
my $sub = uid_subscribe($u, 'pro');
ok($sub->{customer}, "a paying user ($sub->{customer})");
my $b = snapshot($u);

my $h = load_start(duration => soak_s(6, 20), conns => $conns, streams => [
    { name => 'spend', path => '/demo/spend', token => $u->{token} },
    { name => 'echo', path => '/demo/echo', token => $u->{key} } ]);

# Mail meanwhile: new accounts (their verification mail) and resets.
my @mail_users;
for my $i (1 .. soak_s(4, 12)) {
	my $m = new_user(unverified => 1);
	my $res = json_post('/api/v1/auth/password/forgot', { email => $m->{email} },
	    { 'X-Forwarded-For' => "127.0.88.$i" });
	is($res->code, 202, "forgot $i while the relay is down: 202");
	push @mail_users, $m;
}
my $res = load_wait($h);
my ($s, $e) = @{$res}{qw(spend echo)};
for my $k (qw(spend echo)) {
	is($res->{$k}{failed}, 0, "$k: $res->{$k}{requests} requests, all 200");
}
my $a = snapshot($u);
my ($lost, $dup) = spend_totals('relay outage', $b, $a, $s);

# The meter reports due now (their interval moved back), so the sender
# tries them while Stripe is down.
my $reports = sub { $db->selectall_arrayref(q{SELECT id, meter, quantity,
    status, attempts FROM meter_reports WHERE user_id = ?}, { Slice => {} },
    $u->{id}) };
$db->do(q{UPDATE meter_reports SET interval_start = interval_start -
    INTERVAL 1 DAY, interval_end = UTC_TIMESTAMP() - INTERVAL 1 SECOND,
    next_attempt_at = UTC_TIMESTAMP(6) WHERE user_id = ?}, undef, $u->{id});
my %qty;
$qty{ $_->{meter} } += $_->{quantity} for @{ $reports->() };
# (Usage from before the subscription, the first spend, is not queued.)
my %use = map { ($_ => $a->{$_} - $b->{$_}) } qw(credits api_calls);
is($qty{credits}, $use{credits}, "the credits meter's queue holds every "
    . "spend ($use{credits})");
is($qty{api_calls}, $use{api_calls}, "the api_calls queue holds every "
    . "check ($use{api_calls})");

my @ids = map { $_->{id} } @mail_users;
my $outbox = sub { $db->selectall_arrayref(q{SELECT id, user_id, status,
    attempts FROM outbox WHERE user_id IN (} . join(',', ('?') x @ids)
    . ')', { Slice => {} }, @ids) };
is(scalar @{ $outbox->() }, 2 * @ids, 'two mails queued for each new account');

ok(wait_for(sub {
	!grep { $_->{attempts} < 1 || $_->{status} ne 'pending' }
	    @{ $outbox->() }, @{ $reports->() };
}, $down + 10), 'every mail and meter report tried and still pending');
my $left = $down - (time - $t0);
sleep $left if $left > 0;
is(scalar(grep { $_->{status} eq 'sent' } @{ $outbox->() }, @{ $reports->() }),
    0, sprintf 'nothing sent in %.0f s of outage', time - $t0);

# Both back.
ok(sink_start(), sprintf 'the SMTP relay back after %.0f s', time - $t0);
fake_start('stripe', FAKE_STATE_FILE => $STATE);
unless (soak()) {
	$db->do(q{UPDATE outbox SET next_attempt_at = UTC_TIMESTAMP(6) WHERE
	    status = 'pending' AND user_id IN (} . join(',', ('?') x @ids) . ')',
	    undef, @ids);
	$db->do(q{UPDATE meter_reports SET next_attempt_at = UTC_TIMESTAMP(6)
	    WHERE status = 'pending' AND user_id = ?}, undef, $u->{id});
}
my $t1 = time;
ok(wait_for(sub {
	!grep { $_->{status} ne 'sent' } @{ $outbox->() }, @{ $reports->() };
}, soak_s(30, 240)), 'every mail and meter report sent afterwards');
my $after = time - $t1;
sleep 2;	# time for a duplicate, if one were coming

# Mail: each outbox id exactly once.
my (%got, $mails_lost, $mails_dup);
for my $m (@mail_users) {
	$got{ $_->{message_id} // '' }++ for mails_to($m->{email});
}
my $rows = $outbox->();
$mails_lost = grep { !$got{"<$_->{id}\@tollgate>"} } @$rows;
$mails_dup = 0;
$mails_dup += $_ - 1 for grep { $_ > 1 } values %got;
is($mails_lost, 0, 'every queued mail arrived (' . scalar(@$rows) . ')');
is($mails_dup, 0, 'none twice (one copy per Message-ID)');
is(scalar(keys %got), scalar(@$rows), 'nothing else arrived for them');

# Meter events: each report identifier once, with its sum.
my $st = fake_get('stripe', '/_fake/state') // {};
my $reps = $reports->();
my (%asked, $ev_lost, $ev_dup);
$asked{ $_->{params}{identifier} // '' }++ for grep {
    $_->{path} eq '/v1/billing/meter_events' } @{ $st->{requests} // [] };
$ev_lost = grep { !$asked{"tg-mr-$_->{id}"} } @$reps;
$ev_dup = 0;
$ev_dup += $asked{"tg-mr-$_->{id}"} - 1 for grep { ($asked{"tg-mr-$_->{id}"}
    // 0) > 1 } @$reps;
is($ev_lost, 0, 'every meter report reached Stripe (' . scalar(@$reps) . ')');
is($ev_dup, 0, 'each identifier asked once');
my %sent;
for my $r (@$reps) {
	my $ev = $st->{meter_events}{"tg-mr-$r->{id}"} // {};
	$sent{ $ev->{event_name} // '?' } += $ev->{payload}{value} // 0;
}
is_deeply(\%sent, \%use,
    'the events carry every spend and check, once');
fake_stop('stripe');
sink_stop();

figures(scenario => "SMTP + Stripe down ${down} s",
    requests => $s->{requests} + $e->{requests},
    errors => $s->{failed} + $e->{failed},
    lost => $lost + $mails_lost + $ev_lost,
    duplicated => $dup + $mails_dup + $ev_dup,
    note => sprintf('%d mails, %d meter events (%d spends, %d checks), '
    . 'all sent %.1f s after both were back', scalar(@$rows), scalar(@$reps),
    $use{credits}, $use{api_calls}, $after));

done_testing;
