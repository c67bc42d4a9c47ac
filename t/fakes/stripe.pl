#!/usr/bin/perl
# A fake of the Stripe API for tollgate's tests: the calls tollgate makes
# (contract section 12), checked the way Stripe checks them, and recorded.
#
#   POST   /v1/customers                 -> {id: "cus_...", ...}
#   POST   /v1/checkout/sessions         -> {id: "cs_test_...", url}
#   POST   /v1/billing_portal/sessions   -> {id: "bps_...", url}
#   POST   /v1/billing/meter_events      -> the event; an identifier seen
#                                           before is refused (400
#                                           resource_already_exists)
#   DELETE /v1/subscriptions/:id         -> {id, status: "canceled"}
#
# Every /v1 call needs "Authorization: Bearer $FAKE_STRIPE_KEY"
# (sk_test_devstack).  Idempotency-Key works as at Stripe: the same key
# with the same parameters replays the first answer (with
# Idempotent-Replayed: true); with other parameters it is a 400.
#
# A Checkout Session's url is this fake's own page: GET /checkout/:id
# shows a "Pay" button; POST /checkout/:id/pay makes the subscription and
# sends tollgate the webhook events Stripe would (invoice.paid,
# customer.subscription.created, checkout.session.completed, in that
# order, signed with $FAKE_WEBHOOK_SECRET, to $FAKE_WEBHOOK_URL), then
# sends the browser to the session's success_url.  Cancelling a known
# subscription (DELETE) sends customer.subscription.deleted.  With
# FAKE_STRIPE_LOCAL_PORTAL=1 (contrib/devstack up sets it) a Customer
# Portal session's url is this fake's page too: GET /portal/:id lists the
# customer's live subscriptions, each with a "Cancel" button (POST
# /portal/:id/cancel/:sub sends customer.subscription.deleted, then the
# browser goes to the session's return_url), and a link back.
#
# Prices: price_pro_devstack and price_team_devstack (and any price not
# known here) are licensed prices, which a Checkout line item must give
# a quantity; the metered prices ($FAKE_METERED_PRICES, "price:meter,...";
# by default price_compute_devstack for the meter compute_minutes and
# price_tokens_devstack for tokens) must come without one, as Stripe
# refuses a quantity for a metered price.  Every line item becomes a
# subscription item (si_...) when the Checkout is paid, and a meter event
# is added to the usage of the item, on the customer's live
# subscriptions, whose price bills that meter (state: item_usage
# {si_: total}); an event no item bills goes to unbilled {event_name:
# total}, as Stripe would keep it without invoicing it.
#
# For the tests: GET /_fake/ping, GET /_fake/state (requests in order,
# customers, accepted meter events, cancelled subscriptions), POST
# /_fake/reset, POST /_fake/mode {fail_all: 0|1, fail_next: N, delay:
# seconds (for meter events)}.  The state lives in $FAKE_STATE_FILE when
# set, so the fake can be killed and started again (a real outage)
# without forgetting what it was sent.

use strict;
use warnings;

use Mojolicious::Lite -signatures;
use Mojo::File qw(path);
use Mojo::JSON qw(encode_json decode_json);
use Mojo::IOLoop;
use Mojo::UserAgent;
use Digest::SHA qw(hmac_sha256_hex);

my $KEY = $ENV{FAKE_STRIPE_KEY} // 'sk_test_devstack';
my $FILE = $ENV{FAKE_STATE_FILE};
my $HOOK = $ENV{FAKE_WEBHOOK_URL};
my $HOOK_SECRET = $ENV{FAKE_WEBHOOK_SECRET} // 'whsec_devstack';
my %AMOUNT = (price_pro_devstack => 2900, price_team_devstack => 9900);
my %METERED = map { split /:/, $_, 2 } grep { /:/ } split /,/,
    $ENV{FAKE_METERED_PRICES} //
    'price_compute_devstack:compute_minutes,price_tokens_devstack:tokens';

sub fresh {
	return { requests => [], idem => {}, customers => {},
	    meter_events => {}, cancelled => [], sessions => {},
	    subscriptions => {}, webhooks => [], item_usage => {},
	    unbilled => {},
	    mode => { fail_all => 0, fail_next => 0, delay => 0 }, seq => 0 };
}

my $S = $FILE && -s $FILE ? decode_json(path($FILE)->slurp) : fresh();

sub save {
	return unless $FILE;
	my $f = path($FILE);
	# Mojo::File renamed spurt to spew in 9.34.
	$f->can('spew') ? $f->spew(encode_json($S)) : $f->spurt(encode_json($S));
}

sub rid {
	my ($prefix) = @_;
	my @c = ('a' .. 'z', 'A' .. 'Z', '0' .. '9');
	return $prefix . join '', map { $c[rand @c] } 1 .. 14;
}

