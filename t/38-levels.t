#!/usr/bin/perl
# Level meters and rate buckets, their storage (contract sections 7 and
# 7a, issue 18): tollgatectl meters set NAME kind=level, plans set PLAN
# limit.NAME=N and rate.NAME=N; PUT /api/v1/usage/levels/{meter} with a
# service key (200 {meter, level, limit}), exact under concurrency; the
# level in GET /api/v1/usage, client-config and on /usage; and the raise
# that checks will use (tg_level_raise): of 10 concurrent raises against a
# limit of 2, exactly 2 pass.  (The gate's and /api/v1/check's use of
# levels and buckets comes with the engine.)

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::Promise;
use POSIX ();
use TG qw(:DEFAULT ctl);
use TGGate;
require './t/60-helpers.pl';

my $db = gdb();
my $M = "seats38_$$";
END {
	$db->do('DELETE FROM meters WHERE name = ?', undef, $M);
}

# --- tollgatectl ------------------------------------------------------------
my ($rc, $out) = ctl('meters', 'set', $M, 'kind=level');
is($rc, 0, 'meters set NAME kind=level') or diag($out);
($rc, $out) = ctl('meters', 'list');
like($out, qr/^\Q$M\E\s+level$/m, 'meters list shows it');
is((ctl('meters', 'set', $M, 'kind=gauge'))[0], 2, 'a bad kind: usage');
is((ctl('meters', 'set', 'Bad-Name', 'kind=level'))[0], 2, 'a bad name: usage');
is((ctl('meters', 'set', 'credits', 'kind=level'))[0], 1, 'credits stay a sum');

