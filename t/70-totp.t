#!/usr/bin/perl
# The second factor (contract section 3, "Second factor (TOTP)"):
# enrolment (200 {secret, otpauth_url}, not yet in force), confirmation
# (200 {recovery_codes}: ten, shown once, stored as hashes; a wrong code
# 422 code), removal (204 with password and code; 422 naming the wrong
# field; a security notice); the secret stored encrypted; API keys 403.
# Codes are computed here (t/70-helpers.pl), not by tollgate's library.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use TG;
use TGMail;
use TGAccount;
require './t/70-helpers.pl';

sink_start();
my $u = signup(tag => 'totp');
END { throttle_forget(addrs => [addr()], pairs => [[$u->{email}, addr()]]) }
my %auth = bearer($u->{access});

# --- API keys may not touch the second factor ---------------------------
error_ok(jpost('/api/v1/me/totp', undef, bearer($u->{key})), 403, 'forbidden',
    'enrol with an API key');
error_ok(jpost('/api/v1/me/totp/confirm', { code => '123456' },
    bearer($u->{key})), 403, 'forbidden', 'confirm with an API key');
error_ok(jreq(DELETE => '/api/v1/me/totp', { password => $u->{password},
    code => '123456' }, bearer($u->{key})), 403, 'forbidden',
    'remove with an API key');
error_ok(jpost('/api/v1/me/totp'), 401, 'unauthenticated', 'enrol without login');

# --- enrolment ------------------------------------------------------------
error_ok(jpost('/api/v1/me/totp/confirm', { code => '123456' }, %auth), 409,
    'totp_not_enrolled', 'confirm before any enrolment');
my $res = jpost('/api/v1/me/totp', undef, %auth);
is($res->code, 200, 'POST /me/totp: 200');
my $j = eval { $res->json } // {};
my $first = $j->{secret} // '';
like($first, qr/^[A-Z2-7]{32}$/, 'a base32 secret of 160 bits');
my $email_enc = $u->{email};
is($j->{otpauth_url}, "otpauth://totp/tollgate:$email_enc?secret=$first"
    . '&issuer=tollgate&algorithm=SHA1&digits=6&period=30', 'otpauth_url');
my $row = db_row('SELECT secret_enc, enabled_at FROM totp_secrets WHERE '
    . 'user_id = ?', $u->{id});
ok($row && !defined $row->{enabled_at}, 'stored, not in force yet');
my $raw = b32_decode($first);
ok(index($row->{secret_enc}, $raw) < 0 && index($row->{secret_enc}, $first) < 0,
    'the stored secret is encrypted');
is(login($u->{email}, $u->{password})->code, 200,
    'a pending enrolment does not change login');

# A second enrolment replaces the first.
$res = jpost('/api/v1/me/totp', undef, %auth);
my $secret = eval { $res->json->{secret} } // '';
isnt($secret, $first, 'enrolling again makes a new secret');
my $step = fresh_step(4);
error_ok(jpost('/api/v1/me/totp/confirm', { code => totp_at_step($first,
    $step) }, %auth), 422, 'validation_failed', 'the old secret\'s code');
error_ok(jpost('/api/v1/me/totp/confirm', { code => 'abcdef' }, %auth), 422,
    'validation_failed', 'a code that is not digits');
$res = jpost('/api/v1/me/totp/confirm', { code => totp_at_step($secret,
    $step + 3) }, %auth);
error_ok($res, 422, 'validation_failed', 'a code three steps ahead');
ok(exists eval { $res->json->{error}{fields} }->{code}, 'the field is code');
error_ok(jpost('/api/v1/me/totp/confirm', {}, %auth), 422, 'validation_failed',
    'no code');

# --- confirmation ---------------------------------------------------------
$res = jpost('/api/v1/me/totp/confirm', { code => totp_at_step($secret,
    $step) }, %auth);
is($res->code, 200, 'confirm with the current code: 200');
my $codes = eval { $res->json->{recovery_codes} } // [];
is(ref $codes, 'ARRAY', 'recovery_codes is a list');
is(scalar @$codes, 10, 'of ten codes');
my %uniq = map { $_ => 1 } @$codes;
is(scalar keys %uniq, 10, 'all different');
is(scalar(grep { /^[a-z0-9]{5}-[a-z0-9]{5}$/ } @$codes), 10,
    'each like xxxxx-xxxxx');
