#!/usr/bin/perl
# The second factor against someone who holds the password (contract
# section 3):
#
# - wrong codes count per account too: after `limits login_failures` (10)
#   wrong codes for one account within 15 minutes, from any addresses,
#   its second-factor step answers 429, even for the right code;
# - a password change spends every half-finished second-factor step: the
#   browser's pending code step (tg_2fa) and a pending TOTP enrolment;
# - from an old session, enrolling a second factor or minting an API key
#   asks for the password again (422 naming `password` without it).

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use TG;
use TGMail;
use TGAccount;
require './t/70-helpers.pl';

sink_start();
my $base = base();
my $limit = conf_get('limits', 'login_failures') // 10;
my @addrs;

END { throttle_forget(addrs => \@addrs) if @addrs }

sub from_new_addr {
	my $a = new_addr();
	push @addrs, $a;
	return ('X-Forwarded-For' => $a);
}

# A wrong code: the right one of a step far away.
sub wrong_code {
	my ($secret, $step) = @_;
	return totp_at_step($secret, $step + 1000);
}

# --- per-account limit over rotating addresses ------------------------
{
	my $u = verified_user(tag => 'sf-rot');
	my ($secret) = totp_on($u);
	my $s = fresh_step(12);
	for my $i (1 .. $limit) {
		my $res = jpost('/api/v1/auth/login', { email => $u->{email},
		    password => $u->{password},
		    totp_code => wrong_code($secret, $s + $i) }, from_new_addr());
		is($res->code, 401, "wrong code $i from a new address: 401");
	}
	totp_forget_step($u);
	my $res = jpost('/api/v1/auth/login', { email => $u->{email},
	    password => $u->{password}, totp_code => totp_at_step($secret, $s) },
	    from_new_addr());
	error_ok($res, 429, 'rate_limited',
	    'the right code from an eleventh address, after ten wrong ones');
	like($res->headers->header('Retry-After') // '', qr/^\d+$/, 'Retry-After');
	ok(!eval { $res->json->{tokens} }, 'no tokens');

	# The magic link's second-factor step is the same account's.
	my $seen = { map { $_->{file} => 1 } mails_to($u->{email}) };
	jpost('/api/v1/auth/magic-link', { email => $u->{email} }, from_new_addr());
	my $m = wait_mail($u->{email}, sub { $_[0]{subject} =~ /sign-in/i
	    && !$seen->{$_[0]{file}} });
	totp_forget_step($u);
	$res = jpost('/api/v1/auth/magic-link/verify', { token =>
	    mail_token($m, '/auth/magic'), totp_code => totp_at_step($secret,
	    fresh_step(4)) }, from_new_addr());
	error_ok($res, 429, 'rate_limited', 'the magic link\'s code step too');

	# Someone who does not hold the password cannot lock the owner out.
	my $v = verified_user(tag => 'sf-lock');
	my ($vsecret) = totp_on($v);
	for my $i (1 .. $limit + 2) {
		jpost('/api/v1/auth/login', { email => $v->{email},
		    password => 'not-the-password-at-all', totp_code => '123456' },
		    from_new_addr());
	}
	totp_forget_step($v);
	$res = jpost('/api/v1/auth/login', { email => $v->{email},
	    password => $v->{password}, totp_code => totp_at_step($vsecret,
	    fresh_step(4)) }, from_new_addr());
	is($res->code, 200, 'wrong passwords from many addresses lock nobody out');
}

# --- a password change kills the pending code step --------------------
{
	my $u = verified_user(tag => 'sf-pend');
	my ($secret) = totp_on($u);
	my $b = ua();
	my $csrf = csrf_of($b->get("$base/login" => H())->result->body);
	my $res = $b->post("$base/login" => form_headers() => form_body(
	    [csrf => $csrf // ''], [username => $u->{email}],
	    [password => $u->{password}]))->result;
	is($res->code, 200, 'the password step: the code page');
	my ($pend) = grep { $_->name =~ /^(?:__Host-)?tg_2fa$/ }
	    @{ $b->cookie_jar->all };
	ok($pend, 'a pending sign-in cookie');
	my $pcsrf = csrf_of($res->body);

	is(jpost('/api/v1/me/password', { current_password => $u->{password},
	    new_password => fresh_password() }, bearer($u->{access}))->code, 204,
	    'the owner changes the password meanwhile');

	totp_forget_step($u);
	$res = $b->post("$base/login/totp" => form_headers() => form_body(
	    [csrf => $pcsrf // ''], [totp_code => totp_at_step($secret,
	    fresh_step(4))]))->result;
	is($res->code, 400, 'the pending step with the right code: 400, gone');
	ok(!grep({ $_->name =~ /^(?:__Host-)?tg_session$/ && $_->value ne '' }
	    @{ $b->cookie_jar->all }), 'no session cookie');
}

# --- a password change spends a pending enrolment ----------------------
{
	my $u = verified_user(tag => 'sf-enrol');
	my $res = jpost('/api/v1/me/totp', undef, bearer($u->{access}));
	is($res->code, 200, 'an enrolment starts');
	my $secret = eval { $res->json->{secret} } // '';
	is(jpost('/api/v1/me/password', { current_password => $u->{password},
	    new_password => fresh_password() }, bearer($u->{access}))->code, 204,
	    'the password is changed');
	$res = jpost('/api/v1/me/totp/confirm',
	    { code => totp_at_step($secret, fresh_step(4)) }, bearer($u->{access}));
	error_ok($res, 409, 'totp_not_enrolled',
	    'the half-finished enrolment is gone');
}

# --- re-authentication from an old session ----------------------------
{
	my $u = verified_user(tag => 'sf-reauth');
	my $login = login($u->{email}, $u->{password});
	my $acc = $login->json->{tokens}{access_token};
	# A fresh login may enrol and mint keys without typing it again.
	my $fresh = jpost('/api/v1/api-keys', { name => 'fresh' }, bearer($acc));
	is($fresh->code, 201, 'a fresh session mints a key');
	# (the trial allows two keys: make room again)
	jreq(DELETE => '/api/v1/api-keys/' . (eval { $fresh->json->{id} } // 'x'),
	    undef, bearer($acc));

	# The session is a day old (refreshed ever since, say).
	dbh()->do('UPDATE sessions SET created_at = created_at - INTERVAL 1 DAY '
	    . 'WHERE user_id = ?', undef, $u->{id});
	my $res = jpost('/api/v1/api-keys', { name => 'stolen' }, bearer($acc));
	error_ok($res, 422, 'validation_failed', 'an old session mints a key');
	ok(exists((eval { $res->json->{error}{fields} } // {})->{password}),
	    'naming the password field');
	$res = jpost('/api/v1/api-keys', { name => 'again', password => 'wrong-'
	    . $u->{password} }, bearer($acc));
	error_ok($res, 422, 'validation_failed', 'with a wrong password');
	$res = jpost('/api/v1/api-keys', { name => 'mine',
	    password => $u->{password} }, bearer($acc));
	is($res->code, 201, 'with the password: 201');

	$res = jpost('/api/v1/me/totp', undef, bearer($acc));
	error_ok($res, 422, 'validation_failed', 'an old session enrols TOTP');
	ok(exists((eval { $res->json->{error}{fields} } // {})->{password}),
	    'naming the password field');
	$res = jpost('/api/v1/me/totp', { password => $u->{password} },
	    bearer($acc));
	is($res->code, 200, 'with the password: the enrolment starts');

	my $kid = eval { $login->json } && db_row('SELECT id FROM api_keys WHERE '
	    . 'user_id = ? ORDER BY created_at LIMIT 1', $u->{id})->{id};
	$res = jpost("/api/v1/api-keys/$kid/regenerate", undef, bearer($acc));
	error_ok($res, 422, 'validation_failed',
	    'an old session regenerates a key');
}

done_testing();
