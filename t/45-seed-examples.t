#!/usr/bin/perl
# The seed systems' examples in contrib/examples/ (issue 18), run against
# the dev stack as each kind of service would run them:
#   chat.py          an AI chat app: a long answer costs more credits,
#                    checked first (dry run), spent once per message
#   llm-proxy.py     an LLM proxy behind an editor extension: a token
#                    quota (a check of cost 0) and a usage log with the
#                    model and the money
#   video-export.py  a serverless export job: compute minutes counted
#                    once per job id; a guest is refused
# (check.py and workspaces.py: t/44; the workflow API's buckets and the
# admin-only location of nginx.conf: t/41.)

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use TG qw(:DEFAULT run_with ctl);
use TGGate;

my $ex = "$ENV{TG_ROOT}/contrib/examples";
my $db = gdb();
my $name = "examples45_$$";
END {
	if ($db) {
		$db->do('DELETE FROM check_requests WHERE service_key_id IN (SELECT id FROM '
		    . 'service_keys WHERE name = ?)', undef, $name);
		$db->do('DELETE FROM usage_events WHERE service_key_id IN (SELECT id FROM '
		    . 'service_keys WHERE name = ?)', undef, $name);
		$db->do('DELETE FROM service_keys WHERE name = ?', undef, $name);
	}
}

my ($rc, $out) = ctl('service-key', 'create', $name);
my ($skey) = $out =~ /(tgs_\S+)\s*\z/;
ok($skey, 'a service key') or diag($out);
my %env = (TOLLGATE_URL => base(), TOLLGATE_SERVICE_KEY => $skey // '',
    TOLLGATE_CA => "$ENV{TG_DEVSTACK}/etc/cert.pem");

sub usage_of {
	my ($u) = @_;
	return req(GET => '/api/v1/usage', bearer($u->{token}))->json // {};
}

# --- chat.py: 10 credits; an answer costs one credit per 40 characters. -------
my $p = test_plan(rate => 1000, credits => 10);
my $u = new_user();
on_plan($u, $p);
($rc, $out) = run_with(\%env, "$ex/chat.py", $u->{key}, 'm1', 'hello');
is($rc, 0, 'chat: a short message is answered') or diag($out);
like($out, qr/^You said: hello$/m, 'chat: the answer');
like($out, qr/\(1 credits; 9 left\)/, 'chat: a short answer costs 1 credit');
my $long = 'x' x 100;	# "You said: " + 100 = 110 characters: 3 credits
($rc, $out) = run_with(\%env, "$ex/chat.py", $u->{key}, 'm2', $long);
is($rc, 0, 'chat: a long message is answered') or diag($out);
like($out, qr/\(3 credits; 6 left\)/, 'chat: a long answer costs 3');
($rc, $out) = run_with(\%env, "$ex/chat.py", $u->{key}, 'm2', $long);
is($rc, 0, 'chat: the same message again (a retry)');
like($out, qr/\(3 credits; 6 left\)/, 'chat: charged once');
is(usage_of($u)->{credits}{remaining}, 6, 'chat: /api/v1/usage shows 6 left');
is(scalar $db->selectrow_array(q{SELECT COUNT(*) FROM credit_ledger
    WHERE user_id = ? AND kind = 'spend'}, undef, $u->{id}), 2,
    'chat: two spends in the ledger');
# The longest answer (200 characters) costs 5: with 6 left one fits, with
# 1 left none does, and the dry run refuses before the model is asked.
($rc, $out) = run_with(\%env, "$ex/chat.py", $u->{key}, 'm3', 'y' x 190);
is($rc, 0, 'chat: a 5-credit answer') or diag($out);
like($out, qr/\(5 credits; 1 left\)/, 'chat: 1 left');
($rc, $out) = run_with(\%env, "$ex/chat.py", $u->{key}, 'm4', 'hi');
is($rc, 3, 'chat: 1 credit left cannot pay for the longest answer: refused')
    or diag($out);
