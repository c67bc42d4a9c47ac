#!/usr/bin/perl
# Password hashing never starves the gate (contract section 7, issue 15
# finding 6):
#
# - a sign-up for an address that has an account answers 409 without an
#   Argon2id hash, and a reset with an unknown token 400 without one
#   (tollgate_password_hashes_total in /metrics does not move);
# - successful logins are throttled too, per account (only a holder of
#   the password can reach that throttle);
# - while clients from many addresses post sign-ups, logins and resets,
#   gate checks keep answering quickly (once the gate has workers of its
#   own, issue 14), and hashing that waited past its time for a slot of
#   the cap is refused with 503 unavailable and Retry-After, never a 500.
#   (The cap itself, and that a killed holder's slot comes back, are
#   tested in t/unit/hashcap.c.)

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Time::HiRes qw(time sleep);
use List::Util qw(sum);
use POSIX ();
use File::Temp ();
use TG;
use TGMail;
use TGAccount;
use TGGate ();

sink_start();
my $limit = conf_get('limits', 'login_failures') // 10;

sub hashes {
	my $m = req(GET => '/metrics')->body // '';
	return $m =~ /^tollgate_password_hashes_total (\d+)/m ? $1 : undef;
}

# --- no hash for a duplicate sign-up or an unknown reset token ----------
{
	my $u = signup(tag => 'hf-dup');
	my $before = hashes();
	ok(defined $before, '/metrics counts password hashes');
	for (1 .. 3) {
		error_ok(jpost('/api/v1/auth/signup', { email => uc $u->{email},
		    password => fresh_password(), name => 'Dup' }), 409,
		    'email_taken', 'a sign-up for a taken address');
	}
	error_ok(jpost('/api/v1/auth/password/reset', { token => 'x' x 43,
	    password => fresh_password() }), 400, 'invalid_token',
	    'a reset with an unknown token');
	is(hashes(), $before, 'none of them hashed a password');
	login($u->{email}, $u->{password});
	cmp_ok(hashes() // 0, '>', $before // 0, 'a login does (the counter works)');
}

# --- successful logins are throttled too --------------------------------
{
	my $u = signup(tag => 'hf-ok');
	my @codes;
	for my $i (1 .. 10 * $limit + 2) {
		push @codes, login($u->{email}, $u->{password},
		    'X-Forwarded-For' => new_addr())->code;
		last if $codes[-1] == 429;
	}
	is($codes[-1], 429, 'repeated good logins of one account end in 429 '
	    . '(after ' . scalar(@codes) . ' tries)');
	cmp_ok(scalar(grep { $_ == 200 } @codes), '>=', $limit,
	    'but only after many successful ones');
}

# --- the shipped nginx: the posts that hash pass a POST-only zone -------
# (the dev stack's nginx runs its zones in dry-run mode, so this reads the
# shipped files; t/05-nginx-shipped.t checks that nginx accepts them.)
{
	my $read = sub { local $/; open my $fh, '<', "$ENV{TG_ROOT}/nginx/$_[0]"
	    or die "$_[0]: $!"; <$fh> };
	my $http = $read->('tollgate-http.conf');
	my $app = $read->('tollgate-app.conf');
	like($http, qr/map \$request_method \$tollgate_hash_key \{\s*POST\s+\$binary_remote_addr;\s*default\s+"";/,
	    'the hashing zone counts POSTs only');
	like($http, qr/limit_req_zone \$tollgate_hash_key zone=tollgate_hash:\S+ rate=\d+r\/s;/,
	    'the hashing zone is defined');
	for my $loc ('location = /api/v1/auth/signup', 'location = /api/v1/auth/login',
	    'location = /api/v1/auth/password/reset') {
		like($app, qr/\Q$loc\E \{[^}]*limit_req zone=tollgate_hash /,
		    "$loc: in the hashing zone");
	}
	my ($pages) = $app =~ m!location ~ \^/\(\?:([^)]*)\)\$ \{[^}]*zone=tollgate_hash !s;
	for my $p (qw(signup login forgot-password reset-password auth/magic
	    verify-email)) {
		like($pages // '', qr/(?:^|\|)\Q$p\E(?:\||$)/,
		    "the HTML page /$p: in the hashing zone");
	}
}

# --- the flood ----------------------------------------------------------
my $plan = TGGate::test_plan(rate => 1000000, credits => 1000000);
my $g = TGGate::new_user();
TGGate::on_plan($g, $plan);
my %auth = (Authorization => "Bearer $g->{token}");
my $known = signup(tag => 'hf-known');

# Gate checks, one after another, for $secs seconds; their times (ms).
sub gate_times {
	my ($secs) = @_;
	my @t;
	my $end = time + $secs;
	my $ua = ua();
	while (time < $end) {
		my $t0 = time;
		my $res = $ua->get(base() . '/demo/echo' => \%auth)->result;
		push @t, 1000 * (time - $t0);
		die 'gate: ' . $res->code unless $res->code == 200;
	}
	return @t;
}
sub median { my @s = sort { $a <=> $b } @_; return $s[int(@s / 2)] }

gate_times(1);	# warm up
my $quiet = median(gate_times(3));
diag(sprintf 'quiet gate median %.1f ms', $quiet);

# The flood: clients posting sign-ups, logins (right and wrong passwords)
# and resets from many addresses; each child writes its status counts.
my $dir = File::Temp::tempdir('tg-flood-XXXXXX', TMPDIR => 1, CLEANUP => 1);
require File::Temp;
my $clients = 16;
my $secs = 8;
my @kids;
for my $k (1 .. $clients) {
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		my %n;
		my $ua = ua();
		my $end = time + $secs;
		my $i = 0;
		while (time < $end) {
			$i++;
			my $a = new_addr();
			my $what = ($k + $i) % 4;
			my $res;
			if ($what == 0) {
				$res = $ua->post(base() . '/api/v1/auth/signup' =>
				    { 'X-Forwarded-For' => $a } => json => {
				    email => "hf-flood-$$-$i\@example.com",
				    password => 'flood-password-123' })->result;
			} elsif ($what == 1) {
				$res = $ua->post(base() . '/api/v1/auth/login' =>
				    { 'X-Forwarded-For' => $a } => json => {
				    email => $known->{email},
				    password => 'wrong-password-flood' })->result;
			} elsif ($what == 2) {
				$res = $ua->post(base() . '/api/v1/auth/login' =>
				    { 'X-Forwarded-For' => $a } => json => {
				    email => "nobody-$$-$i\@example.com",
				    password => 'flood-password-123' })->result;
			} else {
				$res = $ua->post(base() .
				    '/api/v1/auth/password/reset' =>
				    { 'X-Forwarded-For' => $a } => json => {
				    token => 'r' x 43,
				    password => 'flood-password-123' })->result;
			}
			my $c = $res->code // 0;
			$n{$c}++;
			if ($c == 503) {
				$n{'503ra'}++ if ($res->headers->header('Retry-After')
				    // '') =~ /^\d+$/;
				$n{'503json'}++ if (eval { $res->json->{error}{code} }
				    // '') eq 'unavailable';
			}
		}
		open my $fh, '>', "$dir/$k" or POSIX::_exit(1);
		print $fh join("\n", map { "$_ $n{$_}" } sort keys %n), "\n";
		close $fh;
		POSIX::_exit(0);
	}
	push @kids, $pid;
}
sleep 1.5;	# let the flood build up
my @busy = gate_times($secs - 2.5);
waitpid $_, 0 for @kids;
my %tot;
for my $k (1 .. $clients) {
	open my $fh, '<', "$dir/$k" or next;
	while (<$fh>) { my ($c, $n) = split; $tot{$c} += $n }
}
my $flood_med = median(@busy);
diag(sprintf 'gate median during the flood %.1f ms (%d checks); flood '
    . 'answers: %s', $flood_med, scalar @busy,
    join(' ', map { "$_:$tot{$_}" } sort keys %tot));
cmp_ok(sum(map { $tot{$_} } grep { /^\d+$/ } keys %tot), '>', 50,
    'the flood ran');
# The cap keeps a core for the gate; the gate's own workers (issue 14)
# keep it from queueing behind the hashing requests.  While the gate
# still shares the account workers' FastCGI socket, its checks wait in
# that queue whatever the cap does: the latency is then only reported.
my $app = do { local $/; open my $fh, '<', "$ENV{TG_ROOT}/nginx/tollgate-app.conf"
    or die; <$fh> };
my ($gate_loc) = $app =~ m{location = /_tollgate/check \{(.*?)\n\}}s;
my $shared = ($gate_loc // '') =~ /fastcgi_pass\s+tollgate_fcgi\s*;/;
SKIP: {
	skip 'the gate shares its workers with the hashing (issue 14 gives '
	    . 'it its own): median ' . sprintf('%.1f ms', $flood_med), 1
	    if $shared;
	cmp_ok($flood_med, '<=',
	    ($quiet * 5 > $quiet + 25 ? $quiet * 5 : $quiet + 25),
	    'gate checks keep answering quickly during the flood');
}
is($tot{500} // 0, 0, 'no 500 in the flood');
is($tot{0} // 0, 0, 'no connection failed');
is($tot{'503ra'} // 0, $tot{503} // 0,
    'every 503 (hashing past the cap) carries Retry-After');
is($tot{'503json'} // 0, $tot{503} // 0, 'and the unavailable error body');

END {
	my $db = eval { dbh() } or return;
	$db->do(q{DELETE FROM users WHERE email_lc LIKE 'hf-flood-%'});
}

done_testing();
