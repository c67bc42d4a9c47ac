#!/usr/bin/perl
# Bad input on the account endpoints (contract section 2): overlong,
# non-UTF-8, NUL-containing, control-character and SQL-looking emails,
# names, passwords and tokens, in JSON and in forms, answer 400
# (unparseable) or 422 with `fields` naming the field; never a 5xx.  A
# value that only looks like SQL but is valid is stored as it is.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::JSON qw(encode_json);
use Mojo::Util qw(url_escape);
use TG;
use TGMail;
use TGAccount;

my $u = signup(tag => 'badinput');
my @auth = bearer($u->{access});
my $five = 0;

# Sends a raw JSON body (bytes as given) and checks the answer.
sub raw_json {
	my ($method, $path, $body, $field, $name, @h) = @_;
	my $res = req($method, $path, H('Content-Type' => 'application/json', @h),
	    $body);
	my $code = $res->code // 0;
	$five++ if $code >= 500 || $code == 0;
	ok($code == 400 || $code == 422, "$name: 400 or 422 (got $code)");
	if ($code == 422 && defined $field) {
		my $f = eval { $res->json->{error}{fields} } // {};
		ok(exists $f->{$field}, "$name: fields names $field")
		    or diag($res->body);
	}
	return $res;
}

my $long_email = ('a' x 250) . '@example.com';
my $long_local = ('a' x 65) . '@example.com';
my @emails = (
	[qq("$long_email"), 'overlong email'],
	[qq("$long_local"), 'local part over 64'],
	[qq("a\\u0000b\@example.com"), 'email with a NUL'],
	[qq("a\\nb\@example.com"), 'email with a line break'],
	[qq("\xff\xfe\@example.com"), 'email with invalid UTF-8'],
	[qq("\xc0\xaf\@example.com"), 'email with an overlong UTF-8 sequence'],
	[qq("' OR '1'='1"), 'SQL-looking email'],
	[qq("x\@example.com'; DROP TABLE users; --"), 'email with SQL after it'],
	[qq(""), 'empty email'],
	['42', 'a number for an email'],
	['["a@example.com"]', 'an array for an email'],
	['{"x":1}', 'an object for an email'],
);
for my $e (@emails) {
	my ($v, $what) = @$e;
	raw_json(POST => '/api/v1/auth/signup',
	    qq({"email": $v, "password": "long-enough-password"}), 'email',
	    "signup: $what");
	raw_json(POST => '/api/v1/auth/password/forgot', qq({"email": $v}),
	    'email', "forgot: $what");
	raw_json(POST => '/api/v1/auth/magic-link', qq({"email": $v}),
	    'email', "magic-link: $what");
	raw_json(POST => '/api/v1/me/email',
	    qq({"email": $v, "password": "whatever-password"}), 'email',
	    "me/email: $what", @auth);
}

