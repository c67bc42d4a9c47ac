# Helpers of the second-factor and device tests (t/70-*.t to t/79-*.t),
# loaded with `require './t/70-helpers.pl'` after TG, TGMail, TGAccount.
#
# The TOTP codes are computed here independently of tollgate (and of
# liboath): RFC 4648 base32, RFC 4226 HOTP with Digest::SHA's HMAC-SHA1
# and dynamic truncation, RFC 6238 time steps of 30 seconds, on the
# database's clock (the one tollgate decides on).

use strict;
use warnings;

use Digest::SHA qw(hmac_sha1);
use Mojo::Util qw(url_escape);
use Time::HiRes qw(sleep);

# The bytes of an RFC 4648 base32 text (padding and case ignored).
sub b32_decode {
	my ($s) = @_;
	$s = uc $s;
	$s =~ tr/=//d;
	my $bits = join '', map {
		my $i = index('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', $_);
		die "not base32: $_" if $i < 0;
		sprintf '%05b', $i;
	} split //, $s;
	return pack 'B*', substr($bits, 0, 8 * int(length($bits) / 8));
}

# The six-digit RFC 6238 code of a base32 secret for time step $step.
sub totp_at_step {
	my ($secret32, $step) = @_;
	my $msg = pack 'NN', int($step / 2**32), $step % 2**32;
	my $h = hmac_sha1($msg, b32_decode($secret32));
	my $off = ord(substr $h, -1) & 0x0f;
	my $n = (unpack('N', substr $h, $off, 4) & 0x7fffffff) % 1_000_000;
	return sprintf '%06d', $n;
}

# The database's clock, unix seconds (with fractions).
sub db_now {
	return dbh()->selectrow_array('SELECT UNIX_TIMESTAMP(UTC_TIMESTAMP(6))');
}

# The current time step, after waiting (when needed) until at least
# $margin seconds of it are left, so that assertions about neighbouring
# steps cannot straddle a step boundary.
sub fresh_step {
	my ($margin) = @_;
	$margin //= 8;
	my $t = db_now();
	my $left = 30 - ($t - 30 * int($t / 30));
	if ($left < $margin) {
		sleep $left + 0.2;
		$t = db_now();
	}
	return int($t / 30);
}

sub form_body { join '&', map { "$_->[0]=" . url_escape($_->[1]) } @_ }

my %FORM = ('Content-Type' => 'application/x-www-form-urlencoded');
sub form_headers { return H(%FORM, @_) }

# Turns TOTP on for user $u (signup's hash): enrols, confirms with the
# code of the current step.  Returns (secret, recovery codes, step).
sub totp_on {
	my ($u) = @_;
	my $res = jpost('/api/v1/me/totp', undef, bearer($u->{access}));
	die 'enrol: ' . $res->code unless $res->code == 200;
	my $secret = $res->json->{secret};
	my $step = fresh_step(4);
	$res = jpost('/api/v1/me/totp/confirm',
	    { code => totp_at_step($secret, $step) }, bearer($u->{access}));
	die 'confirm: ' . $res->code . ' ' . $res->body unless $res->code == 200;
	return ($secret, $res->json->{recovery_codes}, $step);
}

# Lets the next login use any code of the window again (replay
# protection is tested on its own): forgets the last step used.
sub totp_forget_step {
	my ($u) = @_;
	dbh()->do('UPDATE totp_secrets SET last_step = NULL WHERE user_id = ?',
	    undef, $u->{id});
}

# A browser (a user agent with its own cookie jar) signed in as $u
# through a magic link's page; %o: totp_code for an account with TOTP on.
# Returns the user agent, or undef.
sub browser_login {
	my ($u, %o) = @_;
	my $base = base();
	my $seen = { map { $_->{file} => 1 } mails_to($u->{email}) };
	jpost('/api/v1/auth/magic-link', { email => $u->{email} });
	my $m = wait_mail($u->{email}, sub { $_[0]{subject} =~ /sign-in/i
	    && !$seen->{$_[0]{file}} }) or return undef;
	my $tok = mail_token($m, '/auth/magic');
	my $ua = ua();
	my $res = $ua->get("$base/auth/magic?token=$tok" => H())->result;
	my ($csrf) = $res->body =~ /name="csrf" value="([^"]+)"/;
	my @f = ([token => $tok], [csrf => $csrf // '']);
	push @f, [totp_code => $o{totp_code}] if defined $o{totp_code};
	$res = $ua->post("$base/auth/magic" => form_headers() =>
	    form_body(@f))->result;
	return $res->code == 303 ? $ua : undef;
}

# The CSRF field of a page's form.
sub csrf_of {
	my ($html) = @_;
	return ($html // '') =~ /name="csrf" value="([^"]+)"/ ? $1 : undef;
}

1;