sub stripe_error ($c, $status, $type, $message, $code = undef) {
	return $c->render(status => $status, json => { error => {
	    type => $type, message => $message,
	    (defined $code ? (code => $code) : ()) } });
}

get '/_fake/ping' => sub ($c) { $c->render(json => { ok => 1 }) };
get '/_fake/state' => sub ($c) { $c->render(json => $S) };
post '/_fake/reset' => sub ($c) { $S = fresh(); save(); $c->render(json => $S) };
post '/_fake/mode' => sub ($c) {
	my $m = $c->req->json // {};
	$S->{mode}{$_} = $m->{$_} for keys %$m;
	save();
	$c->render(json => $S->{mode});
};

# Sends one signed event to tollgate's webhook; records the answer.
sub send_webhook ($type, $object) {
	return unless $HOOK;
	my $body = encode_json({ id => rid('evt_'), object => 'event',
	    type => $type, created => time, data => { object => $object } });
	my $t = time;
	my $ua = Mojo::UserAgent->new(insecure => 1);
	my $res = $ua->post($HOOK => { 'Content-Type' => 'application/json',
	    'Stripe-Signature' => "t=$t,v1=" . hmac_sha256_hex("$t.$body",
	    $HOOK_SECRET) } => $body)->result;
	push @{ $S->{webhooks} }, { type => $type, status => $res->code };
	save();
}

get '/checkout/:id' => sub ($c) {
	my $cs = $S->{sessions}{ $c->param('id') }
	    or return $c->render(status => 404, text => 'no such session');
	$c->render(text => '<!doctype html><title>Fake Checkout</title>'
	    . "<p>Subscribe with $cs->{price}</p><form method=post action="
	    . "\"/checkout/$cs->{id}/pay\"><button>Pay</button></form>",
	    format => 'html');
};

