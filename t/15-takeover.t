#!/usr/bin/perl
# Takeover chains (contract sections 3 and 10), driven as the attacker:
#
# 1. a pending email change asked by a thief (who knows the password)
#    dies with the owner's password reset, and with a password change;
#    a password change spends every other open link too;
# 2. whoever proves the mailbox of a never-verified account (magic link,
#    reset) takes it over: the squatter's password, tokens, API key, TOTP
#    enrolment and pending email change all stop working;
# 3. GET /verify-email?token= (a mail scanner) verifies nothing: its page's
#    one button (a CSRF-protected POST) does;
# 4. `tollgatectl admin create EMAIL` takes a never-verified account over
#    before it promotes it: the squatter never holds admin rights.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempfile);
use Mojo::Util qw(url_escape);
use TG;
use TGMail;
use TGAccount;
require './t/70-helpers.pl';

sink_start();
my $base = base();

# The newest mail to $addr whose subject matches $re, not among $seen.
sub newest_mail {
	my ($addr, $re, $seen) = @_;
	return wait_mail($addr, sub { ($_[0]{subject} // '') =~ $re
	    && !($seen && $seen->{$_[0]{file}}) });
}
sub seen_of { return { map { $_->{file} => 1 } mails_to($_[0]) } }

# Asks for a reset link for $email and sets $pw with it.
sub reset_password {
	my ($email, $pw) = @_;
	my $seen = seen_of($email);
	my $res = jpost('/api/v1/auth/password/forgot', { email => $email });
	die 'forgot: ' . $res->code unless $res->code == 202;
	my $m = newest_mail($email, qr/reset/i, $seen) or die 'no reset mail';
	return jpost('/api/v1/auth/password/reset',
	    { token => mail_token($m, '/reset-password'), password => $pw });
}

# Signs in with a magic link mailed to $email; returns the response.
sub magic_login {
	my ($email) = @_;
	my $seen = seen_of($email);
	jpost('/api/v1/auth/magic-link', { email => $email });
	my $m = newest_mail($email, qr/sign-in/i, $seen) or die 'no magic mail';
	return jpost('/api/v1/auth/magic-link/verify',
	    { token => mail_token($m, '/auth/magic') });
}

# The gate with an API key: the status the client sees.
sub gate_status {
	my ($key) = @_;
	return req(GET => '/demo/echo', H(bearer($key)))->code;
}

# --- 1. A pending email change dies with a reset ----------------------
{
	my $owner = verified_user(tag => 'tk-owner');
	my $thief_addr = unique_email('tk-thief');
	# The thief knows the password and logs in from elsewhere.
	my $t = login($owner->{email}, $owner->{password});
	is($t->code, 200, 'the thief logs in with the known password');
	my $tacc = $t->json->{tokens}{access_token};
	my $res = jpost('/api/v1/me/email', { email => $thief_addr,
	    password => $owner->{password} }, bearer($tacc));
	is($res->code, 202, 'the thief asks to move the account to their address');
	my $change = wait_mail($thief_addr, sub { 1 });
	ok($change, 'the change link reaches the thief');
	ok(wait_mail($owner->{email}, sub { $_[0]{subject} =~ /email/i
	    && $_[0]{text} =~ /\Q$thief_addr\E/ }), 'the owner gets the notice');

	# The owner does what the notice says: resets the password.
	is(reset_password($owner->{email}, fresh_password())->code, 204,
	    'the owner resets the password');

	# A day later the thief follows the link: nothing happens.
	error_ok(jpost('/api/v1/auth/verify-email',
	    { token => mail_token($change, '/verify-email') }), 400,
	    'invalid_token', 'the email-change link after the reset');
	is(db_row('SELECT email FROM users WHERE id = ?', $owner->{id})->{email},
	    $owner->{email}, 'the account keeps the owner\'s address');
}

# --- 1b. ... and with a password change; every open link goes ---------
{
	my $owner = signup(tag => 'tk-owner2');	# its verify link stays open
	my $verify = wait_mail($owner->{email}, sub { $_[0]{subject} =~ /verif/i });
	ok($verify, 'the verification link is out');
	my $thief_addr = unique_email('tk-thief2');
	my $tacc = login($owner->{email}, $owner->{password})
	    ->json->{tokens}{access_token};
	is(jpost('/api/v1/me/email', { email => $thief_addr,
	    password => $owner->{password} }, bearer($tacc))->code, 202,
	    'the thief asks for an email change');
	my $change = wait_mail($thief_addr, sub { 1 });
	my $seen = seen_of($owner->{email});
	jpost('/api/v1/auth/magic-link', { email => $owner->{email} });
	my $magic = newest_mail($owner->{email}, qr/sign-in/i, $seen);
	ok($magic, 'a magic link is out too');
	$seen = seen_of($owner->{email});
	jpost('/api/v1/auth/password/forgot', { email => $owner->{email} });
	my $rst = newest_mail($owner->{email}, qr/reset/i, $seen);
	ok($rst, 'and a reset link');

	my $new = fresh_password();
	is(jpost('/api/v1/me/password', { current_password => $owner->{password},
	    new_password => $new }, bearer($owner->{access}))->code, 204,
	    'the owner changes the password');

	error_ok(jpost('/api/v1/auth/verify-email',
	    { token => mail_token($change, '/verify-email') }), 400,
	    'invalid_token', 'the thief\'s email-change link after a password change');
	error_ok(jpost('/api/v1/auth/verify-email',
	    { token => mail_token($verify, '/verify-email') }), 400,
	    'invalid_token', 'the old verification link after a password change');
	error_ok(jpost('/api/v1/auth/magic-link/verify',
	    { token => mail_token($magic, '/auth/magic') }), 400,
	    'invalid_token', 'the old magic link after a password change');
	error_ok(jpost('/api/v1/auth/password/reset',
	    { token => mail_token($rst, '/reset-password'),
	    password => fresh_password() }), 400, 'invalid_token',
	    'the old reset link after a password change');
	is(db_row('SELECT email FROM users WHERE id = ?', $owner->{id})->{email},
	    $owner->{email}, 'the address did not move');
}

# --- 2. Claiming a squatted account by magic link ---------------------
{
	my $victim = unique_email('tk-victim');
	my $sq = signup(email => $victim, tag => 'tk-squat');
	# The squatter turns TOTP on and asks to move the address away.
	my ($secret) = totp_on($sq);
	my $away = unique_email('tk-away');
	is(jpost('/api/v1/me/email', { email => $away, password => $sq->{password} },
	    bearer($sq->{access}))->code, 202, 'the squatter asks an email change');
	my $change = wait_mail($away, sub { 1 });
	is(gate_status($sq->{key}), 403, 'before the claim: the squatter\'s key is '
	    . 'known to the gate (403 email_not_verified)');

	my $res = magic_login($victim);
	is($res->code, 200, 'the mailbox owner signs in by magic link, with no '
	    . 'second factor asked') or diag($res->body);
	my $vacc = eval { $res->json->{tokens}{access_token} };

	error_ok(req(GET => '/api/v1/me', H(bearer($sq->{access}))), 401,
	    'unauthenticated', 'the squatter\'s access token');
	error_ok(jpost('/api/v1/auth/refresh', { refresh_token => $sq->{refresh} }),
	    401, 'unauthenticated', 'the squatter\'s refresh token');
	is(gate_status($sq->{key}), 401, 'the squatter\'s API key at the gate: 401');
	error_ok(login($victim, $sq->{password}), 401, 'invalid_credentials',
	    'the squatter\'s password');
	error_ok(jpost('/api/v1/auth/verify-email',
	    { token => mail_token($change, '/verify-email') }), 400,
	    'invalid_token', 'the squatter\'s pending email change');
	is(db_row('SELECT COUNT(*) AS n FROM totp_secrets WHERE user_id = ?',
	    $sq->{id})->{n}, 0, 'the squatter\'s TOTP enrolment is gone');
	my $me = req(GET => '/api/v1/me', H(bearer($vacc // '')));
	is($me->code, 200, 'the owner is in');
	is(eval { $me->json->{user}{email} }, $victim, 'with their address');
}

# --- 2b. Claiming a squatted account by password reset ----------------
{
	my $victim = unique_email('tk-victim2');
	my $sq = signup(email => $victim, tag => 'tk-squat2');
	my $new = fresh_password();
	is(reset_password($victim, $new)->code, 204, 'the owner resets the password');
	error_ok(req(GET => '/api/v1/me', H(bearer($sq->{access}))), 401,
	    'unauthenticated', 'the squatter\'s access token after the reset');
	error_ok(jpost('/api/v1/auth/refresh', { refresh_token => $sq->{refresh} }),
	    401, 'unauthenticated', 'the squatter\'s refresh token after the reset');
	is(gate_status($sq->{key}), 401,
	    'the squatter\'s API key cannot spend the owner\'s credits');
	is(db_row('SELECT COUNT(*) AS n FROM api_keys WHERE user_id = ?',
	    $sq->{id})->{n}, 0, 'no API key of the squatter is left');
	error_ok(login($victim, $sq->{password}), 401, 'invalid_credentials',
	    'the squatter\'s password after the reset');
	is(login($victim, $new)->code, 200, 'the owner\'s new password works');
}

# --- 3. The verification page: GET shows a button, POST verifies ------
{
	my $u = signup(tag => 'tk-scan');
	my $m = wait_mail($u->{email}, sub { $_[0]{subject} =~ /verif/i });
	my $tok = mail_token($m, '/verify-email');
	my $ua = ua();
	my $res = $ua->get("$base/verify-email?token=$tok" => H())->result;
	is($res->code, 200, 'GET /verify-email?token= (a mail scanner): 200');
	ok(!db_row('SELECT email_verified_at IS NOT NULL AS v FROM users '
	    . 'WHERE id = ?', $u->{id})->{v}, 'the GET verified nothing');
	like($res->body, qr{<form[^>]*method="post"[^>]*action="/verify-email"}i,
	    'the page has a form posting to /verify-email');
	my $csrf = csrf_of($res->body);
	ok($csrf, 'with a CSRF field');
	# The button, without its CSRF field: refused.
	my $bad = $ua->post("$base/verify-email" => form_headers() =>
	    form_body([token => $tok]))->result;
	is($bad->code, 403, 'the POST without the CSRF field: 403');
	$res = $ua->post("$base/verify-email" => form_headers() =>
	    form_body([token => $tok], [csrf => $csrf // '']))->result;
	is($res->code, 200, 'the button: 200');
	ok(db_row('SELECT email_verified_at IS NOT NULL AS v FROM users '
	    . 'WHERE id = ?', $u->{id})->{v}, 'the address is verified');
	like($res->body, qr/verified/i, 'the page says so');
}

# --- 4. tollgatectl admin create on a squatted address ----------------
sub ctl {
	my ($stdin, @args) = @_;
	my ($ifh, $in) = tempfile(UNLINK => 1);
	print $ifh $stdin // '';
	close $ifh;
	my ($ofh, $out) = tempfile(UNLINK => 1);
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		open STDIN, '<', $in or die;
		open STDOUT, '>', $out or die;
		open STDERR, '>&', \*STDOUT or die;
		exec "$ENV{TG_ROOT}/contrib/devstack", 'ctl', @args or die "exec: $!";
	}
	waitpid $pid, 0;
	my $rc = $? >> 8;
	local $/;
	open my $o, '<', $out or die;
	return ($rc, scalar <$o> // '');
}
{
	my $addr = unique_email('tk-admin');
	my $sq = signup(email => $addr, tag => 'tk-admin-squat');
	my $pw = fresh_password();
	my ($rc, $out) = ctl("$pw\n", 'admin', 'create', $addr);
	is($rc, 0, 'admin create of a never-verified address: exit 0') or diag $out;
	error_ok(login($addr, $sq->{password}), 401, 'invalid_credentials',
	    'the squatter\'s password does not open the admin account');
	error_ok(req(GET => '/api/v1/me', H(bearer($sq->{access}))), 401,
	    'unauthenticated', 'the squatter\'s access token');
	isnt(gate_status($sq->{key}), 204, 'the squatter\'s API key');
	is(gate_status($sq->{key}), 401, 'the squatter\'s API key: 401');
	my $res = login($addr, $pw);
	is($res->code, 200, 'the operator\'s password logs in');
	is(eval { $res->json->{user}{role} }, 'admin', 'as an admin');
	ok(eval { $res->json->{user}{email_verified} }, 'verified');

	# A verified account is promoted with its password unchanged.
	my $v = verified_user(tag => 'tk-admin-ok');
	($rc, $out) = ctl('', 'admin', 'create', $v->{email});
	is($rc, 0, 'admin create of a verified account: exit 0');
	$res = login($v->{email}, $v->{password});
	is($res->code, 200, 'its own password still works');
	is(eval { $res->json->{user}{role} }, 'admin', 'and it is an admin');
}

done_testing();
