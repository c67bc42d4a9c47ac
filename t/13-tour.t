#!/usr/bin/perl
# The README's five-minute tour, as a newcomer pastes it: the shell
# blocks of its "A five-minute tour" section, taken from the README itself
# (so the README cannot drift from what works), run in order in one bash
# against the dev stack with the mail catcher (contrib/mailcatcher, read
# through `contrib/devstack mail`) and the fake Stripe that `up` starts.
# It ends with a verified account, a key, a gated call answering 200, the
# usage API and the /usage page showing it, and the upgrade to Pro.
# Then "Sign in with GitHub" as `up` offers it: the fake GitHub asks who
# signs in, and the browser ends on /profile.

use strict;
use warnings;

use lib 't/lib', 't/fakes';
use Test::More;
use POSIX ();
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use TG;
use Fakes qw(fake_start);

require "./t/60-helpers.pl";

# The tour's blocks: the 8-space indented runs of the section.
sub tour_blocks {
	open my $fh, '<', "$ENV{TG_ROOT}/README" or die "README: $!";
	my @l = <$fh>;
	chomp @l;
	my ($i) = grep { $l[$_] eq 'A five-minute tour' } 0 .. $#l;
	die "README has no 'A five-minute tour' section\n" unless defined $i;
	my (@blocks, $cur);
	for my $j ($i + 2 .. $#l) {
		# The next section's title ends the tour.
		last if $j < $#l && $l[$j + 1] =~ /^-{4,}\z/ && $l[$j] =~ /\S/;
		if ($l[$j] =~ /^ {8}(.*)\z/) {
			push @blocks, $cur = [] unless $cur;
			push @$cur, $1;
		} else {
			undef $cur;
		}
	}
	return map { join("\n", @$_) . "\n" } @blocks;
}

my @blocks = tour_blocks();
cmp_ok(scalar @blocks, '>=', 7, 'the README tour has its seven blocks')
    or BAIL_OUT('no tour in the README');

# A fresh address for this run, in place of the README's.
my $email = sprintf 'tour-%d-%d@example.com', $$, int rand 1e9;
my $n = grep { s/^EMAIL=\S+$/EMAIL=$email/m } @blocks;
is($n, 1, 'the tour sets EMAIL once');

# The mail catcher, as `up` runs it: on the [smtp] url's port, keeping
# mail where `contrib/devstack mail` reads it.
my $mport = $ENV{TG_PORT} + 10;
my $catcher = fork // die "fork: $!";
if ($catcher == 0) {
	POSIX::setsid();
	open STDIN, '<', '/dev/null';
	open STDOUT, '>>', "$ENV{TG_DEVSTACK}/log/mailcatcher.log";
	open STDERR, '>&', \*STDOUT;
	exec 'perl', "$ENV{TG_ROOT}/contrib/mailcatcher", 'serve', $mport,
	    "$ENV{TG_DEVSTACK}/mail" or POSIX::_exit(127);
}
END {
	if ($catcher) {
		kill 'TERM', $catcher;
		waitpid $catcher, 0;
	}
}
ok(wait_for(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$mport",
    Timeout => 1) }, 10), 'the mail catcher listens');

fake_start('stripe', FAKE_STRIPE_LOCAL_PORTAL => 1);	# as `up` runs it

# Runs blocks $from..$to in bash, as pasted; each block's output is kept
# apart by a marker line.  The shell's variables carry over from one run
# to the next through a state file, as if it were one shell: the test
# looks at the usage before the upgrade (block 7) starts a new period.
my $state = "$ENV{TG_DEVSTACK}/tmp/tour-$$.state";
sub run_blocks {
	my ($from, $to) = @_;
	my $script = "set -e -o pipefail\ncd '$ENV{TG_ROOT}'\n"
	    . "[ -f '$state' ] && . '$state'\n";
	for my $k ($from .. $to) {
		$script .= "echo '\@\@block $k'\n$blocks[$k]";
	}
	$script .= "declare -p B EMAIL SIGNUP TOKEN LINK KEY >'$state' 2>/dev/null || true\n"
	    . "echo \"\@\@KEY=\$KEY\"\necho \"\@\@TOKEN=\$TOKEN\"\n";
	my $file = "$ENV{TG_DEVSTACK}/tmp/tour-$$.sh";
	open my $sh, '>', $file or die "$file: $!";
	print $sh $script;
	close $sh;
	local $ENV{DEVSTACK_PORT} = $ENV{TG_PORT};
	local $ENV{MAILCATCHER_WAIT} = 20;
	my $out = `bash '$file' 2>&1`;
	my $rc = $?;
	unlink $file;
	is($rc, 0, "blocks " . ($from + 1) . " to " . ($to + 1)
	    . " run to their end with set -e") or diag($out);
	return $out;
}
END { unlink $state if $state }

my $out = run_blocks(0, 5);
my %out;
{
	my $k;
	for my $line (split /\n/, $out) {
		if ($line =~ /^\@\@block (\d+)\z/) {
			$k = $1;
			$out{$k} = '';
		} elsif (defined $k) {
			$out{$k} .= "$line\n";
		}
	}
}
my ($key) = $out =~ /^\@\@KEY=(\S*)$/m;
my ($token) = $out =~ /^\@\@TOKEN=(\S*)$/m;

