#!/usr/bin/perl
# Usage events with money and metadata (contract sections 5 and 7a, issue
# 18), through nginx with a service key: metadata (a JSON object of at
# most 1 KB) and cost_micros kept; the meter credits refused (credits
# move only through spends, so the meter and the balance agree); a level
# meter refused; GET /api/v1/usage/events (the user's own, from/to/meter
# and pages); the admin's CSV export across users and a period; the money
# in GET /api/v1/usage and on the /usage page.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::JSON qw(decode_json);
use TG qw(:DEFAULT ctl);
use TGGate;
require './t/60-helpers.pl';

my $db = gdb();
my (@skeys, @uids);
END {
	$db->do('DELETE FROM users WHERE id = ?', undef, $_) for @uids;
	$db->do('DELETE FROM usage_events WHERE service_key_id = ?', undef, $_) for @skeys;
	$db->do('DELETE FROM service_keys WHERE id = ?', undef, $_) for @skeys;
	$db->do(q{DELETE FROM meters WHERE name = ?}, undef, "lvl36_$$");
}

my ($rc, $out) = ctl('service-key', 'create', "svc36_$$");
is($rc, 0, 'a service key') or diag($out);
my ($skey) = $out =~ /(tgs_\S+)\s*\z/;
push @skeys, $db->selectrow_array('SELECT id FROM service_keys WHERE name = ? '
    . 'AND revoked_at IS NULL', undef, "svc36_$$");
my $S = bearer($skey);

my ($email, $pw, $j) = make_user('ev36', 'Event User');
my $uid = $j->{user}{id};
push @uids, $uid;
verify($uid);
my $tok = $j->{tokens}{access_token};
my ($email2, undef, $j2) = make_user('ev36b', 'Other User');
push @uids, $j2->{user}{id};

sub event { json_post('/api/v1/usage/events', { user_id => $uid, quantity => 1, @_ }, $S) }

# --- metadata and cost_micros ---------------------------------------------
my $res = event(meter => 'tokens', quantity => 1200, idempotency_key => 'llm-1',
    metadata => { model => 'gpt-x', prompt_tokens => 1000, cached => \1 },
    cost_micros => 4200);
is($res->code, 202, 'an event with metadata and cost_micros: 202');
$res = event(meter => 'tokens', quantity => 300, idempotency_key => 'llm-2',
    metadata => { model => 'small' }, cost_micros => 150);
is($res->code, 202, 'a second one');
is(event(meter => 'gpu_seconds', quantity => 7, idempotency_key => 'gpu-1')->code, 202,
    'an event without either');
is(event(meter => 'tokens', quantity => 1200, idempotency_key => 'llm-1',
    cost_micros => 999999)->code, 202, 'the same idempotency key again: 202');
my ($n, $cost) = $db->selectrow_array(q{SELECT COUNT(*), SUM(cost_micros) FROM
    usage_events WHERE user_id = ? AND meter = 'tokens'}, undef, $uid);
is($n, 2, 'counted once');
is($cost, 4350, 'the first cost stands');

my $big = { blob => 'x' x 1020 };
error_ok(event(meter => 'tokens', idempotency_key => 'big', metadata => $big), 422,
    'validation_failed', 'metadata over 1 KB');
