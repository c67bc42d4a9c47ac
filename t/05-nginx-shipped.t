#!/usr/bin/perl
# The shipped nginx files: the production example site (nginx/tollgate.conf)
# passes `nginx -t` with tollgate-http.conf and tollgate-app.conf, and the
# access log format can hold neither a query string nor a credential.
# (The dev stack's nginx, which the other tests talk to, includes the
# same two files.)

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use TG;

my $root = $ENV{TG_ROOT};
my $etc = "$ENV{TG_DEVSTACK}/etc";

sub slurp {
	my ($path) = @_;
	open my $fh, '<', $path or die "$path: $!";
	local $/;
	return <$fh>;
}

my $http = slurp("$root/nginx/tollgate-http.conf");
my ($fmt) = $http =~ /^log_format\s+tollgate\s+(.*?);/ms;
ok($fmt, 'log_format tollgate is defined');
$fmt //= '';
like($fmt, qr/\$uri\b/, 'access log: the path as $uri');
for my $var (qw(request request_uri args query_string is_args http_authorization
    http_cookie cookie_\w+ http_referer arg_\w+ request_body)) {
	unlike($fmt, qr/\$$var\b/, "access log: no \$$var");
}

# The example site, with its paths pointed at a scratch directory.
my $dir = tempdir(CLEANUP => 1);
my $site = slurp("$root/nginx/tollgate.conf");
$site =~ s{/etc/nginx/snippets/tollgate-app\.conf}{$root/nginx/tollgate-app.conf}g;
$site =~ s{/etc/letsencrypt/live/[^/]+/fullchain\.pem}{$etc/cert.pem}g;
$site =~ s{/etc/letsencrypt/live/[^/]+/privkey\.pem}{$etc/key.pem}g;
$site =~ s{/var/log/nginx/}{$dir/}g;
open my $out, '>', "$dir/site.conf" or die $!;
print $out $site;
close $out;
open $out, '>', "$dir/nginx.conf" or die $!;
print $out <<"EOF";
pid $dir/nginx.pid;
error_log $dir/error.log;
events {}
http {
    include /etc/nginx/mime.types;
    include $root/nginx/tollgate-http.conf;
    include $dir/site.conf;
}
EOF
close $out;

my $msg = `nginx -t -q -c $dir/nginx.conf -e $dir/error.log 2>&1`;
is($?, 0, 'nginx -t accepts nginx/tollgate.conf with the shipped snippets')
    or diag($msg);

like($site, qr/add_header\s+Strict-Transport-Security\s+"max-age=\d+[^"]*"\s+always/,
    'example site sends HSTS always');
like($site, qr/return\s+301\s+https:/, 'example site redirects http to https');

done_testing;
