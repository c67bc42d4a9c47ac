#!/usr/bin/perl
# A fake of GitHub's OAuth app endpoints and user API for tollgate's
# tests, checking what GitHub checks (contract section 12):
#
#   GET  /login/oauth/authorize   client_id, redirect_uri, state, scope,
#        code_challenge, code_challenge_method=S256; the browser is sent
#        back to redirect_uri with code and state.  Test switches in the
#        query: fake_user=<key> (who signs in), fake_deny=1 (the person
#        refuses: error=access_denied).
#   POST /login/oauth/access_token  code, client_id, client_secret,
#        redirect_uri, code_verifier (form); answers JSON only when asked
#        with Accept: application/json.  A code works once and only with
#        the verifier whose S256 challenge came with it; errors are HTTP
#        200 with {"error": ...} as at GitHub.
#   GET  /api/user, /api/user/emails  with Authorization: Bearer <token>.
#
# For the tests: GET /_fake/ping, POST /_fake/users {key: {id, login,
# name, emails: [{email, primary, verified}]}}, POST /_fake/mode {down:
# 0|1} (token endpoint and API answer 503), GET /_fake/state (the token
# requests as received, codes, tokens).
#
# With FAKE_GITHUB_INTERACTIVE=1 (contrib/devstack up runs it so), an
# authorize request without fake_user shows a page that asks who signs
# in (a login and an email, taken as verified and primary), so a person
# can try GitHub sign-in on a laptop.

use strict;
use warnings;

use Mojolicious::Lite -signatures;
use Digest::SHA qw(sha256);
use MIME::Base64 qw(encode_base64url);

my $CLIENT_ID = $ENV{FAKE_GITHUB_CLIENT_ID} // 'devstack-client';
my $SECRET = $ENV{FAKE_GITHUB_SECRET} // 'devstack-secret';

my %users;		# key => profile
my %codes;		# code => {challenge, redirect_uri, user, used}
my %tokens;		# token => user key
my @token_requests;
my @authorize_requests;
my %mode = (down => 0);
my $INTERACTIVE = $ENV{FAKE_GITHUB_INTERACTIVE};

sub rid { my @c = ('a' .. 'z', '0' .. '9'); join '', map { $c[rand @c] } 1 .. 20 }

get '/_fake/ping' => sub ($c) { $c->render(json => { ok => 1 }) };
post '/_fake/users' => sub ($c) {
	my $u = $c->req->json // {};
	$users{$_} = $u->{$_} for keys %$u;
	$c->render(json => { users => [sort keys %users] });
};
post '/_fake/mode' => sub ($c) {
	my $m = $c->req->json // {};
	$mode{$_} = $m->{$_} for keys %$m;
	$c->render(json => \%mode);
};
get '/_fake/state' => sub ($c) {
	$c->render(json => { token_requests => \@token_requests,
	    authorize_requests => \@authorize_requests, codes => \%codes });
};

