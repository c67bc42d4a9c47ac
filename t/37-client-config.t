#!/usr/bin/perl
# GET /api/v1/client-config (contract section 7a, issue 18): with any
# user credential (access token, API key, session cookie), {config, user,
# plan, meters: {<meter>: {used, limit, remaining}}}; config is {} without
# [client] config_file, else the file's JSON object (read again on a
# reload); tollgated refuses to start on an unreadable file or one that is
# not a JSON object; contrib/examples/client-config.sh, a client of it.
#
# The dev stack names no config_file, so this test adds one, restarts
# tollgated, and puts the configuration back at the end.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::JSON qw(encode_json);
use TG;
use TGGate;
require './t/60-helpers.pl';

my $conf = $ENV{TG_CONF};
my $orig = do { local (@ARGV, $/) = $conf; <> };
my $cfile = "$ENV{TG_DEVSTACK}/tmp/client-37.json";

sub write_file {
	my ($path, $text, $mode) = @_;
	open my $fh, '>', "$path.new" or die "$path.new: $!";
	print $fh $text;
	close $fh;
	chmod $mode // 0600, "$path.new";
	rename "$path.new", $path or die "rename: $!";
}
sub restart {
	devstack('restart-tollgated') or return 0;
	return wait_for(sub { (req(GET => '/healthz')->code // 0) == 200 }, 20);
}
END {
	if (defined $orig && $orig ne do { local (@ARGV, $/) = $conf; <> }) {
		write_file($conf, $orig);
		restart();
	}
	unlink $cfile;
}

my $u = new_user();
my $res = req(GET => '/api/v1/client-config', bearer($u->{token}));
is($res->code, 200, 'client-config: 200 with an access token');
my $c = $res->json // {};
is_deeply($c->{config}, {}, 'no [client] config_file: config is {}');
is($c->{user}{id}, $u->{id}, 'user: who is asking');
is($c->{user}{email}, $u->{email}, 'user: the email');
is($c->{plan}{name}, 'trial', 'plan: the plan object');
is($c->{plan}{limits}{compute_minutes}, 60, 'plan: with its limits');
is_deeply($c->{meters}{compute_minutes}, { used => 0, limit => 60, remaining => 60 },
    'meters: used, limit, remaining');
is_deeply($c->{meters}{credits}, { used => 0, limit => 10, remaining => 10 },
    'meters: credits');

# Use moves the numbers.
is(req(GET => '/demo/compute', bearer($u->{key}))->code, 200, 'compute once (5)');
$c = req(GET => '/api/v1/client-config', bearer($u->{key}))->json // {};
is_deeply($c->{meters}{compute_minutes}, { used => 5, limit => 60, remaining => 55 },
    'with an API key too; 55 left');
gdb()->do(q{UPDATE credit_balances SET granted = 7 WHERE user_id = ?}, undef, $u->{id});
$c = req(GET => '/api/v1/client-config', bearer($u->{token}))->json // {};
is($c->{meters}{credits}{remaining}, 17, 'credits remaining: every credit the user can spend');
is($c->{credits}{remaining}, 17, 'the same as credits.remaining');
gdb()->do(q{INSERT INTO usage_counters (user_id, meter, period_start, used) SELECT ?,
    'compute_minutes', tg_period_start(?, 'trial'), 70 FROM DUAL ON DUPLICATE KEY
    UPDATE used = 70}, undef, $u->{id}, $u->{id});
$c = req(GET => '/api/v1/client-config', bearer($u->{token}))->json // {};
is($c->{meters}{compute_minutes}{remaining}, 0, 'past the limit: 0 left, never negative');

# The session cookie of the pages counts too.
my ($email, $pw, $j) = make_user('cc37', 'Cookie User');
my $ua = browser();
is(page_login($ua, $email, $pw)->code, 303, 'a browser logs in');
$res = bget($ua, '/api/v1/client-config');
is($res->code, 200, 'with the session cookie');
is(($res->json // {})->{user}{email}, $email, 'the cookie\'s user');
dbh()->do('DELETE FROM users WHERE id = ?', undef, $j->{user}{id});

error_ok(req(GET => '/api/v1/client-config'), 401, 'unauthenticated', 'no credential');
error_ok(req(GET => '/api/v1/client-config', bearer('tgk_' . 'x' x 40)), 401,
    'unauthenticated', 'a bad key');

# A plan without a row: plan null (the fallback is none after the trial).
my $o = new_user();
gdb()->do(q{UPDATE users SET trial_ends_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND
    WHERE id = ?}, undef, $o->{id});
$c = req(GET => '/api/v1/client-config', bearer($o->{token}))->json // {};
ok(exists $c->{plan} && !defined $c->{plan}, 'no plan: plan null');
ok(exists $c->{user} && !defined $c->{user}{plan}, 'and user.plan null');

# --- Refusals at start. ----------------------------------------------------
{
	local $ENV{TOLLGATE_CLIENT_CONFIG_FILE} = "$ENV{TG_DEVSTACK}/tmp/no-such-37.json";
	my $out = `$ENV{TG_BUILD}/src/tollgated -c $conf 2>&1`;
	isnt($? >> 8, 0, 'an unreadable config_file: tollgated refuses to start');
	like($out, qr/\[client\] config_file .* cannot be read/, 'and says why');
	write_file($cfile, '[1, 2]');
	$ENV{TOLLGATE_CLIENT_CONFIG_FILE} = $cfile;
	$out = `$ENV{TG_BUILD}/src/tollgated -c $conf 2>&1`;
	isnt($? >> 8, 0, 'an array: refused');
	like($out, qr/must hold one JSON object/, 'and says why');
	write_file($cfile, '{"a": 1} {"b": 2}');
	$out = `$ENV{TG_BUILD}/src/tollgated -c $conf 2>&1`;
	like($out, qr/must hold one JSON object/, 'two objects: refused');
}

# --- With a config_file. ---------------------------------------------------
my %cc = (api_base => 'https://llm.example.com/v1', features => { chat => \1,
    beta_models => ['m1', 'm2'] }, poll_seconds => 30);
write_file($cfile, encode_json(\%cc), 0644);
(my $with = $orig) =~ s/\z/\n[client]\nconfig_file = $cfile\n/;
write_file($conf, $with);
ok(restart(), 'tollgated restarted with [client] config_file');
$c = req(GET => '/api/v1/client-config', bearer($u->{token}))->json // {};
is_deeply($c->{config}, { api_base => 'https://llm.example.com/v1',
    features => { chat => 1, beta_models => ['m1', 'm2'] }, poll_seconds => 30 },
    'config: the file\'s object');

# A reload reads it again.
write_file($cfile, '{"api_base": "https://llm2.example.com/v1"}', 0644);
ok(devstack('reload'), 'reload');
ok(wait_for(sub { ((req(GET => '/api/v1/client-config', bearer($u->{token}))->json // {})
    ->{config}{api_base} // '') eq 'https://llm2.example.com/v1' }, 10),
    'after a reload: the new file');

# --- The example client. ---------------------------------------------------
SKIP: {
	skip 'curl and jq are needed', 8 unless grep { -x "$_/jq" } split /:/, $ENV{PATH};
	my $script = "$ENV{TG_ROOT}/contrib/examples/client-config.sh";
	ok(-x $script, 'contrib/examples/client-config.sh is executable');
	local $ENV{TOLLGATE_URL} = base();
	local $ENV{CURL_CA_BUNDLE} = "$ENV{TG_DEVSTACK}/etc/cert.pem";
	local $ENV{TOLLGATE_TOKEN} = $u->{key};
	my $out = `$script 2>&1`;
	is($? >> 8, 0, 'the example runs') or diag($out);
	like($out, qr/^user: \Q$u->{email}\E /m, 'it names the user');
	like($out, qr/^plan: Trial \(trial\)$/m, 'the plan');
	like($out, qr/^config api_base = "https:\/\/llm2\.example\.com\/v1"$/m, 'the config');
	$out = `$script compute_minutes 2>&1`;
	is($? >> 8, 3, 'nothing left on compute_minutes: exit 3')
	    or diag($out);
	local $ENV{TOLLGATE_TOKEN} = 'tgk_' . 'y' x 40;
	$out = `$script 2>&1`;
	is($? >> 8, 1, 'a bad key: exit 1');
	like($out, qr/not signed in/, 'and a message');
}

done_testing;
