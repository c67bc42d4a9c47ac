#!/usr/bin/perl
# The Stripe webhook (contract section 8): the signature on the raw body
# with a 300 s tolerance, each event id taking effect once (replays and
# twenty copies at once), the upgrade from trial to pro visible at once,
# payments, the period's credit allowance and the payment mails, past_due,
# and events arriving out of order.

use strict;
use warnings;
use lib 't/lib', 't/fakes';

use Test::More;
use Mojo::Promise;
use Mojo::JSON qw(encode_json);
use POSIX qw(strftime);
use TG;
use BillingTest;

sub iso { strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $_[0]) }

sub billing {
	my ($u) = @_;
	my $res = req(GET => '/api/v1/billing', bearer($u->{access}));
	return $res->code == 200 ? $res->json : {};
}

sub mails {
	my ($u, $kind) = @_;
	return db_one('SELECT COUNT(*) FROM outbox WHERE user_id = ? AND '
	    . 'kind = ?', $u->{id}, $kind);
}

# --- The signature. -------------------------------------------------------
my $body = stripe_event('tollgate.test', { id => 'obj_1' });
my $now = time;
my $res = send_event($body);
is($res->code, 200, 'a signed event: 200');
ok($res->json->{received}, 'a signed event: received');
my $eid = Mojo::JSON::decode_json($body)->{id};
is(db_one('SELECT COUNT(*) FROM stripe_events WHERE id = ?', $eid), 1,
    'the event id is recorded');

$body = stripe_event('tollgate.test', { id => 'obj_2' });
error_ok(send_event($body, signature => stripe_sign($body, $now,
    'whsec_wrong')), 400, 'bad_request', 'signed with another secret');
error_ok(send_event($body, signature => "t=$now"), 400, 'bad_request',
    'no v1');
error_ok(req(POST => '/api/v1/billing/webhook',
    { 'Content-Type' => 'application/json' }, $body), 400, 'bad_request',
    'no Stripe-Signature');
error_ok(send_event($body, t => $now - 301), 400, 'bad_request',
    'stale: t older than 300 s');
error_ok(send_event($body, t => $now + 400), 400, 'bad_request',
    't far in the future');
my $tampered = $body =~ s/obj_2/obj_3/r;
error_ok(send_event($tampered, signature => stripe_sign($body, $now)), 400,
    'bad_request', 'body changed after signing');
is(db_one('SELECT COUNT(*) FROM stripe_events WHERE id = ?',
    Mojo::JSON::decode_json($body)->{id}), 0, 'refused events leave no trace');
is(send_event($body, t => $now - 280)->code, 200,
    '280 s old is within the tolerance');