# 1. Sign-up.
my $signup = eval { Mojo::JSON::decode_json($out{0} =~ s/\n\@\@.*//sr) };
is($signup && $signup->{user}{email}, $email, '1. sign-up answers the user');
is($signup && $signup->{user}{email_verified} ? 1 : 0, 0,
    '1. not verified yet');
like($signup && $signup->{api_key}{key} // '', qr/^tgk_/,
    '1. sign-up shows a first API key');
my $uid = $signup && $signup->{user}{id};

# 2. The mail, read through contrib/devstack mail.
like($out{1} // '', qr/^Subject: .*[Vv]erif/m, '2. the verification mail');
like($out{1} // '', qr{^\s+\Q$ENV{TG_BASE}\E/verify-email\?token=}m,
    '2. its link is listed');

# 3. Verified.
like($out{2} // '', qr/^true$/m, '3. email_verified is true');

# 4. A key.
like($key // '', qr/^tgk_[A-Za-z0-9_-]+$/, '4. a new API key');

# 5. The gated call.
like($out{4} // '', qr{^HTTP/\S+ 200}m, '5. the gated call answers 200');
like($out{4} // '', qr/"user_id":"\Q$uid\E"/,
    '5. the upstream got the caller\'s user id') if $uid;
like($out{4} // '', qr/"code": "unauthenticated"/,
    '5. without a credential the gate answers 401 unauthenticated');

# 6. Usage.
like($out{5} // '', qr/"used": 1\b/, '6. usage counts the call');
my $res = req(GET => '/api/v1/usage',
    { Authorization => "Bearer " . ($key // '') });
is($res->json && $res->json->{meters}{api_calls}{used}, 1,
    '6. /api/v1/usage: api_calls used 1');

# The /usage page, as a browser sees it after logging in.
my $ua = browser();
$res = page_login($ua, $email, 'correct horse battery');
is($res->code, 303, 'the tour\'s account logs in on /login');
$res = bget($ua, '/usage');
is($res->code, 200, '/usage: 200');
like($res->body, qr{<tr id="meter-api_calls"><th scope="row">[^<]+</th><td>1</td>},
    '/usage shows the one API call');

# 7. Upgrade.
$out = run_blocks(6, $#blocks);
$out{6} = $out =~ /^\@\@block 6\n(.*?)(?:^\@\@|\z)/ms ? $1 : '';
like($out{6} // '', qr/"plan": "pro"/, '7. the plan is pro after paying');
like($out{6} // '', qr/"status": "active"/, '7. the subscription is active');

# --- "Manage billing": the fake portal, as `up` runs it, cancels.

my $portal = json_post('/api/v1/billing/portal', {},
    { Authorization => 'Bearer ' . ($token // '') });
is($portal->code, 200, 'Manage billing: a portal session');
my $purl = ($portal->json // {})->{url} // '';
like($purl, qr{^http://127\.0\.0\.1:\d+/portal/}, 'the fake portal is a local page');
my $pua = Mojo::UserAgent->new(max_redirects => 0);
my $ppage = $pua->get($purl)->res;
my ($cancel) = ($ppage->body // '') =~ m{action="(/portal/[^"]+/cancel/[^"]+)"};
ok($cancel, 'it offers to cancel the subscription');
my $back = $pua->post(Mojo::URL->new($cancel)->to_abs(Mojo::URL->new($purl)))->res;
is($back->code, 302, 'cancelling sends the browser back');
like($back->headers->location // '', qr{^\Q@{[ base() ]}\E/billing}, 'to /billing');
my $me = req(GET => '/api/v1/me', { Authorization => 'Bearer ' . ($token // '') })->json // {};
is($me->{user}{plan}, 'trial', 'the subscription is gone: back on the trial');

# --- GitHub sign-in on the dev stack (the fake, interactive as `up` runs it)

fake_start('github', FAKE_GITHUB_INTERACTIVE => 1);
my $gb = browser();
$res = $gb->get(base() . '/api/v1/auth/github')->res;
is($res->code, 302, 'Sign in with GitHub: to the (fake) GitHub');
my $auth = Mojo::URL->new($res->headers->location // '');
$res = $gb->get($auth)->res;
is($res->code, 200, 'the fake GitHub asks who signs in');
like($res->body, qr{name=fake_email}, 'with an email field');
my $gh_email = sprintf 'gh-%d-%d@example.com', $$, int rand 1e9;
$auth->query->merge(fake_email => $gh_email, fake_login => 'newcomer');
$res = $gb->get($auth)->res;
is($res->code, 302, 'it sends the browser back');
$res = $gb->get($res->headers->location)->res;
is($res->code, 302, 'the callback signs in');
is(location($res), '/profile', 'to /profile');
$res = bget($gb, '/profile');
is($res->code, 200, '/profile: signed in');
like($res->body, qr/\Q$gh_email\E/, 'as the GitHub account\'s email');

done_testing();