my $plan = test_plan(limits => { compute_minutes => 100 });
($rc, $out) = ctl('plans', 'set', $plan, "limit.$M=2", 'rate.poll=30', 'rate.submit=5');
is($rc, 0, 'plans set limit.NAME and rate.NAME') or diag($out);
my %plans = map { $_->{name} => $_ } @{ req(GET => '/api/v1/plans')->json // [] };
is($plans{$plan}{limits}{$M}, 2, 'the level\'s limit is public');
is_deeply($plans{$plan}{rates}, { poll => 30, submit => 5 }, 'the plan\'s rate buckets');
is_deeply($plans{trial}{rates}, {}, 'a plan without buckets: {}');
($rc, $out) = ctl('plans', 'list');
like($out, qr/^\Q$plan\E .* rate\.poll=30 rate\.submit=5/m, 'plans list shows the buckets');
is((ctl('plans', 'set', $plan, 'rate.poll=-'))[0], 0, 'rate.NAME=- removes a bucket');
is((ctl('plans', 'set', $plan, 'rate.Bad=3'))[0], 2, 'a bad bucket name: usage');
is((ctl('plans', 'set', $plan, 'rate.poll=x'))[0], 2, 'a bad rate: usage');
is(scalar $db->selectrow_array('SELECT COUNT(*) FROM plan_rates WHERE plan = ?', undef,
    $plan), 1, 'one bucket left');

# --- PUT /api/v1/usage/levels/{meter} -----------------------------------------
my ($skey) = service_key("svc38_$$");
my $S = bearer($skey);
my $u = new_user();
on_plan($u, $plan);

sub put_level {
	my ($meter, $body, $h) = @_;
	return req(PUT => "/api/v1/usage/levels/$meter", { 'Content-Type' =>
	    'application/json', %{ $h // $S } }, Mojo::JSON::encode_json($body));
}
my $res = put_level($M, { user_id => $u->{id}, level => 1 });
is($res->code, 200, 'PUT a level: 200');
is_deeply($res->json, { meter => $M, level => 1, limit => 2 }, '{meter, level, limit}');
is(scalar $db->selectrow_array('SELECT level FROM usage_levels WHERE user_id = ? AND '
    . 'meter = ?', undef, $u->{id}, $M), 1, 'stored');
$res = put_level($M, { user_id => $u->{id}, level => 5 });
is($res->code, 200, 'a level above the limit is recorded (it says what is)');
is(($res->json // {})->{level}, 5, 'level 5');

my $us = req(GET => '/api/v1/usage', bearer($u->{token}))->json // {};
is_deeply($us->{meters}{$M}, { used => 5, limit => 2, kind => 'level', level => 5 },
    'GET /api/v1/usage: the level');
is_deeply($us->{meters}{compute_minutes}, { used => 0, limit => 100 },
    'a sum meter is as before');
my $cc = req(GET => '/api/v1/client-config', bearer($u->{token}))->json // {};
is_deeply($cc->{meters}{$M}, { used => 5, limit => 2, remaining => 0, kind => 'level' },
    'client-config: nothing left');

# A level the plan does not limit still shows.
my $M2 = "disk38_$$";
ctl('meters', 'set', $M2, 'kind=level');
is(put_level($M2, { user_id => $u->{id}, level => 4096 })->code, 200, 'an unlimited level');
$us = req(GET => '/api/v1/usage', bearer($u->{token}))->json // {};
is_deeply($us->{meters}{$M2}, { used => 4096, limit => undef, kind => 'level',
    level => 4096 }, 'shown without a limit');
$db->do('DELETE FROM meters WHERE name = ?', undef, $M2);

# Refusals.
error_ok(put_level('compute_minutes', { user_id => $u->{id}, level => 1 }), 422,
    'validation_failed', 'a meter that is not a level');
error_ok(put_level("nolevel38_$$", { user_id => $u->{id}, level => 1 }), 422,
    'validation_failed', 'an undeclared meter');
error_ok(put_level($M, { user_id => 'AAAAAAAAAAAAAAAAAAAAAA', level => 1 }), 422,
    'validation_failed', 'an unknown user');
error_ok(put_level($M, { user_id => $u->{id}, level => -1 }), 422, 'validation_failed',
    'a negative level');
error_ok(put_level($M, { user_id => $u->{id} }), 422, 'validation_failed', 'no level');
error_ok(put_level($M, { user_id => $u->{id}, level => 1 }, bearer($u->{token})), 403,
    'forbidden', 'a user\'s token');
error_ok(put_level($M, { user_id => $u->{id}, level => 1 }, bearer($u->{key})), 403,
    'forbidden', 'an API key');
error_ok(put_level($M, { user_id => $u->{id}, level => 1 }, {}), 401, 'unauthenticated',
    'no credential');
error_ok(json_post('/api/v1/usage/events', { user_id => $u->{id}, meter => $M,
    quantity => 1, idempotency_key => 'x' }, $S), 422, 'validation_failed',
    'a usage event on a level meter');

# The /usage page.
{
	my ($email, $pw, $j) = make_user('lv38', 'Level User');
	on_plan({ id => $j->{user}{id} }, $plan);
	put_level($M, { user_id => $j->{user}{id}, level => 2 });
	my $ua = browser();
	page_login($ua, $email, $pw);
	my $body = bget($ua, '/usage')->body;
	like($body, qr{<tr id="meter-\Q$M\E">.*?<td>2 in use now</td><td>2</td>}s,
	    '/usage shows the level and its limit');
	dbh()->do('DELETE FROM users WHERE id = ?', undef, $j->{user}{id});
}

# --- Concurrency ------------------------------------------------------------
# 20 sets at once: every answer is its own level, the stored one is one
# of them, one row.
{
	my $ua = ua();
	my @p = map { my $l = $_; $ua->put_p(base() . "/api/v1/usage/levels/$M" => $S =>
	    json => { user_id => $u->{id}, level => $l }) } 1 .. 20;
	my (%codes, $own);
	Mojo::Promise->all(@p)->then(sub {
		for my $i (0 .. $#_) {
			my $r = $_[$i][0]->res;
			$codes{ $r->code }++;
			$own++ if ($r->json // {})->{level} == $i + 1;
		}
	})->wait;
	is($codes{200} // 0, 20, '20 sets at once: all 200');
	is($own, 20, 'each answered with its own level');
	my ($n, $lvl) = $db->selectrow_array('SELECT COUNT(*), MAX(level) FROM usage_levels '
	    . 'WHERE user_id = ? AND meter = ?', undef, $u->{id}, $M);
	is($n, 1, 'one row');
	ok($lvl >= 1 && $lvl <= 20, 'holding one of the levels set');
}

# 10 raises of 1 at once against a limit of 2, from level 0: exactly 2.
sub raises {
	my ($n, $cost) = @_;
	my @pids;
	for (1 .. $n) {
		my $pid = fork // die "fork: $!";
		if ($pid == 0) {
			my $h = dbh();
			my $row = $h->selectrow_arrayref('CALL tg_level_raise(?, ?, ?)', undef,
			    $u->{id}, $M, $cost);
			POSIX::_exit($row && $row->[0] ? 10 : 20);
		}
		push @pids, $pid;
	}
	my %got;
	for (@pids) { waitpid $_, 0; $got{ $? >> 8 }++ }
	return ($got{10} // 0, $got{20} // 0);
}
is(put_level($M, { user_id => $u->{id}, level => 0 })->code, 200, 'level 0');
my ($ok, $no) = raises(10, 1);
is($ok, 2, '10 concurrent raises against a limit of 2: exactly 2 pass');
is($no, 8, 'and 8 are refused');
is(scalar $db->selectrow_array('SELECT level FROM usage_levels WHERE user_id = ? AND '
    . 'meter = ?', undef, $u->{id}, $M), 2, 'the level is 2');
is(put_level($M, { user_id => $u->{id}, level => 1 })->code, 200,
    'the service says one stopped');
($ok, $no) = raises(5, 1);
is($ok, 1, 'then of 5 concurrent raises exactly 1 passes');
($ok) = raises(1, 0);
is($ok, 0, 'a raise of 0 (a pure check) at the limit is refused (section 7)');
($ok) = raises(1, 1);
is($ok, 0, 'a raise of 1 at the limit is refused');
put_level($M, { user_id => $u->{id}, level => 1 });
($ok) = raises(1, 0);
is($ok, 1, 'a raise of 0 below the limit passes');
is(scalar $db->selectrow_array('SELECT level FROM usage_levels WHERE user_id = ? AND '
    . 'meter = ?', undef, $u->{id}, $M), 1, 'and counts nothing');

done_testing;
