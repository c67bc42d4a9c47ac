package TG;

# Helpers for tollgate's integration tests.  The tests run under
# `contrib/devstack test`, which starts the stack and sets TG_* in the
# environment (TG_BASE, TG_DEVSTACK, TG_CONF, TG_DB_*, ...).

use strict;
use warnings;

use Exporter 'import';
use Test::More;
use Mojo::UserAgent;
use Mojo::JSON qw(encode_json);
use Time::HiRes qw(sleep time);
use DBI;
use POSIX ();

our @EXPORT = qw(base ua req json_post dbh settle devstack master_pid worker_pids gate_pids engine_pid flusher_pid
    wait_for error_ok conf_get);
# Not in everyone's namespace (some tests have a ctl of their own).
our @EXPORT_OK = qw(run_with ctl restart_tollgated);

BEGIN {
	for my $v (qw(TG_BASE TG_DEVSTACK TG_CONF TG_ROOT)) {
		next if defined $ENV{$v};
		print "1..0 # SKIP $v is not set: run the tests through contrib/devstack test\n";
		exit 0;
	}
}

sub base { $ENV{TG_BASE} }

# A user agent for the stack: the certificate is self-signed; no
# redirects are followed, so tests see them.
sub ua {
	my $ua = Mojo::UserAgent->new(insecure => 1, max_redirects => 0);
	$ua->connect_timeout(5)->request_timeout(30)->inactivity_timeout(30);
	return $ua;
}

my $UA;

# Sends METHOD PATH with optional headers and body; returns the response
# (a Mojo::Message::Response: ->code, ->headers, ->json, ->body).  A
# connection that failed has no ->code.
sub req {
	my ($method, $path, $headers, $body) = @_;
	$UA //= ua();
	my $tx = $UA->build_tx($method => base() . $path => $headers // {},
	    defined $body ? ($body) : ());
	return $UA->start($tx)->res;
}