like($out, qr/^refused quota_exceeded: /m, 'chat: the gate\'s code');
is(usage_of($u)->{credits}{remaining}, 1, 'chat: the refusal spent nothing');

# --- llm-proxy.py: a quota of 12 tokens; a usage log. -------------------------
is((ctl('plans', 'set', $p, 'limit.tokens=12'))[0], 0, 'plans set limit.tokens=12');
($rc, $out) = run_with(\%env, "$ex/llm-proxy.py", $u->{token}, 'r1', 'one two three');
is($rc, 0, 'llm-proxy: allowed') or diag($out);
like($out, qr/^three two one$/m, 'llm-proxy: the completion');
like($out, qr/\(6 tokens with stand-in-1\)/, 'llm-proxy: 6 tokens');
($rc, $out) = run_with(\%env, "$ex/llm-proxy.py", $u->{token}, 'r1', 'one two three');
is($rc, 0, 'llm-proxy: the same request again');
is(usage_of($u)->{meters}{tokens}{used}, 6, 'llm-proxy: the event counted once');
($rc, $out) = run_with(\%env, "$ex/llm-proxy.py", $u->{token}, 'r2', 'a b c d');
is($rc, 0, 'llm-proxy: 6 of 12 used: allowed') or diag($out);
is(usage_of($u)->{meters}{tokens}{used}, 14, 'llm-proxy: 14 used (an event is '
    . 'what happened: no limit refuses it)');
($rc, $out) = run_with(\%env, "$ex/llm-proxy.py", $u->{token}, 'r3', 'more');
is($rc, 3, 'llm-proxy: past the quota, refused before the model') or diag($out);
like($out, qr/^refused quota_exceeded: Tokens quota exceeded/m,
    'llm-proxy: the gate\'s message names the meter');
my $ev = req(GET => '/api/v1/usage/events?meter=tokens', bearer($u->{token}))->json;
my @ev = ref $ev eq 'HASH' ? @{ $ev->{events} // [] } : ();
is(scalar @ev, 2, 'llm-proxy: the user lists two token events');
my ($r2) = grep { ($_->{quantity} // 0) == 8 } @ev;
is(($r2 // {})->{metadata}{model}, 'stand-in-1', 'llm-proxy: with the model');
is(($r2 // {})->{cost_micros}, 16000, 'llm-proxy: and its price');

# --- video-export.py: compute minutes once per job; a guest is refused. -------
is((ctl('plans', 'set', $p, 'limit.compute_minutes=30'))[0], 0,
    'plans set limit.compute_minutes=30');
($rc, $out) = run_with(\%env, "$ex/video-export.py", $u->{key}, 'job1', 20);
is($rc, 0, 'video-export: job1 (20 minutes) rendered') or diag($out);
like($out, qr/\(20 of 30 used\)/, 'video-export: 20 of 30');
($rc, $out) = run_with(\%env, "$ex/video-export.py", $u->{key}, 'job1', 20);
is($rc, 0, 'video-export: job1 run again by the platform');
is(usage_of($u)->{meters}{compute_minutes}{used}, 20, 'video-export: counted once');
($rc, $out) = run_with(\%env, "$ex/video-export.py", $u->{key}, 'job2', 20);
is($rc, 3, 'video-export: 20 more do not fit: refused') or diag($out);
like($out, qr/^refused quota_exceeded: Compute quota exceeded/m,
    'video-export: the gate\'s message');
my $g = json_post('/api/v1/auth/guest', {});
is($g->code, 201, 'a guest account');
my $gtok = eval { $g->json->{tokens}{access_token} } // '';
my $gid = eval { $g->json->{user}{id} };
($rc, $out) = run_with(\%env, "$ex/video-export.py", $gtok, 'job3', 1);
is($rc, 3, 'video-export: a guest has no compute minutes: refused') or diag($out);
like($out, qr/^refused quota_exceeded: /m, 'video-export: quota_exceeded');
$db->do('DELETE FROM users WHERE id = ?', undef, $gid) if $gid;

done_testing();
