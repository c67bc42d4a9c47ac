#!/usr/bin/perl
# Trusted tokens at the gate (contract section 3, "More ways in", and
# section 7): with a [trust NAME] section (the fake OpenID provider of
# t/fakes/oidc.pl, named through TOLLGATE_TRUST_FAKEIDP_* on a restart of
# tollgated), a token of that issuer passes /_tollgate/check through
# nginx as its mapped tollgate user, with that user's plan, rate limit
# and credits, exactly.  Refused: a wrong issuer, audience or key, alg
# "none", HS256 keyed with the public key, an expired token, an unknown
# kid; after the issuer rotates its keys, a token of the new kid passes.
# A disabled user's trusted token is 403 account_disabled.

use strict;
use warnings;
use lib 't/lib', 't/fakes';

use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use Mojo::JSON qw(encode_json);
use TG qw(:DEFAULT restart_tollgated);
use TGGate;
use Fakes qw(fake_start fake_post fake_port fake_id_token);

my $ISS = 'http://127.0.0.1:' . fake_port('oidc');
my $AUD = 'tollgate-gate';
my $dbh = gdb();
my @made;


fake_start('oidc');
# An issuer whose JWKS URL accepts connections and never answers.
my $silent = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
    Listen => 5, ReuseAddr => 1) or die "listen: $!";
my $SLOW = 'http://127.0.0.1:' . $silent->sockport;
ok(restart_tollgated(TOLLGATE_TRUST_FAKEIDP_ISSUER => $ISS,
    TOLLGATE_TRUST_FAKEIDP_AUDIENCE => $AUD,
    TOLLGATE_TRUST_FAKEIDP_JWKS_URL => "$ISS/jwks",
    TOLLGATE_TRUST_SLOW_ISSUER => "$SLOW/slow",
    TOLLGATE_TRUST_SLOW_AUDIENCE => $AUD,
    TOLLGATE_TRUST_SLOW_JWKS_URL => "$SLOW/jwks"),
    'tollgated restarted with [trust fakeidp] and [trust slow]');
END {
	my $st = $?;
	$dbh->do('DELETE FROM users WHERE id = ?', undef, $_) for @made;
	restart_tollgated();
	$? = $st;
}

my $rsa = fake_post('oidc', '/_fake/keys', {})->{signing};

# A token of the fake issuer: claims merged over good ones.
sub tok {
	return fake_id_token(iss => $ISS, aud => $AUD, kid => $rsa,
	    sub => 'g' . int(rand 1e9), @_);
}

sub gate {
	my ($path, $t) = @_;
	return req(GET => $path, bearer($t));
}

