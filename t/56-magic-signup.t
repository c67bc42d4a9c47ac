#!/usr/bin/perl
# Magic-link sign-up (contract section 3, "More ways in"): with
# [accounts] magic_link_signup = yes, a magic link asked for an address
# without an account mails a link that makes the account when it is
# followed (through the API or the page's button), verified by that act,
# with its trial; nothing exists before, the link works once, and an
# address that got an account meanwhile is not taken twice.  Without the
# switch nothing is mailed (t/25).  tollgated is restarted with the
# switch on for this file and restarted as before at its end.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Mojo::UserAgent::CookieJar;
use TG qw(:DEFAULT restart_tollgated);
use TGMail;
use TGAccount;
require './t/60-helpers.pl';

sink_start();
my @made;


ok(restart_tollgated(TOLLGATE_ACCOUNTS_MAGIC_LINK_SIGNUP => 'yes'),
    'tollgated restarted with magic_link_signup = yes');
END {
	my $st = $?;
	my $db = dbh();
	$db->do('DELETE FROM users WHERE id = ?', undef, $_) for @made;
	restart_tollgated();
	$? = $st;
}

sub link_mail {
	my ($email) = @_;
	return wait_mail($email, sub { $_[0]{subject} =~ /sign-in/i });
}

# --- through the API -------------------------------------------------------
my $email = unique_email('magic-new');
my $res = jpost('/api/v1/auth/magic-link', { email => $email });
is($res->code, 202, 'magic-link for a new address: 202');
my $m = link_mail($email);
ok($m, 'a link is mailed to the new address');
my $tok = mail_token($m, '/auth/magic');
like($tok // '', qr/^[A-Za-z0-9_-]{20,}$/, 'a <base_url>/auth/magic link');
ok(!db_row('SELECT id FROM users WHERE email_lc = ?', lc $email),
    'no account before the link is followed');
$res = jpost('/api/v1/auth/magic-link/verify', { token => $tok });
is($res->code, 200, 'following it: 200');
my $j = eval { $res->json } // {};
push @made, $j->{user}{id} if $j->{user}{id};
is($j->{user}{email}, $email, 'the account of that address');
ok($j->{user}{email_verified}, 'verified by following the link');
is($j->{user}{plan}, 'trial', 'on the trial');
my $me = eval { req(GET => '/api/v1/me',
    { bearer($j->{tokens}{access_token}) })->json } // {};
is($me->{user}{id}, $j->{user}{id}, 'its tokens work');
ok($me->{trial}{ends_at}, 'the trial started');
is(db_row('SELECT password_hash FROM users WHERE id = ?',
    $j->{user}{id})->{password_hash}, undef, 'no password');
error_ok(jpost('/api/v1/auth/magic-link/verify', { token => $tok }), 400,
    'invalid_token', 'the link works once');
ok(wait_mail($email, sub { $_[0]{subject} =~ /welcome/i }),
    'the welcome mail');

# An address whose account appeared meanwhile is not made twice.
my $email2 = unique_email('magic-race');
jpost('/api/v1/auth/magic-link', { email => $email2 });
$m = link_mail($email2);
my $u = signup(email => $email2);
push @made, $u->{id};
error_ok(jpost('/api/v1/auth/magic-link/verify',
    { token => mail_token($m, '/auth/magic') }), 400, 'invalid_token',
    'a sign-up link for an address that got an account since');
is(db_row('SELECT COUNT(*) AS n FROM users WHERE email_lc = ?',
    lc $email2)->{n}, 1, 'one account for it');

# --- through the page's button -----------------------------------------------
my $email3 = unique_email('magic-page');
jpost('/api/v1/auth/magic-link', { email => $email3 });
$m = link_mail($email3);
my $link = mail_link($m, '/auth/magic');
my $ua = browser();
$res = $ua->get($link)->res;
is($res->code, 200, 'GET /auth/magic: the page with its button');
ok(!db_row('SELECT id FROM users WHERE email_lc = ?', lc $email3),
    'the GET made nothing');
my $csrf = csrf_of($res->body);
$res = $ua->post(base() . '/auth/magic' => { Origin => base() } => form => {
    token => mail_token($m, '/auth/magic'), csrf => $csrf })->res;
is($res->code, 303, 'the button: 303');
like($res->headers->location // '', qr{/profile$}, 'to /profile');
my $row = db_row('SELECT id, email_verified_at FROM users WHERE email_lc = ?',
    lc $email3) // {};
push @made, $row->{id} if $row->{id};
ok($row->{email_verified_at}, 'the account exists, verified');
is(bget($ua, '/profile')->code, 200, 'the browser is signed in');

# --- the throttle still holds --------------------------------------------------
my $email4 = unique_email('magic-limit');
jpost('/api/v1/auth/magic-link', { email => $email4 }) for 1 .. 7;
sleep 2;
cmp_ok(scalar(mails_to($email4)), '<=', 5,
    'at most 5 links an hour to one address');

done_testing();