# POSTs $data as JSON.
sub json_post {
	my ($path, $data, $headers) = @_;
	return req(POST => $path,
	    { 'Content-Type' => 'application/json', %{ $headers // {} } },
	    encode_json($data));
}

# Waits until the gate engine's journal holds nothing uncommitted (what
# /metrics says), at most 5 s.  A gate check is answered once its records
# are in the journal, and committed a few milliseconds later; the API
# waits for them itself, a test reading the database directly calls this.
# On the cluster's short form, both instances' journals.
sub settle {
	$UA //= ua();
	for my $b (grep { defined } $ENV{TG_BASE}, $ENV{TG_BASE_B}) {
		my $ok;
		for (1 .. 500) {
			my $m = $UA->get("$b/metrics")->res->body // '';
			$ok = $m =~ /^tollgate_gate_journal_pending 0$/m
			    || $m !~ /^tollgate_gate_journal_pending /m;
			last if $ok;
			select(undef, undef, undef, 0.01);
		}
		return 0 unless $ok;
	}
	return 1;
}

# What the journal writes: a statement that reads these settles first.
my $COUNTED = qr/\b(?:usage_counters|usage_daily|credit_ledger|credit_balances|
    gate_leases|meter_reports|last_used_at)\b/x;

# A handle on the dev stack's database, as the tollgate user.  Statements
# that read what gate checks counted wait for the journal (settle).
sub dbh {
	my $dsn = "DBI:MariaDB:database=$ENV{TG_DB_NAME};"
	    . "mariadb_socket=$ENV{TG_DB_SOCKET}";
	my $settle = sub {
		my (undef, $sql) = @_;
		settle() if !ref $sql && defined $sql && $sql =~ $COUNTED;
		return;
	};
	return DBI->connect($dsn, $ENV{TG_DB_USER}, $ENV{TG_DB_PASSWORD},
	    { RaiseError => 1, PrintError => 0, AutoCommit => 1,
	      Callbacks => { map { $_ => $settle } qw(prepare do
	      selectrow_array selectrow_arrayref selectrow_hashref
	      selectall_arrayref selectall_hashref selectcol_arrayref) } });
}

# Runs a command (no shell) with extra environment; returns its exit
# status and its output and errors together.
sub run_with {
	my ($env, @cmd) = @_;
	local @ENV{ keys %$env } = values %$env;
	my $pid = open(my $fh, '-|') // die "fork: $!";
	if ($pid == 0) {
		open STDERR, '>&', \*STDOUT;
		exec @cmd or POSIX::_exit(127);
	}
	local $/;
	my $out = <$fh> // '';
	close $fh;
	return ($? >> 8, $out);
}

# tollgatectl against the running stack; returns (exit status, output).
sub ctl { return run_with({}, "$ENV{TG_BUILD}/src/tollgatectl", '-c', $ENV{TG_CONF}, @_) }

# Runs `contrib/devstack @args`; its output goes to stderr so it cannot
# mix with TAP.  Returns true when it succeeded.
sub devstack {
	my @args = @_;
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		open STDOUT, '>&', \*STDERR or die "dup: $!";
		exec "$ENV{TG_ROOT}/contrib/devstack", @args
		    or die "exec devstack: $!";
	}
	waitpid $pid, 0;
	return $? == 0;
}

# Restarts tollgated with extra environment (TOLLGATE_* overrides of its
# configuration; none: as configured) and waits up to 30 s for /healthz.
# Returns true when it answers.
sub restart_tollgated {
	my (%env) = @_;
	local @ENV{keys %env} = values %env;
	devstack('restart-tollgated') or return 0;
	return wait_for(sub { (req(GET => '/healthz')->code // 0) == 200 }, 30);
}

sub master_pid {
	open my $fh, '<', "$ENV{TG_DEVSTACK}/run/tollgated.pid" or return undef;
	my $pid = <$fh>;
	chomp $pid if defined $pid;
	return $pid;
}

# The master's children, sorted (their number in scalar context).
# The master's FastCGI workers (not its gate workers and engine process,
# which name themselves tollgate-gate and tollgate-engine).
sub worker_pids {
	my $master = master_pid() // return ();
	my @pids = sort { $a <=> $b } grep { my $c = comm($_);
	    defined $c && $c !~ /^tollgate-(?:gate|engine|flush)$/ }
	    split ' ', `pgrep -P $master`;
	return @pids;
}

# A process's name (/proc/PID/comm), or undef when it is gone.
sub comm {
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/comm") or return undef;
	my $c = <$fh> // '';
	chomp $c;
	return $c;
}

# The master's gate workers, its engine process and its flusher.
sub gate_pids {
	my $master = master_pid() // return ();
	return sort { $a <=> $b } grep { (comm($_) // '') eq 'tollgate-gate' }
	    split ' ', `pgrep -P $master`;
}

sub engine_pid { child_named('tollgate-engine') }
sub flusher_pid { child_named('tollgate-flush') }

sub child_named {
	my ($name) = @_;
	my $master = master_pid() // return undef;
	my ($p) = grep { (comm($_) // '') eq $name } split ' ', `pgrep -P $master`;
	return $p;
}

# Polls $cond every 0.1 s until it returns true or $timeout seconds pass;
# returns its last value.
sub wait_for {
	my ($cond, $timeout) = @_;
	my $end = time + ($timeout // 10);
	while (1) {
		my $v = $cond->();
		return $v if $v || time >= $end;
		sleep 0.1;
	}
}

# Asserts the contract's error shape: the status, a JSON body
# {"error": {"code": $code, "message": "..."}}.  Returns true when all hold.
sub error_ok {
	my ($res, $status, $code, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $ok = is($res->code, $status, "$name: status $status");
	$ok &= like($res->headers->content_type // '', qr{^application/json},
	    "$name: JSON body");
	my $json = eval { $res->json };
	my $err = ref $json eq 'HASH' ? $json->{error} : undef;
	$ok &= is(ref $err eq 'HASH' ? $err->{code} : undef, $code,
	    "$name: error code $code");
	$ok &= ok(ref $err eq 'HASH' && defined $err->{message}
	    && !ref $err->{message} && length $err->{message},
	    "$name: error message");
	diag('body: ' . substr($res->body // '', 0, 300)) unless $ok;
	return $ok;
}

# A key of tollgate.conf (the file, not the environment's overrides).
sub conf_get {
	my ($section, $key) = @_;
	open my $fh, '<', $ENV{TG_CONF} or die "$ENV{TG_CONF}: $!";
	my $in = '';
	while (my $line = <$fh>) {
		if ($line =~ /^\s*\[\s*([^\]\s]+)\s*\]/) {
			$in = $1;
		} elsif ($in eq $section && $line =~ /^\s*\Q$key\E\s*=\s*(.*?)\s*$/) {
			return $1;
		}
	}
	return undef;
}

1;