sub upstream { return eval { $_[0]->json } // {} }

sub uid_of {
	my ($s) = @_;
	my $r = $dbh->selectrow_hashref('SELECT user_id FROM external_ids WHERE '
	    . 'provider = ? AND subject = ?', undef, 'trust:fakeidp', $s);
	push @made, $r->{user_id} if $r;
	return $r ? $r->{user_id} : undef;
}

sub refused {
	my ($t, $name, $code) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	error_ok(gate('/demo/echo', $t), 401, $code // 'unauthenticated',
	    "the gate: $name");
}

# --- accepted ----------------------------------------------------------------
my $sub = 'gate-' . int(rand 1e9);
my $res = gate('/demo/echo', tok(sub => $sub, claims => {
    email => "$sub\@example.com", email_verified => \1 }));
is($res->code, 200, 'a trusted token passes the gate');
my $uid = uid_of($sub);
ok($uid, 'its subject is mapped to a tollgate user');
my $up = upstream($res);
is($up->{user_id}, $uid, 'X-Tollgate-User-Id: the mapped user');
is($up->{plan}, 'trial', 'X-Tollgate-Plan: that user\'s plan');
is($up->{credits_remaining}, 10, 'X-Tollgate-Credits-Remaining');
is($res->headers->header('X-RateLimit-Limit'), 10, 'the plan\'s rate');
is($up->{authorization}, undef, 'the upstream does not get the token');
my $t2 = tok(sub => $sub);
is(upstream(gate('/demo/echo', $t2))->{user_id}, $uid,
    'another token of the subject: the same user');
is(upstream(gate('/demo/echo', $t2))->{user_id}, $uid,
    'the same token again (remembered)');

# --- refused -------------------------------------------------------------------
refused(tok(sub => $sub, claims => { iss => "$ISS/other" }),
    'a wrong issuer');
refused('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln',
    'a token that names no issuer');
refused('not-a-token-at-all', 'garbage');
refused(tok(sub => $sub, claims => { aud => 'someone-else' }),
    'a wrong audience');
refused(tok(sub => $sub, claims => { exp => time - 3600 }), 'expired',
    'token_expired');
refused(tok(sub => $sub, alg => 'none'), 'alg none');
refused(tok(sub => $sub, alg => 'HS256'),
    'HS256 keyed with the issuer\'s public key');
my $rogue = fake_post('oidc', '/_fake/keys', { rotate => 'RSA',
    drop => [] })->{signing};
fake_post('oidc', '/_fake/keys', { drop => [$rogue] });
refused(tok(sub => $sub, kid => $rogue, header => { kid => $rsa }),
    'a published kid, signed by another key (a wrong key)');
sleep 1.2;
refused(tok(sub => $sub, kid => $rogue), 'an unknown kid');

# --- rotation: the issuer's new key, fetched by its kid -----------------------
my $ec = fake_post('oidc', '/_fake/keys', { rotate => 'EC',
    drop => [$rsa] })->{signing};
sleep 1.2;
my $new = tok(sub => $sub, kid => $ec);
# Every gate worker fetches the new keys on its own first sight of the
# kid; a worker that looked less than a second before waits its turn.
my $ok = wait_for(sub { gate('/demo/echo', $new)->code == 200 }, 5);
ok($ok, 'after rotation: a token of the new ES256 kid passes');
is(upstream(gate('/demo/echo', $new))->{user_id}, $uid, 'the same user');
refused(tok(sub => $sub, kid => $ec, alg => 'HS256'),
    'HS256 keyed with the EC public key');
sleep 1.2;
refused(tok(sub => $sub, kid => $rogue), 'an unknown kid after rotation');

# --- the rate limit, exactly ---------------------------------------------------
my $rsub = 'rate-' . int(rand 1e9);
my $rt = tok(sub => $rsub, kid => $ec);
is(req(GET => '/api/v1/me', bearer($rt))->code, 200,
    'first sight in the JSON API (the gate counts nothing)');
my $ruid = uid_of($rsub);
on_plan({ id => $ruid }, test_plan(rate => 4, credits => 0));
sleep 0.3;
my @codes = map { gate('/demo/echo', $rt)->code } 1 .. 5;
is_deeply(\@codes, [200, 200, 200, 200, 429],
    'a plan of 4 a minute: 4 pass, the fifth is 429');
$res = gate('/demo/echo', $rt);
error_ok($res, 429, 'rate_limited', 'and the next');
is($res->headers->header('X-RateLimit-Limit'), 4, 'X-RateLimit-Limit: 4');
is($res->headers->header('X-RateLimit-Remaining'), 0, 'none remaining');

# --- credits, exactly ----------------------------------------------------------
my $csub = 'cred-' . int(rand 1e9);
my $ct = tok(sub => $csub, kid => $ec);
is(req(GET => '/api/v1/me', bearer($ct))->code, 200, 'first sight');
my $cuid = uid_of($csub);
on_plan({ id => $cuid }, test_plan(rate => 1000, credits => 5));
sleep 0.3;
my @left;
for (1 .. 5) {
	$res = gate('/demo/spend', $ct);
	push @left, $res->code == 200 ? upstream($res)->{credits_remaining} :
	    'refused ' . $res->code;
}
is_deeply(\@left, [4, 3, 2, 1, 0], '5 credits: 5 spends, each counted');
error_ok(gate('/demo/spend', $ct), 403, 'quota_exceeded', 'the sixth');
is($dbh->selectrow_array("SELECT COUNT(*) FROM credit_ledger WHERE "
    . "user_id = ? AND kind = 'spend'", undef, $cuid), 5,
    'five spends in the ledger');

# --- /api/v1/check: a trusted token given to a service ------------------------
my $out = `$ENV{TG_BUILD}/src/tollgatectl -c $ENV{TG_CONF} service-key create svc77_$$ 2>&1`;
my ($skey) = $out =~ /(tgs_\S+)\s*\z/;
ok($skey, 'a service key') or diag($out);
END { $dbh->do('DELETE FROM service_keys WHERE name = ?', undef, "svc77_$$") }

sub check {
	my ($body) = @_;
	my $r = req(POST => '/api/v1/check', { 'Content-Type' => 'application/json',
	    Authorization => "Bearer $skey" }, encode_json($body));
	return ($r, eval { $r->json } // {});
}

my ($cr, $cj) = check({ credential => $new, meter => 'api_calls', cost => 1 });
is($cr->code, 200, '/api/v1/check with a trusted token: 200');
ok($cj->{allowed}, 'allowed');
is($cj->{user_id}, $uid, 'for the mapped user');
is($cj->{plan}, 'trial', 'with its plan');
($cr, $cj) = check({ credential => $ct, meter => 'credits', cost => 1 });
ok(!$cj->{allowed}, 'the credits user has none left there either');
is($cj->{code}, 'quota_exceeded', 'quota_exceeded');
my $csub2 = 'check-' . int(rand 1e9);
($cr, $cj) = check({ credential => tok(sub => $csub2, kid => $ec),
    meter => 'api_calls' });
ok($cj->{allowed}, 'a subject first seen at /api/v1/check: allowed');
is($cj->{user_id}, uid_of($csub2), 'as its new user');
for my $c ([tok(sub => $sub, kid => $ec, claims => { aud => 'x' }),
    'unauthenticated', 'a wrong audience'],
    [tok(sub => $sub, kid => $ec, alg => 'HS256'), 'unauthenticated',
    'HS256 with the public key'],
    [tok(sub => $sub, kid => $ec, claims => { exp => time - 3600 }),
    'token_expired', 'expired']) {
	($cr, $cj) = check({ credential => $c->[0] });
	is($cr->code, 200, "/api/v1/check, $c->[2]: 200");
	ok(!$cj->{allowed}, "$c->[2]: not allowed");
	is($cj->{code}, $c->[1], "$c->[2]: $c->[1]");
}

# --- an issuer whose keys cannot be fetched --------------------------------------
# The gate worker waits for a JWKS fetch: it is given up after 3 s (not
# curl's usual 15), and the check is 503, not a hang.
my $t0 = Time::HiRes::time();
$res = gate('/demo/echo', tok(sub => $sub, claims => { iss => "$SLOW/slow" }));
my $took = Time::HiRes::time() - $t0;
error_ok($res, 503, 'unavailable', 'an issuer whose JWKS never answers: 503');
cmp_ok($took, '<', 6, sprintf('within the fetch limit (%.1f s)', $took));
is(gate('/demo/echo', $new)->code, 200, 'the other issuer\'s tokens still pass');

# --- a disabled user -------------------------------------------------------------
$dbh->do('UPDATE users SET disabled_at = UTC_TIMESTAMP(6) WHERE id = ?',
    undef, $uid);
ok(wait_for(sub { gate('/demo/echo', $new)->code == 403 }, 5),
    'the disabled user\'s remembered token: 403');
error_ok(gate('/demo/echo', $new), 403, 'account_disabled',
    'account_disabled');
error_ok(gate('/demo/echo', tok(sub => $sub, kid => $ec)), 403,
    'account_disabled', 'and a new token of that subject');
($cr, $cj) = check({ credential => $new });
ok(!$cj->{allowed}, '/api/v1/check: the disabled user is not allowed');
is($cj->{code}, 'account_disabled', 'account_disabled');

done_testing();
