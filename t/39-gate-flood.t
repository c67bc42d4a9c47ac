#!/usr/bin/perl
# Password hashing never starves the gate (contract section 7, issue 14):
# gate checks are served by gate workers of their own, so while sign-ups
# keep the FastCGI workers busy with Argon2id, a loaded gate's median
# latency stays within a few times its quiet median.

use strict;
use warnings;
use lib 't/lib';

use File::Temp qw(tempdir);
use Test::More;
use TG;
use TGGate;

my $dir = tempdir('tg-flood-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $u = new_user();
on_plan($u, test_plan(rate => 100000000));

# wrk's median latency (ms) and its 2xx count for the gate under load.
sub gate_load {
	my ($secs) = @_;
	my $out = `wrk -t1 -c8 -d${secs}s --latency -H 'Authorization: Bearer $u->{key}' @{[base()]}/demo/echo 2>&1`;
	my ($v, $unit) = $out =~ /^\s+50%\s+([\d.]+)(us|ms|s)\s*$/m;
	my ($n) = $out =~ /(\d+) requests in/;
	my ($bad) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
	return (undef, 0, $out) unless defined $v;
	$v /= 1000 if $unit eq 'us';
	$v *= 1000 if $unit eq 's';
	return ($v, ($n // 0) - ($bad // 0), $out);
}

# The flood: sign-ups with fresh addresses, each one Argon2id hash.
my $lua = "$dir/signup.lua";
open my $fh, '>', $lua or die "$lua: $!";
print $fh <<'EOF';
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
local tag = tostring(math.random(1, 1e9))
request = function()
	n = n + 1
	local body = string.format('{"email":"flood.%s.%d@example.com",' ..
	    '"password":"correct horse battery","name":"F"}', tag, n)
	return wrk.format(nil, nil, nil, body)
end
EOF
close $fh;

my ($quiet, $qn, $qout) = gate_load(5);
ok(defined $quiet && $qn > 100, "quiet gate: median $quiet ms, $qn allowed")
    or diag($qout);

my $pid = fork // die "fork: $!";
if ($pid == 0) {
	open STDOUT, '>', "$dir/flood.out";
	open STDERR, '>&', \*STDOUT;
	exec 'wrk', '-t1', '-c24', '-d9s', '--timeout', '10s', '-s', $lua,
	    base() . '/api/v1/auth/signup' or POSIX::_exit(127);
}
sleep 2;	# the workers are hashing
my ($busy, $bn, $bout) = gate_load(5);
waitpid $pid, 0;
my $flood = do { local (@ARGV, $/) = ("$dir/flood.out"); <> } // '';
my ($signups) = $flood =~ /(\d+) requests in/;
diag("flood: " . ($signups // 0) . " sign-ups in 9 s; gate median quiet "
    . "$quiet ms, during the flood " . ($busy // 'none') . " ms");
ok(($signups // 0) > 20, 'the flood ran (sign-ups were hashed)');
ok(defined $busy && $bn > 100, "gate during the flood: $bn allowed")
    or diag($bout);
cmp_ok($busy // 1e9, '<=', 5 * $quiet + 5,
    'the gate\'s median during the flood stays within 5 times the quiet one');

# Clean the flood's accounts up.
dbh()->do(q{DELETE FROM users WHERE email LIKE 'flood.%@example.com'});

done_testing;
