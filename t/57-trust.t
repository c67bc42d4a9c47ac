#!/usr/bin/perl
# Trusted tokens (contract section 3, "More ways in"): with a [trust NAME]
# section (issuer, audience, jwks_url; here the fake OpenID provider of
# t/fakes/oidc.pl, named through TOLLGATE_TRUST_FAKEIDP_* on a restart of
# tollgated), that issuer's JWTs work where a tollgate access token does
# in the JSON API, each subject mapped to one tollgate user (made on
# first sight, linked by a verified email claim, taking over a
# never-verified account).  Refused: a wrong issuer, audience or key, an
# unknown kid, an expired token, alg "none", HS256 keyed with the
# issuer's public key, an ES256 header on an RSA key.  Keys are fetched
# by kid and fetched again for a kid not seen yet (rotation).

use strict;
use warnings;
use lib 't/lib', 't/fakes';

use Test::More;
use TG qw(:DEFAULT restart_tollgated);
use TGMail;
use TGAccount;
use Fakes qw(fake_start fake_post fake_port fake_id_token);

my $ISS = 'http://127.0.0.1:' . fake_port('oidc');
my $AUD = 'tollgate-api';
my $dbh = dbh();
my @made;


sink_start();
fake_start('oidc');
ok(restart_tollgated(TOLLGATE_TRUST_FAKEIDP_ISSUER => $ISS,
    TOLLGATE_TRUST_FAKEIDP_AUDIENCE => $AUD,
    TOLLGATE_TRUST_FAKEIDP_JWKS_URL => "$ISS/jwks"),
    'tollgated restarted with [trust fakeidp]');
END {
	my $st = $?;
	$dbh->do('DELETE FROM users WHERE id = ?', undef, $_) for @made;
	restart_tollgated();
	$? = $st;
}

my $keys = fake_post('oidc', '/_fake/keys', {});
my $rsa = $keys->{signing};

# A token of the fake issuer: claims merged over good ones.
sub tok { return fake_id_token(iss => $ISS, aud => $AUD, kid => $rsa, @_) }

sub me {
	my ($t) = @_;
	return req(GET => '/api/v1/me', { Authorization => "Bearer $t" });
}

