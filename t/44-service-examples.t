#!/usr/bin/perl
# The service examples in contrib/examples/ (issue 18), run against the
# dev stack as an operator would run them:
#   check.py       a service outside nginx asking POST /api/v1/check
#                  (a token, an API key, a user id; a credit spend; a
#                  refusal; dry_run; a retried job counted once)
#   workspaces.py  a workspace server with a level meter: at most 2
#                  running, a third refused until one stops
#   nginx.conf     a workflow API whose submissions and polls have rate
#                  buckets of their own, and an admins-only location, in
#                  front of upstream.py

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use TG qw(:DEFAULT run_with ctl);
use TGGate;

my $root = $ENV{TG_ROOT};
my $ex = "$root/contrib/examples";
my $db = gdb();
my $name = "examples44_$$";
END {
	if ($db) {
		$db->do('DELETE FROM check_requests WHERE service_key_id IN (SELECT id FROM '
		    . 'service_keys WHERE name = ?)', undef, $name);
		$db->do('DELETE FROM service_keys WHERE name = ?', undef, $name);
		$db->do(q{DELETE FROM meters WHERE name = 'workspaces'});
	}
}

my ($rc, $out) = ctl('service-key', 'create', $name);
my ($skey) = $out =~ /(tgs_\S+)\s*\z/;
ok($skey, 'a service key') or diag($out);
my %env = (TOLLGATE_URL => base(), TOLLGATE_SERVICE_KEY => $skey // '',
    TOLLGATE_CA => "$ENV{TG_DEVSTACK}/etc/cert.pem");

# --- check.py -----------------------------------------------------------------
my $p = test_plan(rate => 1000, credits => 5);
my $u = new_user();
on_plan($u, $p);
($rc, $out) = run_with(\%env, "$ex/check.py", $u->{token});
is($rc, 0, 'check.py with the user\'s token: allowed (exit 0)') or diag($out);
like($out, qr/^allowed 1 api_calls for \Q$u->{id}\E \(plan \Q$p\E\)/m, 'and says so');
($rc, $out) = run_with(\%env, "$ex/check.py", $u->{key}, 'credits', 3);
is($rc, 0, 'an API key spends 3 credits') or diag($out);
like($out, qr/; 2 left/, '2 credits left');
($rc, $out) = run_with(\%env, "$ex/check.py", "user:$u->{id}", 'credits', 3);
is($rc, 3, 'a user id: 3 more do not fit (exit 3)') or diag($out);
like($out, qr/^refused quota_exceeded: /m, 'refused with the gate\'s code');
($rc, $out) = run_with({ %env, CHECK_DRY_RUN => 1 }, "$ex/check.py", "user:$u->{id}",
    'credits', 2);
is($rc, 0, 'dry run: 2 would fit');
($rc, $out) = run_with({ %env, CHECK_IDEMPOTENCY_KEY => "job-$$" }, "$ex/check.py",
    "user:$u->{id}", 'credits', 1);
is($rc, 0, 'a job spends 1') or diag($out);
($rc, $out) = run_with({ %env, CHECK_IDEMPOTENCY_KEY => "job-$$" }, "$ex/check.py",
    "user:$u->{id}", 'credits', 1);
is($rc, 0, 'the job retried: the first answer again');
like($out, qr/; 1 left/, 'still 1 left');
is(scalar $db->selectrow_array(q{SELECT COUNT(*) FROM credit_ledger WHERE user_id = ?
    AND kind = 'spend'}, undef, $u->{id}), 2, 'two spends in the ledger, not three');
($rc, $out) = run_with({ %env, TOLLGATE_SERVICE_KEY => 'tgs_not_a_key' }, "$ex/check.py",
    "user:$u->{id}");
is($rc, 1, 'a bad service key: exit 1');
like($out, qr/answered 401/, 'tollgate answered 401');

