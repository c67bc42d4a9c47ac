#!/usr/bin/perl
# A fake OpenID Connect provider (and token issuer) for tollgate's tests
# (contract section 3, "More ways in"), on loopback, checking what a
# provider checks:
#
#   GET  /.well-known/openid-configuration   discovery: issuer (this
#        server's own URL, or FAKE_OIDC_ISSUER) and the endpoints below.
#   GET  /jwks   the public keys now published (RSA and EC P-256, each
#        with its kid and alg).
#   GET  /authorize   response_type=code, client_id, redirect_uri, scope
#        (with openid), state, nonce, code_challenge,
#        code_challenge_method=S256; the browser is sent back with code
#        and state.  Test switches in the query: fake_user=<key>,
#        fake_deny=1 (error=access_denied).
#   POST /token   grant_type=authorization_code, code, redirect_uri,
#        code_verifier, and the client's id and secret (form or HTTP
#        Basic).  A code works once, only with the verifier of its
#        challenge; answers {access_token, token_type, id_token}.  The ID
#        token is signed with the signing key (RS256 unless told), with
#        iss, aud (the client id), sub, email, email_verified, name,
#        nonce, iat and exp.
#   GET  /userinfo   with Authorization: Bearer <access token>.
#
# For the tests: GET /_fake/ping; POST /_fake/users {key: {sub, email,
# email_verified, name}}; POST /_fake/keys {rotate: "RSA"|"EC"} makes a
# new key, publishes it and signs with it from now on (drop: [kid...]
# unpublishes keys), answering {kids, signing}; POST /_fake/sign {claims,
# kid, alg, header} signs any claims (alg "none", or "HS256" keyed with
# the PEM of a published public key, for the attacks); POST
# /_fake/next_id_token {claims overrides, alg, kid} changes the next ID
# token made; GET /_fake/state (requests as received).
#
# With FAKE_OIDC_INTERACTIVE=1 (contrib/devstack up runs it so), an
# authorize request without fake_user shows a page that asks who signs in
# (an email, taken as verified), so a person can try OpenID sign-in.

use strict;
use warnings;

