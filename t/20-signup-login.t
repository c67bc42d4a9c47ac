#!/usr/bin/perl
# Signup and login (contract section 3): the answers' shapes, access
# tokens checked by an independent JWT library (Crypt::JWT) with the
# configured secret, forged and broken tokens refused with 401 and
# WWW-Authenticate: Bearer, emails compared ignoring ASCII case only, and
# one email signed up 20 times at once.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Crypt::JWT qw(decode_jwt encode_jwt);
use MIME::Base64 qw(encode_base64url decode_base64url);
use Mojo::JSON qw(encode_json decode_json);
use Mojo::Promise;
use TG;
use TGMail;
use TGAccount;

my $secret = conf_get('jwt', 'secret');
ok(defined $secret && length $secret >= 32, 'jwt secret from the configuration');

# --- signup -----------------------------------------------------------
my $email = unique_email('signup');
my $pw = fresh_password();
my $res = jpost('/api/v1/auth/signup',
    { email => $email, password => $pw, name => 'Ada Lovelace' });
is($res->code, 201, 'signup: 201');
my $j = eval { $res->json } // {};
my $u = $j->{user} // {};
like($u->{id} // '', qr/^[A-Za-z0-9_-]{22}$/, 'user.id is an opaque id');
is($u->{email}, $email, 'user.email');
is($u->{name}, 'Ada Lovelace', 'user.name');
is($u->{role}, 'user', 'user.role is user');
is($u->{plan}, 'trial', 'user.plan is trial');
ok(defined $u->{email_verified} && !$u->{email_verified},
    'user.email_verified is false');
like($u->{created_at} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    'user.created_at is RFC 3339 UTC');
my $t = $j->{tokens} // {};
is($t->{token_type}, 'Bearer', 'tokens.token_type');
is($t->{expires_in}, 900, 'tokens.expires_in 900');
ok($t->{refresh_token} && $t->{refresh_token} !~ /\./,
    'refresh token is opaque (not a JWT)');
my $k = $j->{api_key} // {};
like($k->{key} // '', qr/^tgk_[A-Za-z0-9_-]{20,}$/, 'api_key.key starts with tgk_');
is($k->{preview}, substr($k->{key} // '', 0, 12), 'api_key.preview: first 12');

# The access token, by Crypt::JWT.
my ($hdr, $claims) = eval {
	decode_jwt(token => $t->{access_token}, key => $secret,
	    accepted_alg => 'HS256', decode_header => 1, verify_exp => 1);
};
ok($claims, 'access token verifies with the configured secret (Crypt::JWT)')
    or diag($@);
$claims //= {};
is($claims->{sub}, $u->{id}, 'claim sub is the user id');
like($claims->{sid} // '', qr/^[A-Za-z0-9_-]{22}$/, 'claim sid is a session id');
is($claims->{typ}, 'access', 'claim typ says access token');
is(($claims->{exp} // 0) - ($claims->{iat} // 0), 900, 'exp - iat = 900 s');
ok(abs(($claims->{iat} // 0) - time) < 120, 'iat is now');
ok(defined $hdr->{kid} && length $hdr->{kid}, 'kid header');
is($hdr->{alg}, 'HS256', 'alg HS256');
my $kid = $hdr->{kid};

# The session exists in the database.
my $s = db_row('SELECT user_id, kind FROM sessions WHERE id = ?', $claims->{sid});
is($s->{user_id}, $u->{id}, 'sid names a session of the user');

# The signup's API key and access token work.
is(req(GET => '/api/v1/me', H(bearer($t->{access_token})))->code, 200,
    'access token: GET /me 200');
is(req(GET => '/api/v1/me', H(bearer($k->{key})))->code, 200,
    'signup api key: GET /me 200');

# Signup refusals.
error_ok(jpost('/api/v1/auth/signup', { email => uc($email), password => $pw }),
    409, 'email_taken', 'same email in other ASCII case');
$res = jpost('/api/v1/auth/signup', { email => unique_email('x') });
error_ok($res, 422, 'validation_failed', 'signup without password');
ok(exists((eval { $res->json->{error}{fields} } // {})->{password}),
    'fields names password');
$res = jpost('/api/v1/auth/signup',
    { email => unique_email('x'), password => 'short' });
error_ok($res, 422, 'validation_failed', 'short password');
ok(exists((eval { $res->json->{error}{fields} } // {})->{password}),
    'fields names password (short)');
$res = jpost('/api/v1/auth/signup',
    { email => 'not-an-email', password => fresh_password() });
error_ok($res, 422, 'validation_failed', 'bad email');
ok(exists((eval { $res->json->{error}{fields} } // {})->{email}),
    'fields names email');

# Only ASCII letters fold: JOSÉ and josé are two addresses.
my $n = int(rand(1e9));
my $lower = "jos\x{e9}-$n\@example.com";
my $upper = "JOS\x{c9}-$n\@example.com";
is(jpost('/api/v1/auth/signup', { email => $lower, password => fresh_password() })
    ->code, 201, 'signup josé@');
is(jpost('/api/v1/auth/signup', { email => $upper, password => fresh_password() })
    ->code, 201, 'signup JOSÉ@ is another address');
error_ok(jpost('/api/v1/auth/signup', { email => "JOS\x{e9}-$n\@EXAMPLE.COM",
    password => fresh_password() }), 409, 'email_taken',
    'JOSé@EXAMPLE.COM is josé@example.com');

# --- login ------------------------------------------------------------
$res = login(uc($email), $pw);
is($res->code, 200, 'login (email in other case): 200');
is(eval { $res->json->{user}{id} }, $u->{id}, 'login: user');
ok(eval { $res->json->{tokens}{access_token} }, 'login: tokens');
my $login_access = eval { $res->json->{tokens}{access_token} };

$res = req(POST => '/api/v1/auth/login',
    H('Content-Type' => 'application/x-www-form-urlencoded'),
    'username=' . Mojo::Util::url_escape($email) . '&password='
    . Mojo::Util::url_escape($pw));
is($res->code, 200, 'login form username=&password=: 200');
ok(eval { $res->json->{tokens}{refresh_token} }, 'login form: tokens');

$res = login($email, 'wrong-password-123');
error_ok($res, 401, 'invalid_credentials', 'wrong password');
is($res->headers->header('WWW-Authenticate'), 'Bearer',
    'wrong password: WWW-Authenticate: Bearer');
my $wrong_body = $res->json->{error}{message};
$res = login(unique_email('nobody'), 'wrong-password-123');
error_ok($res, 401, 'invalid_credentials', 'unknown email');
is($res->json->{error}{message}, $wrong_body,
    'unknown email and wrong password: the same answer');
error_ok(jpost('/api/v1/auth/login', { email => $email }), 422,
    'validation_failed', 'login without password');
throttle_forget(addrs => [addr()], pairs => [[lc $email, addr()]]);

# --- forged and broken access tokens -----------------------------------
sub b64j { encode_base64url(encode_json($_[0])) }

my %good = (sub => $u->{id}, sid => $claims->{sid}, typ => 'access',
    iat => time, exp => time + 600);
my %forged = (
	'alg none' => b64j({ alg => 'none', typ => 'JWT', kid => $kid }) . '.'
	    . b64j(\%good) . '.',
	'alg none, no signature part' => b64j({ alg => 'none', kid => $kid })
	    . '.' . b64j(\%good),
	'wrong signature' => encode_jwt(payload => \%good, alg => 'HS256',
	    key => 'another-secret-that-is-long-enough-0123456789',
	    extra_headers => { kid => $kid }),
	'HS512 with the right secret' => encode_jwt(payload => \%good,
	    alg => 'HS512', key => $secret, extra_headers => { kid => $kid }),
	'no kid' => encode_jwt(payload => \%good, alg => 'HS256', key => $secret),
	'unknown kid' => encode_jwt(payload => \%good, alg => 'HS256',
	    key => $secret, extra_headers => { kid => '0123456789abcdef' }),
	'not an access token (typ refresh)' => encode_jwt(payload =>
	    { %good, typ => 'refresh' }, alg => 'HS256', key => $secret,
	    extra_headers => { kid => $kid }),
	'refresh token as access token' => $t->{refresh_token},
	'garbage' => 'abc.def.ghi',
);
# Tampered: the payload names another user, the signature is the old one.
{
	my ($h64, $p64, $s64) = split /\./, $t->{access_token};
	my $p = decode_json(decode_base64url($p64));
	$p->{sub} = 'AAAAAAAAAAAAAAAAAAAAAA';
	$forged{'tampered payload'} = join '.', $h64, b64j($p), $s64;
	$p = decode_json(decode_base64url($p64));
	$p->{exp} += 3600;
	$forged{'tampered exp'} = join '.', $h64, b64j($p), $s64;
}
my $valid = encode_jwt(payload => \%good, alg => 'HS256', key => $secret,
    extra_headers => { kid => $kid });
is(req(GET => '/api/v1/me', H(bearer($valid)))->code, 200,
    'a token made here with the secret and kid is accepted (control)');
for my $name (sort keys %forged) {
	my $r = req(GET => '/api/v1/me', H(bearer($forged{$name})));
	error_ok($r, 401, 'unauthenticated', $name);
	is($r->headers->header('WWW-Authenticate'), 'Bearer',
	    "$name: WWW-Authenticate: Bearer");
}
my $expired = encode_jwt(payload => { %good, iat => time - 1000,
    exp => time - 100 }, alg => 'HS256', key => $secret,
    extra_headers => { kid => $kid });
$res = req(GET => '/api/v1/me', H(bearer($expired)));
error_ok($res, 401, 'token_expired', 'expired token');
is($res->headers->header('WWW-Authenticate'), 'Bearer',
    'expired: WWW-Authenticate: Bearer');
$res = req(GET => '/api/v1/me', H(Authorization => "Basic Zm9vOmJhcg=="));
error_ok($res, 401, 'unauthenticated', 'Basic credentials');
$res = req(GET => '/api/v1/me', H());
error_ok($res, 401, 'unauthenticated', 'no credential');
is($res->headers->header('WWW-Authenticate'), 'Bearer',
    'no credential: WWW-Authenticate: Bearer');
$res = req(GET => "/api/v1/me?access_token=$t->{access_token}", H());
error_ok($res, 401, 'unauthenticated', 'a token in the query string is not read');

# A revoked session's tokens stop at once.
is(jpost('/api/v1/auth/logout', undef, bearer($login_access))->code, 204,
    'logout (no body): 204');
error_ok(req(GET => '/api/v1/me', H(bearer($login_access))), 401,
    'unauthenticated', 'access token of a logged-out session');
is(req(GET => '/api/v1/me', H(bearer($t->{access_token})))->code, 200,
    'the other session still works');

# --- one email, 20 signups at once --------------------------------------
{
	my $race = unique_email('race');
	my $ua = ua();
	my @p = map {
		$ua->post_p(base() . '/api/v1/auth/signup' => H() => json =>
		    { email => $race, password => fresh_password() })
	} 1 .. 20;
	my @codes;
	Mojo::Promise->all(@p)->then(sub {
		@codes = map { $_->[0]->res->code // 0 } @_;
	})->catch(sub { diag("race: @_") })->wait;
	is(scalar @codes, 20, '20 answers');
	is(scalar(grep { $_ == 201 } @codes), 1, 'exactly one 201');
	is(scalar(grep { $_ == 409 } @codes), 19, 'the other 19: 409')
	    or diag("codes: @codes");
	is(db_row('SELECT COUNT(*) AS n FROM users WHERE email_lc = ?',
	    lc $race)->{n}, 1, 'one user row');
}

done_testing;
