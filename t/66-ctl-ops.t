#!/usr/bin/perl
# tollgatectl for day-to-day operations: user list (table and --json),
# user disable then enable, user verify (the trial starts), user
# set-password (the old password and every session stop working), outbox
# list and retry of a failed mail, and an audit row for each change, plan
# and service-key changes among them.  Exit statuses 0, 1 and 2.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempfile);
use Mojo::JSON qw(decode_json);
use TG;
use TGAccount;

# Runs `contrib/devstack ctl ARGS` with $stdin; returns (exit, out, err).
sub ctl {
	my ($stdin, @args) = @_;
	my ($ifh, $in) = tempfile(UNLINK => 1);
	my ($ofh, $out) = tempfile(UNLINK => 1);
	my ($efh, $err) = tempfile(UNLINK => 1);
	print $ifh $stdin // '';
	close $ifh;
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		open STDIN, '<', $in or die;
		open STDOUT, '>', $out or die;
		open STDERR, '>', $err or die;
		exec "$ENV{TG_ROOT}/contrib/devstack", 'ctl', @args or die "exec: $!";
	}
	waitpid $pid, 0;
	my $rc = $? >> 8;
	local $/;
	open my $o, '<', $out or die;
	open my $e, '<', $err or die;
	return ($rc, scalar <$o> // '', scalar <$e> // '');
}