# --- workspaces.py ------------------------------------------------------------
is((ctl('meters', 'set', 'workspaces', 'kind=level'))[0], 0, 'meters set workspaces kind=level');
is((ctl('plans', 'set', $p, 'limit.workspaces=2'))[0], 0, 'plans set limit.workspaces=2');
my $dir = tempdir("services44-XXXXXX", TMPDIR => 1, CLEANUP => 1);
my %wenv = (%env, WORKSPACES_STATE => "$dir/state.json");
($rc, $out) = run_with(\%wenv, "$ex/workspaces.py", 'start', $u->{id}, 'ws1');
is($rc, 0, 'workspaces.py start ws1') or diag($out);
like($out, qr/^started ws1 .*\(1 of 2 running\)/m, '1 of 2 running');
($rc, $out) = run_with(\%wenv, "$ex/workspaces.py", 'start', $u->{id}, 'ws2');
like($out, qr/\(2 of 2 running\)/, 'ws2: 2 of 2');
($rc, $out) = run_with(\%wenv, "$ex/workspaces.py", 'start', $u->{id}, 'ws3');
is($rc, 3, 'a third is refused (exit 3)') or diag($out);
like($out, qr/^refused quota_exceeded/m, 'quota_exceeded');
($rc, $out) = run_with(\%wenv, "$ex/workspaces.py", 'stop', $u->{id}, 'ws1');
is($rc, 0, 'ws1 stops') or diag($out);
like($out, qr/\(1 running\)/, '1 running');
($rc, $out) = run_with(\%wenv, "$ex/workspaces.py", 'start', $u->{id}, 'ws3');
is($rc, 0, 'now ws3 starts') or diag($out);
is(scalar $db->selectrow_array(q{SELECT level FROM usage_levels WHERE user_id = ?
    AND meter = 'workspaces'}, undef, $u->{id}), 2, 'the level is 2');
($rc, $out) = run_with(\%wenv, "$ex/workspaces.py", 'list', $u->{id});
is($out, "ws2 ws3\n", 'ws2 and ws3 run');

# --- nginx.conf: rate buckets and an admins-only location -----------------
my $port = $ENV{TG_PORT} + 15;
my $kid = fork // die "fork: $!";
if ($kid == 0) {
	POSIX::setsid();
	open STDIN, '<', '/dev/null';
	open STDOUT, '>>', "$ENV{TG_DEVSTACK}/log/example-upstream44.log";
	open STDERR, '>&', \*STDOUT;
	exec 'python3', "$ex/upstream.py", $port or POSIX::_exit(127);
}
END { my $st = $?; if ($kid) { kill 'TERM', $kid; waitpid $kid, 0 } $? = $st; }
ok(wait_for(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 1) },
    15), 'upstream.py listens');
my $wf = test_plan(rate => 3);
is((ctl('plans', 'set', $wf, 'rate.submit=1', 'rate.poll=5'))[0], 0,
    'plans set rate.submit=1 rate.poll=5');
my $w = new_user();
on_plan($w, $wf);
my $h = bearer($w->{key});
my $r = req(GET => '/examples/workflows/submit', $h);
is($r->code, 200, 'a workflow submitted');
is(($r->json // {})->{hello}, $w->{id}, 'upstream.py hears the user');
is(($r->json // {})->{role}, 'user', 'and the role');
is(req(GET => '/examples/workflows/submit', $h)->code, 429,
    'a second submission within the minute: 429 (rate.submit=1)');
my @polls = map { req(GET => '/examples/workflows/status', $h)->code } 1 .. 5;
is_deeply(\@polls, [ (200) x 5 ], 'five polls pass: their own bucket');
is(req(GET => '/examples/workflows/status', $h)->code, 429, 'the sixth poll: 429');
is(req(GET => '/examples/hello', $h)->code, 200,
    'the default bucket (rate 3) is untouched by both');
$r = req(GET => '/examples/admin', $h);
is($r->code, 403, '/examples/admin: a user is refused');
is(($r->json // {})->{error}{code}, 'forbidden', 'forbidden');
$db->do(q{UPDATE users SET role = 'admin' WHERE id = ?}, undef, $w->{id});
$r = req(GET => '/examples/admin', $h);
is($r->code, 200, 'an admin passes');
is(($r->json // {})->{role}, 'admin', 'upstream.py hears X-Tollgate-Role: admin');

done_testing();
