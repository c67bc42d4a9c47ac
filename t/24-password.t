#!/usr/bin/perl
# Passwords (contract section 3): forgot (202 whether or not the account
# exists, mail only to one that does), reset by the mailed link (every
# session revoked, the address verified, single use, also at once), and
# the change of a known password (other sessions revoked, a notice).

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::Promise;
use TG;
use TGMail;
use TGAccount;

sink_start();
my $base = base();

my $u = signup(tag => 'forgot');
my $second = eval { login($u->{email}, $u->{password})->json->{tokens} } // {};

# forgot: the same answer for an account and for nobody.
my $res = jpost('/api/v1/auth/password/forgot', { email => uc $u->{email} });
is($res->code, 202, 'forgot (email in other case): 202');
my $nobody = unique_email('nobody');
my $res2 = jpost('/api/v1/auth/password/forgot', { email => $nobody });
is($res2->code, 202, 'forgot for nobody: 202');
is($res2->body, $res->body, 'the same body');
error_ok(jpost('/api/v1/auth/password/forgot', { email => 'nope' }), 422,
    'validation_failed', 'forgot with a bad email');
error_ok(jpost('/api/v1/auth/password/forgot', {}), 422, 'validation_failed',
    'forgot without email');

my $m = wait_mail($u->{email}, sub { $_[0]{subject} =~ /reset/i });
ok($m, 'the reset mail goes to the address as the account has it');
my $link = mail_link($m, '/reset-password');
like($link // '', qr{^\Q$base\E/reset-password\?token=[A-Za-z0-9_-]{20,}$},
    'link <base_url>/reset-password?token=');
my $tok = mail_token($m, '/reset-password');
is(db_row('SELECT COUNT(*) AS n FROM outbox WHERE to_addr = ?', $nobody)->{n},
    0, 'nothing is mailed to an address without an account');

# reset.
error_ok(jpost('/api/v1/auth/password/reset', { token => $tok,
    password => 'short' }), 422, 'validation_failed', 'reset with a short password');
my $new = fresh_password();
$res = jpost('/api/v1/auth/password/reset', { token => $tok, password => $new });
is($res->code, 204, 'reset: 204');
error_ok(req(GET => '/api/v1/me', H(bearer($u->{access}))), 401,
    'unauthenticated', 'the signup session is revoked');
error_ok(req(GET => '/api/v1/me', H(bearer($second->{access_token}))), 401,
    'unauthenticated', 'and the other login too');
error_ok(jpost('/api/v1/auth/refresh', { refresh_token => $second->{refresh_token} }),
    401, 'unauthenticated', 'its refresh token too');
error_ok(login($u->{email}, $u->{password}), 401, 'invalid_credentials',
    'the old password is gone');
$res = login($u->{email}, $new);
is($res->code, 200, 'the new password logs in');
ok(eval { $res->json->{user}{email_verified} }, 'the address counts as verified');
ok(db_row('SELECT trial_started_at IS NOT NULL AS s FROM users WHERE id = ?',
    $u->{id})->{s}, 'which started the trial');
ok(wait_mail($u->{email}, sub { $_[0]{subject} =~ /security/i
    && $_[0]{text} =~ /reset/ }), 'a security notice is mailed');
error_ok(jpost('/api/v1/auth/password/reset', { token => $tok,
    password => fresh_password() }), 400, 'invalid_token', 'the link again');
error_ok(jpost('/api/v1/auth/password/reset', { token => 'A' x 43,
    password => fresh_password() }), 400, 'invalid_token', 'an unknown token');
my $life = db_row('SELECT TIMESTAMPDIFF(MINUTE, created_at, expires_at) AS m '
    . 'FROM tokens WHERE user_id = ? AND kind = ?', $u->{id}, 'reset')->{m};
is($life, 60, 'reset links live an hour');

# Reset tokens of another kind do not reset; expired ones neither.
my $v = signup(tag => 'reset2');
my $vm = wait_mail($v->{email});
error_ok(jpost('/api/v1/auth/password/reset', { token => mail_token($vm,
    '/verify-email'), password => fresh_password() }), 400, 'invalid_token',
    'a verification token does not reset');
jpost('/api/v1/auth/password/forgot', { email => $v->{email} });
my $rm = wait_mail($v->{email}, sub { $_[0]{subject} =~ /reset/i });
dbh()->do('UPDATE tokens SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 '
    . 'SECOND WHERE user_id = ? AND kind = ?', undef, $v->{id}, 'reset');
error_ok(jpost('/api/v1/auth/password/reset', { token => mail_token($rm,
    '/reset-password'), password => fresh_password() }), 400, 'invalid_token',
    'an expired reset token');

# One token used twice at once: one 204.
{
	jpost('/api/v1/auth/password/forgot', { email => $v->{email} });
	my $rm2 = wait_mail($v->{email}, sub { $_[0]{subject} =~ /reset/i
	    && $_[0]{file} ne $rm->{file} });
	my $t2 = mail_token($rm2, '/reset-password');
	my $ua = ua();
	my @codes;
	Mojo::Promise->all(map {
		$ua->post_p("$base/api/v1/auth/password/reset" => H() => json =>
		    { token => $t2, password => fresh_password() })
	} 1 .. 3)->then(sub { @codes = sort map { $_->[0]->res->code } @_ })
	    ->wait;
	is("@codes", '204 400 400', 'one reset token used 3 times at once: one 204');
}

# --- changing a known password ---------------------------------------------
my $c = signup(tag => 'change');
my $other = eval { login($c->{email}, $c->{password})->json->{tokens} } // {};
$res = jpost('/api/v1/me/password', { current_password => 'wrong-password-1',
    new_password => fresh_password() }, bearer($c->{access}));
error_ok($res, 422, 'validation_failed', 'wrong current password');
ok(exists((eval { $res->json->{error}{fields} } // {})->{current_password}),
    'fields names current_password');
$res = jpost('/api/v1/me/password', { current_password => $c->{password},
    new_password => 'short' }, bearer($c->{access}));
error_ok($res, 422, 'validation_failed', 'a short new password');
ok(exists((eval { $res->json->{error}{fields} } // {})->{new_password}),
    'fields names new_password');
error_ok(jpost('/api/v1/me/password', { current_password => $c->{password},
    new_password => fresh_password() }, bearer($c->{key})), 403, 'forbidden',
    'with an API key');
error_ok(jpost('/api/v1/me/password', { current_password => $c->{password},
    new_password => fresh_password() }), 401, 'unauthenticated',
    'without a login');
my $cnew = fresh_password();
is(jpost('/api/v1/me/password', { current_password => $c->{password},
    new_password => $cnew }, bearer($c->{access}))->code, 204, 'change: 204');
is(req(GET => '/api/v1/me', H(bearer($c->{access})))->code, 200,
    'the calling session goes on');
error_ok(req(GET => '/api/v1/me', H(bearer($other->{access_token}))), 401,
    'unauthenticated', 'the other session is revoked');
error_ok(login($c->{email}, $c->{password}), 401, 'invalid_credentials',
    'the old password no longer works');
is(login($c->{email}, $cnew)->code, 200, 'the new one does');
ok(wait_mail($c->{email}, sub { $_[0]{subject} =~ /security/i
    && $_[0]{text} =~ /changed/ }), 'a security notice is mailed');
throttle_forget(addrs => [addr()], pairs => [[$c->{email}, addr()],
    [$u->{email}, addr()]]);

done_testing;