post '/checkout/:id/pay' => sub ($c) {
	my $cs = $S->{sessions}{ $c->param('id') }
	    or return $c->render(status => 404, text => 'no such session');
	my $now = time;
	my $sub = rid('sub_');
	my $inv = rid('in_');
	my ($start, $end) = ($now, $now + 30 * 86400);
	my $amount = $AMOUNT{ $cs->{price} } // 1000;
	my @items = map { { id => rid('si_'), object => 'subscription_item',
	    price => { id => $_, recurring => { usage_type =>
	    $METERED{$_} ? 'metered' : 'licensed', ($METERED{$_} ?
	    (meter => "mtr_$METERED{$_}") : ()) } },
	    ($METERED{$_} ? () : (quantity => 1)) } }
	    @{ $cs->{prices} // [ $cs->{price} ] };
	my $object = { id => $sub, object => 'subscription',
	    customer => $cs->{customer}, status => 'active',
	    cancel_at_period_end => \0, current_period_start => $start,
	    current_period_end => $end, items => { data => \@items } };
	$S->{subscriptions}{$sub} = $object;
	$cs->{subscription} = $sub;
	save();
	send_webhook('invoice.paid', { id => $inv, object => 'invoice',
	    customer => $cs->{customer}, subscription => $sub,
	    status => 'paid', amount_paid => $amount, amount_due => $amount,
	    currency => 'usd',
	    hosted_invoice_url => "https://invoice.stripe.test/$inv",
	    lines => { data => [{ period => { start => $start, end => $end },
	    price => { id => $cs->{price} } }] } });
	send_webhook('customer.subscription.created', $object);
	send_webhook('checkout.session.completed', { id => $cs->{id},
	    object => 'checkout.session', mode => 'subscription',
	    customer => $cs->{customer},
	    client_reference_id => $cs->{client_reference_id},
	    subscription => $sub, status => 'complete' });
	$c->redirect_to($cs->{success_url});
};

# Every /v1 call: authenticate, record, then fail, replay or handle.
get '/portal/:id' => sub ($c) {
	my $ps = ($S->{portals} // {})->{ $c->param('id') }
	    or return $c->render(status => 404, text => 'no such session');
	my $html = '<!doctype html><title>Fake Customer Portal</title>'
	    . '<h1>Fake Stripe Customer Portal</h1>';
	for my $sub (sort { $a->{id} cmp $b->{id} } values %{ $S->{subscriptions} }) {
		next unless $sub->{customer} eq $ps->{customer}
		    && $sub->{status} ne 'canceled';
		my $price = $sub->{items}{data}[0]{price}{id} // '';
		$html .= "<p>Subscription $sub->{id} ($price, $sub->{status})</p>"
		    . "<form method=post action=\"/portal/$ps->{id}/cancel/"
		    . "$sub->{id}\"><button>Cancel subscription</button></form>";
	}
	$html .= '<p><a href="' . Mojo::Util::xml_escape($ps->{return_url} // '/')
	    . '">Return</a></p>';
	$c->render(text => $html, format => 'html');
};

post '/portal/:id/cancel/:sub' => sub ($c) {
	my $ps = ($S->{portals} // {})->{ $c->param('id') }
	    or return $c->render(status => 404, text => 'no such session');
	my $sub = $S->{subscriptions}{ $c->param('sub') };
	return $c->render(status => 404, text => 'no such subscription')
	    unless $sub && $sub->{customer} eq $ps->{customer};
	if ($sub->{status} ne 'canceled') {
		$sub->{status} = 'canceled';
		push @{ $S->{cancelled} }, $sub->{id};
		save();
		send_webhook('customer.subscription.deleted', $sub);
	}
	$c->redirect_to($ps->{return_url} // '/');
};

under '/v1' => sub ($c) {
	my $params = $c->req->body_params->to_hash;
	my $idem = $c->req->headers->header('Idempotency-Key');
	my $auth = $c->req->headers->authorization // '';
	my $m = $S->{mode};
	my $rec = { n => ++$S->{seq}, method => $c->req->method,
	    path => $c->req->url->path->to_string, params => $params,
	    idempotency_key => $idem, content_type =>
	    $c->req->headers->content_type, auth_ok => $auth eq "Bearer $KEY"
	    ? 1 : 0, at => time };
	push @{ $S->{requests} }, $rec;
	if ($m->{fail_all} || $m->{fail_next} > 0) {
		$m->{fail_next}-- if $m->{fail_next} > 0;
		$rec->{answered} = 503;
		save();
		stripe_error($c, 503, 'api_error', 'Fake outage.');
		return undef;
	}
	if (!$rec->{auth_ok}) {
		$rec->{answered} = 401;
		save();
		stripe_error($c, 401, 'invalid_request_error',
		    'Invalid API Key provided.');
		return undef;
	}
	if (defined $idem && $c->req->method eq 'POST') {
		my $key = "$rec->{path} $idem";
		my $seen = $S->{idem}{$key};
		if ($seen) {
			if ($seen->{params} ne encode_json($params)) {
				$rec->{answered} = 400;
				save();
				stripe_error($c, 400, 'idempotency_error', 'Keys '
				    . 'for idempotent requests can only be used '
				    . 'with the same parameters they were first '
				    . 'used with.');
				return undef;
			}
			$rec->{answered} = $seen->{status};
			$rec->{replayed} = 1;
			save();
			$c->res->headers->header('Idempotent-Replayed' => 'true');
			$c->render(status => $seen->{status},
			    json => $seen->{body});
			return undef;
		}
	}
	$c->stash(rec => $rec, idem => $idem, params => $params);
	return 1;
};

# Renders and remembers the answer for the request's Idempotency-Key.
sub answer ($c, $status, $body) {
	my $rec = $c->stash('rec');
	my $idem = $c->stash('idem');
	$rec->{answered} = $status;
	$S->{idem}{"$rec->{path} $idem"} = { params =>
	    encode_json($c->stash('params')), status => $status, body => $body }
	    if defined $idem && $c->req->method eq 'POST';
	save();
	$c->render(status => $status, json => $body);
}

sub required ($c, @names) {
	my $p = $c->stash('params');
	for my $n (@names) {
		next if defined $p->{$n} && length $p->{$n};
		answer($c, 400, { error => { type => 'invalid_request_error',
		    message => "Missing required param: $n.", param => $n } });
		return 0;
	}
	return 1;
}

post '/customers' => sub ($c) {
	my $p = $c->stash('params');
	my $id = rid('cus_');
	$S->{customers}{$id} = { id => $id, email => $p->{email},
	    metadata => { user_id => $p->{'metadata[user_id]'} } };
	answer($c, 200, { object => 'customer', %{ $S->{customers}{$id} } });
};

# The line items of a Checkout, checked as Stripe checks them: a price
# each, in order from 0; a quantity for a licensed price, none for a
# metered one; no price twice.  Returns (prices) or (undef, message,
# param).
sub line_items ($p) {
	my @prices;
	for (my $i = 0; defined $p->{"line_items[$i][price]"}; $i++) {
		my $price = $p->{"line_items[$i][price]"};
		my $q = $p->{"line_items[$i][quantity]"};
		return (undef, "A price may appear once (line_items[$i]).",
		    "line_items[$i][price]") if grep { $_ eq $price } @prices;
		if ($METERED{$price}) {
			return (undef, 'Quantity should not be specified where '
			    . 'usage_type is `metered`. Remove quantity from '
			    . "`line_items[$i]`.", "line_items[$i][quantity]")
			    if defined $q;
		} elsif (!defined $q || $q !~ /^[1-9]\d*$/) {
			return (undef, "Missing required param: line_items[$i]"
			    . '[quantity].', "line_items[$i][quantity]");
		}
		push @prices, $price;
	}
	my @extra = grep { /^line_items\[(\d+)\]/ && $1 >= @prices } keys %$p;
	return (undef, "Received unknown line item parameter: $extra[0].",
	    $extra[0]) if @extra;
	return (\@prices);
}

post '/checkout/sessions' => sub ($c) {
	return unless required($c, qw(mode customer line_items[0][price]
	    success_url cancel_url));
	my $p = $c->stash('params');
	return answer($c, 400, { error => { type => 'invalid_request_error',
	    message => 'No such customer.', param => 'customer' } })
	    unless $S->{customers}{ $p->{customer} };
	my ($prices, $msg, $param) = line_items($p);
	return answer($c, 400, { error => { type => 'invalid_request_error',
	    message => $msg, param => $param } }) unless $prices;
	my $id = rid('cs_test_');
	$S->{sessions}{$id} = { id => $id, customer => $p->{customer},
	    client_reference_id => $p->{client_reference_id},
	    price => $p->{'line_items[0][price]'}, prices => $prices,
	    success_url => $p->{success_url}, cancel_url => $p->{cancel_url} };
	answer($c, 200, { id => $id, object => 'checkout.session',
	    mode => $p->{mode}, customer => $p->{customer},
	    client_reference_id => $p->{client_reference_id},
	    url => 'http://127.0.0.1:' . $c->tx->local_port . "/checkout/$id" });
};

post '/billing_portal/sessions' => sub ($c) {
	return unless required($c, qw(customer));
	my $id = rid('bps_');
	$S->{portals}{$id} = { id => $id,
	    customer => $c->stash('params')->{customer},
	    return_url => $c->stash('params')->{return_url} };
	save();
	answer($c, 200, { id => $id, object => 'billing_portal.session',
	    customer => $c->stash('params')->{customer},
	    return_url => $c->stash('params')->{return_url},
	    url => $ENV{FAKE_STRIPE_LOCAL_PORTAL}
	    ? 'http://127.0.0.1:' . $c->tx->local_port . "/portal/$id"
	    : "https://billing.stripe.test/p/session/$id" });
};

post '/billing/meter_events' => sub ($c) {
	return unless required($c, qw(event_name payload[stripe_customer_id]
	    payload[value]));
	my $p = $c->stash('params');
	my $ident = $p->{identifier} // rid('mev_');
	if ($S->{meter_events}{$ident}) {
		return answer($c, 400, { error => {
		    type => 'invalid_request_error',
		    code => 'resource_already_exists', message => "An event "
		    . "with identifier $ident already exists." } });
	}
	my $ev = { object => 'billing.meter_event', identifier => $ident,
	    event_name => $p->{event_name}, timestamp => $p->{timestamp},
	    payload => { stripe_customer_id =>
	    $p->{'payload[stripe_customer_id]'},
	    value => $p->{'payload[value]'} }, created => time };
	$S->{meter_events}{$ident} = $ev;
	# Where Stripe bills it: the item of the customer's live subscription
	# whose price's meter has this event name.
	my ($item) = grep { ($METERED{ $_->{price}{id} } // '') eq
	    $p->{event_name} } map { @{ $_->{items}{data} // [] } }
	    grep { $_->{customer} eq $p->{'payload[stripe_customer_id]'} &&
	    $_->{status} ne 'canceled' } values %{ $S->{subscriptions} };
	if ($item) {
		$S->{item_usage}{ $item->{id} } += $p->{'payload[value]'};
		$ev->{subscription_item} = $item->{id};
	} else {
		$S->{unbilled}{ $p->{event_name} } += $p->{'payload[value]'};
	}
	# A slow answer, so a test can stop the sender while it waits.
	my $delay = $S->{mode}{delay} // 0;
	if ($delay > 0) {
		$c->stash('rec')->{delayed} = $delay;
		save();
		$c->render_later;
		Mojo::IOLoop->timer($delay => sub { answer($c, 200, $ev) });
		return;
	}
	answer($c, 200, $ev);
};

del '/subscriptions/:id' => sub ($c) {
	my $id = $c->param('id');
	push @{ $S->{cancelled} }, $id;
	my $sub = $S->{subscriptions}{$id};
	if ($sub && $sub->{status} ne 'canceled') {
		$sub->{status} = 'canceled';
		send_webhook('customer.subscription.deleted', $sub);
	}
	answer($c, 200, { id => $id, object => 'subscription',
	    status => 'canceled' });
};

app->start;