my @passwords = (
	[encode_json('x' x 257), 'overlong password (257 bytes)'],
	[qq("abcdefghij\\u0000klm"), 'password with a NUL'],
	[qq("abcdefghij\xff\xfe"), 'password with invalid UTF-8'],
	[qq("short"), 'short password'],
	['12345678901', 'a number for a password'],
	['null', 'null password'],
);
for my $p (@passwords) {
	my ($v, $what) = @$p;
	raw_json(POST => '/api/v1/auth/signup', qq({"email": "ok-)
	    . int(rand(1e9)) . qq(\@example.com", "password": $v}), 'password',
	    "signup: $what");
	raw_json(POST => '/api/v1/me/password',
	    qq({"current_password": "x-current-pw", "new_password": $v}),
	    'new_password', "me/password: $what", @auth);
	raw_json(POST => '/api/v1/auth/password/reset',
	    qq({"token": "AAAAAAAAAAAAAAAAAAAAAAAA", "password": $v}),
	    'password', "reset: $what");
}
raw_json(POST => '/api/v1/auth/login',
    qq({"email": "a\@example.com", "password": ) . encode_json('x' x 300) . '}',
    'password', 'login: overlong password');
raw_json(POST => '/api/v1/auth/login',
    qq({"email": "a\@example.com", "password": "a\\u0000b"}), 'password',
    'login: password with a NUL');
raw_json(POST => '/api/v1/auth/login', qq({"email": "\xff\@x.com",
    "password": "abcdefghijk"}), 'email', 'login: email with invalid UTF-8');

my @names = (
	[encode_json('n' x 101), 'overlong name'],
	[qq("a\\u0000b"), 'name with a NUL'],
	[qq("a\\u0007b"), 'name with a control character'],
	[qq("\xff\xfe"), 'name with invalid UTF-8'],
	[qq("\xed\xa0\x80"), 'name with a UTF-16 surrogate'],
	['  ', 'a number-free blank name'],
	['7', 'a number for a name'],
);
for my $n (@names) {
	my ($v, $what) = @$n;
	$v = '"   "' if $v eq '  ';
	raw_json(PATCH => '/api/v1/me', qq({"name": $v}), 'name', "PATCH /me: $what",
	    @auth);
	raw_json(POST => '/api/v1/auth/signup', qq({"email": "n-)
	    . int(rand(1e9)) . qq(\@example.com", "password": "long-enough-pw",
	    "name": $v}), 'name', "signup: $what");
}

my @tokens = (
	[encode_json('A' x 600), 'overlong token'],
	[qq("AAAAAAAAAAAAAAAAAAAA\\u0000"), 'token with a NUL'],
	[qq("\xff\xfeAAAAAAAAAAAAAAAAAAAA"), 'token with invalid UTF-8'],
	[qq("' OR 1=1 --"), 'SQL-looking token'],
	['123', 'a number for a token'],
);
for my $t (@tokens) {
	my ($v, $what) = @$t;
	for my $path (qw(/api/v1/auth/verify-email /api/v1/auth/magic-link/verify)) {
		raw_json(POST => $path, qq({"token": $v}), 'token', "$path: $what");
	}
}
error_ok(jpost('/api/v1/auth/verify-email', { token => "' OR 1=1 --" }), 400,
    'invalid_token', 'a SQL-looking token is just an invalid token');

# Bodies that are not JSON objects.
for my $b (['{', 'truncated JSON'], ['[]', 'an array'], ['"x"', 'a string'],
    ["{\"email\": 'x'}", 'single quotes'], ["\xff\xfe{}", 'binary'],
    ['{"email": "a@example.com"} {}', 'two objects']) {
	my $res = req(POST => '/api/v1/auth/magic-link',
	    H('Content-Type' => 'application/json'), $b->[0]);
	error_ok($res, 400, 'bad_request', "body: $b->[1]");
}

# Forms.
sub form_post {
	my ($path, $body, $name, $field) = @_;
	my $res = req(POST => $path,
	    H('Content-Type' => 'application/x-www-form-urlencoded'), $body);
	my $code = $res->code // 0;
	$five++ if $code >= 500 || $code == 0;
	ok($code == 400 || $code == 422, "$name: 400 or 422 (got $code)");
	if ($code == 422 && $field) {
		my $f = eval { $res->json->{error}{fields} } // {};
		ok(exists $f->{$field}, "$name: fields names $field");
	}
}
form_post('/api/v1/auth/login', 'username=a%00b%40example.com&password=abcdefghijk',
    'login form: NUL in username', 'username');
form_post('/api/v1/auth/login', 'username=%FF%40example.com&password=abcdefghijk',
    'login form: invalid UTF-8 in username', 'username');
form_post('/api/v1/auth/login', 'username=a%40example.com&password=' . ('x' x 300),
    'login form: overlong password', 'password');
form_post('/api/v1/auth/login', 'username=a%40example.com&password=%ZZ',
    'login form: a bad escape');
form_post('/auth/magic', 'token=%00&csrf=x', 'magic page form: NUL token', undef);
for my $q ('token=%00', 'token=%FF%FE', 'token=' . ('A' x 600), 'token=%27%20OR%201%3D1') {
	my $res = req(GET => "/verify-email?$q", H());
	my $code = $res->code // 0;
	$five++ if $code >= 500 || $code == 0;
	ok($code == 400 || $code == 422, "GET /verify-email?$q: 400 or 422");
	like($res->headers->content_type // '', qr{^text/html}, '... a page');
}

is($five, 0, 'no answer was a 5xx');

# Valid values that look like SQL are data.
my $sqlname = q{Robert'); DROP TABLE users; --};
my $sqlmail = "o'reilly+" . int(rand(1e9)) . '@example.com';
my $res = jpost('/api/v1/auth/signup', { email => $sqlmail,
    password => q{pass' OR '1'='1}, name => $sqlname });
is($res->code, 201, 'signup with an apostrophe in the email and SQL in the name');
is(eval { $res->json->{user}{name} }, $sqlname, 'the name is stored as given');
is(eval { $res->json->{user}{email} }, $sqlmail, 'the email is stored as given');
is(login($sqlmail, q{pass' OR '1'='1})->code, 200, 'and logs in with its password');
error_ok(login($sqlmail, q{' OR '1'='1}), 401, 'invalid_credentials',
    'a SQL-looking wrong password is just wrong');
ok(db_row('SELECT COUNT(*) AS n FROM users')->{n} > 0, 'the users table is there');
throttle_forget(addrs => [addr()], pairs => [[$sqlmail, addr()],
    [$u->{email}, addr()], ['a@example.com', addr()]]);

done_testing;
