package Fakes;

# Starts and talks to the fake outside services of the tests (t/fakes/):
# fake Stripe on TG_PORT + 11, fake GitHub on TG_PORT + 12 (the ports
# contrib/devstack writes into tollgate.conf) and the fake OpenID provider
# on TG_PORT + 13 (t/fakes/oidc.pl; its tests name it to tollgated).  A fake runs as its own
# Mojolicious daemon, started by the test that needs it and stopped when
# that test ends (or by stop()).  Each fake answers /_fake/* for the
# tests: what it was asked, and switches for outages and delays.

use strict;
use warnings;

use Exporter 'import';
use Mojo::UserAgent;
use Mojo::JSON qw(encode_json);
use POSIX ();
use Time::HiRes qw(sleep time);
use TG ();

our @EXPORT_OK = qw(fake_start fake_stop fake_get fake_post fake_port
    fake_id_token);

my %running;	# name => { pid, port }

sub fake_port {
	my ($name) = @_;
	return $ENV{TG_PORT} + ($name eq 'stripe' ? 11 : $name eq 'oidc' ? 13
	    : 12);
}

my $UA = Mojo::UserAgent->new(max_redirects => 0);
$UA->connect_timeout(2)->request_timeout(10)->inactivity_timeout(10);

sub _url { 'http://127.0.0.1:' . fake_port($_[0]) . $_[1] }

# GETs a control path of a fake; returns the decoded JSON (or undef).
sub fake_get {
	my ($name, $path) = @_;
	my $res = $UA->get(_url($name, $path))->result;
	return eval { $res->json };
}

# POSTs JSON to a control path of a fake; returns the decoded JSON.
sub fake_post {
	my ($name, $path, $data) = @_;
	my $res = $UA->post(_url($name, $path), json => $data // {})->result;
	return eval { $res->json };
}

# A token signed by the fake OpenID provider with key kid: good claims
# (iss, aud, sub: a random one unless given, iat now, exp in 5 minutes)
# with claims merged over them and the names in delete removed; alg and
# header as given (the provider's defaults otherwise).
sub fake_id_token {
	my (%o) = @_;
	my $now = int(time);
	my %c = (iss => $o{iss}, aud => $o{aud},
	    sub => $o{sub} // 'u' . int(rand 1e9), iat => $now,
	    exp => $now + 300, %{ $o{claims} // {} });
	delete $c{$_} for @{ $o{delete} // [] };
	return fake_post('oidc', '/_fake/sign', { claims => \%c,
	    kid => $o{kid}, alg => $o{alg}, header => $o{header} })->{token};
}

sub _alive {
	my ($name) = @_;
	my $tx = $UA->get(_url($name, '/_fake/ping'));
	return $tx->res->code && $tx->res->code == 200;
}

# Starts fake $name ('stripe' or 'github').  %env is given to the fake
# (e.g. FAKE_STATE_FILE).  Dies when it does not answer within 10 s.
sub fake_start {
	my ($name, %env) = @_;
	die "fake $name runs already\n" if $running{$name};
	die "the port of fake $name is taken\n" if _alive($name);
	if ($name eq 'stripe') {
		# Checkout "payments" are told to tollgate's webhook.
		$env{FAKE_WEBHOOK_URL} //= "$ENV{TG_BASE}/api/v1/billing/webhook";
		$env{FAKE_WEBHOOK_SECRET} //= TG::conf_get('stripe',
		    'webhook_secret');
	}
	my $script = "$ENV{TG_ROOT}/t/fakes/$name.pl";
	my $log = "$ENV{TG_DEVSTACK}/log/fake-$name.log";
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		POSIX::setsid();
		$ENV{$_} = $env{$_} for keys %env;
		$ENV{MOJO_LOG_LEVEL} = 'warn';
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $log or die "$log: $!";
		open STDERR, '>&', \*STDOUT;
		exec $^X, $script, 'daemon', '-l',
		    'http://127.0.0.1:' . fake_port($name)
		    or die "exec $script: $!";
	}
	$running{$name} = { pid => $pid };
	my $end = time + 10;
	until (_alive($name)) {
		die "fake $name did not start (see $log)\n" if time > $end;
		sleep 0.05;
	}
	return $pid;
}

# Stops fake $name (by its pid) and waits for it.
sub fake_stop {
	my ($name) = @_;
	my $f = delete $running{$name} or return;
	kill 'TERM', $f->{pid};
	my $end = time + 5;
	while (waitpid($f->{pid}, POSIX::WNOHANG()) == 0) {
		if (time > $end) {
			kill 'KILL', $f->{pid};
			waitpid $f->{pid}, 0;
			last;
		}
		sleep 0.05;
	}
}

END {
	my $status = $?;
	fake_stop($_) for keys %running;
	$? = $status;
}

1;
