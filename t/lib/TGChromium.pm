package TGChromium;

# Debian's headless Chromium for a test, driven through its DevTools
# protocol over a websocket (as t/65-browser.t does): start() opens one
# page; then js(EXPR) runs JavaScript in it (awaiting a promise),
# navigate(URL) loads a document, wait_js(EXPR) polls until EXPR is true,
# type_into(SELECTOR, TEXT) types as a person would, shot(NAME) saves a
# screenshot under .devstack/screenshots/.  start() returns undef with the
# reason in $TGChromium::why when Chromium is missing or cannot start; the
# browser is stopped when the test ends.

use strict;
use warnings;

BEGIN { $ENV{MOJO_MAX_WEBSOCKET_SIZE} = 64 * 1024 * 1024 }

use Exporter 'import';
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use MIME::Base64 qw(decode_base64);
use Mojo::IOLoop;
use Mojo::JSON qw(encode_json);
use Mojo::UserAgent;
use POSIX ();
use Time::HiRes qw(sleep time);
use TG ();

our @EXPORT_OK = qw(start js navigate wait_js type_into shot);
our $why;

my ($pid, $ws, $ua, $session, $next_id, %answers) = (undef, undef, undef,
    undef, 0);

END {
	if ($pid) {
		kill 'TERM', -$pid;
		my $end = time + 5;
		sleep 0.1 while waitpid($pid, POSIX::WNOHANG()) == 0 && time < $end;
		kill 'KILL', -$pid if kill 0, $pid;
	}
}

sub cdp {
	my ($method, $params, $s) = @_;
	my $id = ++$next_id;
	$ws->send({ json => { id => $id, method => $method,
	    params => $params // {}, $s ? (sessionId => $s) : () } });
	my $end = time + 20;
	Mojo::IOLoop->one_tick while !exists $answers{$id} && time < $end;
	my $a = delete $answers{$id} // die "DevTools: no answer to $method in 20 s\n";
	die "DevTools: $method: $a->{error}{message}\n" if $a->{error};
	return $a->{result};
}

# Starts Chromium with a fresh profile and opens a blank page.  Returns
# true, or undef with the reason in $why.
sub start {
	my $chromium = (grep { -x } qw(/usr/bin/chromium /usr/bin/chromium-browser))[0];
	unless ($chromium) {
		$why = 'chromium is not installed (contrib/devstack test installs it)';
		return undef;
	}
	my $profile = tempdir('tg-chromium-XXXXXX', TMPDIR => 1, CLEANUP => 1);
	my $log = "$ENV{TG_DEVSTACK}/log/chromium.log";
	$pid = fork // die "fork: $!";
	if ($pid == 0) {
		POSIX::setsid();
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $log;
		open STDERR, '>&', \*STDOUT;
		exec $chromium, '--headless', '--no-sandbox', '--disable-gpu',
		    '--disable-background-networking', '--disable-component-update',
		    '--disable-sync', '--no-first-run', '--disable-extensions',
		    '--disable-dev-shm-usage', '--mute-audio', '--hide-scrollbars',
		    '--disable-breakpad', '--disable-crash-reporter',
		    '--ignore-certificate-errors', "--user-data-dir=$profile",
		    '--remote-debugging-address=127.0.0.1',
		    '--remote-debugging-port=0', '--window-size=1200,900',
		    'about:blank'
		    or POSIX::_exit(127);
	}
	my $ws_url = TG::wait_for(sub {
		open my $fh, '<', "$profile/DevToolsActivePort" or return 0;
		my @l = <$fh>;
		chomp @l;
		return @l >= 2 ? "ws://127.0.0.1:$l[0]$l[1]" : 0;
	}, 20);
	unless ($ws_url) {
		$why = 'chromium cannot start: no DevToolsActivePort';
		return undef;
	}
	$ua = Mojo::UserAgent->new(inactivity_timeout => 60);
	$ua->websocket($ws_url => sub {
		my (undef, $tx) = @_;
		$tx->max_websocket_size(64 * 1024 * 1024);
		if ($tx->is_websocket) {
			$tx->on(json => sub {
				my (undef, $m) = @_;
				$answers{$m->{id}} = $m if defined $m->{id};
			});
			$ws = $tx;
		}
		Mojo::IOLoop->stop;
	});
	Mojo::IOLoop->start;
	unless ($ws) {
		$why = 'chromium cannot start: its DevTools websocket did not open';
		return undef;
	}
	Mojo::IOLoop->recurring(0.05 => sub { });
	my $target = cdp('Target.createTarget', { url => 'about:blank' })->{targetId};
	$session = cdp('Target.attachToTarget', { targetId => $target,
	    flatten => \1 })->{sessionId};
	cdp('Page.enable', {}, $session);
	cdp('Emulation.setDeviceMetricsOverride', { width => 1200,
	    height => 900, deviceScaleFactor => 1, mobile => \0 }, $session);
	return 1;
}

# Runs JavaScript in the page; returns its value (a promise is awaited).
sub js {
	my ($expr) = @_;
	my $r = cdp('Runtime.evaluate', { expression => $expr,
	    returnByValue => \1, awaitPromise => \1 }, $session);
	die "JS: $r->{exceptionDetails}{text}: $expr\n" if $r->{exceptionDetails};
	return $r->{result}{value};
}

# Polls EXPR every 50 ms for up to $timeout seconds (default 20); returns
# its last value.
sub wait_js {
	my ($expr, $timeout) = @_;
	my $end = time + ($timeout // 20);
	while (1) {
		my $v = eval { js($expr) };
		return $v if $v || time >= $end;
		sleep 0.05;
	}
}

# Loads URL and waits for the new document to be complete.
sub navigate {
	my ($url) = @_;
	js('window.__tg_old = 1');
	cdp('Page.navigate', { url => $url }, $session);
	return wait_js('window.__tg_old === undefined && '
	    . 'document.readyState === "complete"');
}

# Types into a field, as a person would: focus, then insert the text.
sub type_into {
	my ($selector, $text) = @_;
	my $q = 'document.querySelector(' . encode_json($selector) . ')';
	js("$q.focus()");
	js("$q.value = ''");
	cdp('Input.insertText', { text => $text }, $session);
}

# Saves a screenshot as .devstack/screenshots/NAME.png; returns its path.
sub shot {
	my ($name) = @_;
	my $dir = "$ENV{TG_DEVSTACK}/screenshots";
	make_path($dir);
	my $r = cdp('Page.captureScreenshot', { format => 'png' }, $session);
	my $file = "$dir/$name.png";
	open my $fh, '>:raw', $file or die "$file: $!";
	print $fh decode_base64($r->{data});
	close $fh;
	return $file;
}

1;
