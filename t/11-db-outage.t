#!/usr/bin/perl
# The database goes away: tollgate fails closed (503 unavailable with
# Retry-After) and recovers by itself once the database is back, without
# a restart of the master or its workers.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use TG;

my $master = master_pid();
ok($master, "master pid ($master)");
my @workers = worker_pids();
ok(@workers >= 1, 'workers: ' . join(' ', @workers));

is(req(GET => '/healthz')->code, 200, 'healthz 200 before the outage');

my $stopped = 0;
END { devstack('db-start') if $stopped }

ok(devstack('db-stop'), 'devstack db-stop');
$stopped = 1;

# Enough requests to reach every worker's (now broken) connection.
my $all503 = 1;
for my $i (1 .. 2 * @workers + 2) {
	my $res = req(GET => '/healthz');
	next if ($res->code // 0) == 503;
	$all503 = 0;
	diag("healthz #$i: " . ($res->code // 'no answer'));
}
ok($all503, 'every healthz answers 503 while the database is down');
error_ok(req(GET => '/healthz'), 503, 'unavailable', 'healthz without database');

my $res = json_post('/api/v1/auth/login',
    { email => 'nobody@example.com', password => 'not-the-password-42' });
error_ok($res, 503, 'unavailable', 'login without database');
like($res->headers->header('Retry-After') // '', qr/^\d+$/,
    'login without database: Retry-After in seconds');

ok(devstack('db-start'), 'devstack db-start');
$stopped = 0;

my $back = wait_for(sub { (req(GET => '/healthz')->code // 0) == 200 }, 30);
ok($back, 'healthz 200 again within 30 s');
# A worker whose last connection attempt failed waits half a second
# (src/db/db.c RETRY_AFTER_DOWN) before it tries again; after a second every
# worker has had its chance.
sleep 1;

my $all200 = 1;
for my $i (1 .. 2 * @workers + 2) {
	my $code = req(GET => '/healthz')->code // 0;
	next if $code == 200;
	$all200 = 0;
	diag("healthz #$i after recovery: $code");
}
ok($all200, 'every worker answers 200 after recovery');

is(master_pid(), $master, 'same master');
is_deeply([ worker_pids() ], \@workers, 'same workers (reconnected, not restarted)');

done_testing;
