#!/usr/bin/perl
# The Debian package: dpkg-buildpackage -us -uc -b builds it from a copy
# of this checkout, lintian finds nothing to warn about, dpkg -i (then
# apt-get -f install if dependencies are missing) installs it on this
# machine, and the installed system is checked: the files (every nginx
# snippet of the checkout), the tollgate user, the configuration (0640
# root:tollgate, fresh secrets), the programs' usage, systemd-analyze
# verify of the units (the socket unit owning the socket), nginx -t of the
# example site with a location behind the gate, and tollgatectl migrate as
# the tollgate user against the dev stack's database.
#
# Then an upgrade: the same package as a later version, installed over
# the first with the configuration pointed at a scratch database one
# migration behind; the postinst applies it (and keeps the secrets), and
# an upgrade while the database is unreachable still succeeds, with a
# message.  Last the purge: no file of the package, no configuration, no
# dangling sites-enabled link is left.  Unless it was installed before,
# the package is purged at the end.
#
# It skips only when dpkg-buildpackage is missing; lintian's check skips
# when lintian is (Debian package lintian).

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(time);
use TG qw(:DEFAULT run_with);

plan skip_all => 'dpkg-buildpackage is not installed (Debian package dpkg-dev)'
    unless system('sh', '-c', 'command -v dpkg-buildpackage >/dev/null') == 0;

