#!/usr/bin/perl
# Logs as an operator reads them: every line of tollgated starts with a
# journald priority (<6> for a request answered, <3>/<4> for trouble);
# a %0A in the path cannot forge a line (the value is escaped and
# quoted); and nginx's $request_id links the access log, tollgated's line
# for the request, and the upstream behind the gate (X-Request-Id).

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Time::HiRes qw(sleep);
use TG;
use TGGate;

my $tlog = "$ENV{TG_DEVSTACK}/log/tollgated.log";
my $alog = "$ENV{TG_DEVSTACK}/log/access.log";

sub slurp_from {
	my ($path, $off) = @_;
	open my $fh, '<', $path or return '';
	seek $fh, $off, 0;
	local $/;
	return <$fh> // '';
}

my $toff = -s $tlog // 0;
my $aoff = -s $alog // 0;
my $mark = 'logmark' . time . $$;

# A forged line in the path: "%0A" decodes to a newline in $uri.
my $forged = "<3>ts=2026-01-01T00:00:00.000Z level=error pid=1 event=$mark";
(my $enc = $forged) =~ s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ge;
my $res = req(GET => "/api/v1/nothing%0A$enc", { 'User-Agent' => "ua-$mark" });
is($res->code, 404, 'a path with %0A: 404');

my ($tlines, $aline);
wait_for(sub {
	$tlines = slurp_from($tlog, $toff);
	($aline) = grep { /ua-\Q$mark\E/ } split /\n/, slurp_from($alog, $aoff);
	return $aline && $tlines =~ /\Q$mark\E/;
}, 10);
ok($aline, 'the access log has the request');
my @mine = grep { /\Q$mark\E/ } split /\n/, $tlines;
is(scalar @mine, 1, 'tollgated wrote one line for it, not two');
my $line = $mine[0] // '';
unlike($line, qr/^<3>ts=2026-01-01/, 'no line starts with the forged text');
like($line, qr/^<6>ts=\S+ level=info pid=\d+ event=request /,
    'the request line starts with <6> (info) for journald');
like($line, qr{ path="/api/v1/nothing\\n<3>ts=2026-01-01T00:00:00\.000Z level=error pid=1 event=\Q$mark\E" },
    'the path is quoted, its newline written \n');

# The request id: last field of the access log, request_id= in tollgated.
my ($rid) = ($aline // '') =~ / ([0-9a-f]{32})$/;
ok($rid, 'the access log ends with a 32-digit $request_id');
my $ridq = quotemeta($rid // 'none');
like($line, qr/ request_id=$ridq\z/,
    'tollgated logged the same request_id');
my @bad = grep { !/^<[0-7]>ts=/ } split /\n/, $tlines;
is("@bad", '', 'every new line of tollgated starts with a priority');

# Behind the gate: the check and the upstream see the same id.
my $u = new_user();
my $tok = $u->{token};
$toff = -s $tlog // 0;
$aoff = -s $alog // 0;
$res = req(GET => '/demo/echo', { Authorization => "Bearer $tok",
    'User-Agent' => "gate-$mark" });
is($res->code, 200, 'a gate-protected request: 200');
my $up = eval { $res->json->{request_id} };
SKIP: {
	skip 'the demo upstream does not echo X-Request-Id', 1 unless defined $up;
	like($up, qr/^[0-9a-f]{32}$/, 'the upstream got X-Request-Id');
}
wait_for(sub {
	($aline) = grep { /gate-\Q$mark\E/ } split /\n/, slurp_from($alog, $aoff);
	return $aline;
}, 10);
($rid) = ($aline // '') =~ / ([0-9a-f]{32})$/;
ok($rid, 'the gated request has a request id in the access log');
$tlines = slurp_from($tlog, $toff);
$ridq = quotemeta($rid // 'none');
like($tlines, qr{route=/_tollgate/check .* request_id=$ridq(?:\n|\z)},
    'the gate check was logged with the same request id');
is($up, $rid, 'the upstream got the same id') if defined $up;

done_testing;