my $b2 = stripe_event('tollgate.test', { id => 'obj_4' });
is(send_event($b2, signature => stripe_sign($b2, $now, 'whsec_old') . ','
    . (stripe_sign($b2, $now) =~ s/^t=\d+,//r))->code, 200,
    'several v1: one good is enough');
my $junk = 'not json';
error_ok(send_event($junk), 400, 'bad_request', 'signed, but not an event');
error_ok(req(GET => '/api/v1/billing/webhook'), 405, 'method_not_allowed',
    'GET the webhook');

# --- Trial to pro. ---------------------------------------------------------
my $u = new_user();
is(billing($u)->{plan}, 'trial', 'a new user is on the trial');
my $s = uid_subscribe($u, 'pro');
my $b = billing($u);
is($b->{plan}, 'pro', 'after the subscription: pro at once');
is($b->{status}, 'active', 'status active');
is($b->{current_period_end}, iso($s->{end}), 'current_period_end');
ok(!$b->{cancel_at_period_end}, 'cancel_at_period_end false');
is(db_one('SELECT stripe_customer_id FROM users WHERE id = ?', $u->{id}),
    $s->{customer}, 'checkout.session.completed linked the customer');
$res = req(GET => '/api/v1/me', bearer($u->{access}));
SKIP: {
	skip 'GET /api/v1/me has not landed on this branch (accounts)', 1
	    if $res->code == 404;
	is($res->json->{user}{plan}, 'pro', '/api/v1/me: user.plan is pro');
}
SKIP: {
	skip 'the gate (/demo/echo) has not landed on this branch', 2
	    unless gate_ready();
	# Metered actions need a verified email.
	dbh()->do('UPDATE users SET email_verified_at = UTC_TIMESTAMP(6) '
	    . 'WHERE id = ?', undef, $u->{id});
	$res = req(GET => '/demo/echo', bearer($u->{access}));
	is(eval { $res->json->{plan} }, 'pro',
	    'the gate: the upstream is told plan pro');
	is($res->headers->header('X-RateLimit-Limit'), 120,
	    "the gate: pro's rate limit");
}

# --- invoice.paid: a payment, the allowance, the mail. --------------------
my $inv = 'in_' . unique();
my $paid = stripe_event('invoice.paid', { id => $inv, object => 'invoice',
    customer => $s->{customer}, subscription => $s->{subscription},
    status => 'paid', amount_paid => 2900, amount_due => 2900,
    currency => 'usd', hosted_invoice_url => "https://invoice.stripe.test/$inv",
    lines => { data => [{ period => { start => $s->{start},
    end => $s->{end} }, price => { id => $s->{price} } }] } });
is(send_event($paid)->code, 200, 'invoice.paid: 200');
$res = req(GET => '/api/v1/billing/payments', bearer($u->{access}));
is($res->code, 200, 'payments: 200');
my $pay = $res->json->[0] // {};
is(scalar @{ $res->json }, 1, 'payments: one');
is($pay->{amount}, 2900, 'payment: amount in cents');
is($pay->{currency}, 'usd', 'payment: currency');
is($pay->{status}, 'paid', 'payment: status paid');
is($pay->{invoice_url}, "https://invoice.stripe.test/$inv",
    'payment: invoice_url');
like($pay->{created_at} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    'payment: created_at in RFC 3339');
like($pay->{id} // '', qr/^[A-Za-z0-9_-]{22}$/, 'payment: an opaque id');
my $bal = dbh()->selectrow_hashref('SELECT allowance, allowance_plan, '
    . "DATE_FORMAT(allowance_period_end, '%Y-%m-%dT%H:%i:%sZ') AS pend "
    . 'FROM credit_balances WHERE user_id = ?', undef, $u->{id});
is($bal->{allowance}, 10000, "allowance: pro's 10,000 credits");
is($bal->{allowance_plan}, 'pro', 'allowance: of the pro plan');
is($bal->{pend}, iso($s->{end}), 'allowance: until the period ends');
is(db_one("SELECT COUNT(*) FROM credit_ledger WHERE user_id = ? AND "
    . "kind = 'allowance'", $u->{id}), 1, 'allowance: in the ledger');
is(mails($u, 'payment_received'), 1, 'a "payment received" mail');
like(db_one("SELECT body_text FROM outbox WHERE user_id = ? AND kind = "
    . "'payment_received'", $u->{id}) // '', qr/29\.00 USD/,
    'the mail names the amount');

# Replayed: no second effect.
is(send_event($paid)->code, 200, 'invoice.paid replayed: 200');
is(mails($u, 'payment_received'), 1, 'replayed: no second mail');
is(db_one("SELECT COUNT(*) FROM credit_ledger WHERE user_id = ? AND "
    . "kind = 'allowance'", $u->{id}), 1, 'replayed: no second allowance');
is(db_one('SELECT COUNT(*) FROM payments WHERE user_id = ?', $u->{id}), 1,
    'replayed: one payment');

# Twenty copies of one event at once: one effect.
my $inv2 = 'in_' . unique();
my $dup = stripe_event('invoice.paid', { id => $inv2, object => 'invoice',
    customer => $s->{customer}, subscription => $s->{subscription},
    amount_paid => 500, currency => 'usd', lines => { data => [] } });
my $sig = stripe_sign($dup, time);
my $ua = ua();
my @codes;
Mojo::Promise->all(map {
	$ua->post_p(base() . '/api/v1/billing/webhook',
	    { 'Content-Type' => 'application/json', 'Stripe-Signature' => $sig },
	    $dup)
} 1 .. 20)->then(sub { @codes = map { $_->[0]->res->code } @_ })->wait;
is_deeply([sort @codes], [(200) x 20], 'twenty at once: all 200');
is(db_one('SELECT COUNT(*) FROM payments WHERE stripe_invoice_id = ?',
    $inv2), 1, 'twenty at once: one payment');
is(mails($u, 'payment_received'), 2, 'twenty at once: one more mail');
is(db_one('SELECT COUNT(*) FROM stripe_events WHERE id = ?',
    Mojo::JSON::decode_json($dup)->{id}), 1, 'twenty at once: one event row');

# --- invoice.payment_failed: past_due, the plan kept, the mail. ------------
my $inv3 = 'in_' . unique();
is(send_event(stripe_event('invoice.payment_failed', { id => $inv3,
    object => 'invoice', customer => $s->{customer},
    subscription => $s->{subscription}, amount_due => 2900,
    amount_paid => 0, currency => 'usd' }))->code, 200,
    'invoice.payment_failed: 200');
$b = billing($u);
is($b->{status}, 'past_due', 'payment failed: status past_due');
is($b->{plan}, 'pro', 'payment failed: still pro');
is(mails($u, 'payment_failed'), 1, 'a "payment failed" mail');
my ($failed) = grep { $_->{status} eq 'failed' }
    @{ req(GET => '/api/v1/billing/payments', bearer($u->{access}))->json };
ok($failed, 'payments: the failed one is listed');
is(send_event(stripe_event('invoice.paid', { id => $inv3, object => 'invoice',
    customer => $s->{customer}, subscription => $s->{subscription},
    amount_paid => 2900, currency => 'usd' }), t => time)->code, 200,
    'the retry is paid: 200');
is(billing($u)->{status}, 'active', 'paid after past_due: active again');
is(db_one('SELECT status FROM payments WHERE stripe_invoice_id = ?', $inv3),
    'paid', 'the payment is paid now');

# --- Out of order. --------------------------------------------------------
my $o = new_user();
my $t0 = time - 100;
my $so = uid_subscribe($o, 'pro', created => $t0);
my %base = (id => $so->{subscription}, object => 'subscription',
    customer => $so->{customer}, current_period_start => $so->{start},
    current_period_end => $so->{end}, cancel_at_period_end => \0);
my $team = { data => [{ price => { id => conf_get('stripe', 'price_team') } }] };
my $pro = { data => [{ price => { id => conf_get('stripe', 'price_pro') } }] };
send_event(stripe_event('customer.subscription.updated', { %base,
    status => 'active', items => $team }, created => $t0 + 20));
is(billing($o)->{plan}, 'team', 'updated (t+20) to team');
is(send_event(stripe_event('customer.subscription.updated', { %base,
    status => 'active', items => $pro }, created => $t0 + 10))->code, 200,
    'a late update (t+10): 200');
is(billing($o)->{plan}, 'team', 'a late update does not downgrade');
send_event(stripe_event('customer.subscription.updated', { %base,
    status => 'active', items => $team, cancel_at_period_end => \1 },
    created => $t0 + 22));
ok(billing($o)->{cancel_at_period_end}, 'cancel_at_period_end shown');
send_event(stripe_event('customer.subscription.deleted', { %base,
    status => 'canceled', items => $team }, created => $t0 + 30));
$b = billing($o);
is($b->{plan}, 'trial', 'deleted: back to the trial');
is($b->{status}, 'canceled', 'deleted: status canceled');
send_event(stripe_event('customer.subscription.updated', { %base,
    status => 'active', items => $pro }, created => $t0 + 25));
send_event(stripe_event('customer.subscription.created', { %base,
    status => 'active', items => $pro }, created => $t0 + 1));
send_event(stripe_event('customer.subscription.updated', { %base,
    status => 'active', items => $pro }, created => $t0 + 40));
$b = billing($o);
is($b->{plan}, 'trial', 'late and even newer updates never revive it');
is($b->{status}, 'canceled', 'still canceled');

# A deletion that arrives before the creation.
my $sub2 = 'sub_' . unique();
my %b2 = (%base, id => $sub2);
send_event(stripe_event('customer.subscription.deleted', { %b2,
    status => 'canceled', items => $pro }, created => $t0 + 60));
send_event(stripe_event('customer.subscription.created', { %b2,
    status => 'active', items => $pro }, created => $t0 + 50));
is(billing($o)->{plan}, 'trial', 'deleted before created: never live');

# A newer API version: the period on the item, the subscription and price
# of an invoice under parent and pricing.
my $n = new_user();
my $sn = uid_subscribe($n, 'team');
my ($ps, $pe) = (time - 10, time + 40 * 86400);
send_event(stripe_event('customer.subscription.updated', {
    id => $sn->{subscription}, object => 'subscription',
    customer => $sn->{customer}, status => 'active',
    items => { data => [{ price => { id => $sn->{price} },
    current_period_start => $ps, current_period_end => $pe }] } }));
is(billing($n)->{current_period_end}, iso($pe),
    'newer API: the period from the item');
send_event(stripe_event('invoice.paid', { id => 'in_' . unique(),
    object => 'invoice', customer => $sn->{customer}, amount_paid => 9900,
    currency => 'eur', parent => { subscription_details => {
    subscription => $sn->{subscription} } }, lines => { data => [{
    period => { start => $ps, end => $pe }, pricing => { price_details => {
    price => $sn->{price} } } }] } }));
is(db_one('SELECT allowance FROM credit_balances WHERE user_id = ?',
    $n->{id}), 100000, "newer API: team's allowance");
is(db_one('SELECT subscription_id FROM payments WHERE user_id = ?',
    $n->{id}), $sn->{subscription}, 'newer API: the payment names the '
    . 'subscription');

# A customer tollgate does not know: accepted, stored, harmless.
is(send_event(stripe_event('customer.subscription.created', {
    id => 'sub_' . unique(), object => 'subscription',
    customer => 'cus_nobody' . unique(), status => 'active', items => $pro }))
    ->code, 200, 'an unknown customer: 200');

# A payment that arrives before its customer is linked to a user shows
# up in that user's payments once the link arrives.
my $l = new_user();
my ($lcus, $lsub) = ('cus_' . unique(), 'sub_' . unique());
is(send_event(stripe_event('invoice.paid', { id => 'in_' . unique(),
    object => 'invoice', customer => $lcus, subscription => $lsub,
    amount_paid => 2900, currency => 'usd' }))->code, 200,
    'invoice.paid before the checkout: 200');
is(scalar @{ req(GET => '/api/v1/billing/payments', bearer($l->{access}))
    ->json }, 0, 'not listed while its user is unknown');
uid_subscribe($l, 'pro', customer => $lcus, subscription => $lsub);
is(scalar @{ req(GET => '/api/v1/billing/payments', bearer($l->{access}))
    ->json }, 1, 'listed once the checkout linked it');

dbh()->do('DELETE FROM users WHERE id IN (?, ?, ?, ?)', undef, $u->{id},
    $o->{id}, $n->{id}, $l->{id});
done_testing();