use Mojolicious::Lite -signatures;
use Crypt::JWT qw(encode_jwt);
use Crypt::PK::ECC;
use Crypt::PK::RSA;
use Digest::SHA qw(sha256 hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use Mojo::JSON qw(encode_json true false);

my $CLIENT_ID = $ENV{FAKE_OIDC_CLIENT_ID} // 'oidc-client';
my $SECRET = $ENV{FAKE_OIDC_SECRET} // 'oidc-secret';

my %users;		# key => {sub, email, email_verified, name}
my %codes;		# code => {...}
my %tokens;		# access token => user key
my @token_requests;
my @authorize_requests;
my %keys;		# kid => {pk, alg, published}
my $signing;		# kid
my $next;		# overrides of the next ID token
my $n = 0;

sub rid { my @c = ('a' .. 'z', '0' .. '9'); join '', map { $c[rand @c] } 1 .. 20 }

sub issuer ($c) {
	return $ENV{FAKE_OIDC_ISSUER} // $c->req->url->to_abs->base->to_string;
}

sub new_key {
	my ($type) = @_;
	my $kid = sprintf 'k%d-%s', ++$n, lc $type;
	my $pk;
	if ($type eq 'EC') {
		$pk = Crypt::PK::ECC->new;
		$pk->generate_key('secp256r1');
	} else {
		$pk = Crypt::PK::RSA->new;
		$pk->generate_key(256, 65537);
	}
	$keys{$kid} = { pk => $pk, alg => $type eq 'EC' ? 'ES256' : 'RS256',
	    published => 1 };
	return $kid;
}
$signing = new_key('RSA');

sub sign {
	my (%o) = @_;
	my $alg = $o{alg} // $keys{$o{kid} // $signing}{alg};
	my $kid = $o{kid} // $signing;
	my %hdr = (kid => $kid, typ => 'JWT', %{ $o{header} // {} });
	if ($alg eq 'none') {
		return encode_base64url(encode_json({ alg => 'none', %hdr }))
		    . '.' . encode_base64url(encode_json($o{claims})) . '.';
	}
	if ($alg =~ /^HS/) {
		# The attack: the public key's PEM as an HMAC secret.
		my $pem = $keys{$kid}{pk}->export_key_pem('public');
		my $h = encode_base64url(encode_json({ alg => $alg, %hdr }));
		my $p = encode_base64url(encode_json($o{claims}));
		return "$h.$p." . encode_base64url(hmac_sha256("$h.$p", $pem));
	}
	if (defined $hdr{alg} && $hdr{alg} ne $alg) {
		# A header that lies about the algorithm: signed by the
		# key's own one, the header saying another.
		my $h = encode_base64url(encode_json(\%hdr));
		my $p = encode_base64url(encode_json($o{claims}));
		my $pk = $keys{$kid}{pk};
		my $sig = $keys{$kid}{alg} eq 'ES256'
		    ? $pk->sign_message_rfc7518("$h.$p", 'SHA256')
		    : $pk->sign_message("$h.$p", 'SHA256', 'v1.5');
		return "$h.$p." . encode_base64url($sig);
	}
	return encode_jwt(payload => $o{claims}, alg => $alg,
	    key => $keys{$kid}{pk}, extra_headers => \%hdr);
}

get '/_fake/ping' => sub ($c) { $c->render(json => { ok => 1 }) };
post '/_fake/users' => sub ($c) {
	my $u = $c->req->json // {};
	$users{$_} = $u->{$_} for keys %$u;
	$c->render(json => { users => [sort keys %users] });
};
post '/_fake/keys' => sub ($c) {
	my $j = $c->req->json // {};
	$keys{$_}{published} = 0 for grep { $keys{$_} } @{ $j->{drop} // [] };
	$signing = new_key($j->{rotate}) if $j->{rotate};
	$c->render(json => { signing => $signing,
	    kids => [sort grep { $keys{$_}{published} } keys %keys] });
};
post '/_fake/sign' => sub ($c) {
	my $j = $c->req->json // {};
	$c->render(json => { token => sign(claims => $j->{claims} // {},
	    kid => $j->{kid}, alg => $j->{alg}, header => $j->{header}) });
};
post '/_fake/next_id_token' => sub ($c) {
	$next = $c->req->json // {};
	$c->render(json => { ok => 1 });
};
get '/_fake/state' => sub ($c) {
	$c->render(json => { token_requests => \@token_requests,
	    authorize_requests => \@authorize_requests });
};

get '/.well-known/openid-configuration' => sub ($c) {
	my $base = $c->req->url->to_abs->base->to_string;
	$c->render(json => {
	    issuer => issuer($c),
	    authorization_endpoint => "$base/authorize",
	    token_endpoint => "$base/token",
	    userinfo_endpoint => "$base/userinfo",
	    jwks_uri => "$base/jwks",
	    response_types_supported => ['code'],
	    subject_types_supported => ['public'],
	    id_token_signing_alg_values_supported => ['RS256', 'ES256'],
	    code_challenge_methods_supported => ['S256'] });
};

get '/jwks' => sub ($c) {
	my @k;
	for my $kid (sort keys %keys) {
		next unless $keys{$kid}{published};
		my $jwk = $keys{$kid}{pk}->export_key_jwk('public', 1);
		push @k, { %$jwk, kid => $kid, alg => $keys{$kid}{alg},
		    use => 'sig' };
	}
	$c->render(json => { keys => \@k });
};

get '/authorize' => sub ($c) {
	my %q = map { $_ => $c->param($_) } qw(response_type client_id
	    redirect_uri scope state nonce code_challenge code_challenge_method
	    fake_user fake_deny);
	push @authorize_requests, \%q;
	if ($ENV{FAKE_OIDC_INTERACTIVE} && !defined $q{fake_user}
	    && !$q{fake_deny}) {
		my $email = $c->param('fake_email') // '';
		unless ($email =~ /^[^\s@]+@[^\s@]+\z/) {
			my $hidden = join '', map {
			    sprintf '<input type=hidden name="%s" value="%s">', $_,
			    Mojo::Util::xml_escape($q{$_} // '') } qw(response_type
			    client_id redirect_uri scope state nonce code_challenge
			    code_challenge_method);
			return $c->render(format => 'html', text =>
			    '<!doctype html><title>Fake OpenID provider</title>'
			    . '<h1>Fake OpenID provider (dev stack)</h1>'
			    . '<p>Sign in as anyone: nothing is checked.</p>'
			    . '<form method=get action="/authorize">' . $hidden
			    . '<p><label>Verified email <input name=fake_email '
			    . 'type=email required></label></p><button>Sign in'
			    . '</button> <button name=fake_deny value=1>Cancel'
			    . '</button></form>');
		}
		my $key = 'dev:' . lc $email;
		$users{$key} //= { sub => 'dev-' . Digest::SHA::sha256_hex(
		    lc $email), email => $email, email_verified => 1,
		    name => (split /@/, $email)[0] };
		$q{fake_user} = $key;
	}
	return $c->render(status => 400, text => 'bad request')
	    unless ($q{response_type} // '') eq 'code'
	    && ($q{client_id} // '') eq $CLIENT_ID
	    && ($q{scope} // '') =~ /\bopenid\b/
	    && ($q{code_challenge_method} // '') eq 'S256'
	    && $q{code_challenge} && $q{state} && $q{nonce} && $q{redirect_uri};
	my $back = Mojo::URL->new($q{redirect_uri});
	if ($q{fake_deny}) {
		$back->query(error => 'access_denied', state => $q{state});
		return $c->redirect_to($back);
	}
	my $code = rid();
	$codes{$code} = { challenge => $q{code_challenge},
	    redirect_uri => $q{redirect_uri}, nonce => $q{nonce},
	    user => $q{fake_user} // '', used => 0 };
	$back->query(code => $code, state => $q{state});
	$c->redirect_to($back);
};

post '/token' => sub ($c) {
	my %p = map { $_ => $c->param($_) } qw(grant_type code redirect_uri
	    code_verifier client_id client_secret);
	my ($bid, $bsecret);
	if (($c->req->headers->authorization // '') =~ /^Basic\s+(\S+)/) {
		($bid, $bsecret) = split /:/, Mojo::Util::b64_decode($1), 2;
	}
	push @token_requests, { %p, basic_id => $bid };
	my $id = $p{client_id} // $bid // '';
	my $secret = $p{client_secret} // $bsecret // '';
	return $c->render(status => 401, json => { error => 'invalid_client' })
	    unless $id eq $CLIENT_ID && $secret eq $SECRET;
	my $code = $codes{$p{code} // ''};
	return $c->render(status => 400, json => { error => 'invalid_grant' })
	    unless ($p{grant_type} // '') eq 'authorization_code' && $code
	    && !$code->{used}
	    && ($p{redirect_uri} // '') eq $code->{redirect_uri}
	    && encode_base64url(sha256($p{code_verifier} // ''))
	    eq $code->{challenge};
	$code->{used} = 1;
	my $u = $users{$code->{user}} // return $c->render(status => 400,
	    json => { error => 'invalid_grant' });
	my $t = rid();
	$tokens{$t} = $code->{user};
	my $now = time;
	my %claims = (iss => issuer($c), aud => $CLIENT_ID, sub => $u->{sub},
	    email => $u->{email}, email_verified => $u->{email_verified}
	    ? true : false, name => $u->{name}, nonce => $code->{nonce},
	    iat => $now, exp => $now + 300);
	my %o;
	if ($next) {
		%claims = (%claims, %{ $next->{claims} // {} });
		delete $claims{$_} for @{ $next->{delete} // [] };
		%o = (alg => $next->{alg}, kid => $next->{kid});
		undef $next;
	}
	$c->render(json => { access_token => $t, token_type => 'Bearer',
	    expires_in => 300, id_token => sign(claims => \%claims, %o) });
};

get '/userinfo' => sub ($c) {
	my ($t) = ($c->req->headers->authorization // '') =~ /^Bearer\s+(\S+)/;
	my $key = defined $t ? $tokens{$t} : undef;
	return $c->render(status => 401, json => { error => 'invalid_token' })
	    unless defined $key;
	my $u = $users{$key};
	$c->render(json => { sub => $u->{sub}, email => $u->{email},
	    email_verified => $u->{email_verified} ? true : false,
	    name => $u->{name} });
};

app->start;
