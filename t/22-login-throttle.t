#!/usr/bin/perl
# The login throttle (contract section 3): [limits] login_failures
# failures per email and client address in 15 minutes, then 429 with
# Retry-After even for the right password; another address is not
# affected (never per email alone); per address over all emails at five
# times the limit; a wrong current password while logged in counts too.
# Each part speaks for its own client address (X-Forwarded-For).

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use TG;
use TGMail;
use TGAccount;

my $limit = conf_get('limits', 'login_failures') // 10;
my @addrs;
my @pairs;
END { throttle_forget(addrs => \@addrs, pairs => \@pairs) }

sub from { my $a = new_addr(); push @addrs, $a; return $a }

my $u = signup(tag => 'throttle');
my $x = from();
push @pairs, [$u->{email}, $x];

for my $i (1 .. $limit) {
	my $res = login($u->{email}, "wrong-password-$i", 'X-Forwarded-For' => $x);
	is($res->code, 401, "failure $i from $x: 401");
}
my $res = login($u->{email}, $u->{password}, 'X-Forwarded-For' => $x);
error_ok($res, 429, 'rate_limited', "right password after $limit failures");
my $ra = $res->headers->header('Retry-After') // '';
ok($ra =~ /^\d+$/ && $ra > 0 && $ra <= 900, "Retry-After in seconds ($ra)");
ok(defined $res->headers->header('X-RateLimit-Limit'), 'X-RateLimit-Limit');
is($res->headers->header('X-RateLimit-Remaining'), '0', 'X-RateLimit-Remaining 0');
ok(defined $res->headers->header('X-RateLimit-Reset'), 'X-RateLimit-Reset');
error_ok(req(POST => '/api/v1/auth/login',
    { 'X-Forwarded-For' => $x,
      'Content-Type' => 'application/x-www-form-urlencoded' },
    'username=' . Mojo::Util::url_escape($u->{email}) . '&password='
    . Mojo::Util::url_escape($u->{password})), 429, 'rate_limited',
    'the login form is throttled the same');

# Another address: not affected.
my $y = from();
push @pairs, [$u->{email}, $y];
is(login($u->{email}, $u->{password}, 'X-Forwarded-For' => $y)->code, 200,
    'the same email from another address: 200');

# Another email from the throttled address: not affected either (below
# the address's own, larger limit).
my $w = signup(tag => 'throttle-w');
push @pairs, [$w->{email}, $x];
is(login($w->{email}, $w->{password}, 'X-Forwarded-For' => $x)->code, 200,
    'another email from the throttled address: 200');

# Per address over all emails: five times the limit.
my $z = from();
my $per_addr = 5 * $limit;
my $fails = 0;
for my $i (1 .. $per_addr) {
	my $e = "nobody-$i-" . int(rand(1e9)) . '@example.com';
	push @pairs, [$e, $z];
	$fails++ if (login($e, 'wrong-password-x', 'X-Forwarded-For' => $z)
	    ->code // 0) == 401;
}
is($fails, $per_addr, "$per_addr failures over $per_addr emails from one address");
push @pairs, [$w->{email}, $z];
$res = login($w->{email}, $w->{password}, 'X-Forwarded-For' => $z);
error_ok($res, 429, 'rate_limited',
    'then any email from that address, right password too');
ok(($res->headers->header('Retry-After') // 0) > 0, 'with Retry-After');
push @pairs, [$w->{email}, $y];
is(login($w->{email}, $w->{password}, 'X-Forwarded-For' => $y)->code, 200,
    'the same email from yet another address: 200');

# A wrong current password while logged in counts toward the throttle.
my $v = signup(tag => 'throttle-v');
my $p = from();
push @pairs, [$v->{email}, $p];
for my $i (1 .. $limit) {
	my $r = jpost('/api/v1/me/password', { current_password => "nope-$i-xxxx",
	    new_password => fresh_password() }, bearer($v->{access}),
	    'X-Forwarded-For' => $p);
	is($r->code, 422, "wrong current_password $i: 422");
}
$res = jpost('/api/v1/me/password', { current_password => $v->{password},
    new_password => fresh_password() }, bearer($v->{access}),
    'X-Forwarded-For' => $p);
error_ok($res, 429, 'rate_limited', 'me/password after the limit, right password');
error_ok(login($v->{email}, $v->{password}, 'X-Forwarded-For' => $p), 429,
    'rate_limited', 'and login of that email from that address');
is(login($v->{email}, $v->{password}, 'X-Forwarded-For' => $y)->code, 200,
    'but not from another address');
push @pairs, [$v->{email}, $y];

done_testing;
