#!/usr/bin/perl
# Trial mails (contract section 9): "trial ending" 7, 3 and 1 days before
# the end and "trial ended" after it, written by the sender's periodic
# pass, each once per user; a user inside several windows at once gets
# the tightest one only; users on a paid plan get none.  Trial ends are
# moved in the database instead of waited for.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Time::HiRes qw(sleep);
use TG;
use TGMail;
use TGAccount;

sink_start();
my $dbh = dbh();

sub ends_in {
	my ($u, $sql_interval) = @_;
	$dbh->do("UPDATE users SET trial_ends_at = UTC_TIMESTAMP(6) + INTERVAL "
	    . "$sql_interval WHERE id = ?", undef, $u->{id});
}
sub trial_mails {
	my ($u) = @_;
	return grep { $_->{subject} =~ /trial/i && $_->{subject} !~ /welcome/i }
	    mails_to($u->{email});
}

my @names = qw(six two one ended paid paid_ended);
my %u;
@u{@names} = verify_all(map { signup(tag => "trial-$_") } @names);
$dbh->do('UPDATE users SET plan_override = ? WHERE id IN (?, ?)', undef, 'pro',
    $u{paid}{id}, $u{paid_ended}{id});
ends_in($u{six}, '6 DAY - INTERVAL 1 HOUR');
ends_in($u{two}, '47 HOUR');
ends_in($u{one}, '20 HOUR');
ends_in($u{ended}, '-1 MINUTE');
ends_in($u{paid}, '47 HOUR');
ends_in($u{paid_ended}, '-1 MINUTE');

my %got;
for my $k (qw(six two one ended)) {
	$got{$k} = wait_mail($u{$k}{email}, sub { $_[0]{subject} =~ /trial/i
	    && $_[0]{subject} !~ /welcome/i }, 20);
	ok($got{$k}, "$k: a trial mail");
}
is($got{six}{subject}, 'Your trial ends in 6 days', 'six days before: "ends in 6 days"');
is($got{two}{subject}, 'Your trial ends in 2 days', 'two days before: "ends in 2 days"');
is($got{one}{subject}, 'Your trial ends tomorrow', 'a day before: "ends tomorrow"');
is($got{ended}{subject}, 'Your trial has ended', 'after the end: "has ended"');
like($got{two}{text} // '', qr{\Q${\ base()}\E/billing}, 'with a link to billing');

my %kinds = map {
	($_ => join ',', @{ $dbh->selectcol_arrayref('SELECT kind FROM '
	    . 'trial_notices WHERE user_id = ? ORDER BY kind', undef, $u{$_}{id}) })
} keys %u;
is($kinds{six}, '7d', 'six days: the 7-day notice');
is($kinds{two}, '3d', 'two days: the 3-day notice only');
is($kinds{one}, '1d', 'one day: the 1-day notice only');
is($kinds{ended}, 'ended', 'ended');

# Six days on: a day before, the 1-day notice follows.
ends_in($u{six}, '20 HOUR');
ok(wait_mail($u{six}{email}, sub { $_[0]{subject} =~ /tomorrow/ }, 20),
    'the six-day user, a day before: "ends tomorrow"');

# One more pass of the sender changes nothing.
sleep 6;
is(scalar(trial_mails($u{six})), 2, 'six: two trial mails in all');
is(scalar(trial_mails($u{$_})), 1, "$_: one trial mail in all") for qw(two one ended);
is(outbox_count($u{paid}{id}, 'trial_ending'), 0, 'a paid plan: no "ending" mail');
is(outbox_count($u{paid_ended}{id}, 'trial_ended'), 0, 'a paid plan: no "ended" mail');
is(outbox_count($u{one}{id}, 'trial_ending'), 1, 'one outbox row per notice');

done_testing;
