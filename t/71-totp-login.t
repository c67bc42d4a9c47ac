#!/usr/bin/perl
# Logging in with the second factor (contract section 3): with TOTP on,
# login (JSON and form) and magic-link verify need totp_code (RFC 6238,
# one step of drift either way, each code once) or recovery_code (single
# use); without either 401 totp_required, with a wrong one 401
# invalid_credentials; failures count toward the login throttle, and
# the throttle is not reset by a right password alone; an admin's
# `totp: false` turns a lost second factor off.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::JSON qw(false);
use Mojo::Promise;
use TG;
use TGMail;
use TGAccount;
require './t/70-helpers.pl';

sink_start();
my $limit = conf_get('limits', 'login_failures') // 10;
my (@addrs, @pairs);
END { throttle_forget(addrs => \@addrs, pairs => \@pairs) }

my $u = verified_user(tag => 'totp-login');	# a magic link to a never-verified account is a takeover (contract section 3)
push @addrs, addr();
push @pairs, [$u->{email}, addr()];
my ($secret, $codes) = totp_on($u);

sub tlogin {
	my (%f) = @_;
	my $h = delete $f{headers} // {};
	return jpost('/api/v1/auth/login', { email => $u->{email},
	    password => $u->{password}, %f }, %$h);
}

# --- without a code, with a wrong one ---------------------------------------
my $res = tlogin();
error_ok($res, 401, 'totp_required', 'no code');
is($res->headers->header('WWW-Authenticate'), 'Bearer',
    'WWW-Authenticate: Bearer');
error_ok(tlogin(totp_code => '12345'), 401, 'invalid_credentials',
    'five digits');
error_ok(tlogin(recovery_code => 'aaaaa-aaaaa'), 401, 'invalid_credentials',
    'an unknown recovery code');
error_ok(jpost('/api/v1/auth/login', { email => $u->{email},
    password => 'wrong-password-x', totp_code => '000000' }), 401,
    'invalid_credentials', 'a wrong password with a code');

# --- drift and replay ---------------------------------------------------------
# One step of drift either way; each step once, and never an older one.
totp_forget_step($u);
my $s = fresh_step(8);
error_ok(tlogin(totp_code => totp_at_step($secret, $s - 2)), 401,
    'invalid_credentials', 'two steps behind');
error_ok(tlogin(totp_code => totp_at_step($secret, $s + 2)), 401,
    'invalid_credentials', 'two steps ahead');
$res = tlogin(totp_code => totp_at_step($secret, $s - 1));
is($res->code, 200, 'one step behind: 200');
ok(eval { $res->json->{tokens}{access_token} }, 'with tokens');
is(eval { $res->json->{user}{id} }, $u->{id}, 'and the user');
error_ok(tlogin(totp_code => totp_at_step($secret, $s - 1)), 401,
    'invalid_credentials', 'the same code again (replay)');
is(tlogin(totp_code => totp_at_step($secret, $s))->code, 200,
    'the current code: 200');
error_ok(tlogin(totp_code => totp_at_step($secret, $s)), 401,
    'invalid_credentials', 'the current code again');
error_ok(tlogin(totp_code => totp_at_step($secret, $s - 1)), 401,
    'invalid_credentials', 'an older code after a newer one');
is(tlogin(totp_code => totp_at_step($secret, $s + 1))->code, 200,
    'one step ahead: 200');
is(dbh()->selectrow_array('SELECT last_step FROM totp_secrets WHERE '
    . 'user_id = ?', undef, $u->{id}), $s + 1, 'last_step is the step used');

# Two logins with one code at the same time: one wins.
totp_forget_step($u);
$s = fresh_step(6);
{
	my $code = totp_at_step($secret, $s);
	my $ua = ua();
	my @tx = map {
		$ua->build_tx(POST => base() . '/api/v1/auth/login' => H(
		    'Content-Type' => 'application/json') => json => {
		    email => $u->{email}, password => $u->{password},
		    totp_code => $code })
	} 1 .. 4;
	my @codes;
	Mojo::Promise->all(map { $ua->start_p($_) } @tx)->then(sub {
		@codes = map { $_->[0]->res->code } @_;
	})->wait;
	is(scalar(grep { $_ == 200 } @codes), 1,
	    'four concurrent logins with one code: one succeeds')
	    or diag("@codes");
	is(scalar(grep { $_ == 401 } @codes), 3, 'the others: 401');
}

