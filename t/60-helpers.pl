# Helpers for the page and admin tests (t/6x-*.t): a browser-like user
# agent with a cookie jar, its CSRF field, forms posted with an Origin,
# users made through the JSON API, and the admin's access token.
# Loaded with `require "./t/60-helpers.pl"` (not a test: prove runs *.t).

use strict;
use warnings;

use Test::More;
use Mojo::JSON qw(encode_json);
use TG;

# A new "browser": a user agent with its own cookie jar, no redirects.
sub browser {
	my $ua = ua();
	$ua->cookie_jar(Mojo::UserAgent::CookieJar->new);
	return $ua;
}

# GETs a path with a browser; returns the response.
sub bget {
	my ($ua, $path, $headers) = @_;
	return $ua->get(base() . $path => $headers // {})->res;
}

# The hidden csrf field of an HTML body, or undef.
sub csrf_of {
	my ($html) = @_;
	return $html =~ /name="csrf" value="([0-9a-f]+)"/ ? $1 : undef;
}

# The CSRF field value for a browser (fetching /login once for the cookie).
sub csrf {
	my ($ua) = @_;
	return csrf_of(bget($ua, '/login')->body);
}

# POSTs a form from the site's own origin; adds the CSRF field unless
# the fields say csrf => undef.  Returns the response.
sub bpost {
	my ($ua, $path, $fields, $headers) = @_;
	my %f = %{ $fields // {} };
	if (!exists $f{csrf}) {
		$f{csrf} = csrf($ua);
	} elsif (!defined $f{csrf}) {
		delete $f{csrf};
	}
	return $ua->post(base() . $path => { Origin => base(), %{ $headers // {} } }
	    => form => \%f)->res;
}

# The path of a redirect's Location (made relative to the base).
sub location {
	my ($res) = @_;
	my $l = $res->headers->location // '';
	my $b = base();
	$l =~ s/^\Q$b\E//;
	return $l;
}

# A unique email.
sub new_email {
	my ($tag) = @_;
	return sprintf '%s-%d-%d@example.com', $tag // 'p', $$, int rand 1e9;
}

# Makes a user through the JSON API; returns ($email, $password, $json).
sub make_user {
	my ($tag, $name) = @_;
	my $email = new_email($tag);
	my $pw = 'correct horse ' . int(rand 1e6);
	my $res = json_post('/api/v1/auth/signup',
	    { email => $email, password => $pw, name => $name // 'Test User' });
	die 'signup failed: ' . ($res->code // 'no answer') . ' ' . $res->body
	    unless ($res->code // 0) == 201;
	return ($email, $pw, $res->json);
}

# Logs a browser in through the /login form; returns the response.
sub page_login {
	my ($ua, $email, $pw, $next) = @_;
	return bpost($ua, '/login', { username => $email, password => $pw,
	    defined $next ? (next => $next) : () },
	    { 'X-Forwarded-For' => '127.0.60.' . (1 + int rand 250) });
}

# An access token of the dev stack's admin (TG_ADMIN_EMAIL/PASSWORD).
sub admin_token {
	my $res = json_post('/api/v1/auth/login',
	    { email => $ENV{TG_ADMIN_EMAIL}, password => $ENV{TG_ADMIN_PASSWORD} },
	    { 'X-Forwarded-For' => '127.0.61.1' });
	die 'admin login failed: ' . ($res->code // 'no answer')
	    unless ($res->code // 0) == 200;
	return $res->json->{tokens}{access_token};
}

# A throwaway admin of this test file (its own API rate window, so the
# files do not share the stack admin's 120 calls a minute).  Returns
# ($token, $id, $email); drop it with drop_user($id).
sub temp_admin {
	my ($email, undef, $j) = make_user('tmp-admin', 'Temporary Admin');
	dbh()->do("UPDATE users SET role = 'admin' WHERE id = ?", undef, $j->{user}{id});
	return ($j->{tokens}{access_token}, $j->{user}{id}, $email);
}

sub drop_user {
	my ($id) = @_;
	dbh()->do('DELETE FROM users WHERE id = ?', undef, $id);
}

# An API call with a bearer token: METHOD, path, token, optional JSON body.
sub api {
	my ($method, $path, $token, $body) = @_;
	return req($method => $path, {
	    Authorization => "Bearer $token",
	    defined $body ? ('Content-Type' => 'application/json') : () },
	    defined $body ? encode_json($body) : undef);
}

# Asserts the security headers of an HTML page.
sub html_headers_ok {
	my ($res, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $h = $res->headers;
	like($h->content_type // '', qr{^text/html}, "$name: text/html");
	my $csp = $h->header('Content-Security-Policy') // '';
	like($csp, qr/frame-ancestors 'none'/, "$name: CSP frame-ancestors");
	unlike($csp, qr/unsafe-inline/, "$name: CSP without unsafe-inline");
	is($h->header('X-Content-Type-Options'), 'nosniff', "$name: nosniff");
	is($h->header('Referrer-Policy'), 'no-referrer', "$name: no-referrer");
	like($h->header('Strict-Transport-Security') // '', qr/max-age=/,
	    "$name: HSTS");
	unlike($res->body // '', qr/<script|\sstyle="/i,
	    "$name: no inline script or style");
}

1;
