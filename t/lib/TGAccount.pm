package TGAccount;

# Helpers for the account tests (t/2x): requests that speak for this test
# file's own client address (X-Forwarded-For, which the dev stack's nginx
# trusts from loopback), so the per-address login throttle of one file
# never reaches another; users made by signup, verified through the mail
# the sink receives; the database's view of a user.

use strict;
use warnings;

use Exporter 'import';
use Test::More;
use Mojo::JSON qw(encode_json);
use TG;
use TGMail;

our @EXPORT = qw(addr H jreq jpost bearer signup verified_user verify_all login
    outbox_count db_row new_addr fresh_password throttle_forget);

# This file's client address, random inside 127/8.
our $ADDR = new_addr();

sub new_addr {
	return sprintf '127.%d.%d.%d', 1 + int(rand(250)), int(rand(256)),
	    1 + int(rand(250));
}

sub addr { $ADDR }

# Request headers: this file's address, plus the given ones.
sub H {
	my %h = @_;
	return { 'X-Forwarded-For' => $ADDR, %h };
}

# METHOD PATH with a JSON body (or none when $data is undef).
sub jreq {
	my ($method, $path, $data, %h) = @_;
	return req($method, $path, H(%h)) unless defined $data;
	return req($method, $path, H('Content-Type' => 'application/json', %h),
	    encode_json($data));
}

sub jpost { my ($path, $data, %h) = @_; return jreq(POST => $path, $data, %h) }

sub bearer { return (Authorization => "Bearer $_[0]") }

sub fresh_password { return 'pw-' . int(rand(1e12)) . '-correct-horse' }

# Signs a new user up.  Returns a hash: email, password, id, access,
# refresh, key, res (the response); dies unless the answer is 201.
sub signup {
	my (%o) = @_;
	my $email = $o{email} // unique_email($o{tag} // 'user');
	my $pw = $o{password} // fresh_password();
	my $res = jpost('/api/v1/auth/signup', { email => $email,
	    password => $pw, name => $o{name} // 'Test User' });
	die 'signup failed: ' . ($res->code // 'no answer') . ' '
	    . ($res->body // '') unless ($res->code // 0) == 201;
	my $j = $res->json;
	return { email => $email, password => $pw, id => $j->{user}{id},
	    access => $j->{tokens}{access_token},
	    refresh => $j->{tokens}{refresh_token},
	    key => $j->{api_key}{key}, res => $res };
}

# A user whose address is verified through its mailed link (the sink must
# run).  Returns signup's hash.
sub verified_user {
	my (%o) = @_;
	return verify_all(signup(%o));
}

# Verifies each of the users (signup's hashes) through its mailed link;
# returns them.
sub verify_all {
	my (@u) = @_;
	for my $u (@u) {
		my $m = wait_mail($u->{email},
		    sub { ($_[0]{subject} // '') =~ /verify/i }) or die 'no mail';
		my $res = jpost('/api/v1/auth/verify-email',
		    { token => mail_token($m, '/verify-email') });
		die 'verify failed: ' . ($res->code // '')
		    unless ($res->code // 0) == 200;
	}
	return wantarray ? @u : $u[0];
}

sub login {
	my ($email, $pw, %h) = @_;
	return jpost('/api/v1/auth/login', { email => $email, password => $pw },
	    %h);
}

my $DBH;

# One row of a query, as a hash reference (or undef).
sub db_row {
	my ($sql, @bind) = @_;
	$DBH //= dbh();
	return $DBH->selectrow_hashref($sql, undef, @bind);
}

# Outbox rows of user id (of kind, when given).
sub outbox_count {
	my ($uid, $kind) = @_;
	my $r = defined $kind
	    ? db_row('SELECT COUNT(*) AS n FROM outbox WHERE user_id = ? AND '
	    . 'kind = ?', $uid, $kind)
	    : db_row('SELECT COUNT(*) AS n FROM outbox WHERE user_id = ?', $uid);
	return $r->{n};
}

# Forgets the login failures of these addresses and email/address pairs
# (and per-account counters: accounts => [[kind, id]]), as tollgate keys them (keyed BLAKE2b-256 of the text, hex).
sub throttle_forget {
	my (%o) = @_;
	require Crypt::Mac::BLAKE2b;
	my $key = pack 'H*', conf_get('crypto', 'key');
	my @texts = map { "login-addr|$_" } @{ $o{addrs} // [] };
	for my $p (@{ $o{pairs} // [] }) {
		push @texts, "login|$p->[0]|$p->[1]";
	}
	# Per-account counters: [kind, id], e.g. ['2fa', $email_lc].
	for my $k (@{ $o{accounts} // [] }) {
		push @texts, "account|$k->[0]|$k->[1]";
	}
	$DBH //= dbh();
	for my $t (@texts) {
		my $h = Crypt::Mac::BLAKE2b->new(32, $key)->add($t)->hexmac;
		$DBH->do('DELETE FROM login_failures WHERE key_hash = ?', undef,
		    $h);
	}
}

1;
