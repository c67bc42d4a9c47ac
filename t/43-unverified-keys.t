#!/usr/bin/perl
# [trial] require_verified_email (contract sections 5 and 12, issue 18):
# by default an account whose email is not verified is refused at the
# gate with 403 email_not_verified; with `no`, a new account's API key
# works at the gate at once, within the trial's limits (its rate, its
# credits), and POST /api/v1/check agrees.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::JSON qw(encode_json);
use TG qw(:DEFAULT restart_tollgated);
use TGGate;
use TGMail qw(sink_start wait_mail mail_token);

my $db = gdb();
sink_start();	# the verification mail of a user below
my ($skid);

END {
	my $st = $?;
	if ($skid) {
		$db->do('DELETE FROM check_requests WHERE service_key_id = ?', undef, $skid);
		$db->do('DELETE FROM service_keys WHERE id = ?', undef, $skid);
	}
	restart_tollgated();
	$? = $st;
}

my $out = `$ENV{TG_BUILD}/src/tollgatectl -c $ENV{TG_CONF} service-key create svc43_$$ 2>&1`;
my ($skey) = $out =~ /(tgs_\S+)\s*\z/;
$skid = $db->selectrow_array('SELECT id FROM service_keys WHERE name = ?', undef, "svc43_$$");
sub check {
	my ($body) = @_;
	return req(POST => '/api/v1/check', { 'Content-Type' => 'application/json',
	    %{ bearer($skey) } }, encode_json($body))->json // {};
}
sub code_of { my ($r) = @_; return ($r->json // {})->{error}{code} // '' }

# The default: yes.
my $u = new_user(unverified => 1);
my $r = req(GET => '/demo/echo', bearer($u->{key}));
is($r->code, 403, 'default: an unverified account\'s key is refused');
is(code_of($r), 'email_not_verified', 'email_not_verified');
is(check({ user_id => $u->{id} })->{code}, 'email_not_verified',
    '/api/v1/check says the same');

ok(restart_tollgated(TOLLGATE_TRIAL_REQUIRE_VERIFIED_EMAIL => 'no'),
    'tollgated restarted with require_verified_email = no');
my $n = new_user(unverified => 1);
$r = req(GET => '/demo/echo', bearer($n->{key}));
is($r->code, 200, 'no: a new account\'s API key works at the gate at once');
is(($r->json // {})->{user_id}, $n->{id}, 'as its user');
is(($r->json // {})->{plan}, 'trial', 'on the trial');
is($r->headers->header('X-RateLimit-Limit'), 10, 'with the trial\'s rate');
is(check({ user_id => $n->{id} })->{allowed}, Mojo::JSON::true,
    '/api/v1/check allows it too');
my @spent = map { req(GET => '/demo/spend', bearer($n->{key}))->code } 1 .. 7;
is(scalar(grep { $_ == 200 } @spent), 7, 'it spends trial credits');
my $c = check({ user_id => $n->{id}, meter => 'credits', cost => 4 });
is($c->{code}, 'trial_credits_exhausted', 'and no more than the trial\'s 10');
is($c->{credits_remaining}, 3, '3 left');
is(scalar $db->selectrow_array(q{SELECT COUNT(*) FROM credit_ledger WHERE user_id = ?
    AND kind = 'spend'}, undef, $n->{id}), 7, 'every spend is in the ledger');
is(scalar $db->selectrow_array('SELECT email_verified_at IS NULL FROM users WHERE id = ?',
    undef, $n->{id}), 1, 'the account is still unverified');
# Verified later, through the mailed link: the trial starts, and what
# the key spent before stays spent (the trial's credits are granted once).
my $v = new_user(unverified => 1);
is(scalar(grep { $_ == 200 } map { req(GET => '/demo/spend', bearer($v->{key}))->code }
    1 .. 7), 7, 'another unverified key spends 7 credits');
my $vm = wait_mail($v->{email}, sub { ($_[0]{subject} // '') =~ /verify/i });
ok($vm, 'its verification mail');
is(json_post('/api/v1/auth/verify-email', { token => $vm ? mail_token($vm,
    '/verify-email') : 'none' })->code, 200, 'verified through the link');
my $vc = check({ user_id => $v->{id}, meter => 'credits', cost => 4 });
is($vc->{credits_remaining}, 3, 'after verification: still 3 left, not 10');
is($vc->{code}, 'trial_credits_exhausted', 'and 4 do not fit');
is(scalar $db->selectrow_array(q{SELECT COUNT(*) FROM credit_ledger WHERE user_id = ?
    AND kind = 'trial'}, undef, $v->{id}), 1, 'one trial grant in the ledger');
my $d = new_user(unverified => 1);
$db->do('UPDATE users SET disabled_at = UTC_TIMESTAMP(6) WHERE id = ?', undef, $d->{id});
is(code_of(req(GET => '/demo/echo', bearer($d->{key}))), 'account_disabled',
    'a disabled account is still refused');

ok(restart_tollgated(), 'back to the default');
is(code_of(req(GET => '/demo/echo', bearer($n->{key}))), 'email_not_verified',
    'yes again: refused at once');

done_testing();