get '/login/oauth/authorize' => sub ($c) {
	my %q = map { $_ => $c->param($_) } qw(client_id redirect_uri state
	    scope code_challenge code_challenge_method fake_user fake_deny);
	push @authorize_requests, \%q;
	if ($INTERACTIVE && !defined $q{fake_user} && !$q{fake_deny}) {
		my $email = $c->param('fake_email') // '';
		unless ($email =~ /^[^\s@]+@[^\s@]+\z/) {
			my $hidden = join '', map {
			    sprintf '<input type=hidden name="%s" value="%s">', $_,
			    Mojo::Util::xml_escape($q{$_} // '') } qw(client_id
			    redirect_uri state scope code_challenge
			    code_challenge_method);
			return $c->render(format => 'html', text =>
			    '<!doctype html><title>Fake GitHub</title>'
			    . '<h1>Fake GitHub (dev stack)</h1>'
			    . '<p>Sign in as anyone: nothing is checked.</p>'
			    . '<form method=get action="/login/oauth/authorize">'
			    . $hidden . '<p><label>GitHub login <input name='
			    . 'fake_login value="octocat"></label></p><p><label>'
			    . 'Verified email <input name=fake_email type=email '
			    . 'required></label></p><button>Authorize</button> '
			    . '<button name=fake_deny value=1>Cancel</button>'
			    . '</form>');
		}
		my $login = $c->param('fake_login') || (split /@/, $email)[0];
		my $key = 'dev:' . lc $email;
		$users{$key} //= { id => hex(substr(Digest::SHA::sha256_hex(lc $email),
		    0, 7)), login => $login, name => $login,
		    emails => [{ email => $email, primary => \1,
		    verified => \1 }] };
		$q{fake_user} = $key;
	}
	return $c->render(status => 400, text => 'unknown client_id')
	    unless ($q{client_id} // '') eq $CLIENT_ID;
	return $c->render(status => 400, text => 'PKCE S256 required')
	    unless ($q{code_challenge_method} // '') eq 'S256'
	    && length($q{code_challenge} // '') == 43;
	return $c->render(status => 400, text => 'no redirect_uri')
	    unless $q{redirect_uri};
	my $back = Mojo::URL->new($q{redirect_uri});
	if ($q{fake_deny}) {
		$back->query(error => 'access_denied', error_description =>
		    'The user has denied your application access.',
		    state => $q{state});
		return $c->redirect_to($back);
	}
	my $code = rid();
	$codes{$code} = { challenge => $q{code_challenge}, redirect_uri =>
	    $q{redirect_uri}, user => $q{fake_user} // 'default', used => 0 };
	$back->query(code => $code, state => $q{state});
	$c->redirect_to($back);
};

sub token_answer ($c, $body) {
	my $accept = $c->req->headers->accept // '';
	return $c->render(json => $body) if $accept =~ m{application/json};
	# GitHub's default answer is a form.
	$c->render(text => Mojo::Parameters->new(%$body)->to_string,
	    format => 'txt');
}

post '/login/oauth/access_token' => sub ($c) {
	my $p = $c->req->body_params->to_hash;
	push @token_requests, { params => $p,
	    accept => $c->req->headers->accept,
	    content_type => $c->req->headers->content_type };
	return $c->render(status => 503, text => 'down') if $mode{down};
	my $err = sub { token_answer($c, { error => $_[0],
	    error_description => $_[1] }) };
	return $err->('incorrect_client_credentials', 'bad client')
	    unless ($p->{client_id} // '') eq $CLIENT_ID
	    && ($p->{client_secret} // '') eq $SECRET;
	my $code = $codes{ $p->{code} // '' };
	return $err->('bad_verification_code', 'The code passed is '
	    . 'incorrect or expired.') unless $code && !$code->{used};
	$code->{used} = 1;
	return $err->('redirect_uri_mismatch', 'redirect_uri differs')
	    unless ($p->{redirect_uri} // '') eq $code->{redirect_uri};
	return $err->('invalid_grant', 'code_verifier does not match')
	    unless encode_base64url(sha256($p->{code_verifier} // ''))
	    eq $code->{challenge};
	my $token = 'gho_' . rid();
	$tokens{$token} = $code->{user};
	token_answer($c, { access_token => $token, token_type => 'bearer',
	    scope => 'read:user,user:email' });
};

# The API: the bearer token names the user.
under '/api' => sub ($c) {
	if ($mode{down}) {
		$c->render(status => 503, text => 'down');
		return undef;
	}
	my $auth = $c->req->headers->authorization // '';
	my ($tok) = $auth =~ /^Bearer (\S+)$/;
	my $key = defined $tok ? $tokens{$tok} : undef;
	unless (defined $key && $users{$key}) {
		$c->render(status => 401, json => { message =>
		    'Bad credentials' });
		return undef;
	}
	$c->stash(user => $users{$key});
	return 1;
};

get '/user' => sub ($c) {
	my $u = $c->stash('user');
	$c->render(json => { id => $u->{id}, login => $u->{login},
	    name => $u->{name}, email => undef });
};

get '/user/emails' => sub ($c) {
	$c->render(json => $c->stash('user')->{emails} // []);
};

app->start;
