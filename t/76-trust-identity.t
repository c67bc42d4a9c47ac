#!/usr/bin/perl
# Who a trusted token or an OpenID subject is (contract section 3, "More
# ways in"), beyond t/57 and t/58:
#
# - one trial per person: an account made through a trusted subject or
#   an OpenID subject (without an address to carry the trial history),
#   deleted and made again through the same subject, starts with its
#   trial over, as for an email or a GitHub id; another subject still
#   gets one;
# - the second factor (docs/identity.md): a trusted token never stands
#   in for TOTP.  For an account with TOTP on it counts in the JSON API
#   as an API key does (the reads; 403 forbidden for changes), while an
#   account without TOTP may use the whole JSON API with it.

use strict;
use warnings;
use lib 't/lib', 't/fakes';

use Test::More;
use Mojo::URL;
use Mojo::UserAgent::CookieJar;
use TG qw(:DEFAULT restart_tollgated);
use TGMail;
use TGAccount;
use Fakes qw(fake_start fake_post fake_port fake_id_token);
require './t/70-helpers.pl';

my $ISS = 'http://127.0.0.1:' . fake_port('oidc');
my $AUD = 'tollgate-api';
my $dbh = dbh();
my @made;


sink_start();
fake_start('oidc');
ok(restart_tollgated(TOLLGATE_TRUST_FAKEIDP_ISSUER => $ISS,
    TOLLGATE_TRUST_FAKEIDP_AUDIENCE => $AUD,
    TOLLGATE_TRUST_FAKEIDP_JWKS_URL => "$ISS/jwks",
    TOLLGATE_OIDC_FAKE_ISSUER => $ISS,
    TOLLGATE_OIDC_FAKE_CLIENT_ID => 'oidc-client',
    TOLLGATE_OIDC_FAKE_CLIENT_SECRET => 'oidc-secret'),
    'tollgated restarted with [trust fakeidp] and [oidc fake]');
END {
	my $st = $?;
	$dbh->do('DELETE FROM users WHERE id = ?', undef, $_) for @made;
	$dbh->do("DELETE FROM trial_history WHERE kind = 'oidc' AND "
	    . "subject LIKE '%|t76-%'");
	restart_tollgated();
	$? = $st;
}

my $rsa = fake_post('oidc', '/_fake/keys', {})->{signing};

sub tok { return fake_id_token(iss => $ISS, aud => $AUD, kid => $rsa, @_) }

sub me {
	my ($t) = @_;
	my $res = req(GET => '/api/v1/me', { bearer($t) });
	my $j = eval { $res->json } // {};
	push @made, $j->{user}{id} if $j->{user}{id};
	return ($res, $j);
}

sub trial_over {
	my ($uid) = @_;
	return db_row('SELECT trial_ends_at <= UTC_TIMESTAMP(6) AS o FROM users '
	    . 'WHERE id = ?', $uid)->{o};
}

# --- one trial per trusted subject -----------------------------------------
my $sub = 't76-' . int(rand 1e9);
my ($res, $j) = me(tok(sub => $sub));
is($res->code, 200, 'a trusted subject without an address: an account');
my $first = $j->{user}{id};
is($j->{user}{plan}, 'trial', 'on its trial');
ok(!trial_over($first), 'the trial runs');
$dbh->do('DELETE FROM users WHERE id = ?', undef, $first);
($res, $j) = me(tok(sub => $sub));
is($res->code, 200, 'the same subject after the account was deleted');
my $second = $j->{user}{id} // '';
isnt($second, $first, 'a new account');
isnt($j->{user}{plan}, 'trial', 'not on a trial');
ok(trial_over($second), 'its trial is over: one trial per subject');
($res, $j) = me(tok(sub => "$sub-other"));
is($j->{user}{plan}, 'trial', 'another subject still gets a trial');

# --- one trial per OpenID subject ------------------------------------------
sub browser {
	my $ua = ua();
	$ua->cookie_jar(Mojo::UserAgent::CookieJar->new);
	return $ua;
}

# Signs in at [oidc fake] as a person with subject $s and no verified
# address; returns the account's id (or undef).
sub oidc_signin {
	my ($s) = @_;
	my $key = 'p' . int rand 1e9;
	fake_post('oidc', '/_fake/users', { $key => { sub => $s,
	    email => "$key\@example.com", name => 'Open Id',
	    email_verified => 0 } });
	my $ua = browser();
	my $r = $ua->get(base() . '/api/v1/auth/oidc/fake')->res;
	return undef unless $r->code == 302;
	my $auth = Mojo::URL->new($r->headers->location);
	$auth->query->merge(fake_user => $key);
	$r = $ua->get($auth)->res;
	return undef unless $r->code == 302;
	$r = $ua->get(Mojo::URL->new($r->headers->location))->res;
	return undef unless $r->code == 302;
	my $u = db_row('SELECT user_id FROM external_ids WHERE provider = ? '
	    . 'AND subject = ?', 'oidc:fake', $s);
	push @made, $u->{user_id} if $u;
	return $u ? $u->{user_id} : undef;
}

my $osub = 't76-o' . int(rand 1e9);
my $o1 = oidc_signin($osub);
ok($o1, 'an OpenID sign-in without a verified address: an account');
ok($o1 && !trial_over($o1), 'with its trial');
$dbh->do('DELETE FROM users WHERE id = ?', undef, $o1) if $o1;
my $o2 = oidc_signin($osub);
ok($o2 && $o2 ne ($o1 // ''), 'the same subject again: a new account');
ok($o2 && trial_over($o2), 'whose trial is over');

# --- the second factor -----------------------------------------------------
# A verified account with TOTP on, linked to a trusted subject by its
# verified address.
my $u = signup(tag => 't76-totp');
push @made, $u->{id};
verify_all($u);
totp_on($u);
my $tsub = 't76-t' . int(rand 1e9);
my $t = tok(sub => $tsub, claims => { email => $u->{email},
    email_verified => \1 });
($res, $j) = me($t);
is($res->code, 200, 'TOTP on: GET /api/v1/me with a trusted token');
is($j->{user}{id}, $u->{id}, 'linked by the verified address');
is(req(GET => '/api/v1/usage', { bearer($t) })->code, 200,
    'GET /api/v1/usage too (a read an API key may do)');
error_ok(jreq(PATCH => '/api/v1/me', { name => 'Changed' }, bearer($t)), 403,
    'forbidden', 'TOTP on: PATCH /api/v1/me with a trusted token');
error_ok(jpost('/api/v1/api-keys', { name => 'k' }, bearer($t)), 403,
    'forbidden', 'TOTP on: no API key made with a trusted token');
error_ok(req(GET => '/api/v1/sessions', { bearer($t) }), 403, 'forbidden',
    'TOTP on: not the sessions either');
isnt(db_row('SELECT name FROM users WHERE id = ?', $u->{id})->{name},
    'Changed', 'the name is unchanged');

# Without TOTP the whole JSON API.
my $plain = tok(sub => "t76-plain" . int(rand 1e9));
($res, $j) = me($plain);
is($res->code, 200, 'no TOTP: a trusted token');
is(jreq(PATCH => '/api/v1/me', { name => 'Plain Person' },
    bearer($plain))->code, 200, 'no TOTP: PATCH /api/v1/me works');

done_testing();
