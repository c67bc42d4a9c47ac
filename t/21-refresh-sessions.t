#!/usr/bin/perl
# Refresh tokens and sessions (contract section 3): rotation, two
# refreshes of one token at once getting the same pair, reuse after the
# 10-second grace window revoking the whole family, expiry, logout, and
# the sessions list and revoke.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::JSON qw(decode_json);
use Mojo::Promise;
use MIME::Base64 qw(decode_base64url);
use TG;
use TGMail;
use TGAccount;

my $u = signup(tag => 'refresh');
my $dbh = dbh();

sub refresh { jpost('/api/v1/auth/refresh', { refresh_token => $_[0] }) }
sub me_code { req(GET => '/api/v1/me', H(bearer($_[0])))->code }

# The sid claim of an access token (not verified: only to name it).
sub sid_of {
	my (undef, $p) = split /\./, $_[0] // '';
	my $c = eval { decode_json(decode_base64url($p // '')) } // {};
	return $c->{sid};
}

# Rotation.
my $res = refresh($u->{refresh});
is($res->code, 200, 'refresh: 200');
my $t1 = eval { $res->json->{tokens} } // {};
ok($t1->{access_token} && $t1->{refresh_token}, 'refresh: a new pair');
isnt($t1->{refresh_token}, $u->{refresh}, 'the refresh token rotated');
is($t1->{token_type}, 'Bearer', 'token_type');
is($t1->{expires_in}, 900, 'expires_in');
is(me_code($t1->{access_token}), 200, 'the new access token works');

# A retry of the same token within the grace window: the same pair.
$res = refresh($u->{refresh});
is($res->code, 200, 'retry within 10 s: 200');
is_deeply(eval { $res->json->{tokens} }, $t1, 'retry within 10 s: the same pair');

# Two refreshes of one token at once.
{
	my $ua = ua();
	my @p = map {
		$ua->post_p(base() . '/api/v1/auth/refresh' => H() => json =>
		    { refresh_token => $t1->{refresh_token} })
	} 1 .. 2;
	my @r;
	Mojo::Promise->all(@p)->then(sub { @r = map { $_->[0]->res } @_ })
	    ->catch(sub { diag("@_") })->wait;
	is(join(',', map { $_->code // 0 } @r), '200,200',
	    'two refreshes at once: both 200');
	my @pairs = map { eval { $_->json->{tokens} } } @r;
	is_deeply($pairs[0], $pairs[1], 'two refreshes at once: the same pair');
	ok($pairs[0]{refresh_token} && $pairs[0]{refresh_token} ne
	    $t1->{refresh_token}, 'and it is a new pair');
	$t1 = $pairs[0] if $pairs[0];
}

# Reuse after the grace window: the family is revoked.  The window is
# moved instead of waited for: the used token is marked 11 s older.
my $dbh_rows = $dbh->do('UPDATE refresh_tokens SET used_at = used_at - '
    . 'INTERVAL 11 SECOND WHERE token_hash IN (SELECT * FROM (SELECT '
    . 'token_hash FROM refresh_tokens WHERE session_id = (SELECT id FROM '
    . 'sessions WHERE user_id = ? AND kind = \'signup\') AND used_at IS NOT '
    . 'NULL) x)', undef, $u->{id});
ok($dbh_rows >= 2, "used tokens moved out of the grace window ($dbh_rows)");
$res = refresh($u->{refresh});
error_ok($res, 401, 'token_reused', 'reuse after the grace window');
is($res->headers->header('WWW-Authenticate'), 'Bearer',
    'token_reused: WWW-Authenticate: Bearer');
error_ok(refresh($t1->{refresh_token}), 401, 'unauthenticated',
    'the newest refresh token of the family is revoked too');
error_ok(req(GET => '/api/v1/me', H(bearer($t1->{access_token}))), 401,
    'unauthenticated', 'the family\'s access token answers 401 at once');
is(db_row('SELECT revoked_reason FROM sessions WHERE user_id = ? AND '
    . 'kind = \'signup\'', $u->{id})->{revoked_reason}, 'reuse',
    'the session is revoked for reuse');

# Unknown, malformed and expired refresh tokens.
error_ok(refresh('tgr_' . ('A' x 43)), 401, 'unauthenticated',
    'unknown refresh token');
# Contract section 3 (amended): anything but a live refresh token, even a
# malformed one or an access token, is 401 unauthenticated.
error_ok(refresh('x'), 401, 'unauthenticated', 'malformed refresh token');
error_ok(refresh($u->{access}), 401, 'unauthenticated',
    'an access token as the refresh token');
error_ok(refresh(''), 401, 'unauthenticated', 'an empty refresh token');
error_ok(jpost('/api/v1/auth/refresh', {}), 422, 'validation_failed',
    'no refresh token');
my $l = login($u->{email}, $u->{password});
is($l->code, 200, 'login again');
my $lt = eval { $l->json->{tokens} } // {};
my $sid = db_row('SELECT session_id FROM refresh_tokens rt JOIN sessions s '
    . 'ON s.id = rt.session_id WHERE s.user_id = ? AND s.kind = ? AND '
    . 's.revoked_at IS NULL ORDER BY rt.issued_at DESC LIMIT 1', $u->{id},
    'password')->{session_id};
$dbh->do('UPDATE refresh_tokens SET expires_at = UTC_TIMESTAMP(6) - '
    . 'INTERVAL 1 SECOND WHERE session_id = ?', undef, $sid);
error_ok(refresh($lt->{refresh_token}), 401, 'token_expired',
    'expired refresh token');

# Logout with a refresh token revokes that session.
$l = login($u->{email}, $u->{password});
my $lt2 = eval { $l->json->{tokens} } // {};
is(jpost('/api/v1/auth/logout', { refresh_token => $lt2->{refresh_token} })
    ->code, 204, 'logout {refresh_token}: 204');
error_ok(req(GET => '/api/v1/me', H(bearer($lt2->{access_token}))), 401,
    'unauthenticated', 'its access token stops at once');
error_ok(refresh($lt2->{refresh_token}), 401, 'unauthenticated',
    'its refresh token stops');
error_ok(jpost('/api/v1/auth/logout', undef), 401, 'unauthenticated',
    'logout with nothing');

# The sessions list.
my $a = eval { login($u->{email}, $u->{password}, 'User-Agent' => 'test-a/1')
    ->json->{tokens} } // {};
my $b = eval { login($u->{email}, $u->{password}, 'User-Agent' => 'test-b/1')
    ->json->{tokens} } // {};
$res = req(GET => '/api/v1/sessions', H(bearer($a->{access_token})));
is($res->code, 200, 'sessions: 200');
my $list = eval { $res->json } // [];
is(ref $list, 'ARRAY', 'sessions: an array');
my @cur = grep { $_->{current} } @$list;
is(scalar @cur, 1, 'exactly one session is current');
is($cur[0]{user_agent}, 'test-a/1', 'current session: its user agent');
ok(exists $cur[0]{client_name} && !defined $cur[0]{client_name},
    'client_name null');
for my $f (qw(id created_at last_used_at user_agent client_name current)) {
	ok(exists $cur[0]{$f}, "session has $f");
}
my ($other) = grep { ($_->{user_agent} // '') eq 'test-b/1' } @$list;
ok($other, 'the other session is listed');
my $gone = sid_of($lt2->{access_token});
ok($gone && !grep({ $_->{id} eq $gone } @$list),
    'a logged-out session is not listed');

# Revoking one session.
$res = req(DELETE => "/api/v1/sessions/$other->{id}", H(bearer($a->{access_token})));
is($res->code, 204, 'DELETE /sessions/{id}: 204');
error_ok(req(GET => '/api/v1/me', H(bearer($b->{access_token}))), 401,
    'unauthenticated', 'the revoked session\'s token stops at once');
is(me_code($a->{access_token}), 200, 'the calling session goes on');
error_ok(req(DELETE => '/api/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA',
    H(bearer($a->{access_token}))), 404, 'not_found', 'unknown session');

# Someone else's session, and an API key.
my $v = signup(tag => 'other');
my $vsid = db_row('SELECT id FROM sessions WHERE user_id = ?', $v->{id})->{id};
error_ok(req(DELETE => "/api/v1/sessions/$vsid", H(bearer($a->{access_token}))),
    403, 'forbidden', 'another user\'s session');
is(me_code($v->{access}), 200, 'and it still works');
error_ok(req(GET => '/api/v1/sessions', H(bearer($u->{key}))), 403,
    'forbidden', 'sessions with an API key');

done_testing;