is(eval { event(meter => 'tokens', idempotency_key => 'big', metadata => $big)->json
    ->{error}{fields}{metadata} } // '', 'is too large', 'the field is named');
my $fits = { b => 'x' x 1014 };	# {"b":"..."} is 1020 bytes
is(event(meter => 'tokens', idempotency_key => 'fits', metadata => $fits)->code, 202,
    'metadata of 1 KB or less is taken');
error_ok(event(meter => 'tokens', idempotency_key => 'arr', metadata => [1, 2]), 422,
    'validation_failed', 'metadata that is an array');
error_ok(event(meter => 'tokens', idempotency_key => 'str', metadata => 'gpt'), 422,
    'validation_failed', 'metadata that is a string');
error_ok(event(meter => 'tokens', idempotency_key => 'neg', cost_micros => -1), 422,
    'validation_failed', 'a negative cost');
error_ok(event(meter => 'tokens', idempotency_key => 'frac', cost_micros => 1.5), 422,
    'validation_failed', 'a cost that is not whole');
is(event(meter => 'tokens', idempotency_key => 'nulls', metadata => undef,
    cost_micros => undef)->code, 202, 'null metadata and cost: none');
is_deeply($db->selectrow_arrayref(q{SELECT metadata, cost_micros FROM usage_events
    WHERE user_id = ? AND idempotency_key = 'nulls'}, undef, $uid), [ undef, undef ],
    'stored as NULLs');

# --- the meter credits, and level meters -----------------------------------
my $before = (req(GET => '/api/v1/usage', bearer($tok))->json // {})->{credits}{remaining};
$res = event(meter => 'credits', quantity => 3, idempotency_key => 'cr-1');
error_ok($res, 422, 'validation_failed', 'an event on the meter credits');
like(eval { $res->json->{error}{fields}{meter} } // '', qr/spent/,
    'the field meter says why');
my $us = req(GET => '/api/v1/usage', bearer($tok))->json // {};
is($us->{credits}{remaining}, $before, 'the balance is untouched');
is($us->{meters}{credits}{used}, 0, 'and so is the credits meter: they agree');
ok(!$db->selectrow_array(q{SELECT COUNT(*) FROM usage_events WHERE user_id = ?
    AND meter = 'credits'}, undef, $uid), 'nothing recorded');
($rc) = ctl('meters', 'set', "lvl36_$$", 'kind=level');
is($rc, 0, 'tollgatectl meters set NAME kind=level');
$res = event(meter => "lvl36_$$", idempotency_key => 'lv-1');
error_ok($res, 422, 'validation_failed', 'an event on a level meter');
like(eval { $res->json->{error}{fields}{meter} } // '', qr/level/, 'says it is a level');

# --- GET /api/v1/usage/events ----------------------------------------------
$res = req(GET => '/api/v1/usage/events', bearer($tok));
is($res->code, 200, 'events: 200');
my $ev = $res->json // {};
is($ev->{total}, 5, 'events: the user\'s five');
is($ev->{page}, 1, 'page 1');
is($ev->{per_page}, 50, '50 a page');
my ($first) = grep { (($_->{metadata} // {})->{model} // '') eq 'gpt-x' } @{ $ev->{events} };
ok($first, 'the event with its metadata as an object');
is($first->{cost_micros}, 4200, 'cost_micros');
is($first->{quantity}, 1200, 'quantity');
is($first->{meter}, 'tokens', 'meter');
is($first->{metadata}{prompt_tokens}, 1000, 'metadata kept as sent');
ok($first->{metadata}{cached}, 'booleans too');
like($first->{created_at} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'created_at, RFC 3339');
my ($gpu) = grep { $_->{meter} eq 'gpu_seconds' } @{ $ev->{events} };
ok($gpu && exists $gpu->{cost_micros} && !defined $gpu->{cost_micros}
    && !defined $gpu->{metadata}, 'no cost, no metadata: nulls');
is_deeply([ map { $_->{created_at} } @{ $ev->{events} } ],
    [ sort { $b cmp $a } map { $_->{created_at} } @{ $ev->{events} } ], 'newest first');

$ev = req(GET => '/api/v1/usage/events?meter=gpu_seconds', bearer($tok))->json // {};
is($ev->{total}, 1, 'meter= filters');
$db->do(q{UPDATE usage_events SET created_at = '2026-01-15 10:00:00' WHERE user_id = ?
    AND idempotency_key = 'gpu-1'}, undef, $uid);
$ev = req(GET => '/api/v1/usage/events?from=2026-01-01&to=2026-02-01T00:00:00Z',
    bearer($tok))->json // {};
is($ev->{total}, 1, 'from= and to= bound the period');
is($ev->{events}[0]{meter}, 'gpu_seconds', 'the one in it');
$ev = req(GET => '/api/v1/usage/events?from=2026-01-15T10:00:00Z', bearer($tok))->json // {};
is($ev->{total}, 5, 'from is inclusive');
$ev = req(GET => '/api/v1/usage/events?to=2026-01-15T10:00:00Z', bearer($tok))->json // {};
is($ev->{total}, 0, 'to is exclusive');
$ev = req(GET => '/api/v1/usage/events?page=2', bearer($tok))->json // {};
is_deeply($ev->{events}, [], 'page 2 is empty');
is($ev->{total}, 5, 'with the total');
error_ok(req(GET => '/api/v1/usage/events?from=yesterday', bearer($tok)), 422,
    'validation_failed', 'a bad from');
for my $bad ('2026-02-30', '2026- 1-15', '2026-01-15T10:00', '2026-01-15T10:00:00+01:00',
    '2026-13-01', '+2026-01-15', '2026-01-15T25:00:00Z') {
	is(req(GET => "/api/v1/usage/events?to=$bad", bearer($tok))->code, 422, "to=$bad: 422");
}
is(req(GET => '/api/v1/usage/events?to=2028-02-29T23:59:59.5Z', bearer($tok))->code, 200,
    'a leap day with a fraction: 200');
error_ok(req(GET => '/api/v1/usage/events?from=2026-02-01&to=2026-01-01', bearer($tok)),
    422, 'validation_failed', 'to before from');
error_ok(req(GET => '/api/v1/usage/events?page=0', bearer($tok)), 422,
    'validation_failed', 'page 0');
error_ok(req(GET => '/api/v1/usage/events'), 401, 'unauthenticated', 'events: no credential');
error_ok(req(GET => '/api/v1/usage/events', $S), 403, 'forbidden', 'events: a service key');
is((req(GET => '/api/v1/usage/events', bearer($j2->{tokens}{access_token}))->json // {})
    ->{total}, 0, 'another user sees none of them');

# 60 events: two pages.
for my $i (1 .. 60) {
	event(meter => 'api_calls', idempotency_key => "many-$i", cost_micros => 1);
}
$ev = req(GET => '/api/v1/usage/events?meter=api_calls&page=2', bearer($tok))->json // {};
is($ev->{total}, 60, '60 events');
is(scalar @{ $ev->{events} // [] }, 10, 'page 2 holds the last 10');

# --- money in /api/v1/usage and on /usage --------------------------------
$us = req(GET => '/api/v1/usage', bearer($tok))->json // {};
is($us->{money}{currency}, 'usd', 'money: the plan\'s currency');
is($us->{money}{meters}{tokens}, 4350, 'money: per meter');
is($us->{money}{meters}{api_calls}, 60, 'money: api_calls');
is($us->{money}{total_micros}, 4410, 'money: in all');
ok(!exists $us->{money}{meters}{gpu_seconds}, 'no money where there is none');
is_deeply($us->{meters}{tokens}, { used => 1500 + 1 + 1, limit => undef },
    'the meter counts the quantities');

my $ua = browser();
is(page_login($ua, $email, $pw)->code, 303, 'the user logs in');
my $page = bget($ua, '/usage');
is($page->code, 200, '/usage: 200');
like($page->body, qr{<tr id="cost-tokens">.*?0\.00435 USD}s, '/usage: tokens cost 0.00435 USD');
like($page->body, qr{id="cost-total">0\.00441 USD<}, '/usage: the total');
my ($e3, $p3, $j3) = make_user('ev36c', 'No Money');
push @uids, $j3->{user}{id};
my $ua3 = browser();
page_login($ua3, $e3, $p3);
unlike(bget($ua3, '/usage')->body, qr{<h2>Cost</h2>}, '/usage without money: no cost table');

# --- the admin's CSV export -------------------------------------------------
my ($atok, $aid) = temp_admin();
push @uids, $aid;
json_post('/api/v1/usage/events', { user_id => $j2->{user}{id}, meter => 'tokens',
    quantity => 5, idempotency_key => 'other-1', cost_micros => 7,
    metadata => { note => "=1+1, \"quoted\"\nline" } }, $S);
$res = req(GET => '/api/v1/admin/usage/export', bearer($atok));
is($res->code, 200, 'export: 200');
like($res->headers->content_type // '', qr{^text/csv}, 'export: text/csv');
like($res->headers->header('Content-Disposition') // '', qr{attachment; filename="usage-},
    'export: an attachment');
my @lines = split /\r\n/, $res->body;
is($lines[0], 'id,created_at,user_id,email,meter,quantity,cost_micros,service,'
    . 'idempotency_key,metadata', 'export: the header row');
my @mine = grep { /\Q$uid\E/ } @lines;
is(scalar @mine, 64, 'export: this month\'s events of the user (not January\'s)');
my ($other) = grep { /other-1/ } @lines;
ok($other, 'export: across users');
like($other // '', qr{,\Q$email2\E,tokens,5,7,svc36_$$,other-1,}, 'export: the columns');
like($other // '', qr{,"\{""note"":""=1\+1, \\""quoted\\""\\nline""\}"$},
    'export: quoted as RFC 4180');
json_post('/api/v1/usage/events', { user_id => $j2->{user}{id}, meter => 'tokens',
    quantity => 1, idempotency_key => '=HYPERLINK("x")' }, $S);
$res = req(GET => "/api/v1/admin/usage/export?user_id=$j2->{user}{id}", bearer($atok));
like($res->body, qr{,"'=HYPERLINK\(""x""\)",\r\n}, 'export: a formula is defused');
$res = req(GET => '/api/v1/admin/usage/export?from=2026-01-01&to=2026-02-01', bearer($atok));
@lines = split /\r\n/, $res->body;
is(scalar(grep { /\Q$uid\E/ } @lines), 1, 'export: from and to');
like($lines[1] // '', qr{^[^,]+,2026-01-15T10:00:00\.000000Z,\Q$uid\E,}, 'export: the January one');
$res = req(GET => "/api/v1/admin/usage/export?meter=tokens&user_id=$uid", bearer($atok));
@lines = split /\r\n/, $res->body;
is(scalar @lines, 1 + 4, 'export: by meter and user');
# The /admin page's form: a plain GET with the admin's cookie, empty boxes left out.
{
	my ($ae, $ap, $aj) = make_user('ev36adm', 'Page Admin');
	push @uids, $aj->{user}{id};
	$db->do(q{UPDATE users SET role = 'admin' WHERE id = ?}, undef, $aj->{user}{id});
	my $aua = browser();
	page_login($aua, $ae, $ap);
	like(bget($aua, '/admin')->body, qr{<form method="get" action="/api/v1/admin/usage/export"},
	    '/admin has the export form');
	my $r2 = bget($aua, '/api/v1/admin/usage/export?from=2026-01-01&to=2026-02-01&meter=');
	is($r2->code, 200, 'the form\'s GET with the cookie and an empty meter: 200');
	is(scalar(grep { /\Q$uid\E/ } split /\r\n/, $r2->body), 1, 'the January event');
}
error_ok(req(GET => '/api/v1/admin/usage/export', bearer($tok)), 403, 'forbidden',
    'export: not for users');
like($db->selectrow_array(q{SELECT detail FROM audit_log WHERE actor_id = ? AND
    action = 'usage.export' ORDER BY at DESC LIMIT 1}, undef, $aid) // '',
    qr/meter tokens: 4 events/, 'export: in the audit log');
error_ok(req(GET => '/api/v1/admin/usage/export?to=soon', bearer($atok)), 422,
    'validation_failed', 'export: a bad time');

done_testing;
