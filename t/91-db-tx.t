#!/usr/bin/perl
# The database layer against the Galera cluster: the host list, the
# synced-node check, wsrep_sync_wait, and db_tx_run with its failure
# codes (a link lost mid-transaction, a COMMIT lost on its way or its
# answer lost, certification conflicts between two nodes).  The work is
# done by the C program t/unit/dbtx (see its header), which a proxy of
# its own lets inject the faults; this file hands it the cluster.

use strict;
use warnings;

BEGIN {
	unless ($ENV{TG_CLUSTER_FORM}) {
		print "1..0 # SKIP needs the Galera cluster: contrib/devstack "
		    . "cluster test\n";
		exit 0;
	}
}

my $bin = "$ENV{TG_BUILD}/t/unit/dbtx";
unless (-x $bin) {
	print "1..0 # SKIP $bin is not built (contrib/cluster test builds it)\n";
	exit 0;
}
$ENV{TG_DBTX_CONF} = $ENV{TG_CONF};
$ENV{TG_DBTX_NODES} = join ',', map { "127.0.0.1:$_" }
    split /,/, $ENV{TG_CLUSTER_SQL_PORTS};
$ENV{TG_DBTX_ROOT} = "$ENV{TG_CLUSTER_DIR}/run/node1.sock";
$ENV{TG_DBTX_LOG} = "$ENV{TG_CLUSTER_DIR}/log/dbtx.log";
exec $bin or die "exec $bin: $!";