# --- recovery codes -------------------------------------------------------------
$res = tlogin(recovery_code => $codes->[0]);
is($res->code, 200, 'a recovery code: 200');
error_ok(tlogin(recovery_code => $codes->[0]), 401, 'invalid_credentials',
    'the same recovery code again');
(my $typed = uc $codes->[1]) =~ tr/-//d;
is(tlogin(recovery_code => " $typed ")->code, 200,
    'another, typed in upper case without its hyphen: 200');
is(db_row('SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = ? AND '
    . 'used_at IS NOT NULL', $u->{id})->{n}, 2, 'two codes used');

# --- the login form (OAuth2 password style) ----------------------------------------
my %form = ('Content-Type' => 'application/x-www-form-urlencoded');
my $userpass = form_body([username => $u->{email}],
    [password => $u->{password}]);
error_ok(req(POST => '/api/v1/auth/login', H(%form), $userpass), 401,
    'totp_required', 'the form without a code');
totp_forget_step($u);
$s = fresh_step(4);
$res = req(POST => '/api/v1/auth/login', H(%form), $userpass . '&'
    . form_body([totp_code => totp_at_step($secret, $s)]));
is($res->code, 200, 'the form with totp_code: 200');
error_ok(req(POST => '/api/v1/auth/login', H(%form), $userpass . '&'
    . form_body([totp_code => totp_at_step($secret, $s)])), 401,
    'invalid_credentials', 'the form with the same code again');
is(req(POST => '/api/v1/auth/login', H(%form), $userpass . '&'
    . form_body([recovery_code => $codes->[2]]))->code, 200,
    'the form with recovery_code: 200');

# --- magic links ------------------------------------------------------------------
{
	my $seen = { map { $_->{file} => 1 } mails_to($u->{email}) };
	jpost('/api/v1/auth/magic-link', { email => $u->{email} });
	my $m = wait_mail($u->{email}, sub { $_[0]{subject} =~ /sign-in/i
	    && !$seen->{$_[0]{file}} });
	my $tok = mail_token($m, '/auth/magic');
	error_ok(jpost('/api/v1/auth/magic-link/verify', { token => $tok }),
	    401, 'totp_required', 'magic-link/verify without a code');
	error_ok(jpost('/api/v1/auth/magic-link/verify', { token => $tok,
	    totp_code => totp_at_step($secret, $s) }), 401,
	    'invalid_credentials', 'magic-link/verify with a used code');
	totp_forget_step($u);
	$s = fresh_step(4);
	$res = jpost('/api/v1/auth/magic-link/verify', { token => $tok,
	    totp_code => totp_at_step($secret, $s) });
	is($res->code, 200, 'magic-link/verify with the code: 200');
	ok(eval { $res->json->{tokens}{access_token} }, 'with tokens');

	# The page: a form asks for the code, then signs the browser in.
	my $ua = browser_login($u);
	ok(!$ua, 'the magic-link page without the code does not sign in');
	totp_forget_step($u);
	$s = fresh_step(4);
	$ua = browser_login($u, totp_code => totp_at_step($secret, $s));
	ok($ua, 'the magic-link page with the code signs the browser in');
}

