#!/usr/bin/perl
# Metered invoices (contract sections 8 and 12, issue 18): with [stripe]
# meter_prices = compute_minutes:price_compute_devstack,
# tokens:price_tokens_devstack, a paid plan's Checkout carries the
# plan's price (quantity 1) and each metered price (no quantity, as
# Stripe requires), checked by the fake Stripe; usage of those meters
# reaches Stripe and lands on the right subscription item of the
# subscription that Checkout made; usage of other meters is never
# queued (usage events) or is skipped by the sender (queued in SQL, as a
# gate would).  A malformed meter_prices stops tollgated at start.
#
# The dev stack's configuration names no metered prices (t/51 and t/53
# test Stripe without them), so this test adds the key, restarts
# tollgated and the sender, and puts both back at the end.

use strict;
use warnings;
use lib 't/lib', 't/fakes';

use Test::More;
use Mojo::UserAgent;
use TG;
use Fakes qw(fake_start fake_stop fake_post fake_get);
use BillingTest;

my $PRICES = 'compute_minutes:price_compute_devstack, tokens:price_tokens_devstack';
my $conf = $ENV{TG_CONF};
my $orig = do { local (@ARGV, $/) = $conf; <> };

# Writes the configuration (mode 0600 kept), then restarts the daemons.
sub write_conf {
	my ($text) = @_;
	open my $fh, '>', "$conf.t55" or die "$conf.t55: $!";
	print $fh $text;
	close $fh;
	chmod 0600, "$conf.t55";
	rename "$conf.t55", $conf or die "rename: $!";
}
sub restart {
	devstack('restart-tollgated') or return 0;
	devstack('restart-sender') or return 0;
	return wait_for(sub { (req(GET => '/healthz')->code // 0) == 200 }, 20);
}
my ($skid, @uids);
END {
	if (defined $orig) {
		write_conf($orig);
		restart();
	}
	my $h = dbh();
	$h->do('DELETE FROM users WHERE id = ?', undef, $_) for @uids;
	if ($skid) {
		$h->do('DELETE FROM usage_events WHERE service_key_id = ?', undef, $skid);
		$h->do('DELETE FROM service_keys WHERE id = ?', undef, $skid);
	}
}

# A malformed value stops tollgated at start, with a sentence.
{
	local $ENV{TOLLGATE_STRIPE_METER_PRICES} = 'compute_minutes';
	my $out = `$ENV{TG_BUILD}/src/tollgated -c $conf 2>&1`;
	isnt($? >> 8, 0, 'meter_prices without a price: tollgated refuses to start');
	like($out, qr/\[stripe\] meter_prices must be METER:PRICE_ID pairs/, 'and says why');
	$ENV{TOLLGATE_STRIPE_METER_PRICES} = 'tokens:price_a,tokens:price_b';
	$out = `$ENV{TG_BUILD}/src/tollgated -c $conf 2>&1`;
	like($out, qr/names the meter tokens twice/, 'a meter twice: refused');
}

(my $with = $orig) =~ s/^(\[stripe\]\s*\n)/$1meter_prices = $PRICES\n/m;
isnt($with, $orig, 'the configuration gets [stripe] meter_prices');
write_conf($with);
ok(restart(), 'tollgated and the sender restarted with it');

my $STATE = "$ENV{TG_DEVSTACK}/tmp/fake-stripe-55.json";
unlink $STATE;
fake_start('stripe', FAKE_STATE_FILE => $STATE);
fake_post('stripe', '/_fake/reset');

my $dbh = dbh();
$dbh->do("SET time_zone = '+00:00'");

# --- Checkout: the plan's price and the metered prices. ---------------------
my $u = new_user();
push @uids, $u->{id};
my $res = json_post('/api/v1/billing/checkout', { plan => 'pro' }, bearer($u->{access}));
is($res->code, 200, 'checkout pro: 200') or diag($res->body);
my $url = ($res->json // {})->{url} // '';
my ($cs) = grep { $_->{path} eq '/v1/checkout/sessions' }
    @{ fake_get('stripe', '/_fake/state')->{requests} };
my $p = $cs->{params} // {};
is($cs->{answered}, 200, 'the fake Stripe took the line items');
is($p->{'line_items[0][price]'}, 'price_pro_devstack', 'line item 0: the plan\'s price');
is($p->{'line_items[0][quantity]'}, 1, 'with quantity 1');
is($p->{'line_items[1][price]'}, 'price_compute_devstack', 'line item 1: compute_minutes\' price');
ok(!exists $p->{'line_items[1][quantity]'}, 'a metered price without a quantity');
is($p->{'line_items[2][price]'}, 'price_tokens_devstack', 'line item 2: tokens\' price');
ok(!exists $p->{'line_items[2][quantity]'}, 'without a quantity either');
ok(!exists $p->{'line_items[3][price]'}, 'nothing more');

# The fake refuses what Stripe refuses (so the check above means something).
my $fake = Mojo::UserAgent->new;
my $bad = $fake->post('http://127.0.0.1:' . ($ENV{TG_PORT} + 11) . '/v1/checkout/sessions'
    => { Authorization => 'Bearer sk_test_devstack' } => form => {
    mode => 'subscription', customer => $p->{customer}, success_url => 'x',
    cancel_url => 'y', 'line_items[0][price]' => 'price_pro_devstack',
    'line_items[0][quantity]' => 1, 'line_items[1][price]' => 'price_compute_devstack',
    'line_items[1][quantity]' => 1 })->result;
is($bad->code, 400, 'the fake: a quantity on a metered price is a 400');

# Paying at the fake Checkout makes the subscription (webhooks to tollgate).
my $pay = Mojo::UserAgent->new(max_redirects => 0)->post("$url/pay")->result;
is($pay->code, 302, 'paid at Checkout');
ok(wait_for(sub { ((req(GET => '/api/v1/me', bearer($u->{access}))->json // {})
    ->{user}{plan} // '') eq 'pro' }, 10), 'the user is on pro');
my $st = fake_get('stripe', '/_fake/state');
my ($sub) = grep { $_->{customer} eq $p->{customer} } values %{ $st->{subscriptions} };
my %item = map { ($_->{price}{id} => $_->{id}) } @{ $sub->{items}{data} // [] };
is(scalar keys %item, 3, 'the subscription has three items');
is(db_one('SELECT plan FROM subscriptions WHERE id = ?', $sub->{id}), 'pro',
    'its plan is its first item\'s');

# --- Usage: only the priced meters are reported. ----------------------------
my $out = `$ENV{TG_BUILD}/src/tollgatectl -c $conf service-key create svc55_$$ 2>&1`;
my ($skey) = $out =~ /(tgs_\S+)\s*\z/;
$skid = db_one('SELECT id FROM service_keys WHERE name = ? AND revoked_at IS NULL',
    "svc55_$$");
my $i = 0;
for my $e ([compute_minutes => 7], [tokens => 1200], [tokens => 34],
    [gpu_seconds => 3], [api_calls => 2]) {
	$res = json_post('/api/v1/usage/events', { user_id => $u->{id},
	    meter => $e->[0], quantity => $e->[1], idempotency_key => 'e' . ++$i },
	    bearer($skey));
	is($res->code, 202, "event $e->[0] $e->[1]: 202");
}
my %queued = map { @$_ } @{ $dbh->selectall_arrayref('SELECT meter, SUM(quantity) '
    . 'FROM meter_reports WHERE user_id = ? GROUP BY meter', undef, $u->{id}) };
is_deeply(\%queued, { compute_minutes => 7, tokens => 1234 },
    'only compute_minutes and tokens are queued for Stripe');

# What a gate queues in SQL for another meter is skipped by the sender.
$dbh->do('CALL tg_meter_report_add(?, ?, ?, ?)', undef, $u->{id}, 'api_calls', 5, 3600);
my $skip = db_one(q{SELECT id FROM meter_reports WHERE user_id = ? AND meter = 'api_calls'},
    $u->{id});
ok($skip, 'a sum of api_calls queued in SQL');

$dbh->do('UPDATE meter_reports SET interval_start = UTC_TIMESTAMP() - INTERVAL 3601 '
    . 'SECOND, interval_end = UTC_TIMESTAMP() - INTERVAL 1 SECOND, next_attempt_at = '
    . 'UTC_TIMESTAMP(6) WHERE user_id = ?', undef, $u->{id});
ok(wait_for(sub { !db_one(q{SELECT COUNT(*) FROM meter_reports WHERE user_id = ? AND
    status = 'pending'}, $u->{id}) }, 20), 'the sender worked every sum');
is(db_one('SELECT status FROM meter_reports WHERE id = ?', $skip), 'skipped',
    'the api_calls sum is skipped, not sent');
is(db_one(q{SELECT COUNT(*) FROM meter_reports WHERE user_id = ? AND status = 'sent'},
    $u->{id}), 2, 'the two priced sums are sent');

$st = fake_get('stripe', '/_fake/state');
my @mine = grep { $_->{payload}{stripe_customer_id} eq $p->{customer} }
    values %{ $st->{meter_events} };
is_deeply([ sort map { $_->{event_name} } @mine ], [ 'compute_minutes', 'tokens' ],
    'Stripe got meter events for compute_minutes and tokens only');
is($st->{item_usage}{ $item{price_compute_devstack} }, 7,
    'compute_minutes\' usage is on the compute item');
is($st->{item_usage}{ $item{price_tokens_devstack} }, 1234,
    'tokens\' usage is on the tokens item');
ok(!$st->{item_usage}{ $item{price_pro_devstack} }, 'nothing on the plan\'s item');
is_deeply($st->{unbilled}, {}, 'no usage Stripe could not bill');

# The plan comes from the plan's price even when a metered item is first
# (Stripe may list the items in another order after a change).
$res = send_event(stripe_event('customer.subscription.updated', { id => $sub->{id},
    object => 'subscription', customer => $p->{customer}, status => 'active',
    cancel_at_period_end => \0, current_period_start => $sub->{current_period_start},
    current_period_end => $sub->{current_period_end}, items => { data => [
    { price => { id => 'price_tokens_devstack' } },
    { price => { id => 'price_compute_devstack' } },
    { price => { id => 'price_team_devstack' } } ] } }, created => time + 5));
is($res->code, 200, 'a subscription update with the metered items first');
is(db_one('SELECT plan FROM subscriptions WHERE id = ?', $sub->{id}), 'team',
    'its plan is the plan price\'s, past the metered ones');
is(db_one('SELECT price_id FROM subscriptions WHERE id = ?', $sub->{id}),
    'price_team_devstack', 'and so is its price');

done_testing;
