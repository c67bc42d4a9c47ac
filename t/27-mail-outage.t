#!/usr/bin/perl
# The outbox and the sender (contract section 9): while the SMTP relay is
# down, mail waits in the outbox (pending, with its attempts and last
# error), nothing is lost, and once the relay is back each message is
# delivered exactly once (one copy per Message-ID).  Also the message
# itself: plain text and HTML parts, CRLF line ends, the link in both.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Time::HiRes qw(sleep);
use TG;
use TGMail;
use TGAccount;

my $dbh = dbh();
sub rows_of {
	my ($uid) = @_;
	return $dbh->selectall_arrayref('SELECT id, kind, status, attempts, '
	    . 'last_error FROM outbox WHERE user_id = ? ORDER BY created_at',
	    { Slice => {} }, $uid);
}

# The relay is down.
sink_stop();
my $u = signup(tag => 'outage');
is(jpost('/api/v1/auth/password/forgot', { email => $u->{email} })->code, 202,
    'forgot while the relay is down: 202');
is(jpost('/api/v1/auth/magic-link', { email => $u->{email} })->code, 202,
    'magic link while the relay is down: 202');
my $rows = rows_of($u->{id});
is(scalar @$rows, 3, 'three messages in the outbox');

ok(wait_for(sub {
	my $r = rows_of($u->{id});
	return !grep { $_->{attempts} < 1 || $_->{status} ne 'pending' } @$r;
}, 20), 'each was tried and is pending again');
$rows = rows_of($u->{id});
for my $r (@$rows) {
	ok($r->{attempts} >= 1, "$r->{kind}: attempts $r->{attempts}");
	ok(length($r->{last_error} // ''), "$r->{kind}: last_error kept");
}
sleep 2;	# a little more of the outage
my @early = mails_to($u->{email});
is(scalar @early, 0, 'nothing delivered meanwhile');

# The relay is back.
sink_start();
ok(wait_for(sub { !grep { $_->{status} ne 'sent' } @{ rows_of($u->{id}) } },
    40), 'all three are sent once the relay is back');
my @m = mails_to($u->{email});
is(scalar @m, 3, 'three messages arrived');
sleep 2;	# time for a duplicate, if one were coming
@m = mails_to($u->{email});
my %ids;
$ids{ $_->{message_id} // '' }++ for @m;
is(scalar(keys %ids), 3, 'three Message-IDs');
ok(!grep({ $_ > 1 } values %ids), 'each delivered exactly once');
my %want = map { ("<$_->{id}\@tollgate>" => 1) } @$rows;
is_deeply(\%want, { map { ($_ => 1) } keys %ids },
    'the Message-IDs are the outbox rows\'');

# The message format.
my ($v) = grep { $_->{subject} =~ /verify/i } @m;
ok($v, 'the verification message');
unlike($v->{raw} =~ s/\r\n//gr, qr/[\r\n]/, 'every line ends in CRLF');
like($v->{headers}{'content-type'} // '', qr{^multipart/alternative},
    'multipart/alternative');
like($v->{raw}, qr{Content-Type: text/plain; charset=utf-8}, 'a text part');
like($v->{raw}, qr{Content-Type: text/html; charset=utf-8}, 'an HTML part');
my $link = mail_link($v, '/verify-email');
ok($link, 'the text part has the link');
like($v->{raw}, qr{href="\Q$link\E"}, 'the HTML part links it');
ok($v->{headers}{date} && $v->{headers}{from}, 'Date and From');

done_testing;
