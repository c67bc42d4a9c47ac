#!/usr/bin/perl
# Fields from the body alone (contract section 2): a request that is not a
# GET or HEAD never takes its fields from the query string, so passwords
# and tokens put in a URL (which proxies, CDNs and browser histories log)
# never work.  An empty body with the fields in the query answers as a
# request without them: 422 validation_failed (or the page's refusal).

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::Util qw(url_escape);
use TG;
use TGMail;
use TGAccount;
require './t/70-helpers.pl';

sink_start();
my $base = base();
my $u = verified_user(tag => 'qs');

sub qs { join '&', map { "$_->[0]=" . url_escape($_->[1]) } @_ }

# Login with the credentials in the URL and an empty body.
my $res = req(POST => '/api/v1/auth/login?' . qs([email => $u->{email}],
    [password => $u->{password}]), H());
isnt($res->code, 200, 'login from the query string: no session');
error_ok($res, 422, 'validation_failed', 'login from the query string');
ok(!eval { $res->json->{tokens} }, 'no tokens');

# The same as a form, with a Content-Type but no body.
$res = req(POST => '/api/v1/auth/login?' . qs([username => $u->{email}],
    [password => $u->{password}]), H('Content-Type' =>
    'application/x-www-form-urlencoded'));
error_ok($res, 422, 'validation_failed', 'form login from the query string');

# Refresh with the token in the URL.
$res = req(POST => '/api/v1/auth/refresh?refresh_token=' . $u->{refresh}, H());
error_ok($res, 422, 'validation_failed', 'refresh from the query string');
ok(!eval { $res->json->{tokens} }, 'no tokens');
is(jpost('/api/v1/auth/refresh', { refresh_token => $u->{refresh} })->code,
    200, 'the refresh token was not spent by that');

# A JSON body wins alone: a query field never fills a missing one.
$res = req(POST => '/api/v1/auth/login?password=' . url_escape($u->{password}),
    H('Content-Type' => 'application/json'), qq({"email":"$u->{email}"}));
error_ok($res, 422, 'validation_failed',
    'JSON login with the password in the query');

# Tokens in the query of the JSON API.
my $seen = { map { $_->{file} => 1 } mails_to($u->{email}) };
jpost('/api/v1/auth/magic-link', { email => $u->{email} });
my $m = wait_mail($u->{email}, sub { $_[0]{subject} =~ /sign-in/i
    && !$seen->{$_[0]{file}} });
my $tok = mail_token($m, '/auth/magic');
$res = req(POST => "/api/v1/auth/magic-link/verify?token=$tok", H());
error_ok($res, 422, 'validation_failed', 'magic-link/verify from the query');
is(jpost('/api/v1/auth/magic-link/verify', { token => $tok })->code, 200,
    'the link was not spent by that');

# The HTML login page: the form's fields in the URL do not sign in.
my $b = ua();
my $csrf = csrf_of($b->get("$base/login" => H())->result->body);
$res = $b->post("$base/login?" . qs([csrf => $csrf // ''],
    [username => $u->{email}], [password => $u->{password}]) => H())->result;
isnt($res->code, 303, 'POST /login with the fields in the query: no sign-in');
ok(!grep({ $_->name =~ /^(?:__Host-)?tg_session$/ && $_->value ne '' }
    @{ $b->cookie_jar->all }), 'and no session cookie');

# A GET keeps its query (the pages that take ?token= or ?next=).
$res = req(GET => "/auth/magic?token=$tok", H());
is($res->code, 200, 'GET /auth/magic?token= still reads its query');

done_testing();
