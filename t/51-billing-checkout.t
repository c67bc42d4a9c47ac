#!/usr/bin/perl
# Stripe billing from the user's side (contract sections 8 and 12):
# GET /api/v1/billing, Checkout and the Customer Portal against the fake
# Stripe (the exact request shapes, the Idempotency-Key on every POST, one
# customer per user even under concurrent first checkouts), the payments
# list, who may call what, and Stripe outages.

use strict;
use warnings;
use lib 't/lib', 't/fakes';

use Test::More;
use Mojo::Promise;
use TG;
use Fakes qw(fake_start fake_stop fake_post fake_get);
use BillingTest;

fake_start('stripe');
fake_post('stripe', '/_fake/reset');

# The fake's requests to $path since request number $since.
sub stripe_requests {
	my ($path, $since) = @_;
	my $s = fake_get('stripe', '/_fake/state');
	return [ grep { $_->{path} eq $path && $_->{n} > ($since // 0) }
	    @{ $s->{requests} } ];
}

sub last_n { fake_get('stripe', '/_fake/state')->{seq} // 0 }

my $u = new_user();
my $auth = bearer($u->{access});

# --- GET /api/v1/billing before any subscription. -------------------------
my $res = req(GET => '/api/v1/billing', $auth);
is($res->code, 200, 'billing: 200');
my $b = $res->json // {};
is($b->{plan}, 'trial', 'billing: plan trial');
ok(exists $b->{status} && !defined $b->{status}, 'billing: status null');
ok(exists $b->{current_period_end} && !defined $b->{current_period_end},
    'billing: current_period_end null');
ok(exists $b->{cancel_at_period_end} && !$b->{cancel_at_period_end},
    'billing: cancel_at_period_end false');
is(req(GET => '/api/v1/billing', bearer($u->{api_key}))->code, 200,
    'billing: an API key may read it');
error_ok(req(GET => '/api/v1/billing'), 401, 'unauthenticated',
    'billing without a credential');
$res = req(GET => '/api/v1/billing/payments', bearer($u->{api_key}));
is($res->code, 200, 'payments: an API key may read them');
is_deeply($res->json, [], 'payments: none yet');

# --- Checkout. -----------------------------------------------------------
my $n0 = last_n();
$res = json_post('/api/v1/billing/checkout', { plan => 'pro' }, $auth);
is($res->code, 200, 'checkout pro: 200');
like($res->json->{url} // '', qr{^http://127\.0\.0\.1:\d+/checkout/cs_test_},
    'checkout: the session URL from Stripe');

my $cust = stripe_requests('/v1/customers', $n0);
is(scalar @$cust, 1, 'checkout: one customer made');
my $c = $cust->[0];
ok($c->{auth_ok}, 'customers: Authorization: Bearer <secret_key>');
is($c->{idempotency_key}, "tg-customer-$u->{id}",
    'customers: Idempotency-Key derived from the user id');
is($c->{params}{email}, $u->{email}, 'customers: the email');
like($c->{content_type} // '', qr{^application/x-www-form-urlencoded},
    'customers: form-encoded');
my $cus = db_one('SELECT stripe_customer_id FROM users WHERE id = ?',
    $u->{id});
like($cus // '', qr/^cus_/, 'the customer id is stored on the user');

my $cs = stripe_requests('/v1/checkout/sessions', $n0);
is(scalar @$cs, 1, 'checkout: one Checkout Session');
my $p = $cs->[0]{params};
ok($cs->[0]{auth_ok}, 'sessions: Authorization: Bearer <secret_key>');
ok(length($cs->[0]{idempotency_key} // ''), 'sessions: an Idempotency-Key');
is($p->{mode}, 'subscription', 'sessions: mode=subscription');
is($p->{customer}, $cus, 'sessions: the customer');
is($p->{client_reference_id}, $u->{id}, 'sessions: client_reference_id');
is($p->{'line_items[0][price]'}, conf_get('stripe', 'price_pro'),
    'sessions: the pro price id');
is($p->{'line_items[0][quantity]'}, '1', 'sessions: quantity 1');
like($p->{success_url} // '', qr{^\Q@{[ base() ]}\E/}, 'success_url on base_url');
like($p->{cancel_url} // '', qr{^\Q@{[ base() ]}\E/}, 'cancel_url on base_url');

# Again: the same customer, a new session with its own key.
$n0 = last_n();
$res = json_post('/api/v1/billing/checkout', { plan => 'team' }, $auth);
is($res->code, 200, 'checkout team: 200');
is(scalar @{ stripe_requests('/v1/customers', $n0) }, 0,
    'second checkout: no new customer');
$cs = stripe_requests('/v1/checkout/sessions', $n0);
is($cs->[0]{params}{'line_items[0][price]'}, conf_get('stripe', 'price_team'),
    'team: the team price id');
is($cs->[0]{params}{customer}, $cus, 'team: the same customer');
isnt($cs->[0]{idempotency_key}, $p->{idempotency_key},
    'each session has its own Idempotency-Key');

# Concurrent first checkouts of another user: one customer at Stripe.
my $w = new_user();
$n0 = last_n();
my $ua = ua();
my @p = map {
	$ua->post_p(base() . '/api/v1/billing/checkout',
	    { Authorization => "Bearer $w->{access}" }, json => { plan => 'pro' })
} 1 .. 6;
my @codes;
Mojo::Promise->all(@p)->then(sub { @codes = map { $_->[0]->res->code } @_ })
    ->wait;
is_deeply([sort @codes], [(200) x 6], 'six checkouts at once: all 200');
$cust = stripe_requests('/v1/customers', $n0);
my %keys = map { $_->{idempotency_key} => 1 } @$cust;
is_deeply([keys %keys], ["tg-customer-$w->{id}"],
    'six checkouts at once: every customer call has the same key');
my %made = map { $_->{id} => 1 } grep { $_->{metadata}{user_id} eq $w->{id} }
    values %{ fake_get('stripe', '/_fake/state')->{customers} };
is(scalar keys %made, 1, 'six checkouts at once: one customer at Stripe');
is(db_one('SELECT stripe_customer_id FROM users WHERE id = ?', $w->{id}),
    (keys %made)[0], 'and it is the one stored');

# Plans that cannot be bought.
for my $plan (qw(enterprise trial free)) {
	$res = json_post('/api/v1/billing/checkout', { plan => $plan }, $auth);
	error_ok($res, 422, 'validation_failed', "checkout $plan");
	ok(($res->json->{error}{fields} // {})->{plan}, "checkout $plan: "
	    . 'names the plan field');
}
error_ok(json_post('/api/v1/billing/checkout', {}, $auth), 422,
    'validation_failed', 'checkout without a plan');
error_ok(json_post('/api/v1/billing/checkout', { plan => 'pro' },
    bearer($u->{api_key})), 403, 'forbidden', 'checkout with an API key');
error_ok(json_post('/api/v1/billing/checkout', { plan => 'pro' }), 401,
    'unauthenticated', 'checkout without a credential');

# --- The Customer Portal. -------------------------------------------------
$n0 = last_n();
$res = req(POST => '/api/v1/billing/portal', $auth);
is($res->code, 200, 'portal: 200');
like($res->json->{url} // '', qr{^https://billing\.stripe\.test/},
    'portal: the session URL');
my $ps = stripe_requests('/v1/billing_portal/sessions', $n0);
is(scalar @$ps, 1, 'portal: one session asked for');
is($ps->[0]{params}{customer}, $cus, 'portal: the customer');
is($ps->[0]{params}{return_url}, base() . '/billing',
    'portal: return_url on base_url');
ok(length($ps->[0]{idempotency_key} // ''), 'portal: an Idempotency-Key');
ok($ps->[0]{auth_ok}, 'portal: the secret key');
error_ok(req(POST => '/api/v1/billing/portal', bearer($u->{api_key})), 403,
    'forbidden', 'portal with an API key');

# Every POST tollgate made carried an Idempotency-Key.
my @posts = grep { $_->{method} eq 'POST' }
    @{ fake_get('stripe', '/_fake/state')->{requests} };
ok(@posts >= 4 && !grep({ !length($_->{idempotency_key} // '') } @posts),
    'every POST to Stripe had an Idempotency-Key');

# --- A subscription already live: the portal changes it. ------------------
uid_subscribe($u, 'pro', customer => $cus);
$res = json_post('/api/v1/billing/checkout', { plan => 'team' }, $auth);
is($res->code, 409, 'checkout with a live subscription: 409');

# --- Stripe down. ---------------------------------------------------------
my $x = new_user();
fake_post('stripe', '/_fake/mode', { fail_all => 1 });
$res = json_post('/api/v1/billing/checkout', { plan => 'pro' },
    bearer($x->{access}));
error_ok($res, 503, 'unavailable', 'checkout while Stripe answers 503');
ok(!defined db_one('SELECT stripe_customer_id FROM users WHERE id = ?',
    $x->{id}), 'no customer stored when Stripe failed');
fake_post('stripe', '/_fake/mode', { fail_all => 0 });
fake_stop('stripe');
error_ok(json_post('/api/v1/billing/checkout', { plan => 'pro' },
    bearer($x->{access})), 503, 'unavailable', 'checkout while Stripe is down');
error_ok(req(POST => '/api/v1/billing/portal', bearer($x->{access})), 503,
    'unavailable', 'portal while Stripe is down');

dbh()->do('DELETE FROM users WHERE id IN (?, ?, ?)', undef, $u->{id},
    $w->{id}, $x->{id});
done_testing();