my $dbh = dbh();
sub audit_rows {
	my ($action, $target) = @_;
	return $dbh->selectrow_array('SELECT COUNT(*) FROM audit_log WHERE action = ? '
	    . 'AND actor_email = ? AND (? IS NULL OR target_id = ? OR detail LIKE ?)',
	    undef, $action, 'tollgatectl', $target, $target, '%' . ($target // '') . '%');
}

my $u = signup(tag => 'ctlops', name => 'Ctl Ops');
my ($rc, $out, $err);

# user list: a table with a header, and --json for scripts.
($rc, $out, $err) = ctl(undef, 'user', 'list', $u->{email});
is($rc, 0, 'user list: exit 0') or diag($err);
like($out, qr/^ID\s+EMAIL\s+NAME\s+ROLE\s+PLAN\s+VERIFIED\s+DISABLED\s+CREATED_AT$/m,
    'user list: the header line');
like($out, qr/^\Q$u->{id}\E\s+\Q$u->{email}\E\s+Ctl Ops\s+user\s+\S+\s+no\s+no\s+\d{4}-/m,
    'user list: the account, unverified, not disabled');
($rc, $out) = ctl(undef, 'user', 'list', '--json', $u->{email});
my $list = eval { decode_json($out) } // [];
is(ref $list, 'ARRAY', 'user list --json: a JSON array');
is($list->[0]{email} // '', $u->{email}, 'user list --json: the account');
is($list->[0]{verified} // '', 'no', 'user list --json: verified no');
($rc, undef, $err) = ctl(undef, 'user', 'list', '--bogus');
is($rc, 2, 'user list with a bad option: exit 2');

# user verify: as the mailed link would.
($rc, $out, $err) = ctl(undef, 'user', 'verify', $u->{email});
is($rc, 0, 'user verify: exit 0') or diag($err);
like($out, qr/is verified/, 'user verify: says so');
my $res = jreq(GET => '/api/v1/me', undef, bearer($u->{access}));
is(eval { $res->json->{user}{email_verified} } ? 1 : 0, 1, 'the API sees the address verified');
is(eval { $res->json->{user}{plan} } // '', 'trial', 'the trial has started');
($rc, $out) = ctl(undef, 'user', 'verify', $u->{email});
like($out, qr/verified already/, 'user verify again: already');
ok(audit_rows('user.verify', $u->{id}) >= 1, 'user verify: audited');

# user disable, then enable.
($rc) = ctl(undef, 'user', 'disable', $u->{email});
is($rc, 0, 'user disable: exit 0');
isnt(jreq(GET => '/api/v1/me', undef, bearer($u->{key}))->code, 200,
    'disabled: the API key stops');
($rc, $out, $err) = ctl(undef, 'user', 'enable', $u->{email});
is($rc, 0, 'user enable: exit 0') or diag($err);
like($out, qr/is enabled/, 'user enable: says so');
is(jreq(GET => '/api/v1/me', undef, bearer($u->{key}))->code, 200,
    'enabled: the API key works again');
($rc, $out) = ctl(undef, 'user', 'enable', $u->{email});
like($out, qr/was not disabled/, 'user enable again: nothing to do');
ok(audit_rows('user.enable', $u->{id}) >= 1, 'user enable: audited');
($rc, undef, $err) = ctl(undef, 'user', 'enable', 'nobody-here@example.com');
is($rc, 1, 'user enable of an unknown email: exit 1');
like($err, qr/no account has the email/, 'and says so');

# user set-password: on standard input; sessions are signed out.
my $pw = 'a-brand-new-password-' . int(rand 1e9);
($rc, $out, $err) = ctl("$pw\n", 'user', 'set-password', $u->{email});
is($rc, 0, 'user set-password: exit 0') or diag($err);
is(jpost('/api/v1/auth/login', { email => $u->{email}, password => $u->{password} })->code,
    401, 'the old password is refused');
is(jpost('/api/v1/auth/login', { email => $u->{email}, password => $pw })->code,
    200, 'the new password logs in');
is(jpost('/api/v1/auth/refresh', { refresh_token => $u->{refresh} })->code,
    401, 'the old session is signed out');
ok(audit_rows('user.password', $u->{id}) >= 1, 'user set-password: audited');
($rc) = ctl("short\n", 'user', 'set-password', $u->{email});
is($rc, 1, 'a too short password: exit 1');
($rc) = ctl('', 'user', 'set-password', $u->{email});
is($rc, 2, 'no password on standard input: exit 2');

# outbox list and retry: a mail marked failed is sent again.
my ($mid) = $dbh->selectrow_array('SELECT id FROM outbox WHERE user_id = ? '
    . 'ORDER BY created_at LIMIT 1', undef, $u->{id});
ok($mid, 'the account has mail in the outbox');
$dbh->do(q{UPDATE outbox SET status = 'failed', attempts = 30, last_error = 'relay said no' WHERE id = ?},
    undef, $mid);
($rc, $out, $err) = ctl(undef, 'outbox', 'list', '--failed');
is($rc, 0, 'outbox list --failed: exit 0') or diag($err);
like($out, qr/^\Q$mid\E\s+\S+\s+\Q$u->{email}\E\s+failed\s+30\s.*relay said no$/m,
    'outbox list: the failed mail with its last error');
($rc, $out) = ctl(undef, 'outbox', 'list', '--failed', '--json');
my $ob = eval { decode_json($out) } // [];
my ($row) = grep { $_->{id} eq $mid } @$ob;
is($row->{attempts} // -1, 30, 'outbox list --json: attempts as a number');
($rc, $out, $err) = ctl(undef, 'outbox', 'retry', $mid);
is($rc, 0, 'outbox retry ID: exit 0') or diag($err);
like($out, qr/^1 mail queued again$/m, 'outbox retry: says how many');
my ($st, $att) = $dbh->selectrow_array('SELECT status, attempts FROM outbox WHERE id = ?',
    undef, $mid);
ok($st ne 'failed' && $att <= 1, "the mail is pending again ($st, $att attempts)");
($rc, undef, $err) = ctl(undef, 'outbox', 'retry', $mid);
is($rc, 1, 'outbox retry of a mail that is not failed: exit 1');
ok(audit_rows('outbox.retry', $mid) >= 1, 'outbox retry: audited');

# Plans and service keys leave audit rows.
my $plan = 'ops' . ($$ % 100000);
($rc, undef, $err) = ctl(undef, 'plans', 'set', $plan, 'credits=5', 'rate_per_minute=7');
is($rc, 0, 'plans set: exit 0') or diag($err);
ok(audit_rows('plan.set', $plan) >= 1, 'plans set: audited, naming the plan');
($rc) = ctl(undef, 'plans', 'delete', $plan);
is($rc, 0, 'plans delete: exit 0');
ok(audit_rows('plan.delete', $plan) >= 1, 'plans delete: audited');
my $sk = 'ops_' . ($$ % 100000);
($rc, $out) = ctl(undef, 'service-key', 'create', $sk);
is($rc, 0, 'service-key create: exit 0');
like((split /\n/, $out)[-1] // '', qr/^tgs_/, 'the key is the last line');
ok(audit_rows('service_key.create', $sk) >= 1, 'service-key create: audited');
($rc) = ctl(undef, 'service-key', 'revoke', $sk);
is($rc, 0, 'service-key revoke: exit 0');
ok(audit_rows('service_key.revoke', $sk) >= 1, 'service-key revoke: audited');

# --json on the other lists.
($rc, $out) = ctl(undef, 'plans', 'list', '--json');
my $plans = eval { decode_json($out) } // [];
my ($pro) = grep { $_->{name} eq 'pro' } @$plans;
ok($pro, 'plans list --json: an array naming pro');
ok(defined $pro && ref $pro->{limits} eq 'HASH', 'plans list --json: limits as an object');
($rc, $out) = ctl(undef, 'service-key', 'list', '--json');
my $sks = eval { decode_json($out) } // [];
my ($skr) = grep { $_->{name} eq $sk } @$sks;
ok($skr && $skr->{revoked_at}, 'service-key list --json: the revoked key, with revoked_at');
($rc, $out) = ctl(undef, 'service-key', 'list');
like($out, qr/^ID\s+NAME\s+PREVIEW\s+CREATED_AT\s+REVOKED_AT$/m,
    'service-key list: the table header');

done_testing;
