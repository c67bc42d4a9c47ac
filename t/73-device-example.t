#!/usr/bin/perl
# contrib/examples/device-login.sh, the README's example for client
# authors, against the dev stack: it prints the URL and the code, a
# signed-in browser approves it on /device, and the script's poll gets
# the tokens and calls a gated endpoint with them (/demo/echo, or
# /api/v1/me while the dev stack has no gate).  A denial ends it with a
# message and a non-zero status.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::JSON qw(decode_json);
use TG;
use TGMail;
use TGAccount;
require './t/70-helpers.pl';

for my $tool (qw(curl jq)) {
	plan skip_all => "$tool is not installed"
	    unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}
sink_start();
my $base = base();
my $script = "$ENV{TG_ROOT}/contrib/examples/device-login.sh";
ok(-x $script, 'the script is executable');

# The gated echo of the dev stack, if it has one yet.
my $gated = (req(GET => '/demo/echo')->code // 0) == 401;
my $path = $gated ? '/demo/echo' : '/api/v1/me';
diag('no gate on this dev stack: the script calls /api/v1/me instead')
    unless $gated;

my $u = verified_user(tag => 'device-example');
my $ua = browser_login($u) or BAIL_OUT('cannot sign a browser in');

# Runs the script; calls $decide->($user_code) once the code is shown.
# Returns (exit status, everything it printed).
sub run_script {
	my ($decide) = @_;
	local $ENV{TOLLGATE_URL} = $base;
	local $ENV{CURL_CA_BUNDLE} = "$ENV{TG_DEVSTACK}/etc/cert.pem";
	local $ENV{CLIENT_NAME} = 'example script';
	my $pid = open(my $fh, '-|') // die "fork: $!";
	if ($pid == 0) {
		open STDERR, '>&', \*STDOUT or die "dup: $!";
		exec $script, $path or die "exec: $!";
	}
	my $out = '';
	local $SIG{ALRM} = sub { kill 'TERM', $pid; die "timeout\n" };
	alarm 90;
	my $decided;
	eval {
		while (my $line = <$fh>) {
			$out .= $line;
			if (!$decided && $line =~ /enter the code ([A-Z]{4}-[A-Z]{4})/) {
				$decided = 1;
				$decide->($1);
			}
		}
	};
	alarm 0;
	close $fh;
	return ($? >> 8, $out);
}

sub decide {
	my ($code, $action) = @_;
	my $res = $ua->get("$base/device?user_code=$code" => H())->result;
	$res = $ua->post("$base/device" => form_headers(Origin => $base) =>
	    form_body([user_code => $code], [action => $action],
	    [csrf => csrf_of($res->body)]))->result;
	is($res->code, 200, "$action on /device: 200");
}

my ($rc, $out) = run_script(sub { decide($_[0], 'approve') });
is($rc, 0, 'the script succeeds') or diag($out);
like($out, qr{To sign in, open \Q$base\E/device\nand enter the code [A-Z]{4}-[A-Z]{4}},
    'it prints the URL and the code');
like($out, qr{\Q$base\E/device\?user_code=[A-Z]{4}-[A-Z]{4}},
    'and the complete URL');
like($out, qr{Signed in as \Q$u->{email}\E}, 'it signs in');
my ($json) = $out =~ /^(\{.*\})\s*\z/ms;
my $answer = eval { decode_json($json // '') } // {};
if ($gated) {
	is($answer->{user_id}, $u->{id},
	    '/demo/echo saw the user (the gate took the access token)');
} else {
	is($answer->{user}{id}, $u->{id}, '/api/v1/me answered for the user');
}
is(db_row('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ? AND kind = ? '
    . 'AND client_name = ?', $u->{id}, 'device', 'example script')->{n}, 1,
    'a device session named after the client');

($rc, $out) = run_script(sub { decide($_[0], 'deny') });
isnt($rc, 0, 'denied: the script fails');
like($out, qr{denied}, 'saying so');

done_testing;
