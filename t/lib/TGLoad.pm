package TGLoad;

# A steady load for the fault tests (t/86-*.t to t/89-*.t) and
# contrib/soak: one wrk process per stream (a path and a bearer
# credential), each with a Lua script that counts the statuses it saw,
# running in the background while the test plays its fault.  load_wait
# parses wrk's output into {requests, codes => {status => n}, socket =>
# {connect, read, write, timeout}, failed}.
#
# Durations: TG_SOAK=1 (contrib/soak) makes soak_s() return the long form
# of a duration instead of the short one.  figures() prints a scenario's
# figures as a diag line and, with TG_SOAK_FIGURES set, appends them to
# that file for contrib/soak's table.

use strict;
use warnings;

use Exporter 'import';
use File::Temp qw(tempdir);
use POSIX ();
use Time::HiRes qw(sleep time);
use Test::More;
use TG;
use TGGate;

our @EXPORT = qw(load_start load_wait soak soak_s figures failures
    load_user snapshot abandoned spend_totals);

sub soak { ($ENV{TG_SOAK} // '') eq '1' }

# The short duration, or the long one under contrib/soak.
sub soak_s { my ($short, $long) = @_; return soak() ? $long : $short }

my $LUA = <<'EOF';
-- Counts the statuses this thread saw; done() sums the threads'.
counts = {}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
	counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
	local total = {}
	for _, t in ipairs(threads) do
		for k, v in pairs(t:get("counts")) do
			total[k] = (total[k] or 0) + v
		end
	end
	local parts = {}
	for k, v in pairs(total) do parts[#parts + 1] = k .. "=" .. v end
	io.write("TG-STATUS " .. table.concat(parts, " ") .. "\n")
	local e = summary.errors
	io.write(string.format("TG-SUMMARY requests=%d connect=%d read=%d " ..
	    "write=%d timeout=%d status=%d\n", summary.requests, e.connect,
	    e.read, e.write, e.timeout, e.status))
end
EOF

my $DIR;

sub lua_file {
	$DIR //= tempdir('tg-load-XXXXXX', TMPDIR => 1, CLEANUP => 1);
	my $f = "$DIR/count.lua";
	unless (-e $f) {
		open my $fh, '>', $f or die "$f: $!";
		print $fh $LUA;
		close $fh;
	}
	return $f;
}

my @live;
END { kill 'KILL', $_ for @live }

# Starts the load: streams => [{name, path, token}], conns per stream,
# duration in seconds.  Returns a handle for load_wait.
sub load_start {
	my (%o) = @_;
	my $conns = $o{conns} // 4;
	my $dur = $o{duration} // 10;
	my $lua = lua_file();
	my %h = (started => time, duration => $dur, conns => $conns,
	    streams => []);
	for my $s (@{ $o{streams} }) {
		$s->{ua} //= sprintf 'tg-load/%s.%d.%d', $s->{name}, $$,
		    int rand 1e9;
		my $out = "$DIR/$s->{name}.$$." . int(rand 1e9) . '.out';
		my $pid = fork // die "fork: $!";
		if ($pid == 0) {
			open STDIN, '<', '/dev/null';
			open STDOUT, '>', $out or die "$out: $!";
			open STDERR, '>&', \*STDOUT;
			exec 'wrk', '-t1', "-c$conns", "-d${dur}s", '--timeout', '5s',
			    '-s', $lua, '-H', "Authorization: Bearer $s->{token}",
			    '-H', "User-Agent: $s->{ua}",
			    base() . $s->{path} or POSIX::_exit(127);
		}
		push @live, $pid;
		push @{ $h{streams} }, { %$s, pid => $pid, out => $out };
	}
	return \%h;
}

# Waits for the load to end (bounded: its duration + 30 s); returns
# {name => {requests, codes, socket, failed, raw}}.
sub load_wait {
	my ($h) = @_;
	my $end = $h->{started} + $h->{duration} + 30;
	my %res;
	for my $s (@{ $h->{streams} }) {
		while (waitpid($s->{pid}, POSIX::WNOHANG()) == 0) {
			if (time > $end) {
				kill 'KILL', $s->{pid};
				waitpid $s->{pid}, 0;
				last;
			}
			sleep 0.1;
		}
		@live = grep { $_ != $s->{pid} } @live;
		open my $fh, '<', $s->{out} or die "$s->{out}: $!";
		my $raw = do { local $/; <$fh> };
		close $fh;
		my %r = (raw => $raw, codes => {}, socket => {});
		if ($raw =~ /^TG-STATUS ?(.*)$/m) {
			for (split ' ', $1) {
				my ($k, $v) = split /=/;
				$r{codes}{$k} = $v;
			}
		}
		if ($raw =~ /^TG-SUMMARY (.*)$/m) {
			my %f = map { split /=/ } split ' ', $1;
			$r{responses} = $f{requests};
			$r{socket}{$_} = $f{$_} for qw(connect read write timeout);
		}
		my $sock = 0;
		$sock += $_ for values %{ $r{socket} };
		$r{socket_errors} = $sock;
		$r{requests} = ($r{responses} // 0) + $sock;
		$r{ok} = 0;
		$r{ok} += $r{codes}{$_} // 0 for 200, 204;
		$r{failed} = $r{requests} - $r{ok};
		$r{'5xx'} = 0;
		$r{'5xx'} += $r{codes}{$_} for grep { /^5/ } keys %{ $r{codes} };
		$r{ua} = $s->{ua};
		$res{ $s->{name} } = \%r;
	}
	return \%res;
}

# A verified user on a test plan with a million credits and a million
# checks a minute, its allowance granted by a first spend.
sub load_user {
	my $u = new_user();
	my $p = test_plan(rate => 1000000, credits => 1000000,
	    limits => { credits => 1000000 });
	on_plan($u, $p);
	my $code = req(GET => '/demo/spend', bearer($u->{token}))->code // 0;
	die "load_user: the first spend answered $code\n" unless $code == 200;
	return $u;
}

# The user's ledger spends (count and sum), balance, and usage counters,
# read in one consistent snapshot, once they have settled: requests wrk
# abandoned at its end may still be committing for a moment (two reads
# 0.3 s apart must agree; at most 5 s).
sub snapshot {
	my ($u) = @_;
	my $prev;
	for my $try (1 .. 16) {
		my $cur = read_snapshot($u);
		return $cur if $prev && join(',', map { $cur->{$_} // '' }
		    sort keys %$cur) eq join(',', map { $prev->{$_} // '' }
		    sort keys %$prev);
		$prev = $cur;
		sleep 0.3;
	}
	return $prev;
}

sub read_snapshot {
	my ($u) = @_;
	my $db = gdb();
	$db->{mariadb_auto_reconnect} = 1;
	$db->do('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
	my ($n, $sum) = $db->selectrow_array(q{SELECT COUNT(*),
	    COALESCE(-SUM(delta), 0) FROM credit_ledger WHERE user_id = ?
	    AND kind = 'spend'}, undef, $u->{id});
	my ($bal) = $db->selectrow_array(q{SELECT allowance + granted
	    FROM credit_balances WHERE user_id = ?}, undef, $u->{id});
	my %used = map { @$_ } @{ $db->selectall_arrayref(q{SELECT meter,
	    SUM(used) FROM usage_counters WHERE user_id = ? GROUP BY meter},
	    undef, $u->{id}) };
	my ($min) = $db->selectrow_array(q{SELECT MIN(balance_after) FROM
	    credit_ledger WHERE user_id = ?}, undef, $u->{id});
	$db->do('COMMIT');
	return { spends => $n, spent => $sum, balance => $bal,
	    credits => $used{credits} // 0, api_calls => $used{api_calls} // 0,
	    min_balance => $min };
}

# Requests of a load stream nginx handled but wrk never counted an
# answer for: wrk stops when its duration is over, leaving what it had in
# flight (logged as 499, or as 200 when the answer was already on its
# way).  nginx's lines for the stream's User-Agent minus wrk's answers.
sub abandoned {
	my ($r) = @_;
	my $log = "$ENV{TG_DEVSTACK}/log/access.log";
	my $n = 0;
	for my $try (1 .. 10) {
		sleep 0.2;	# nginx logs them as it notices
		open my $fh, '<', $log or return 0;
		$n = 0;
		while (<$fh>) {
			$n++ if index($_, "\"$r->{ua}\"") >= 0;
		}
		close $fh;
		last if $n >= $r->{responses} + $r->{socket_errors};
	}
	$n -= $r->{responses} + $r->{socket_errors};
	return $n < 0 ? 0 : $n;
}

# The credit checks every scenario makes, from snapshots before and after
# a spend stream $r: the ledger, the balance and the credits meter agree
# exactly; every 200 has its ledger row (lost); no row without an answer
# that could explain it (200, a 5xx in flight at a fault, or abandoned at
# the end of the run); never below zero.  Returns (lost, duplicated,
# unanswered commits).
sub spend_totals {
	my ($name, $b, $a, $r, %o) = @_;
	gdb()->{mariadb_auto_reconnect} = 1;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $spends = $a->{spends} - $b->{spends};
	is($a->{spent} - $b->{spent}, $spends, "$name: each ledger spend is 1 credit");
	is($b->{balance} - $a->{balance}, $spends,
	    "$name: ledger spends ($spends) == credits taken from the balance");
	is($a->{credits} - $b->{credits}, $spends,
	    "$name: ledger spends == the credits meter's count");
	cmp_ok($a->{min_balance}, '>=', 0, "$name: the ledger never goes below zero");
	# 200s of the test's own probes count as answered too.
	my $ok = ($r->{codes}{200} // 0) + ($o{probes} // 0);
	my $gone = abandoned($r);
	my $fivexx = $r->{'5xx'} + $r->{socket_errors};
	# Only a failure in flight at a fault can have committed.
	$fivexx = $o{inflight} if defined $o{inflight} && $fivexx > $o{inflight};
	my $lost = $ok > $spends ? $ok - $spends : 0;
	my $extra = $spends - $ok;
	my $dup = $extra - $gone - $fivexx;
	$dup = 0 if $dup < 0;
	is($lost, 0, "$name: no spend lost ($ok answered 200, $spends in the ledger)");
	is($dup, 0, "$name: none counted twice (ledger $spends <= 200s $ok + "
	    . "abandoned at the end $gone + failed in flight $fivexx)");
	if (defined $o{inflight}) {
		cmp_ok($extra - $gone, '<=', $o{inflight}, "$name: commits "
		    . "without a 200 ($extra, $gone abandoned) within those in "
		    . "flight at the faults ($o{inflight})");
	}
	return ($lost, $dup, $extra < 0 ? 0 : $extra, $gone);
}

# Non-2xx answers plus socket errors of one stream's result.
sub failures { $_[0]{failed} }

# Reports a scenario's figures: name, requests, errors, lost, duplicated
# and a free note.
sub figures {
	my (%f) = @_;
	my $line = join ' ', map { "$_=" . ($f{$_} // '') }
	    qw(scenario requests errors lost duplicated note);
	diag("figures: $line");
	if (my $file = $ENV{TG_SOAK_FIGURES}) {
		open my $fh, '>>', $file or die "$file: $!";
		printf $fh "%s\t%s\t%s\t%s\t%s\t%s\n", map { $f{$_} // '' }
		    qw(scenario requests errors lost duplicated note);
		close $fh;
	}
}

1;
