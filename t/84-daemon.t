#!/usr/bin/perl
# tollgated as an operator starts it: --version names the version and the
# schema version (the highest sql/ migration); -t accepts the dev stack's
# configuration and refuses a bad one; tollgated refuses, with a clear
# message, a database whose schema is older or newer than it expects;
# and under socket activation (systemd-socket-activate, as systemd's
# tollgated.socket does) it answers on the socket it was given and leaves
# that socket alone when it stops.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep);
use TG qw(:DEFAULT run_with);

my $bin = "$ENV{TG_BUILD}/src/tollgated";
ok(-x $bin, "$bin is built") or BAIL_OUT('no tollgated');
my $dir = tempdir('tollgate-daemon-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# Runs a command list; returns (exit status, combined output).
sub run { return run_with({}, @_) }

sub write_conf {
	my ($path, $text) = @_;
	open my $fh, '>', $path or die "$path: $!";
	print $fh $text;
	close $fh;
	chmod 0600, $path;
}

my ($top) = sort { $b <=> $a } map { m{/0*(\d+)-[^/]*\.sql$} ? $1 : () }
    glob("$ENV{TG_ROOT}/sql/*.sql");

my ($rc, $out) = run($bin, '--version');
is($rc, 0, '--version exits 0');
like($out, qr/^tollgated \d+\.\d+\.\d+ \(schema version \Q$top\E\)$/m,
    "--version: the version and the schema version ($top)");

($rc, $out) = run($bin, '-t', '-c', $ENV{TG_CONF});
is($rc, 0, '-t accepts the dev stack\'s configuration') or diag($out);
like($out, qr/configuration \Q$ENV{TG_CONF}\E is ok/, '-t says the configuration is ok');
like($out, qr/schema version \Q$top\E, as this build expects/, '-t checked the schema');
($rc, $out) = run($bin, '-t', '-q', '-c', $ENV{TG_CONF});
is("$rc $out", '0 ', '-t -q: silent when all is well');

my $conf = do { local (@ARGV, $/) = ($ENV{TG_CONF}); <> };
# The instances this test starts have a gate socket and an engine file
# of their own: the dev stack's must not be taken over or removed.
$conf =~ s/^gate_socket = .*$/gate_socket = $dir\/gate.sock/m
    or $conf =~ s/^\[server\]$/[server]\ngate_socket = $dir\/gate.sock/m;
$conf =~ s/^engine_file = .*$//mg;
$conf =~ s/^\[server\]$/[server]\nengine_file = $dir\/engine.map/m;
write_conf("$dir/bad.conf", "$conf\n[server]\nno_such_key = 1\n");
($rc, $out) = run($bin, '-t', '-c', "$dir/bad.conf");
is($rc, 1, '-t refuses a configuration with an unknown key');
like($out, qr/no_such_key/, 'and names the key');

# A scratch database one migration behind, then one ahead.
SKIP: {
	my @root_db = (qw(mariadb --no-defaults -uroot -N -B),
	    "--socket=$ENV{TG_DB_SOCKET}");
	my $scratch = "tollgate_schema_$$";
	my ($r, $o) = run(@root_db, '-e', "CREATE DATABASE $scratch; " .
	    "GRANT ALL ON $scratch.* TO '$ENV{TG_DB_USER}'\@'localhost'");
	skip "no root access to the dev stack's MariaDB: $o", 20 if $r != 0;
	my $sconf = $conf =~ s/^name = .*$/name = $scratch/mr;
	write_conf("$dir/scratch.conf", $sconf);
	($r, $o) = run("$ENV{TG_BUILD}/src/tollgatectl", '-c', "$dir/scratch.conf",
	    'migrate');
	is($r, 0, 'the scratch database is migrated') or diag($o);
	like($o, qr{^applied routines/rules\.sql$}m, 'with the routines after the steps');
	my $ctl = sub { run("$ENV{TG_BUILD}/src/tollgatectl", '-c', "$dir/scratch.conf", @_) };
	my $digest = sub {
		my (undef, $d) = run(@root_db, '-e', "SELECT digest FROM $scratch.schema_routines");
		chomp $d;
		return $d;
	};
	my $built = $digest->();
	like($built, qr/^[0-9a-f]{64}$/, 'migrate recorded the routines\' digest');
	($rc, $out) = run($bin, '-t', '-c', "$dir/scratch.conf");
	is($rc, 0, '-t accepts the migrated scratch database') or diag($out);
	($r, $o) = $ctl->('migrate');
	unlike($o, qr/applied/, 'migrate again: nothing applied, routines unchanged');

	# Routines that are not this build's (an older tollgatectl migrated,
	# or a routine was dropped): tollgated refuses, migrate mends it.
	run(@root_db, '-e', "UPDATE $scratch.schema_routines SET digest = REPEAT('0', 64); " .
	    "DROP PROCEDURE $scratch.tg_allowance_renew");
	($rc, $out) = run($bin, '-t', '-c', "$dir/scratch.conf");
	is($rc, 1, '-t refuses routines of another build');
	like($out, qr/stored routines are not the ones this tollgate \S+ was built with/,
	    'and says why') or diag($out);
	($r, $o) = $ctl->('version');
	like($o, qr/routines in \S+ are not the database's; run tollgatectl migrate/,
	    'version says so too');
	($r, $o) = $ctl->('migrate');
	is($r, 0, 'migrate: exit 0') or diag($o);
	like($o, qr{^applied routines/engine\.sql$}m, 'migrate creates the routines again');
	is($digest->(), $built, 'and records this build\'s digest');
	($r, $o) = run(@root_db, '-e', "SELECT COUNT(*) FROM information_schema.routines " .
	    "WHERE routine_schema = '$scratch' AND routine_name = 'tg_allowance_renew'");
	like($o, qr/^1$/m, 'the dropped procedure is back');
	($rc, $out) = run($bin, '-t', '-c', "$dir/scratch.conf");
	is($rc, 0, '-t accepts it again') or diag($out);

	run(@root_db, '-e', "DELETE FROM $scratch.schema_migrations WHERE version = $top");

	($rc, $out) = run($bin, '-t', '-c', "$dir/scratch.conf");
	is($rc, 1, '-t refuses an older schema');
	like($out, qr/schema is at version \d+, older than this tollgate \S+ expects \($top\): run 'tollgatectl migrate'/,
	    'and says to run tollgatectl migrate') or diag($out);
	($rc, $out) = run($bin, '-c', "$dir/scratch.conf", '--sender');
	is($rc, 1, 'the sender does not start against it');
	like($out, qr/^<3>.*event=schema_mismatch .*older/m, 'and logs why, as an error');

	run(@root_db, '-e', "INSERT INTO $scratch.schema_migrations (version, name) " .
	    "VALUES ($top, 'back'), (99999, 'from-the-future')");
	($rc, $out) = run($bin, '-t', '-c', "$dir/scratch.conf");
	is($rc, 1, '-t refuses a newer schema');
	like($out, qr/schema is at version 99999, newer than this tollgate \S+ knows \($top\)/,
	    'and says it is newer') or diag($out);
	($rc, $out) = run($bin, '-c', "$dir/scratch.conf");
	is($rc, 1, 'tollgated does not start against it');
	run(@root_db, '-e', "DROP DATABASE $scratch");
}

# Socket activation: the socket is made by systemd-socket-activate and
# handed over as fd 3 (LISTEN_FDS), as tollgated.socket does.
SKIP: {
	for my $tool (qw(systemd-socket-activate cgi-fcgi)) {
		skip "$tool is not installed", 7
		    if system('sh', '-c', "command -v $tool >/dev/null") != 0;
	}
	my $sock = "$dir/activated.sock";
	# [server] socket points elsewhere: the socket passed must win.
	write_conf("$dir/act.conf", $conf =~ s/^socket = .*tollgate\.sock$/socket = $dir\/unused.sock/mr
	    =~ s/^workers = .*$/workers = 1/mr);
	my $pid = fork // die;
	if ($pid == 0) {
		open STDOUT, '>', "$dir/act.log" or die;
		open STDERR, '>&', \*STDOUT or die;
		exec 'systemd-socket-activate', '-l', $sock, $bin, '-c', "$dir/act.conf";
		exit 127;
	}
	wait_for(sub { -S $sock }, 10);
	ok(-S $sock, 'systemd-socket-activate made the socket');
	local $ENV{REQUEST_METHOD} = 'GET';
	local $ENV{DOCUMENT_URI} = '/healthz';
	local $ENV{SCRIPT_NAME} = '/healthz';
	local $ENV{REMOTE_ADDR} = '127.0.0.1';
	local $ENV{REQUEST_ID} = 'feedfacefeedfacefeedfacefeedface';
	($rc, $out) = run('cgi-fcgi', '-bind', '-connect', $sock);
	like($out, qr/"status"\s*:\s*"ok"/, 'tollgated answers on the socket it was given')
	    or diag($out);
	ok(!-e "$dir/unused.sock", '[server] socket was not made');
	kill 'TERM', $pid;
	my $gone = wait_for(sub { waitpid($pid, 1) == $pid }, 25);
	ok($gone, 'tollgated stops on SIGTERM');
	ok(-S $sock, 'and leaves the socket it was given in place');
	my $log = do { local (@ARGV, $/) = ("$dir/act.log"); <> } // '';
	like($log, qr/event=socket from=systemd/, 'it logged that the socket came from systemd');
	like($log, qr/request_id=feedfacefeedfacefeedfacefeedface/, 'the REQUEST_ID parameter is logged');
}

done_testing;
