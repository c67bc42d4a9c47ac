#!/usr/bin/perl
# Scale-out (issue 9): two tollgate instances, A and B, each with its own
# nginx and workers, on a 3-node MariaDB Galera cluster.  What one
# instance decides holds at the other at once; writes go to one node;
# reads that decide see the latest commit even on another node; one node
# killed under load loses no committed write and the service goes on.
#
# Runs under `contrib/devstack cluster test` (full form), and in its
# short form as the last step of `contrib/devstack test`; it needs the
# cluster's TG_CLUSTER* variables and skips without them.  The tests of
# the gate (spends, the plan's rate limit, a revoked API key at the gate)
# skip while /demo/spend answers 404, and run once the gate is merged.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use TG;
use DBI;
use File::Temp qw(tempdir);
use Mojo::JSON qw(encode_json);
use Mojo::Promise;
use POSIX ();
use Time::HiRes qw(time sleep);

BEGIN {
	unless ($ENV{TG_CLUSTER_FORM}) {
		print "1..0 # SKIP needs the Galera cluster: contrib/devstack "
		    . "cluster test (contrib/devstack test runs its short form "
		    . "as its last step)\n";
		exit 0;
	}
}

my $FULL = $ENV{TG_CLUSTER_FORM} eq 'full';
my %BASE = (A => $ENV{TG_BASE}, B => $ENV{TG_BASE_B});
my @PORT = (undef, split /,/, $ENV{TG_CLUSTER_SQL_PORTS} // '');
my $CL = $ENV{TG_CLUSTER_DIR};
my $RUNID = sprintf '%x%04x', time, $$ & 0xffff;
my $PASSWORD = 'correct-horse-battery-42';
my $UA = ua();

note("form: $ENV{TG_CLUSTER_FORM}; A $BASE{A}, B $BASE{B}; nodes on @PORT[1..3]");

# ---------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------

# METHOD PATH at instance A or B; returns the response.
sub at {
	my ($inst, $method, $path, $headers, $body) = @_;
	my $tx = $UA->build_tx($method => $BASE{$inst} . $path => $headers // {},
	    defined $body ? ($body) : ());
	return $UA->start($tx)->res;
}

sub at_json {
	my ($inst, $path, $data, $headers) = @_;
	return at($inst, POST => $path,
	    { 'Content-Type' => 'application/json', %{ $headers // {} } },
	    encode_json($data));
}

sub bearer { { Authorization => "Bearer $_[0]" } }

# A handle on node n as the tollgate user (TCP, like tollgate), or undef.
sub node_dbh {
	my ($n) = @_;
	return DBI->connect("DBI:MariaDB:database=tollgate;host=127.0.0.1;"
	    . "port=$PORT[$n];mariadb_connect_timeout=3", $ENV{TG_DB_USER},
	    $ENV{TG_DB_PASSWORD}, { RaiseError => 1, PrintError => 0,
	    AutoCommit => 1 });
}

# A root handle on node n through its socket (the test runs as root).
sub node_root {
	my ($n) = @_;
	return DBI->connect("DBI:MariaDB:mariadb_socket=$CL/run/node$n.sock",
	    'root', '', { RaiseError => 1, PrintError => 0, AutoCommit => 1 });
}

sub node_value {
	my ($n, $sql, @bind) = @_;
	my $v = eval {
		my $dbh = node_dbh($n);
		my ($x) = $dbh->selectrow_array($sql, undef, @bind);
		$dbh->disconnect;
		$x;
	};
	return $v;
}

# tollgate's connections to node n (not the test's own).
sub tollgate_conns {
	return node_value($_[0], "SELECT COUNT(*) FROM "
	    . "information_schema.PROCESSLIST WHERE USER = 'tollgate' AND "
	    . "ID <> CONNECTION_ID()") // -1;
}

sub wsrep {
	my ($n, $name) = @_;
	my $v = eval {
		my $dbh = node_root($n);
		my (undef, $x) = $dbh->selectrow_array(
		    "SHOW GLOBAL STATUS LIKE ?", undef, $name);
		$x;
	};
	return $v // '';
}

sub cluster { devstack('cluster', @_) }

# Signs up a new user through inst.  Returns a hash: email, id, access
# token, refresh token, api key (id, key), or undef.
sub signup {
	my ($inst, $tag) = @_;
	my $email = sprintf 't90-%s-%s-%d@example.com', $tag, $RUNID,
	    int(rand 1e9);
	my $res = at_json($inst, '/api/v1/auth/signup',
	    { email => $email, password => $PASSWORD, name => 'Cluster' });
	return undef unless ($res->code // 0) == 201;
	my $j = $res->json;
	return { email => $email, id => $j->{user}{id},
	    access => $j->{tokens}{access_token},
	    refresh => $j->{tokens}{refresh_token},
	    key_id => $j->{api_key}{id}, key => $j->{api_key}{key} };
}

sub login {
	my ($inst, $email) = @_;
	my $res = at_json($inst, '/api/v1/auth/login',
	    { email => $email, password => $PASSWORD });
	return ($res, ($res->code // 0) == 200 ? $res->json->{tokens} : undef);
}

# The id of the session an access token belongs to, read through inst.
sub current_session {
	my ($inst, $access) = @_;
	my $res = at($inst, GET => '/api/v1/sessions', bearer($access));
	return undef unless ($res->code // 0) == 200;
	my ($s) = grep { $_->{current} } @{ $res->json };
	return $s ? $s->{id} : undef;
}

# The worker pids of instance inst's master.
sub workers_of {
	my ($inst) = @_;
	my $f = "$CL/" . lc($inst) . '/run/tollgated.pid';
	open my $fh, '<', $f or return ();
	chomp(my $master = <$fh> // '');
	return () unless $master =~ /^\d+$/;
	# The engine and its flusher are replaced only when [database]
	# changes; the FastCGI and gate workers on every reload.
	return sort { $a <=> $b } grep { my $c = TG::comm($_);
	    defined $c && $c !~ /^tollgate-(?:engine|flush)$/ }
	    split ' ', `pgrep -P $master`;
}

# Sets instance inst's host list (e.g. "3,1,2"; undef: 1,2,3) and waits
# until every worker has been replaced, so the next request connects anew.
sub reorder {
	my ($inst, $order) = @_;
	my %old = map { $_ => 1 } workers_of($inst);
	my $n = keys %old;
	return 0 unless cluster('hosts', lc $inst, $order // ());
	return wait_for(sub {
		my @now = workers_of($inst);
		@now == $n && !grep { $old{$_} } @now;
	}, 20);
}

# True when tollgate's connections are on node 1 only (after poking both
# instances so that idle workers check their links).
sub on_node1_only {
	at($_, GET => '/healthz') for (qw(A B)) x 6;
	return tollgate_conns(1) > 0 && tollgate_conns(2) == 0
	    && tollgate_conns(3) == 0;
}

# ---------------------------------------------------------------------
# Both instances, one database.
# ---------------------------------------------------------------------

for my $inst (qw(A B)) {
	my $res = at($inst, GET => '/healthz');
	is($res->code, 200, "instance $inst: healthz 200");
	is_deeply(eval { $res->json }, { status => 'ok' },
	    "instance $inst: healthz says ok");
}

for my $n (1 .. 3) {
	is(wsrep($n, 'wsrep_local_state_comment'), 'Synced',
	    "Galera node $n is synced");
}
is(wsrep(1, 'wsrep_cluster_size'), 3, 'the cluster has 3 nodes');

# Writes go to one node at a time: the first of [database] host.  (After
# a failover, connections return within 15 s: wait for that first.)
wait_for(\&on_node1_only, 25);
cmp_ok(tollgate_conns(1), '>', 0, 'tollgate is connected to node 1');
is(tollgate_conns(2), 0, 'no tollgate connection to node 2 (standby)');
is(tollgate_conns(3), 0, 'no tollgate connection to node 3 (standby)');

# What Galera needs of the schema: a primary key everywhere, InnoDB only.
{
	my $dbh = node_dbh(2);
	my $nopk = $dbh->selectcol_arrayref(q{
	    SELECT t.TABLE_NAME FROM information_schema.TABLES t
	    WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE'
	    AND NOT EXISTS (SELECT 1 FROM information_schema.TABLE_CONSTRAINTS c
		WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA
		AND c.TABLE_NAME = t.TABLE_NAME
		AND c.CONSTRAINT_TYPE = 'PRIMARY KEY')});
	is_deeply($nopk, [], 'every table has a primary key')
	    or diag("without: @$nopk");
	my $other = $dbh->selectcol_arrayref(q{
	    SELECT CONCAT(TABLE_NAME, ' ', ENGINE) FROM information_schema.TABLES
	    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'
	    AND ENGINE <> 'InnoDB'});
	is_deeply($other, [], 'every table is InnoDB (Galera replicates only InnoDB)')
	    or diag("@$other");
	my $n = $dbh->selectrow_array(q{SELECT COUNT(*) FROM
	    information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()});
	cmp_ok($n, '>=', 20, "the schema is there on node 2 ($n tables)");
	$dbh->disconnect;
}

# Nothing relies on what Galera does not replicate.
{
	my @hits;
	for my $f (glob("$ENV{TG_ROOT}/src/*.[ch] $ENV{TG_ROOT}/sql/*.sql")) {
		open my $fh, '<', $f or next;
		while (my $line = <$fh>) {
			push @hits, "$f:$.: $line"
			    if $line =~ /\bGET_LOCK\s*\(|\bLOCK\s+TABLES?\s+\w|ENGINE\s*=\s*MEMORY|\bCREATE\s+(?:TEMPORARY\s+)?TABLE\b.*\bMEMORY\b/i;
		}
	}
	is_deeply(\@hits, [], 'no GET_LOCK, LOCK TABLES or MEMORY tables in src/ and sql/')
	    or diag(@hits);
}

# ---------------------------------------------------------------------
# What one instance decides holds at the other at once.
# ---------------------------------------------------------------------

# Signs up at one instance, logs in at the other, revokes a session at
# the first and checks it at the second, rounds times.  Returns the
# number of rounds in which everything held.
sub decide_here_hold_there {
	my ($label, $rounds) = @_;
	my $good = 0;
	for my $round (1 .. $rounds) {
		my ($w, $r) = $round % 2 ? qw(A B) : qw(B A);
		my $u = signup($w, 'xs');
		my ($res, $tok) = $u ? login($r, $u->{email}) : ();
		my $ok = $u && $tok;
		unless ($ok) {
			diag("$label round $round: signup at $w or login at $r failed: "
			    . ($res ? $res->code // 'no answer' : 'no signup'));
			next;
		}
		# A token made at one instance works at the other.
		$ok &&= (at($r, GET => '/api/v1/sessions', bearer($u->{access}))->code // 0) == 200;
		my $sid = current_session($r, $tok->{access_token});
		$ok &&= defined $sid;
		my $del = at($w, DELETE => "/api/v1/sessions/" . ($sid // 'x'),
		    bearer($u->{access}));
		$ok &&= ($del->code // 0) == 204;
		my $after = at($r, GET => '/api/v1/sessions',
		    bearer($tok->{access_token}));
		unless ($ok && ($after->code // 0) == 401) {
			diag("$label round $round: revoke at $w "
			    . ($del->code // '-') . ", then $r answered "
			    . ($after->code // 'nothing'));
			next;
		}
		$good++;
	}
	return $good;
}

{
	my $u = signup('A', 'ab');
	ok($u, 'signup through A: 201');
	my ($res, $tok) = login('B', $u->{email});
	is($res->code, 200, 'log in through B at once with the account made at A');
	is(at('B', GET => '/api/v1/sessions', bearer($u->{access}))->code, 200,
	    "A's access token works at B");
	is(at('A', GET => '/api/v1/sessions', bearer($tok->{access_token}))->code,
	    200, "B's access token works at A");

	my $sid = current_session('B', $tok->{access_token});
	ok($sid, "B names the session it made ($sid)");
	is(at('A', DELETE => "/api/v1/sessions/$sid", bearer($u->{access}))->code,
	    204, 'the session is revoked through A');
	error_ok(at('B', GET => '/api/v1/sessions', bearer($tok->{access_token})),
	    401, 'unauthenticated', 'the revoked session at B at once');
	is(at('B', GET => '/api/v1/sessions', bearer($u->{access}))->code, 200,
	    'the other session still works at B');

	my $rounds = $FULL ? 20 : 6;
	is(decide_here_hold_there('same node', $rounds), $rounds,
	    "$rounds rounds of signup, login, revoke across A and B all held");
}

# Reads that decide see the latest commit on any node (wsrep_sync_wait):
# B reads from node 3 while A writes to node 1.  With node 3's applier
# held by FLUSH TABLES WITH READ LOCK, B's check of a session revoked
# through A must wait for node 3 to catch up, never answer from the old
# state (200).
SKIP: {
	ok(reorder('B', '3,1,2'), 'instance B now prefers node 3 (reloaded)')
	    or skip('B could not be reordered', 6);
	at('B', GET => '/healthz') for 1 .. 8;
	cmp_ok(tollgate_conns(3), '>', 0, 'B is connected to node 3');

	my $u = signup('A', 'cn');
	my ($res, $tok) = login('B', $u ? $u->{email} : 'x');
	is($res->code, 200, 'an account made at A (node 1) logs in at B (node 3)');
	my $sid = $tok ? current_session('B', $tok->{access_token}) : undef;

	my $root = eval { node_root(3) };
	ok($root, 'a root session on node 3') or skip('no root on node 3', 3);
	$root->do('FLUSH TABLES WITH READ LOCK');
	my $t0 = time;
	is(at('A', DELETE => "/api/v1/sessions/" . ($sid // 'x'),
	    bearer($u ? $u->{access} : 'x'))->code, 204,
	    'revoked through A while node 3 applies nothing');
	my $answer;
	my $p = $UA->get_p("$BASE{B}/api/v1/sessions" =>
	    bearer($tok ? $tok->{access_token} : 'x'))
	    ->then(sub { $answer = shift->result->code });
	Mojo::Promise->timer(1)->wait;
	my $early = $answer;
	$root->do('UNLOCK TABLES');
	$p->wait;
	ok(!defined $early, 'B did not answer from the old state while node 3 lagged')
	    or diag("B answered $early before node 3 caught up");
	is($answer, 401, sprintf('B refused the session once node 3 caught up '
	    . '(after %.1f s)', time - $t0));
	$root->disconnect;

	my $rounds = $FULL ? 20 : 6;
	is(decide_here_hold_there('cross node', $rounds), $rounds,
	    "$rounds rounds across A (node 1) and B (node 3) all held");
}
ok(reorder('B', undef), 'instance B prefers node 1 again');

# ---------------------------------------------------------------------
# The node tollgate writes to dies under load.
# ---------------------------------------------------------------------

# A child process sending requests until the deadline; each answer is a
# line: code, email (or -), instance, start and end time, Retry-After.
sub stream {
	my ($file, $deadline, $kind, $k, @tokens) = @_;
	my $pid = fork // die "fork: $!";
	return $pid if $pid;
	my $ua = ua();
	$ua->request_timeout(30);
	open my $out, '>', $file or die "$file: $!";
	$out->autoflush(1);
	my $i = 0;
	while (time < $deadline) {
		my $inst = ($i++ + $k) % 2 ? 'B' : 'A';
		my ($tx, $email);
		my $t0 = time;
		if ($kind eq 'signup') {
			$email = sprintf 't90-fo-%s-%d-%d@example.com', $RUNID, $k, $i;
			$tx = $ua->build_tx(POST => "$BASE{$inst}/api/v1/auth/signup"
			    => { 'Content-Type' => 'application/json' }
			    => encode_json({ email => $email, password => $PASSWORD }));
		} elsif ($kind eq 'spend') {
			$email = '-';
			$tx = $ua->build_tx(GET => "$BASE{$inst}/demo/spend"
			    => bearer($tokens[0]));
		} else {
			# Paced, over several users: each may make 120 calls a
			# minute to tollgate's own API ([limits] api_per_minute).
			sleep 0.08;
			$email = '-';
			$tx = $ua->build_tx(GET => "$BASE{$inst}/api/v1/sessions"
			    => bearer($tokens[$i % @tokens]));
		}
		my $res = $ua->start($tx)->res;
		printf $out "%s\t%s\t%s\t%.3f\t%.3f\t%s\n", $res->code // 'none',
		    $email, $inst, $t0, time,
		    $res->headers->header('Retry-After') // '-';
	}
	close $out;
	POSIX::_exit(0);
}

SKIP: {
	my $dir = tempdir(CLEANUP => 1);
	my @readers = grep { defined } map { signup('A', 'rd') } 1 .. 6;
	is(scalar @readers, 6, 'users for the read streams')
	    or skip('no readers', 12);
	my @tokens = map { $_->{access} } @readers;

	# With the gate, a stream of spends too: no committed spend lost.
	my ($spender, $plan);
	if ((at('A', GET => '/demo/spend')->code // 0) != 404) {
		$spender = signup('A', 'fs');
		$plan = plan_on($spender, 1_000_000, 1_000_000, 'fo')
		    if $spender && verify_email($spender);
	}

	my $len = $FULL ? 12 : 9;
	my $kill_after = 1.5;
	my $start = time;
	my $deadline = $start + $len;
	my @kids;
	my $nsign = $FULL ? 6 : 4;
	push @kids, stream("$dir/s$_", $deadline, 'signup', $_) for 1 .. $nsign;
	push @kids, stream("$dir/r$_", $deadline, 'read', $_, @tokens)
	    for 1 .. 2;
	push @kids, stream("$dir/p1", $deadline, 'spend', 1, $spender->{key})
	    if $plan;
	sleep $kill_after;
	my $t_kill = time;
	ok(cluster('node-stop', 1, 'KILL'), 'killed Galera node 1 (kill -9) under load');
	waitpid $_, 0 for @kids;

	my (@sign, @read, @spend);
	my %into = (s => \@sign, r => \@read, p => \@spend);
	for my $f (glob "$dir/*") {
		open my $fh, '<', $f or next;
		my ($kind) = $f =~ m{/([srp])\d+$};
		while (<$fh>) {
			chomp;
			my %r;
			@r{qw(code email inst t0 t1 retry)} = split /\t/;
			push @{ $into{$kind} }, \%r;
		}
	}
	my %by;
	$by{"$_->{code}"}++ for @sign;
	my $summary = join ', ', map { "$_: $by{$_}" } sort keys %by;
	my $after = grep { $_->{t0} > $t_kill } @sign;
	note(sprintf 'signups: %s; %d started after the kill; slowest %.1f s',
	    $summary, $after, (sort { $b <=> $a } map { $_->{t1} - $_->{t0} } @sign)[0] // 0);
	cmp_ok(scalar @sign, '>=', 20, 'a stream of signups ran ('
	    . scalar(@sign) . ')');

	my @bad = grep { $_->{code} ne '201' && $_->{code} ne '503' } @sign;
	is(scalar @bad, 0, 'every signup answered 201, or 503 (never 500, '
	    . 'never nothing)') or diag(join ', ', map { $_->{code} } @bad);
	my @no_retry = grep { $_->{code} eq '503' && $_->{retry} !~ /^\d+$/ } @sign;
	is(scalar @no_retry, 0, 'every 503 carries Retry-After');
	my @failed = grep { $_->{code} ne '201' } @sign;
	cmp_ok(scalar @failed, '<=', $nsign,
	    'at most one failed signup per client, around the kill ('
	    . scalar(@failed) . ')');

	# Requests started once the cluster had settled (the dead node is
	# declared dead after evs.suspect_timeout, 3 s here) all succeed.
	my $settled = $t_kill + 5;
	my @late = grep { $_->{t0} > $settled } @sign;
	cmp_ok(scalar @late, '>', 0, 'signups ran after the failover ('
	    . scalar(@late) . ')');
	is(scalar(grep { $_->{code} ne '201' } @late), 0,
	    'the service goes on: every signup started 5 s after the kill got 201');
	my @late_reads = grep { $_->{t0} > $settled } @read;
	ok(@late_reads && !grep({ $_->{code} ne '200' } @late_reads),
	    'every read started 5 s after the kill got 200 ('
	    . scalar(@late_reads) . ')');
	my @odd = grep { $_->{code} ne '200' && $_->{code} ne '503' } @read;
	is(scalar @odd, 0, 'every read answered 200 or 503 (' . scalar(@read)
	    . ' reads)') or diag(join ' ', map { $_->{code} } @odd[0 .. 9]);

	# No committed write lost: every 201 has its row on both survivors.
	my %created = map { $_->{email} => 1 } grep { $_->{code} eq '201' } @sign;
	my %tried = map { $_->{email} => 1 } @sign;
	for my $n (2, 3) {
		my $rows = eval {
			my $dbh = node_dbh($n);
			my $r = $dbh->selectcol_arrayref("SELECT email FROM users "
			    . "WHERE email LIKE ?", undef, "t90-fo-$RUNID-%");
			$dbh->disconnect;
			$r;
		} // [];
		my %have = map { $_ => 1 } @$rows;
		my @lost = grep { !$have{$_} } sort keys %created;
		is(scalar @lost, 0, sprintf('node %d: every signup answered 201 is '
		    . 'there (%d of %d)', $n, scalar(keys %created) - @lost,
		    scalar keys %created)) or diag("lost: @lost[0 .. ($#lost < 4 ? $#lost : 4)]");
		my @stray = grep { !$tried{$_} } keys %have;
		is(scalar @stray, 0, "node $n: no row that nobody asked for");
		my $extra = grep { !$created{$_} } keys %have;
		note("node $n: $extra rows whose signup answered 503 committed "
		    . "anyway (a lost COMMIT answer)") if $extra;
	}
	for my $inst (qw(A B)) {
		is(at($inst, GET => '/healthz')->code, 200,
		    "instance $inst: healthz 200 without node 1");
	}

	SKIP: {
		skip('the gate is not merged yet: no spend stream', 3)
		    unless $plan;
		my $ok = grep { $_->{code} eq '200' } @spend;
		my $unsure = grep { $_->{code} eq '503' } @spend;
		is(scalar(@spend) - $ok - $unsure, 0,
		    'every spend answered 200 or 503 (' . scalar(@spend) . ')');
		my $spent = node_value(2, q{SELECT COUNT(*) FROM credit_ledger
		    WHERE user_id = ? AND kind = 'spend'}, $spender->{id}) // -1;
		cmp_ok($spent, '>=', $ok, "no committed spend lost: $ok answered "
		    . "200, $spent in the ledger");
		cmp_ok($spent, '<=', $ok + $unsure,
		    'no spend that nobody asked for');
	}
	plan_off($spender, $plan) if $plan;

	# Node 1 comes back, catches up by IST, and the writers return to it.
	ok(cluster('node-start', 1), 'node 1 restarted and synced');
	is(wsrep(2, 'wsrep_cluster_size'), 3, 'the cluster has 3 nodes again');
	my %count = map { $_ => node_value($_, 'SELECT COUNT(*) FROM users '
	    . 'WHERE email LIKE ?', "t90-fo-$RUNID-%") // -1 } 1 .. 3;
	ok($count{1} == $count{2} && $count{2} == $count{3} && $count{1} >= keys %created,
	    "node 1 caught up: the same rows on every node ($count{1}, $count{2}, $count{3})");

	if ($FULL) {
		# A connection on a later host moves back every 15 s at most.
		ok(wait_for(\&on_node1_only, 40),
		    'every tollgate connection moved back to node 1');
	} else {
		# The short form does not wait for that: the workers are
		# replaced instead, to leave the stack as it was.
		ok(reorder('A', undef) && reorder('B', undef),
		    'both instances reloaded onto node 1');
	}
}

# ---------------------------------------------------------------------
# An API key revoked through A stops at B at once (GET /api/v1/me takes
# API keys; skipped while that or DELETE /api/v1/api-keys/{id} is not
# there yet).
# ---------------------------------------------------------------------

SKIP: {
	my $u = signup('A', 'ky');
	ok($u && $u->{key}, 'signup through A returned an API key')
	    or skip('no key', 3);
	my $me = at('B', GET => '/api/v1/me', bearer($u->{key}));
	skip('GET /api/v1/me is not there yet (404)', 3)
	    if ($me->code // 0) == 404;
	is($me->code, 200, 'the API key made at A works at B (GET /api/v1/me)');
	my $del = at('A', DELETE => "/api/v1/api-keys/$u->{key_id}",
	    bearer($u->{access}));
	skip('DELETE /api/v1/api-keys/{id} is not there yet (404)', 2)
	    if ($del->code // 0) == 404;
	is($del->code, 204, 'the key is revoked through A');
	error_ok(at('B', GET => '/api/v1/me', bearer($u->{key})), 401,
	    'unauthenticated', 'the revoked key at B at once');
}

# ---------------------------------------------------------------------
# The gate across both instances (skipped until the gate is merged).
# ---------------------------------------------------------------------

# Verifies u's email through the contract's endpoint, with the token
# from the verification mail in the outbox.  Returns true when done.
sub verify_email {
	my ($u) = @_;
	my $body = node_value(1, q{SELECT body_text FROM outbox WHERE user_id = ?
	    AND kind = 'verification' ORDER BY created_at DESC LIMIT 1}, $u->{id});
	my ($token) = ($body // '') =~ m{/verify-email\?token=([A-Za-z0-9_-]+)};
	return 0 unless $token;
	my $res = at_json('B', '/api/v1/auth/verify-email', { token => $token });
	return ($res->code // 0) == 200;
}

# Sends n requests at once, alternating A and B; returns the responses.
sub burst {
	my ($n, $path, $cred) = @_;
	my @p = map {
		my $inst = $_ % 2 ? 'B' : 'A';
		$UA->get_p("$BASE{$inst}$path" => bearer($cred))
		    ->then(sub { shift->result }, sub { undef });
	} 1 .. $n;
	my @res;
	Mojo::Promise->all(@p)->then(sub { @res = map { $_->[0] } @_ })->wait;
	return @res;
}

# Puts u on a plan of its own (so that only the limit under test binds):
# credits a period and a rate a minute.  Returns the plan's name.
sub plan_on {
	my ($u, $credits, $rate, $tag) = @_;
	my $plan = "t90-$RUNID-$tag";
	my $dbh = node_dbh(1);
	$dbh->do(q{INSERT INTO plans (name, display_name, rate_per_minute,
	    credits, api_keys, sort_order) VALUES (?, 'Cluster test', ?, ?, 5,
	    9999)}, undef, $plan, $rate, $credits);
	$dbh->do(q{INSERT INTO plan_limits (plan, meter, period_limit)
	    VALUES (?, 'credits', ?)}, undef, $plan, $credits);
	$dbh->do('UPDATE users SET plan_override = ? WHERE id = ?', undef,
	    $plan, $u->{id});
	$dbh->disconnect;
	return $plan;
}

# Takes u off the plan and removes it.
sub plan_off {
	my ($u, $plan) = @_;
	my $dbh = eval { node_dbh(1) } // node_dbh(2);
	$dbh->do('UPDATE users SET plan_override = NULL WHERE id = ?', undef,
	    $u->{id});
	$dbh->do('DELETE FROM plans WHERE name = ?', undef, $plan);
	$dbh->disconnect;
}

# Runs code with u on a plan of its own, removed again at the end.
sub with_plan {
	my ($u, $credits, $rate, $code) = @_;
	my $plan = plan_on($u, $credits, $rate, 'sp');
	my $ok = eval { $code->(); 1 };
	my $err = $@;
	plan_off($u, $plan);
	die $err unless $ok;
}

SKIP: {
	my $probe = at('A', GET => '/demo/spend');
	skip('the gate is not merged yet: /demo/spend answers 404 (spends, '
	    . 'rate limit and key revocation across both instances)', 9)
	    if ($probe->code // 0) == 404;

	# Concurrent spends over both instances against N credits.
	my $n = 20;
	my $u = signup('A', 'sp');
	ok($u && verify_email($u), 'a verified user for the spends')
	    or skip('POST /api/v1/auth/verify-email is not there', 8);
	with_plan($u, $n, 1000, sub {
		my @res = burst(3 * $n, '/demo/spend', $u->{key});
		my $ok = grep { $_ && $_->code == 200 } @res;
		my $no = grep { $_ && $_->code == 403 } @res;
		is($ok, $n, "$n credits, " . 3 * $n . " concurrent spends over A "
		    . "and B: exactly $n succeed");
		is($no, 2 * $n, 'the others are refused with 403');
		my $spent = node_value(2, q{SELECT COUNT(*) FROM credit_ledger
		    WHERE user_id = ? AND kind = 'spend'}, $u->{id});
		is($spent, $n, "the ledger holds exactly $n spends (read on node 2)");
	});

	# The plan's 10 a minute, spread over both instances.
	my $t = signup('B', 'rl');
	ok($t && verify_email($t), 'a verified trial user for the rate limit')
	    or skip('verification failed', 3);
	my @res = burst(25, '/demo/echo', $t->{key});
	my $pass = grep { $_ && $_->code == 200 } @res;
	my $limited = grep { $_ && $_->code == 429 } @res;
	is($pass, 10, '25 checks over A and B against 10 a minute: exactly 10 pass');
	is($limited, 15, 'the other 15 answer 429');

	# A key revoked through A stops at B at once.
	my $k = signup('A', 'kr');
	ok($k && verify_email($k), 'a verified user for the key');
	is(at('B', GET => '/demo/echo', bearer($k->{key}))->code, 200,
	    'the API key passes the gate at B');
	is(at('A', DELETE => "/api/v1/api-keys/$k->{key_id}",
	    bearer($k->{access}))->code, 204, 'the key is revoked through A');
	is(at('B', GET => '/demo/echo', bearer($k->{key}))->code, 401,
	    'the revoked key is refused at B at once');
}

done_testing;
