package BillingTest;

# Helpers shared by the GitHub and Stripe tests (t/50-*.t to t/53-*.t):
# users made through the API, Stripe events signed as Stripe signs them,
# and a user brought onto a paid plan through the webhook.

use strict;
use warnings;

use Exporter 'import';
use Digest::SHA qw(hmac_sha256_hex);
use Mojo::JSON qw(encode_json);
use Test::More;
use TG;

our @EXPORT = qw(new_user bearer stripe_sign stripe_event send_event
    unique uid_subscribe db_one gate_ready);

my $n = 0;

# A string unique to this test run.
sub unique {
	return sprintf '%d%d%04d%d', $$, time, int(rand 10000), ++$n;
}

# Signs up a new user.  Returns {id, email, password, access, refresh,
# api_key}; dies when the signup fails.
sub new_user {
	my (%opt) = @_;
	my $email = $opt{email} // 'bill' . unique() . '@example.com';
	my $pw = 'correct horse battery';
	my $res = json_post('/api/v1/auth/signup',
	    { email => $email, password => $pw, name => 'Bill Test' },
	    { 'X-Forwarded-For' => '127.0.50.' . (1 + $n % 250) });
	die 'signup failed: ' . ($res->code // 'no answer') . ' '
	    . substr($res->body // '', 0, 200) unless ($res->code // 0) == 201;
	my $j = $res->json;
	return { id => $j->{user}{id}, email => $email, password => $pw,
	    access => $j->{tokens}{access_token},
	    refresh => $j->{tokens}{refresh_token},
	    api_key => $j->{api_key}{key} };
}

sub bearer { return { Authorization => "Bearer $_[0]" } }

# The Stripe-Signature header for $body at time $t with $secret.
sub stripe_sign {
	my ($body, $t, $secret) = @_;
	$secret //= conf_get('stripe', 'webhook_secret');
	return "t=$t,v1=" . hmac_sha256_hex("$t.$body", $secret);
}

# A Stripe event object (as JSON text) of $type around $object.
sub stripe_event {
	my ($type, $object, %opt) = @_;
	return encode_json({ id => $opt{id} // 'evt_' . unique(),
	    object => 'event', type => $type, created => $opt{created} // time,
	    livemode => \0, api_version => '2024-06-20',
	    data => { object => $object } });
}

# POSTs a signed event body to the webhook; returns the response.
sub send_event {
	my ($body, %opt) = @_;
	my $t = $opt{t} // time;
	return req(POST => '/api/v1/billing/webhook',
	    { 'Content-Type' => 'application/json',
	    'Stripe-Signature' => $opt{signature} // stripe_sign($body, $t) },
	    $body);
}

# One value from the database.
sub db_one {
	my ($sql, @bind) = @_;
	my ($v) = dbh()->selectrow_array($sql, undef, @bind);
	return $v;
}

# Puts user $u on $plan through the webhook as Stripe would after a
# Checkout: the customer linked, the subscription created (active).
# Returns {customer, subscription, start, end}.
sub uid_subscribe {
	my ($u, $plan, %opt) = @_;
	my $cus = $opt{customer} // 'cus_' . unique();
	my $sub = $opt{subscription} // 'sub_' . unique();
	my $t = $opt{created} // time;
	my $start = $opt{start} // time - 60;
	my $end = $opt{end} // $start + 30 * 86400;
	my $price = conf_get('stripe', "price_$plan");
	my $res = send_event(stripe_event('checkout.session.completed', {
	    id => 'cs_test_' . unique(), object => 'checkout.session',
	    mode => 'subscription', client_reference_id => $u->{id},
	    customer => $cus, subscription => $sub }, created => $t));
	die 'checkout.session.completed: ' . $res->code unless $res->code == 200;
	$res = send_event(stripe_event('customer.subscription.created', {
	    id => $sub, object => 'subscription', customer => $cus,
	    status => 'active', cancel_at_period_end => \0,
	    current_period_start => $start, current_period_end => $end,
	    items => { data => [{ price => { id => $price } }] } },
	    created => $t));
	die 'customer.subscription.created: ' . $res->code
	    unless $res->code == 200;
	return { customer => $cus, subscription => $sub, start => $start,
	    end => $end, price => $price };
}

# True when the gate and its demo upstream have landed on this branch.
sub gate_ready {
	my $res = req(GET => '/demo/echo');
	return ($res->code // 404) != 404;
}

1;