ok(db_row('SELECT enabled_at FROM totp_secrets WHERE user_id = ?', $u->{id})
    ->{enabled_at}, 'the second factor is on');
my $stored = dbh()->selectcol_arrayref('SELECT code_hash FROM recovery_codes '
    . 'WHERE user_id = ?', undef, $u->{id});
is(scalar @$stored, 10, 'ten recovery codes stored');
ok(!grep({ my $h = $_; grep { index($h, $_) >= 0 || index($_, $h) >= 0 }
    map { (my $c = $_) =~ tr/-//d; ($_, $c) } @$codes } @$stored),
    'as hashes, never the codes');
error_ok(jpost('/api/v1/me/totp', undef, %auth), 409, 'totp_enabled',
    'enrolling while on');
error_ok(jpost('/api/v1/me/totp/confirm', { code => totp_at_step($secret,
    $step + 1) }, %auth), 409, 'totp_enabled', 'confirming again');
ok(wait_mail($u->{email}, sub { $_[0]{text} =~ /turned on/ }),
    'a security notice says TOTP was turned on');
error_ok(login($u->{email}, $u->{password}), 401, 'totp_required',
    'login now asks for the code');

# --- removal ----------------------------------------------------------------
totp_forget_step($u);
my $before = login_failures($u->{email}, addr());
is($before, 3, 'the three wrong confirmation codes counted toward the '
    . 'login throttle');
$step = fresh_step(4);
$res = jreq(DELETE => '/api/v1/me/totp', { password => 'not-the-password',
    code => totp_at_step($secret, $step) }, %auth);
error_ok($res, 422, 'validation_failed', 'remove with a wrong password');
ok(exists eval { $res->json->{error}{fields} }->{password}, 'naming password');
$res = jreq(DELETE => '/api/v1/me/totp', { password => $u->{password},
    code => totp_at_step($secret, $step + 2) }, %auth);
error_ok($res, 422, 'validation_failed', 'remove with a wrong code');
ok(exists eval { $res->json->{error}{fields} }->{code}, 'naming code');
error_ok(jreq(DELETE => '/api/v1/me/totp', { password => $u->{password} },
    %auth), 422, 'validation_failed', 'remove without a code');
is(login_failures($u->{email}, addr()) - $before, 2, 'both wrong tries counted toward the login throttle');
ok(db_row('SELECT enabled_at FROM totp_secrets WHERE user_id = ?', $u->{id}),
    'the second factor is still on');
$res = jreq(DELETE => '/api/v1/me/totp', { password => $u->{password},
    code => totp_at_step($secret, $step) }, %auth);
is($res->code, 204, 'remove with password and code: 204');
ok(!db_row('SELECT 1 AS x FROM totp_secrets WHERE user_id = ?', $u->{id}),
    'the secret is gone');
is(db_row('SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = ?',
    $u->{id})->{n}, 0, 'and the recovery codes');
ok(wait_mail($u->{email}, sub { $_[0]{text} =~ /TOTP\) was turned off/ }),
    'the "TOTP turned off" security notice');
is(login($u->{email}, $u->{password})->code, 200,
    'login without a code again');

# A recovery code turns it off too (the phone is lost).
my ($s2, $c2) = totp_on($u);
is(jreq(DELETE => '/api/v1/me/totp', { password => $u->{password},
    code => uc $c2->[3] }, %auth)->code, 204,
    'remove with a recovery code (any case): 204');

# Removing what is not on: only the password counts.
is(jreq(DELETE => '/api/v1/me/totp', { password => $u->{password},
    code => '000000' }, %auth)->code, 204, 'remove when off: 204');

done_testing;

# The login throttle's failure count for email and address.
sub login_failures {
	my ($email, $addr) = @_;
	require Crypt::Mac::BLAKE2b;
	my $key = pack 'H*', conf_get('crypto', 'key');
	my $h = Crypt::Mac::BLAKE2b->new(32, $key)->add("login|$email|$addr")
	    ->hexmac;
	my $r = db_row('SELECT count FROM login_failures WHERE key_hash = ?', $h);
	return $r ? $r->{count} : 0;
}
