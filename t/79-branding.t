#!/usr/bin/perl
# Branding: with [server] name = Acme Cloud, [server] support_url and
# [smtp] from_name set, users see the operator's product and not
# tollgate's name: in every page's title and header (and a support link),
# in the mails (subject, text, a support line, the From: display name),
# and in the authenticator app (the otpauth URI's label and issuer).  An
# operator's mail texts file ([server] mail_texts) replaces the messages
# it holds (here the welcome mail) and keeps the built-in others;
# tollgated -t checks it.  The configuration is put back at the end.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Time::HiRes qw(sleep);
use TG;
use TGMail;
use TGAccount;

my $conf = $ENV{TG_CONF};
my $orig = do { local (@ARGV, $/) = ($conf); <> };

sub write_conf {
	my ($text) = @_;
	open my $fh, '>', "$conf.tmp$$" or die $!;
	print $fh $text;
	close $fh;
	chmod 0600, "$conf.tmp$$";
	rename "$conf.tmp$$", $conf or die $!;
}

sub restart {
	devstack('reload');
	devstack('restart-sender');
}

# The operator's texts: the welcome message only.
my $texts = "$ENV{TG_DEVSTACK}/etc/mail-texts-$$.txt";
open my $tf, '>', $texts or die "$texts: $!";
print $tf <<'TXT';
# Acme's own welcome.
== welcome
Subject: You are in, welcome to {product}

Hi there,

{trial}Start here: {base_url}/profile
Questions? {support_url}
TXT
close $tf;
my $branded = $orig;
$branded =~ s/^\[server\]\n/[server]\nname = Acme Cloud\nsupport_url = https:\/\/help.acme.example\/\nmail_texts = $texts\n/m
    or die 'no [server] section';
$branded =~ s/^\[smtp\]\n/[smtp]\nfrom_name = Acme Accounts\n/m or die 'no [smtp]';
write_conf($branded);
END {
	if (defined $orig) {
		write_conf($orig);
		restart();
		unlink $texts;
	}
}
my $t = `'$ENV{TG_BUILD}/src/tollgated' -t -c '$conf' 2>&1`;
like($t, qr/1 mail texts in \Q$texts\E/, 'tollgated -t reads the mail texts file');
restart();

# Pages: the old workers go, the new ones read the new configuration.
my $page = wait_for(sub {
	my $b = req(GET => '/login')->body // '';
	return $b =~ /Acme Cloud/ ? $b : undef;
}, 20) // '';
like($page, qr{<title>[^<]* · Acme Cloud</title>}, 'page title: Acme Cloud');
like($page, qr{<a class="brand" href="/profile">Acme Cloud</a>}, 'page header: Acme Cloud');
like($page, qr{<a class="support" href="https://help\.acme\.example/">}, 'a support link');
unlike($page =~ s{/static/tollgate\.css}{}r, qr/tollgate/i, 'no "tollgate" left on the page');

# Mail: the welcome mail after verification.
sink_start();
my $u = verified_user(tag => 'brand');
my $m = wait_mail($u->{email}, sub { ($_[0]{subject} // '') =~ /welcome/i });
ok($m, 'a welcome mail');
is($m->{subject}, 'You are in, welcome to Acme Cloud',
    'the welcome mail: the operator\'s subject, with the product');
like($m->{text} // '', qr/^Hi there,\r?$/m, 'the welcome mail: the operator\'s text');
like($m->{text} // '', qr/^Your free trial has started: it runs until /m,
    'the welcome mail: the built-in part it takes in ({trial})');
like($m->{text} // '', qr{^Questions\? https://help\.acme\.example/\r?$}m,
    'the welcome mail: {support_url}');
like($m->{headers}{from} // '', qr/^"Acme Accounts" <[^>]+>$/, 'From: the display name');
like($m->{text} // '', qr{Help and support: https://help\.acme\.example/}, 'mail: the support line');
my $v = wait_mail($u->{email}, sub { ($_[0]{subject} // '') =~ /verify/i });
is($v->{subject} // '', 'Verify your email address',
    'a message the file does not hold keeps its built-in text');
unlike(($m->{text} // '') . ($v->{text} // ''), qr/tollgate/i, 'no "tollgate" in the mails');

# A security notice names the product too.
my $res = jreq(POST => '/api/v1/api-keys', { name => 'b' }, bearer($u->{access}));
is($res->code, 201, 'an API key (its mail names the product)');
my $k = wait_mail($u->{email}, sub { ($_[0]{subject} // '') =~ /API key/ });
like($k->{text} // '', qr/^-- Acme Cloud\r?$/m, 'the API key mail is signed Acme Cloud');

# The authenticator app: the otpauth URI.
$res = jreq(POST => '/api/v1/me/totp', {}, bearer($u->{access}));
is($res->code, 200, 'TOTP enrolment');
my $uri = eval { $res->json->{otpauth_url} } // '';
like($uri, qr{^otpauth://totp/Acme%20Cloud:}, 'otpauth label: Acme Cloud');
like($uri, qr{[?&]issuer=Acme%20Cloud(&|$)}, 'otpauth issuer: Acme Cloud');

done_testing;
