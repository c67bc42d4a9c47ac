#!/usr/bin/perl
# API keys (contract section 4) and multi-tenancy (section 6): list,
# create (with the plan's key limit, exact under concurrency, and an
# optional expiry), regenerate, delete; what an API key may and may not
# do; another user's key; an admin may delete but never see or
# regenerate another user's key.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::IOLoop;
use Mojo::Promise;
use TG;
use TGGate;

my $db = gdb();

my $u = new_user();
my $o = new_user();
my $H = bearer($u->{token});

# List: the signup key, never the key itself.
my $res = req(GET => '/api/v1/api-keys', $H);
is($res->code, 200, 'list: 200');
my $list = $res->json // [];
is(scalar @$list, 1, 'list: the key made at signup');
is_deeply([ sort keys %{ $list->[0] // {} } ],
    [ sort qw(id name preview created_at last_used_at expires_at) ],
    'list: the contract\'s fields and no key');
is($list->[0]{preview}, substr($u->{key}, 0, 12), 'preview: the first 12 characters');
like($list->[0]{created_at} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'created_at: RFC 3339 UTC');
unlike($res->body, qr/\Q$u->{key}\E/, 'list: the key is not in the body');

# last_used_at: set by use, without a write on every request.
is(req(GET => '/demo/echo', bearer($u->{key}))->code, 200, 'use the key at the gate');
my ($lu1) = $db->selectrow_array('SELECT last_used_at FROM api_keys WHERE id = ?',
    undef, $u->{key_id});
ok(defined $lu1, 'last_used_at set by the first use');
req(GET => '/demo/echo', bearer($u->{key}));
my ($lu2) = $db->selectrow_array('SELECT last_used_at FROM api_keys WHERE id = ?',
    undef, $u->{key_id});
is($lu2, $lu1, 'last_used_at not written again within a minute');

# Create: 201 {id, name, preview, key}; the trial allows 2.
$res = json_post('/api/v1/api-keys', { name => 'ci', expires_in_days => 7 }, $H);
is($res->code, 201, 'create: 201');
my $k2 = $res->json // {};
like($k2->{key} // '', qr/^tgk_[A-Za-z0-9_-]{43,}$/, 'create: a tgk_ key, 32 random bytes');
is($k2->{preview}, substr($k2->{key} // '', 0, 12), 'create: preview');
is($k2->{name}, 'ci', 'create: name');
my ($exp) = $db->selectrow_array(q{SELECT TIMESTAMPDIFF(HOUR, UTC_TIMESTAMP(),
    expires_at) FROM api_keys WHERE id = ?}, undef, $k2->{id});
ok(defined $exp && $exp >= 167 && $exp <= 168, 'expires_in_days: 7 days ahead');
my ($stored) = $db->selectrow_array('SELECT COUNT(*) FROM api_keys WHERE key_hash = ?',
    undef, $k2->{key});
is($stored, 0, 'the key is not stored in clear');
is(req(GET => '/api/v1/usage', bearer($k2->{key}))->code, 200, 'the new key works');

$res = json_post('/api/v1/api-keys', { name => 'third' }, $H);
error_ok($res, 403, 'quota_exceeded', 'past the plan\'s key limit');
is(eval { $res->json->{error}{meter} }, 'api_keys', 'the meter is api_keys');
like(eval { $res->json->{error}{message} } // '', qr/API key.*upgrade to Pro/,
    'the message names the meter and the next plan');

# Validation.
error_ok(json_post('/api/v1/api-keys', {}, $H), 422, 'validation_failed', 'no name');
error_ok(json_post('/api/v1/api-keys', { name => 'x' x 129 }, $H), 422,
    'validation_failed', 'name too long');
error_ok(json_post('/api/v1/api-keys', { name => 'x', expires_in_days => 0 }, $H),
    422, 'validation_failed', 'expires_in_days 0');
error_ok(json_post('/api/v1/api-keys', { name => 'x', expires_in_days => 'soon' }, $H),
    422, 'validation_failed', 'expires_in_days not a number');
error_ok(req(POST => '/api/v1/api-keys', { %$H, 'Content-Type' => 'application/json' },
    '{"name":'), 400, 'bad_request', 'malformed JSON');
error_ok(req(POST => '/api/v1/api-keys', { %$H, 'Content-Type' => 'text/plain' },
    'name=x'), 415, 'unsupported_media_type', 'not JSON');
error_ok(req(PUT => '/api/v1/api-keys', $H), 405, 'method_not_allowed', 'PUT');
error_ok(req(GET => '/api/v1/api-keys'), 401, 'unauthenticated', 'list without login');
error_ok(json_post('/api/v1/api-keys', { name => 'x' }), 401, 'unauthenticated',
    'create without login');

# What an API key may do: the reads of section 4, nothing else.
my $K = bearer($u->{key});
is(req(GET => '/api/v1/usage', $K)->code, 200, 'API key: GET /usage');
error_ok(req(GET => '/api/v1/api-keys', $K), 403, 'forbidden', 'API key: list keys');
error_ok(json_post('/api/v1/api-keys', { name => 'x' }, $K), 403, 'forbidden',
    'API key: create a key');
error_ok(req(POST => "/api/v1/api-keys/$u->{key_id}/regenerate", $K), 403, 'forbidden',
    'API key: regenerate');
error_ok(req(DELETE => "/api/v1/api-keys/$u->{key_id}", $K), 403, 'forbidden',
    'API key: delete');
error_ok(req(GET => '/api/v1/sessions', $K), 403, 'forbidden', 'API key: sessions');

# Another user's key: 403; an unknown one: 404.
error_ok(req(POST => "/api/v1/api-keys/$o->{key_id}/regenerate", $H), 403, 'forbidden',
    'regenerate another user\'s key');
error_ok(req(DELETE => "/api/v1/api-keys/$o->{key_id}", $H), 403, 'forbidden',
    'delete another user\'s key');
is(req(GET => '/api/v1/usage', bearer($o->{key}))->code, 200, 'the other key still works');
error_ok(req(DELETE => '/api/v1/api-keys/AAAAAAAAAAAAAAAAAAAAAA', $H), 404, 'not_found',
    'delete an unknown key');
error_ok(req(POST => '/api/v1/api-keys/AAAAAAAAAAAAAAAAAAAAAA/regenerate', $H), 404,
    'not_found', 'regenerate an unknown key');
my $ol = req(GET => '/api/v1/api-keys', bearer($o->{token}))->json // [];
is(scalar @$ol, 1, 'the other user lists only their own key');

# Regenerate: same id and name, new key, the old one stops at once.
$res = req(POST => "/api/v1/api-keys/$k2->{id}/regenerate", $H);
is($res->code, 200, 'regenerate: 200');
my $k2b = $res->json // {};
is($k2b->{id}, $k2->{id}, 'regenerate: same id');
is($k2b->{name}, 'ci', 'regenerate: same name');
isnt($k2b->{key}, $k2->{key}, 'regenerate: a new key');
error_ok(req(GET => '/api/v1/usage', bearer($k2->{key})), 401, 'unauthenticated',
    'the old key stops at once');
is(req(GET => '/api/v1/usage', bearer($k2b->{key}))->code, 200, 'the new key works');

# An expired key: 401 token_expired.
$db->do(q{UPDATE api_keys SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND
    WHERE id = ?}, undef, $k2->{id});
error_ok(req(GET => '/api/v1/usage', bearer($k2b->{key})), 401, 'token_expired',
    'an expired key');

# Delete: 204, the key stops at once, the slot is free again.
is(req(DELETE => "/api/v1/api-keys/$k2->{id}", $H)->code, 204, 'delete: 204');
error_ok(req(GET => '/api/v1/usage', bearer($k2b->{key})), 401, 'unauthenticated',
    'the deleted key stops at once');
error_ok(req(DELETE => "/api/v1/api-keys/$k2->{id}", $H), 404, 'not_found',
    'delete twice');
is(json_post('/api/v1/api-keys', { name => 'again' }, $H)->code, 201,
    'a deleted key frees its place');

# An admin deletes another user's key, but never sees or regenerates it.
SKIP: {
	my $login = json_post('/api/v1/auth/login', { email => $ENV{TG_ADMIN_EMAIL},
	    password => $ENV{TG_ADMIN_PASSWORD} });
	skip 'no admin login', 6 unless ($login->code // 0) == 200;
	my $A = bearer($login->json->{tokens}{access_token});
	error_ok(req(POST => "/api/v1/api-keys/$o->{key_id}/regenerate", $A), 403,
	    'forbidden', 'admin: regenerate another user\'s key');
	my $al = req(GET => '/api/v1/api-keys', $A)->json // [];
	ok(!grep({ $_->{id} eq $o->{key_id} } @$al), 'admin: another user\'s key is not listed');
	is(req(DELETE => "/api/v1/api-keys/$o->{key_id}", $A)->code, 204,
	    'admin: delete another user\'s key');
	error_ok(req(GET => '/api/v1/usage', bearer($o->{key})), 401, 'unauthenticated',
	    'the key an admin deleted stops');
	my ($aud) = $db->selectrow_array(q{SELECT COUNT(*) FROM audit_log
	    WHERE action = 'api_key.delete' AND target_id = ?}, undef, $o->{id});
	is($aud, 1, 'admin: the deletion is audited');
}

# The key limit holds under concurrency: 12 creations at once, limit 5.
my $c = new_user();
my $p = test_plan(keys => 5);
on_plan($c, $p);
{
	my $ua = ua();
	my @p = map {
		$ua->post_p(base() . '/api/v1/api-keys' => bearer($c->{token})
		    => json => { name => "k$_" })
	} 1 .. 12;
	my %codes;
	Mojo::Promise->all(@p)->then(sub { $codes{ $_->[0]->res->code }++ for @_ })
	    ->wait;
	is($codes{201} // 0, 4, 'concurrent creations: exactly 4 more fit (5 with the first)');
	is($codes{403} // 0, 8, 'concurrent creations: the rest 403');
	my ($n) = $db->selectrow_array('SELECT COUNT(*) FROM api_keys WHERE user_id = ?',
	    undef, $c->{id});
	is($n, 5, 'concurrent creations: 5 keys in all');
}

done_testing;
