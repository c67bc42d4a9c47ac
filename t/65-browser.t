#!/usr/bin/perl
# A person in a real browser: Debian's headless Chromium, driven through
# its DevTools protocol over a websocket.  They sign up through the form,
# follow the mailed link (read from the outbox), log out and in again,
# create an API key and see it once, and open usage and billing; an
# admin opens /admin.  Each page is saved as a screenshot under
# .devstack/screenshots/.  Skips (with the reason) only when Chromium
# cannot start.

use strict;
use warnings;
use lib 't/lib', 't/fakes';

BEGIN { $ENV{MOJO_MAX_WEBSOCKET_SIZE} = 64 * 1024 * 1024 }

use Test::More;
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use MIME::Base64 qw(decode_base64);
use Mojo::IOLoop;
use Mojo::JSON qw(encode_json);
use POSIX qw(setsid);
use Time::HiRes qw(sleep time);
use TG;
use Fakes qw(fake_start fake_post);
require './t/60-helpers.pl';

my $t0 = time;
my $chromium = (grep { -x } qw(/usr/bin/chromium /usr/bin/chromium-browser))[0];
plan skip_all => 'chromium is not installed (contrib/devstack installs it)'
    unless $chromium;

# Start Chromium with a fresh profile; it writes its DevTools port into
# DevToolsActivePort in the profile directory.
my $profile = tempdir('tg-chromium-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $log = "$ENV{TG_DEVSTACK}/log/chromium.log";
my $pid = fork // die "fork: $!";
if ($pid == 0) {
	setsid();
	open STDIN, '<', '/dev/null';
	open STDOUT, '>', $log;
	open STDERR, '>&', \*STDOUT;
	exec $chromium, '--headless', '--no-sandbox', '--disable-gpu',
	    '--disable-background-networking', '--disable-component-update',
	    '--disable-sync', '--no-first-run', '--disable-extensions',
	    '--disable-dev-shm-usage', '--mute-audio', '--hide-scrollbars',
	    '--disable-breakpad', '--disable-crash-reporter',
	    '--ignore-certificate-errors', "--user-data-dir=$profile",
	    '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0',
	    '--window-size=1200,900', 'about:blank'
	    or exit 127;
}
END {
	if ($pid) {
		kill 'TERM', -$pid;
		my $end = time + 5;
		sleep 0.1 while waitpid($pid, POSIX::WNOHANG()) == 0 && time < $end;
		kill 'KILL', -$pid if kill 0, $pid;
	}
}
my $port_file = "$profile/DevToolsActivePort";
my $ws_url = wait_for(sub {
	open my $fh, '<', $port_file or return 0;
	my @l = <$fh>;
	chomp @l;
	return @l >= 2 ? "ws://127.0.0.1:$l[0]$l[1]" : 0;
}, 20);
unless ($ws_url) {
	my $why = do { local $/; open my $fh, '<', $log; <$fh> } // '';
	$why = (grep { /error|fail/i } split /\n/, $why)[-1] // 'no DevToolsActivePort';
	plan skip_all => "chromium cannot start: $why";
}

# The DevTools connection: a command waits for its answer; events queue.
my ($ws, $next_id, %answers, @events) = (undef, 0);
{
	my $ua = Mojo::UserAgent->new(inactivity_timeout => 60);
	$ua->websocket($ws_url => sub {
		my (undef, $tx) = @_;
		$tx->max_websocket_size(64 * 1024 * 1024);
		if ($tx->is_websocket) {
			$tx->on(json => sub {
				my (undef, $m) = @_;
				if (defined $m->{id}) { $answers{$m->{id}} = $m }
				else { push @events, $m }
			});
			$ws = $tx;
		}
		Mojo::IOLoop->stop;
	});
	Mojo::IOLoop->start;
	our $keep = $ua;
}
plan skip_all => 'chromium cannot start: its DevTools websocket did not open' unless $ws;

# A timer so that one_tick never blocks for long.
Mojo::IOLoop->recurring(0.05 => sub { });

sub cdp {
	my ($method, $params, $session) = @_;
	my $id = ++$next_id;
	$ws->send({ json => { id => $id, method => $method, params => $params // {},
	    $session ? (sessionId => $session) : () } });
	my $end = time + 20;
	Mojo::IOLoop->one_tick while !exists $answers{$id} && time < $end;
	my $a = delete $answers{$id} // die "DevTools: no answer to $method in 20 s";
	die "DevTools: $method: $a->{error}{message}" if $a->{error};
	return $a->{result};
}

my $target = cdp('Target.createTarget', { url => 'about:blank' })->{targetId};
my $s = cdp('Target.attachToTarget', { targetId => $target, flatten => \1 })->{sessionId};
cdp('Page.enable', {}, $s);
cdp('Emulation.setDeviceMetricsOverride',
    { width => 1200, height => 900, deviceScaleFactor => 1, mobile => \0 }, $s);

# Runs JavaScript in the page (DevTools is not bound by the page's CSP);
# returns its value.
sub js {
	my ($expr) = @_;
	my $r = cdp('Runtime.evaluate', { expression => $expr, returnByValue => \1,
	    awaitPromise => \1 }, $s);
	die "JS: $r->{exceptionDetails}{text}: $expr" if $r->{exceptionDetails};
	return $r->{result}{value};
}

# Waits until a new document has loaded after $action (a code ref) runs:
# the old document is marked, and the new one, complete, is not.
sub loads {
	my ($action) = @_;
	js('window.__tg_old = 1');
	$action->();
	my $end = time + 20;
	while (time < $end) {
		my $v = eval { js('window.__tg_old === undefined && document.readyState === "complete"') };
		return 1 if $v;
		sleep 0.05;
	}
	diag('no new page within 20 s');
	return 0;
}

sub go {
	my ($path) = @_;
	return loads(sub { cdp('Page.navigate', { url => base() . $path }, $s) });
}

# Types into a field, as a person would: focus, then insert the text.
sub type_into {
	my ($selector, $text) = @_;
	js("document.querySelector(" . encode_json($selector) . ").focus()");
	js("document.querySelector(" . encode_json($selector) . ").value = ''");
	cdp('Input.insertText', { text => $text }, $s);
}

sub click {
	my ($selector) = @_;
	return loads(sub { js("document.querySelector(" . encode_json($selector) . ").click()") });
}

sub path_now { js('location.pathname + location.search') }
sub text_now { js('document.body.innerText') }

my $shots = "$ENV{TG_DEVSTACK}/screenshots";
make_path($shots);
sub shot {
	my ($name) = @_;
	my $r = cdp('Page.captureScreenshot', { format => 'png', captureBeyondViewport => \1 }, $s);
	my $file = "$shots/$name.png";
	open my $fh, '>:raw', $file or die "$file: $!";
	print $fh decode_base64($r->{data});
	close $fh;
	ok(-s $file > 2000, "screenshot $name.png");
}

my $dbh = dbh();
my $email = new_email('browser');
my $pw = 'a browser password';

# Sign up through the form.
ok(go('/signup'), 'the sign-up page loads');
is(js('getComputedStyle(document.querySelector("header")).backgroundColor') ne 'rgba(0, 0, 0, 0)', 1,
    'the stylesheet applies (CSP allows it)');
type_into('#f-email', $email);
type_into('#f-name', 'Browser Person');
type_into('#f-password', 'short');
shot('01-signup');
ok(click('form[action="/signup"] button'), 'submitting a short password');
like(text_now(), qr/Password must be at least 10 characters/, 'the message is shown at the field');
shot('02-signup-error');
type_into('#f-password', $pw);
ok(click('form[action="/signup"] button'), 'submitting the sign-up form');
like(path_now(), qr{^/profile}, 'signed up: on the profile');
like(text_now(), qr/Welcome!/, 'the welcome notice');
shot('03-profile-new');

# Follow the mailed link.
my $link = wait_for(sub {
	my ($t) = $dbh->selectrow_array("SELECT body_text FROM outbox WHERE to_addr = ? AND kind = 'verification'",
	    undef, $email);
	return ($t // '') =~ m{(https://\S+/verify-email\?token=\S+)} ? $1 : 0;
}, 5);
ok($link, 'the verification mail has its link');
like($link, qr{^\Q${\ base()}\E/verify-email\?token=}, 'the link is built on base_url');
(my $lpath = $link) =~ s{^\Q${\ base()}\E}{};
ok(go($lpath), 'following the link');
unlike(js('document.body.innerText'), qr/"not_found"/, 'the link opens the confirmation page');
js('var b = document.querySelector("main form button"); if (b) b.click()');
sleep 0.5;
my ($verified) = $dbh->selectrow_array('SELECT email_verified_at IS NOT NULL FROM users WHERE email_lc = ?',
    undef, lc $email);
ok($verified, 'the email is verified');
shot('04-verify-email');

# Log out, and in again.
ok(go('/profile'), 'back to the profile');
ok(click('form.logout button'), 'log out');
like(path_now(), qr{^/login}, 'logged out: on the login page');
like(text_now(), qr/You have logged out/, 'the logout notice');
type_into('#f-username', $email);
type_into('#f-password', 'wrong password!!');
ok(click('form[action="/login"] button'), 'a wrong password');
like(text_now(), qr/The email or password is wrong/, 'the message is shown');
type_into('#f-password', $pw);
shot('05-login');
ok(click('form[action="/login"] button'), 'logging in');
like(path_now(), qr{^/profile}, 'logged in: on the profile');
my ($httponly) = js('document.cookie.indexOf("tg_session") < 0');
ok($httponly, 'the session cookie is invisible to scripts (HttpOnly)');

# Create an API key and see it once.
type_into('#f-key_name', 'my laptop');
ok(click('form[action="/profile/keys"] button'), 'creating an API key');
my $key = js('var e = document.querySelector("#new-key"); e ? e.textContent : ""');
like($key, qr/^tgk_[A-Za-z0-9_-]{40,}$/, 'the new key is shown');
js('document.querySelector("#keys").scrollIntoView()');
shot('06-key-created');
my $res = req(GET => '/api/v1/sessions', { Authorization => "Bearer $key" });
is($res->code, 403, 'the key is real: it authenticates, and is refused where a login is needed');
ok(go('/profile'), 'the profile again');
my $html = js('document.documentElement.outerHTML');
unlike($html, qr/\Q$key\E/, 'the key is not shown again') if $key;
like($html, qr/\Q${\ substr($key || 'x' x 12, 0, 12)}\E/, 'only its preview');
shot('07-profile');

# Use the key at the dev stack's gated demo (compute costs 5 minutes,
# spend 1 credit, echo 1 API call), then see it on the usage page.
my ($uid) = $dbh->selectrow_array('SELECT id FROM users WHERE email_lc = ?', undef, lc $email);
my %got;
for my $p ('/demo/compute', '/demo/compute', '/demo/spend', '/demo/spend', '/demo/spend', '/demo/echo') {
	my $c = req(GET => $p, { Authorization => "Bearer $key" })->code // 0;
	$got{$c}++;
}
is_deeply(\%got, { 200 => 6 }, 'six calls through the gate with the key');
ok(go('/usage'), 'the usage page');
is(js('(document.querySelector("#meter-compute_minutes td") || {}).textContent'), '10',
    'compute minutes used: 10');
is(js('(document.querySelector("#meter-credits td") || {}).textContent'), '3', 'credits used: 3');
is(js('(document.querySelector("#credits-left") || {}).textContent'), '7', 'credits left: 7');
is(js('document.querySelectorAll("svg rect.bar[height]:not([height=\'0.0\'])").length'), 3,
    "today's bar in each of the three charts");
like(js('document.querySelector("svg title").textContent'), qr/: 1 in all/,
    'the API calls chart says 1 in all');
shot('08-usage');
ok(go('/billing'), 'the billing page');
is(js('document.querySelectorAll("article.plan").length >= 3'), 1, 'the plans side by side');
my $side = js('var a = document.querySelectorAll("article.plan"); a[0].getBoundingClientRect().top === a[1].getBoundingClientRect().top');
ok($side, 'on a wide screen the plans stand in one row');
shot('09-billing');

# Upgrade through Checkout (the fake Stripe's page pays at once, tells
# tollgate's webhook, and sends the browser back).
fake_start('stripe');
fake_post('stripe', '/_fake/reset');
ok(click('#plan-pro form button'), 'Upgrade to Pro');
like(path_now(), qr{^/billing/checkout}, 'a page with the way to Stripe');
shot('10-checkout');
ok(click('#continue'), "on to Stripe's (fake) Checkout page");
like(js('document.title'), qr/Checkout/, 'Checkout is open');
ok(click('form button'), 'Pay');
like(path_now(), qr{^/billing\?checkout=success}, 'back on the billing page');
like(text_now(), qr/Thank you!/, 'the thank-you notice');
my $pro = wait_for(sub {
	go('/billing');
	return js('(document.querySelector("#current-plan") || {}).textContent') eq 'pro';
}, 10);
ok($pro, 'the plan is pro once the webhook is in');
shot('11-billing-pro');

# On a phone.
cdp('Emulation.setDeviceMetricsOverride',
    { width => 390, height => 844, deviceScaleFactor => 2, mobile => \1 }, $s);
ok(go('/profile'), 'the profile on a phone');
my $wide = js('document.documentElement.scrollWidth <= window.innerWidth + 1');
ok($wide, 'no sideways scrolling of the page on a phone');
shot('12-profile-phone');
cdp('Emulation.setDeviceMetricsOverride',
    { width => 1200, height => 900, deviceScaleFactor => 1, mobile => \0 }, $s);

# An admin.
ok(click('form.logout button'), 'log out');
type_into('#f-username', $ENV{TG_ADMIN_EMAIL});
type_into('#f-password', $ENV{TG_ADMIN_PASSWORD});
ok(click('form[action="/login"] button'), 'the admin logs in');
ok(go('/admin?q=' . ($email =~ s/@.*//r)), 'the admin searches');
like(text_now(), qr/\Q$email\E/, 'the user is found');
shot('13-admin');
ok(click('main table a'), "the user's page");
like(text_now(), qr/Audit trail/, 'with the audit trail');
shot('14-admin-user');

# Clean up.
drop_user($uid);
my $took = time - $t0;
cmp_ok($took, '<', 60, sprintf('the browser test took %.1f s', $took));

done_testing;