# --- the login throttle ------------------------------------------------------------
# Failed codes count; a right password does not reset the count while
# the code is wrong; once throttled even the right code gets 429.
{
	my $x = new_addr();
	push @addrs, $x;
	push @pairs, [$u->{email}, $x];
	my $n401 = 0;
	for my $i (1 .. $limit) {
		my $r = tlogin(totp_code => '000000',
		    headers => { 'X-Forwarded-For' => $x });
		$n401++ if ($r->code // 0) == 401;
	}
	is($n401, $limit, "$limit wrong codes with the right password: 401");
	totp_forget_step($u);
	$s = fresh_step(4);
	$res = tlogin(totp_code => totp_at_step($secret, $s),
	    headers => { 'X-Forwarded-For' => $x });
	error_ok($res, 429, 'rate_limited', 'then the right code: 429');
	ok(($res->headers->header('Retry-After') // 0) > 0, 'with Retry-After');
	error_ok(tlogin(recovery_code => $codes->[3],
	    headers => { 'X-Forwarded-For' => $x }), 429, 'rate_limited',
	    'and a recovery code: 429');
	my $y = new_addr();
	push @addrs, $y;
	push @pairs, [$u->{email}, $y];
	# Contract section 3 (changed this round): wrong codes also count
	# per account, over all addresses, so another address is held back
	# too until the window ends.
	error_ok(tlogin(totp_code => totp_at_step($secret, $s),
	    headers => { 'X-Forwarded-For' => $y }), 429, 'rate_limited',
	    'the right code from another address: 429 (per account)');
	throttle_forget(accounts => [['2fa', lc $u->{email}]]);
	is(tlogin(totp_code => totp_at_step($secret, $s),
	    headers => { 'X-Forwarded-For' => $y })->code, 200,
	    'once the account\'s window is over, from another address: 200');

	# Magic links count and are held back by the same throttle.
	my $z = new_addr();
	push @addrs, $z;
	push @pairs, [$u->{email}, $z];
	my $seen = { map { $_->{file} => 1 } mails_to($u->{email}) };
	jpost('/api/v1/auth/magic-link', { email => $u->{email} });
	my $m = wait_mail($u->{email}, sub { $_[0]{subject} =~ /sign-in/i
	    && !$seen->{$_[0]{file}} });
	my $tok = mail_token($m, '/auth/magic');
	for my $i (1 .. $limit) {
		jpost('/api/v1/auth/magic-link/verify', { token => $tok,
		    totp_code => '000000' }, 'X-Forwarded-For' => $z);
	}
	totp_forget_step($u);
	$s = fresh_step(4);
	isnt(jpost('/api/v1/auth/magic-link/verify', { token => $tok,
	    totp_code => totp_at_step($secret, $s) }, 'X-Forwarded-For' => $z)
	    ->code, 200, "after $limit wrong codes on a magic link, the right "
	    . 'one does not sign in');
	error_ok(tlogin(totp_code => totp_at_step($secret, $s),
	    headers => { 'X-Forwarded-For' => $z }), 429, 'rate_limited',
	    'and password login from that address is throttled');
}

# --- an admin turns a lost second factor off -----------------------------------------
SKIP: {
	my $ae = $ENV{TG_ADMIN_EMAIL};
	my $ap = $ENV{TG_ADMIN_PASSWORD};
	skip 'no admin credentials from the dev stack', 4 unless $ae && $ap;
	my $ar = login($ae, $ap);
	skip 'the admin cannot log in (' . ($ar->code // '-') . ')', 4
	    unless ($ar->code // 0) == 200;
	my $at = $ar->json->{tokens}{access_token};
	$res = jreq(PATCH => "/api/v1/admin/users/$u->{id}", { totp => false },
	    bearer($at));
	skip 'the admin API (PATCH /api/v1/admin/users/{id}) is not on this '
	    . 'branch yet', 4 if ($res->code // 0) == 404 || ($res->code // 0) == 405;
	is($res->code, 200, 'PATCH admin/users/{id} {totp: false}: 200');
	ok(!db_row('SELECT 1 AS x FROM totp_secrets WHERE user_id = ?',
	    $u->{id}), 'the second factor is off');
	is(tlogin()->code, 200, 'login without a code: 200');
	ok(wait_mail($u->{email}, sub { $_[0]{text} =~ /second factor|TOTP/i
	    && $_[0]{text} =~ /admin/i }), 'the user is told');
}

done_testing;