my $root = $ENV{TG_ROOT};
my @sudo = $> == 0 ? () : qw(sudo -n);
my $dir = tempdir('tollgate-deb-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# Runs a command list; returns (exit status, combined output).
sub run { return run_with({}, @_) }

sub installed {
	my ($rc, $st) = run(qw(dpkg-query -W -f=${Status} tollgate));
	return $rc == 0 && $st =~ /install ok installed/;
}

my $was_installed = installed();
diag('tollgate was installed before this test; it is upgraded, not purged')
    if $was_installed;

# A copy of the checkout without what builds and the dev stack leave.
my $src = "$dir/tollgate-0.1.0";
mkdir $src or die "$src: $!";
my ($rc, $out) = run('sh', '-c', "cd '$root' && tar -cf - " .
    "--exclude=./.git --exclude=./.devstack --exclude=./autom4te.cache " .
    "--exclude=./build-aux --exclude=./configure --exclude=./configure~ " .
    "--exclude=./aclocal.m4 --exclude=Makefile.in --exclude=./debian/build " .
    "--exclude=./debian/tollgate --exclude=./debian/.debhelper . | " .
    "tar -C '$src' -xf -");
is($rc, 0, 'copied the checkout') or diag($out);

my $t0 = time;
($rc, $out) = run('sh', '-c', "cd '$src' && DEB_BUILD_OPTIONS=parallel=2 " .
    'dpkg-buildpackage -us -uc -b');
is($rc, 0, 'dpkg-buildpackage -us -uc -b succeeds')
    or diag(join("\n", (split /\n/, $out)[-40 .. -1]));
diag(sprintf('package built in %.0f s', time - $t0));
my ($deb) = glob("$dir/tollgate_*_*.deb");
ok($deb && -s $deb, 'a .deb was built') or BAIL_OUT('no package to install');
like($out, qr/^# FAIL:\s+0$/m, 'make check ran in the package build');

SKIP: {
	skip 'lintian is not installed', 1
	    unless system('sh', '-c', 'command -v lintian >/dev/null') == 0;
	my ($lrc, $lout) = run('lintian', '--pedantic', $deb);
	my @tags = grep { /^[EW]: / } split /\n/, $lout;
	is(join("\n", @tags), '', 'lintian: no error or warning');
}

($rc, $out) = run(@sudo, 'dpkg', '-i', $deb);
if ($rc != 0) {
	diag("dpkg -i: $out");
	($rc, $out) = run(@sudo, 'env', 'DEBIAN_FRONTEND=noninteractive',
	    'apt-get', '-f', 'install', '-y', '-q');
}
is($rc, 0, 'the package installs') or diag($out);
ok(installed(), 'dpkg lists tollgate as installed');

for my $f (qw(/usr/sbin/tollgated /usr/sbin/tollgatectl)) {
	ok(-x $f, "$f is installed");
}
for my $f (qw(/lib/systemd/system/tollgated.service
    /lib/systemd/system/tollgated.socket
    /lib/systemd/system/tollgate-sender.service
    /usr/share/doc/tollgate/examples/tollgate-dashboard.json
    /usr/share/tollgate/mail-texts.txt
    /usr/share/man/man8/tollgated.8.gz /usr/share/man/man8/tollgatectl.8.gz
    /usr/share/man/man5/tollgate.conf.5.gz
    /etc/nginx/snippets/tollgate-http.conf /etc/nginx/snippets/tollgate-app.conf
    /etc/nginx/sites-available/tollgate /usr/share/doc/tollgate/copyright)) {
	ok(-f $f, "$f is installed");
}
for my $doc (qw(operations.md metrics.md)) {
	ok(-f "/usr/share/doc/tollgate/$doc" || -f "/usr/share/doc/tollgate/$doc.gz",
	    "/usr/share/doc/tollgate/$doc is installed");
}
my @snippets = map { s{.*/}{}r } grep { !m{/tollgate\.conf$} }
    glob("$root/nginx/tollgate-*.conf");
ok(@snippets >= 3, 'the checkout has nginx snippets');
for my $f (@snippets) {
	ok(-f "/etc/nginx/snippets/$f", "/etc/nginx/snippets/$f is installed");
}
my @sql = map { s{.*/}{}r } glob("$root/sql/*.sql");
my @isql = map { s{.*/}{}r } glob('/usr/share/tollgate/sql/*.sql');
ok(@sql > 0, 'the checkout has migrations');
is_deeply(\@isql, \@sql, '/usr/share/tollgate/sql holds every migration');
my @rsql = map { s{.*/}{}r } glob("$root/sql/routines/*.sql");
my @irsql = map { s{.*/}{}r } glob('/usr/share/tollgate/sql/routines/*.sql');
ok(@rsql > 0, 'the checkout has routines');
is_deeply(\@irsql, \@rsql, '/usr/share/tollgate/sql/routines holds every routines file');

# The user and the configuration.
my @pw = getpwnam('tollgate');
ok(@pw, 'the system user tollgate exists');
cmp_ok($pw[2] // 99999, '<', 1000, 'tollgate is a system user');
like($pw[8] // '', qr{/(nologin|false)$}, 'tollgate has no login shell');
my $gid = getgrnam('tollgate');
ok(defined $gid, 'the group tollgate exists');

my $conf = '/etc/tollgate/tollgate.conf';
my @st = stat($conf);
ok(@st, "$conf exists");
is(sprintf('%04o', ($st[2] // 0) & 07777), '0640', "$conf has mode 0640");
is($st[4], 0, "$conf belongs to root");
is($st[5], $gid, "$conf has group tollgate");
my $text = do { local (@ARGV, $/) = ($conf); <> } // '';
if (!$was_installed) {
	like($text, qr/^secret = [0-9a-f]{64}$/m, 'a fresh [jwt] secret');
	like($text, qr/^key = [0-9a-f]{64}$/m, 'a fresh [crypto] key');
	unlike($text, qr/@[A-Z_]+@/, 'no placeholder left');
}

# The programs answer.
($rc, $out) = run('/usr/sbin/tollgatectl', '-h');
is($rc, 2, 'tollgatectl -h exits 2');
like($out, qr/^usage: tollgatectl .*\n(?s:.*)^\s+migrate\b/m,
    'tollgatectl -h lists the commands');
($rc, $out) = run('/usr/sbin/tollgated', '--no-such-option');
is($rc, 2, 'tollgated with a bad option exits 2');
like($out, qr/^usage: tollgated /m, 'tollgated prints its usage');

($rc, $out) = run('/usr/sbin/tollgated', '--version');
is($rc, 0, 'tollgated --version exits 0');
my ($top) = sort { $b <=> $a } map { /^0*(\d+)-/ ? $1 : () } @sql;
like($out, qr/^tollgated \S+ \(schema version \Q$top\E\)$/m,
    'tollgated --version names the schema version of the shipped migrations');
($rc, $out) = run(@sudo, 'runuser', '-u', 'tollgate', '--',
    '/usr/sbin/tollgated', '-t');
is($rc, 0, 'tollgated -t as tollgate: the fresh configuration loads') or diag($out);
like($out, qr/configuration \/etc\/tollgate\/tollgate\.conf is ok/,
    'tollgated -t says so');

# The configuration loads for the service user and nobody else.
($rc, $out) = run(@sudo, 'runuser', '-u', 'tollgate', '--',
    '/usr/sbin/tollgatectl', 'user', 'show');
is($rc, 2, 'tollgatectl as tollgate reads the configuration (usage error only)')
    or diag($out);
($rc, $out) = run(@sudo, 'runuser', '-u', 'nobody', '--',
    '/usr/sbin/tollgatectl', 'version');
like($out, qr/cannot read \Q$conf\E/, 'nobody else can read it');

# systemd.
($rc, $out) = run(qw(systemd-analyze verify /lib/systemd/system/tollgated.service
    /lib/systemd/system/tollgated.socket
    /lib/systemd/system/tollgate-sender.service));
is($rc, 0, 'systemd-analyze verify accepts the installed units');
is($out, '', 'systemd-analyze verify has nothing to say') or diag($out);
for my $u (qw(tollgated tollgate-sender)) {
	my $unit = do { local (@ARGV, $/) = ("/lib/systemd/system/$u.service"); <> } // '';
	for my $d (qw(User=tollgate ProtectSystem=strict PrivateTmp=yes
	    NoNewPrivileges=yes CapabilityBoundingSet= SystemCallFilter=)) {
		like($unit, qr/^\Q$d\E/m, "$u.service: $d");
	}
}

# The socket belongs to the socket unit: nginx's group, 0660, and the
# service neither joins www-data nor owns a runtime directory (systemd
# would remove the socket with it whenever tollgated stops).
my $sock = do { local (@ARGV, $/) = ('/lib/systemd/system/tollgated.socket'); <> } // '';
like($sock, qr{^ListenStream=/run/tollgate/tollgate\.sock$}m, 'tollgated.socket: the socket path');
like($sock, qr{^SocketGroup=www-data$}m, 'tollgated.socket: group www-data');
like($sock, qr{^SocketMode=0660$}m, 'tollgated.socket: mode 0660');
my $svc = do { local (@ARGV, $/) = ('/lib/systemd/system/tollgated.service'); <> } // '';
like($svc, qr{^Requires=tollgated\.socket$}m, 'tollgated.service requires the socket');
unlike($svc, qr{^SupplementaryGroups=}m, 'tollgated.service: no SupplementaryGroups');
unlike($svc, qr{^RuntimeDirectory=}m, 'tollgated.service: no RuntimeDirectory');
like($text, qr{^socket = /run/tollgate/tollgate\.sock$}m,
    'the configuration names the socket unit\'s socket');

# The man pages as installed (mandoc does not read gzip here).
for my $m (qw(man8/tollgated.8 man8/tollgatectl.8 man5/tollgate.conf.5)) {
	my $plain = "$dir/" . ($m =~ s{.*/}{}r);
	($rc, $out) = run('sh', '-c', "zcat /usr/share/man/$m.gz >'$plain' && " .
	    "mandoc -Tlint -W warning '$plain'");
	is("$rc $out", '0 ', "the installed $m lints clean")
	    or diag(substr($out, 0, 2000));
}

# nginx -t of the example site, its certificate paths pointed at the dev
# stack's and its logs at a scratch directory.
my $site = do { local (@ARGV, $/) = ('/etc/nginx/sites-available/tollgate'); <> } // '';
like($site, qr{^include /etc/nginx/snippets/tollgate-http\.conf;}m,
    'the site reads the http{} snippet');
like($site, qr{include /etc/nginx/snippets/tollgate-app\.conf;},
    'the site reads the server{} snippet');
my $etc = "$ENV{TG_DEVSTACK}/etc";
$site =~ s{/etc/letsencrypt/live/[^/]+/fullchain\.pem}{$etc/cert.pem}g;
$site =~ s{/etc/letsencrypt/live/[^/]+/privkey\.pem}{$etc/key.pem}g;
$site =~ s{/var/log/nginx/}{$dir/}g;
# A protected location, as an operator would write it, in the TLS server.
like($site, qr/\}\s*\z/, 'the example site ends with its TLS server');
$site =~ s{\}\s*\z}{    location /render/ {
        include /etc/nginx/snippets/tollgate-gate.conf;
        set \$tollgate_meter compute_minutes;
        set \$tollgate_cost 5;
        proxy_pass http://127.0.0.1:9;
    }
\}
};
open my $fh, '>', "$dir/site.conf" or die $!;
print $fh $site;
close $fh;
open $fh, '>', "$dir/nginx.conf" or die $!;
print $fh "pid $dir/nginx.pid;\nerror_log $dir/error.log;\nevents {}\n" .
    "http {\n    include /etc/nginx/mime.types;\n    include $dir/site.conf;\n}\n";
close $fh;
($rc, $out) = run('nginx', '-t', '-q', '-c', "$dir/nginx.conf", '-e', "$dir/error.log");
is($rc, 0, 'nginx -t accepts the installed site with the installed snippets, the gate among them')
    or diag($out);

# Ready for tollgatectl migrate: the installed tool, the installed
# configuration and migrations, as the service user, against the dev
# stack's database (already migrated from the same sql/: nothing to apply).
SKIP: {
	skip 'no dev stack database (TG_DB_SOCKET)', 3 unless $ENV{TG_DB_SOCKET};
	my @as = ('runuser', '-u', 'tollgate', '--');
	my ($r) = run(@sudo, @as, 'test', '-w', $ENV{TG_DB_SOCKET});
	if ($r != 0) {
		diag("the tollgate user cannot reach $ENV{TG_DB_SOCKET}; migrating as root");
		@as = ();
	}
	($rc, $out) = run(@sudo, @as, 'env',
	    "TOLLGATE_DATABASE_SOCKET=$ENV{TG_DB_SOCKET}",
	    "TOLLGATE_DATABASE_USER=$ENV{TG_DB_USER}",
	    "TOLLGATE_DATABASE_PASSWORD=$ENV{TG_DB_PASSWORD}",
	    "TOLLGATE_DATABASE_NAME=$ENV{TG_DB_NAME}",
	    '/usr/sbin/tollgatectl', 'migrate');
	is($rc, 0, 'tollgatectl migrate runs from the installed package') or diag($out);
	like($out, qr/^schema version \d+$/m, 'it reports the schema version');
	unlike($out, qr/^applied /m, 'nothing was left to apply');
}

# The upgrade: the same package as a later version (repacked, so no
# second build), over a configuration pointed at a scratch database one
# migration behind.
SKIP: {
	skip 'tollgate was installed before: its configuration is left alone', 9
	    if $was_installed;
	skip 'no dev stack database (TG_DB_SOCKET)', 9 unless $ENV{TG_DB_SOCKET};
	my @root_db = (@sudo, qw(mariadb --no-defaults -uroot -N -B),
	    "--socket=$ENV{TG_DB_SOCKET}");
	my $scratch = "tollgate_deb_$$";
	my ($r, $o) = run(@root_db, '-e', "CREATE DATABASE $scratch; " .
	    "GRANT ALL ON $scratch.* TO '$ENV{TG_DB_USER}'\@'localhost'");
	skip "no root access to the dev stack's MariaDB: $o", 9 if $r != 0;
	my ($r2) = run(@sudo, 'runuser', '-u', 'tollgate', '--', 'test', '-w',
	    $ENV{TG_DB_SOCKET});
	skip "the tollgate user cannot reach $ENV{TG_DB_SOCKET}", 9 if $r2 != 0;

	# The installed configuration, pointed at the scratch database.
	my $before = do { local (@ARGV, $/) = ($conf); <> } // '';
	my $edited = $before;
	$edited =~ s{^socket = /run/mysqld/mysqld\.sock$}{socket = $ENV{TG_DB_SOCKET}}m;
	$edited =~ s{^user = tollgate$}{user = $ENV{TG_DB_USER}}m;
	$edited =~ s{^password = \S+$}{password = $ENV{TG_DB_PASSWORD}}m;
	$edited =~ s{^name = tollgate$}{name = $scratch}m;
	open my $cf, '>', $conf or die "$conf: $!";
	print $cf $edited;
	close $cf;

	# Migrated, then one step forgotten (every step is safe to run again).
	($rc, $out) = run(@sudo, 'runuser', '-u', 'tollgate', '--',
	    '/usr/sbin/tollgatectl', 'migrate');
	is($rc, 0, 'the scratch database is migrated') or diag($out);
	my ($top) = $out =~ /^schema version (\d+)$/m;
	run(@root_db, '-e', "DELETE FROM $scratch.schema_migrations " .
	    "WHERE version = " . ($top // 0));

	my $next = "$dir/next";
	($rc, $out) = run('dpkg-deb', '-R', $deb, $next);
	my $ctl = do { local (@ARGV, $/) = ("$next/DEBIAN/control"); <> } // '';
	my ($ver) = $ctl =~ /^Version: (\S+)$/m;
	$ctl =~ s/^Version: \S+$/Version: $ver+upgrade1/m;
	open my $cfh, '>', "$next/DEBIAN/control" or die $!;
	print $cfh $ctl;
	close $cfh;
	($rc, $out) = run('dpkg-deb', '--build', '--root-owner-group', $next,
	    "$dir/next.deb");
	is($rc, 0, "a later version ($ver+upgrade1) is packed") or diag($out);

	($rc, $out) = run(@sudo, 'dpkg', '-i', "$dir/next.deb");
	is($rc, 0, 'the upgrade installs') or diag($out);
	like($out, qr/^tollgate: applied 0*\Q$top\E\b/m,
	    'the postinst applied the missing migration') or diag($out);
	my ($v2) = (run(qw(dpkg-query -W -f=${Version} tollgate)))[1];
	is($v2, "$ver+upgrade1", 'dpkg lists the new version');
	($rc, $out) = run(@root_db, '-e',
	    "SELECT MAX(version) FROM $scratch.schema_migrations");
	is($out =~ s/\s+//gr, $top, 'the schema is at the top version again');
	my $after = do { local (@ARGV, $/) = ($conf); <> } // '';
	is($after, $edited, 'the upgrade kept the configuration (and its secrets)');

	# An upgrade while the database is unreachable still installs.
	open $cf, '>', $conf or die "$conf: $!";
	print $cf $edited =~ s{^socket = \Q$ENV{TG_DB_SOCKET}\E$}{socket = $dir/no-such.sock}mr;
	close $cf;
	($rc, $out) = run(@sudo, 'dpkg', '-i', "$dir/next.deb");
	is($rc, 0, 'an upgrade with the database down still installs') or diag($out);
	like($out, qr/^tollgate: .*no migration was run/m,
	    'and says that no migration was run');
	run(@root_db, '-e', "DROP DATABASE $scratch");
}

# Leave the machine as it was: the purge removes everything the package
# and its scripts made, and the link that enabled the site.
if (!$was_installed) {
	my @files = grep { m{^/} && !-d $_ }
	    split /\n/, (run(qw(dpkg -L tollgate)))[1];
	ok(@files > 10, 'dpkg -L lists the package\'s files');
	my $link = '/etc/nginx/sites-enabled/tollgate';
	my $made_link = -d '/etc/nginx/sites-enabled' && !-e $link && !-l $link
	    && symlink('../sites-available/tollgate', $link);
	($rc, $out) = run(@sudo, 'dpkg', '--purge', 'tollgate');
	is($rc, 0, 'dpkg --purge tollgate') or diag($out);
	ok(!installed(), 'dpkg no longer lists tollgate');
	my @left = grep { -e $_ || -l $_ } @files;
	is("@left", '', 'no file of the package is left');
	ok(!-e $conf, 'the configuration is gone');
	ok(!-e '/etc/tollgate', '/etc/tollgate is gone');
	ok(!-l $link, 'the dangling sites-enabled link is gone') if $made_link;
	($rc, $out) = run(qw(dpkg-query -W -f=${Status} tollgate));
	unlike($out, qr/config-files/, 'no conffiles are left behind');
}

done_testing;