sub refused {
	my ($t, $name, $code) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	error_ok(me($t), 401, $code // 'unauthenticated', $name);
}

# --- accepted -----------------------------------------------------------
my $email = unique_email('trusted');
my $sub = 'user-' . int(rand 1e9);
my $res = me(tok(sub => $sub, claims => { email => $email,
    email_verified => \1, name => 'Trusted Person' }));
is($res->code, 200, 'a trusted RS256 token: GET /api/v1/me 200');
my $j = eval { $res->json } // {};
my $uid = $j->{user}{id};
push @made, $uid if $uid;
is($j->{user}{email}, $email, 'a user made on first sight, with its email');
ok($j->{user}{email_verified}, 'the verified email claim counts');
is($j->{user}{plan}, 'trial', 'that user\'s plan');
is(db_row('SELECT user_id FROM external_ids WHERE provider = ? AND '
    . 'subject = ?', 'trust:fakeidp', $sub)->{user_id}, $uid,
    'the subject is mapped to it');
$res = me(tok(sub => $sub));
is(eval { $res->json->{user}{id} }, $uid,
    'the same subject again: the same user (no email claim needed)');
$res = req(GET => '/api/v1/usage', { bearer(tok(sub => $sub)) });
is($res->code, 200, 'and the rest of the JSON API');
# An aud array holding ours.
is(me(tok(sub => $sub, claims => { aud => ['other', $AUD] }))->code, 200,
    'aud as an array holding the audience');

# Linked by a verified email to an existing (verified) account.
my $u = signup(tag => 'trust-link');
push @made, $u->{id};
$dbh->do('UPDATE users SET email_verified_at = UTC_TIMESTAMP(6) WHERE id = ?',
    undef, $u->{id});
$res = me(tok(claims => { email => $u->{email}, email_verified => \1 }));
is(eval { $res->json->{user}{id} }, $u->{id},
    'a verified email claim links the account with that address');
# An unverified email claim makes no link.
my $v = signup(tag => 'trust-nolink');
push @made, $v->{id};
$dbh->do('UPDATE users SET email_verified_at = UTC_TIMESTAMP(6) WHERE id = ?',
    undef, $v->{id});
$res = me(tok(claims => { email => $v->{email}, email_verified => \0 }));
is($res->code, 200, 'an unverified email claim: still a login');
my $other = eval { $res->json->{user}{id} } // '';
push @made, $other if $other;
isnt($other, $v->{id}, 'but of a new account, not the one with that address');

# Takeover of a never-verified account (section 3).
my $sq = signup(tag => 'trust-squat');
push @made, $sq->{id};
$res = me(tok(claims => { email => $sq->{email}, email_verified => \1 }));
is(eval { $res->json->{user}{id} }, $sq->{id},
    'a never-verified account with that address is taken over');
error_ok(login($sq->{email}, $sq->{password}), 401, 'invalid_credentials',
    'the squatter\'s password is gone');
is(me($sq->{access})->code, 401, 'and its access token');
error_ok(req(GET => '/api/v1/me', { bearer($sq->{key}) }), 401,
    'unauthenticated', 'and its API key');

# --- refused ---------------------------------------------------------------
refused(tok(sub => $sub, claims => { aud => 'someone-else' }),
    'a wrong audience');
refused(tok(sub => $sub, delete => ['aud']), 'no audience');
refused(tok(sub => $sub, claims => { iss => "$ISS/other" }),
    'a wrong issuer');
refused(tok(sub => $sub, claims => { exp => time - 3600 }), 'expired',
    'token_expired');
refused(tok(sub => $sub, delete => ['exp']), 'no exp');
refused(tok(sub => $sub, alg => 'none'), 'alg none');
refused(tok(sub => $sub, alg => 'HS256'),
    'HS256 keyed with the issuer\'s public key PEM');
refused(tok(sub => $sub, header => { alg => 'ES256' }),
    'an RSA key\'s token that says ES256');
# Signed by a key the issuer does not publish, under a published kid.
my $rogue = fake_post('oidc', '/_fake/keys', { rotate => 'RSA',
    drop => [] })->{signing};
fake_post('oidc', '/_fake/keys', { drop => [$rogue] });
refused(tok(sub => $sub, kid => $rogue, header => { kid => $rsa }),
    'a published kid, signed by another key');
sleep 1.2;
refused(tok(sub => $sub, kid => $rogue), 'an unknown kid');
my $tampered = tok(sub => $sub);
$tampered =~ s/^([^.]+)\.([^.]+)\./$1 . '.' . ($2 =~ tr{A-Za-z}{B-ZAb-za}r) . '.'/e;
refused($tampered, 'a tampered payload');
refused(tok(sub => ''), 'an empty subject');

# --- rotation: a new key (ES256 here) is fetched by its kid ----------------
my $ec = fake_post('oidc', '/_fake/keys', { rotate => 'EC',
    drop => [$rsa] })->{signing};
sleep 1.2;
$res = me(tok(sub => $sub, kid => $ec));
is($res->code, 200, 'after rotation: a token of the new ES256 key');
is(eval { $res->json->{user}{id} }, $uid, 'the same user');
refused(tok(sub => $sub, kid => $rogue, header => { kid => $ec }),
    'an RSA signature under the EC key\'s kid');
refused(tok(sub => $sub, kid => $ec, header => { alg => 'RS256' }),
    'an EC key\'s token that says RS256');
refused(tok(sub => $sub, kid => $ec, alg => 'HS256'),
    'HS256 keyed with the EC public key');
sleep 1.2;
refused(tok(sub => $sub, kid => $rogue), 'an unknown kid after rotation');

# --- a disabled user -------------------------------------------------------
$dbh->do('UPDATE users SET disabled_at = UTC_TIMESTAMP(6) WHERE id = ?',
    undef, $uid);
error_ok(me(tok(sub => $sub, kid => $ec)), 403, 'account_disabled',
    'the disabled user\'s trusted token');

done_testing();
