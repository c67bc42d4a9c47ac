#!/usr/bin/perl
# Rotating [crypto] key: with the old key moved to previous_key and a new
# one in key, everything made before keeps working (an API key at the
# API and at the gate, a refresh token, TOTP, a recovery code), and each
# hash moves to the new key when it is used; `tollgatectl rekey` seals
# the TOTP secrets again under the new key; once previous_key is removed,
# what was used or re-sealed works and an API key never used during the
# rotation does not (its owner regenerates it).  The configuration is put
# back at the end.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempfile);
use Mojo::JSON qw(decode_json);
use TG;
use TGMail;
use TGAccount;
use TGGate qw(verify);
require './t/70-helpers.pl';

my $conf = $ENV{TG_CONF};
my $orig = do { local (@ARGV, $/) = ($conf); <> };
my ($old_key) = $orig =~ /^\[crypto\]\n(?:.*\n)*?key = ([0-9a-f]{64})$/m;
ok($old_key, 'the dev stack has a crypto key') or BAIL_OUT('no [crypto] key');
my $new_key = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;

sub write_conf {
	my ($text) = @_;
	open my $fh, '>', "$conf.tmp$$" or die $!;
	print $fh $text;
	close $fh;
	chmod 0600, "$conf.tmp$$";
	rename "$conf.tmp$$", $conf or die $!;
}

# Reloads and waits until a new worker answers with the new configuration.
sub reload {
	my @before = worker_pids();
	devstack('reload');
	wait_for(sub {
		my %old = map { $_ => 1 } @before;
		my @now = worker_pids();
		return @now && !grep { $old{$_} } @now;
	}, 20);
	devstack('restart-sender');
}

sub ctl {
	my (@args) = @_;
	my ($ofh, $out) = tempfile(UNLINK => 1);
	my $pid = fork // die;
	if ($pid == 0) {
		open STDOUT, '>', $out or die;
		open STDERR, '>&', \*STDOUT or die;
		exec "$ENV{TG_ROOT}/contrib/devstack", 'ctl', @args or die;
	}
	waitpid $pid, 0;
	my $rc = $? >> 8;
	local $/;
	open my $o, '<', $out or die;
	return ($rc, scalar <$o> // '');
}

my $dbh = dbh();
sub key_hash {
	my ($id) = @_;
	return $dbh->selectrow_array('SELECT key_hash FROM api_keys WHERE id = ?', undef, $id);
}

# Before: an account with TOTP and two API keys.
my $u = signup(tag => 'rekey');
verify($u->{id});
my ($secret, $codes) = totp_on($u);
my $res = jreq(POST => '/api/v1/api-keys', { name => 'unused' }, bearer($u->{access}));
is($res->code, 201, 'a second API key, left unused during the rotation');
my $unused = $res->json->{key};
my ($used_id) = $dbh->selectrow_array('SELECT id FROM api_keys WHERE user_id = ? '
    . 'AND name <> ? ORDER BY created_at LIMIT 1', undef, $u->{id}, 'unused');
my $hash_before = key_hash($used_id);

# The rotation.
(my $rotated = $orig) =~ s/^key = \Q$old_key\E$/key = $new_key\nprevious_key = $old_key/m
    or die 'cannot rewrite the key';
write_conf($rotated);
# Back to the dev stack's key the same way: the old key as previous_key,
# rekey, then the configuration as it was (what this test sealed under
# the new key must open again under the old one).
END {
	if (defined $orig) {
		(my $back = $orig) =~ s/^key = \Q$old_key\E$/key = $old_key\nprevious_key = $new_key/m;
		write_conf($back);
		reload();
		ctl('rekey');
		write_conf($orig);
		reload();
	}
}
reload();

is(jreq(GET => '/api/v1/me', undef, bearer($u->{key}))->code, 200,
    'rotated: the API key still works at the API');
isnt(key_hash($used_id), $hash_before, 'and its stored hash moved to the new key');
# The gate workers of before the reload finish the checks nginx sends on
# their kept-alive connections for up to 1.5 s, with the old key: the
# key works at the gate once they are gone.
ok(wait_for(sub { req(GET => '/demo/echo',
    { Authorization => "Bearer $u->{key}" })->code == 200 }, 5),
    'rotated: the API key works at the gate');
$res = jpost('/api/v1/auth/refresh', { refresh_token => $u->{refresh} });
is($res->code, 200, 'rotated: the refresh token made before still refreshes');
totp_forget_step($u);
$res = jpost('/api/v1/auth/login', { email => $u->{email}, password => $u->{password},
    totp_code => totp_at_step($secret, fresh_step(4)) });
is($res->code, 200, 'rotated: TOTP (sealed with the old key) still checks');
$res = jpost('/api/v1/auth/login', { email => $u->{email}, password => $u->{password},
    recovery_code => $codes->[0] });
is($res->code, 200, 'rotated: a recovery code made before still works');

# Other tests leave rows that were never sealed (fixtures shorter than a
# nonce and a MAC): rekey counts them as unreadable and exits 1.
my ($junk) = $dbh->selectrow_array('SELECT COUNT(*) FROM totp_secrets '
    . 'WHERE LENGTH(secret_enc) < 40');
my ($rc, $out) = ctl('rekey', '--json');
is($rc, $junk ? 1 : 0, "tollgatectl rekey: exit " . ($junk ? 1 : 0)) or diag($out);
my $j = eval { decode_json($out) } // {};
cmp_ok($j->{totp_secrets}{moved} // 0, '>=', 1, 'rekey moved TOTP secrets to the new key');
is($j->{totp_secrets}{unreadable} // -1, $junk,
    "unreadable: only the $junk rows that were never sealed");
($rc, $out) = ctl('rekey');
like($out, qr/^totp_secrets: 0 moved to the new key, \d+ on it already/m,
    'rekey again: nothing left to move');

# previous_key goes.
(my $done = $rotated) =~ s/^previous_key = .*\n//m;
write_conf($done);
reload();
($rc, $out) = ctl('rekey');
is($rc, 1, 'rekey without previous_key: exit 1');
like($out, qr/previous_key/, 'and says what to set');
totp_forget_step($u);
$res = jpost('/api/v1/auth/login', { email => $u->{email}, password => $u->{password},
    totp_code => totp_at_step($secret, fresh_step(4)) });
is($res->code, 200, 'after: TOTP works (re-sealed by rekey)');
is(jreq(GET => '/api/v1/me', undef, bearer($u->{key}))->code, 200,
    'after: the API key used during the rotation works');
is(jreq(GET => '/api/v1/me', undef, bearer($unused))->code, 401,
    'after: the API key never used during the rotation is refused');

done_testing;
