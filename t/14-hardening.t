#!/usr/bin/perl
# Hardening found by reading the code (issue 15, "also found"):
#
# - refresh checks the session's own expiry, not only the token's;
# - tokens issued before an account was disabled stay dead after it is
#   enabled again;
# - a password reset mails a notice listing the account's API keys, with
#   a way to revoke them all (DELETE /api/v1/api-keys);
# - `tollgatectl gc` purges expired refresh tokens, old sessions, spent
#   one-time tokens and old throttle rows, and keeps live ones;
# - the CSRF field is bound to the session: a field made for one browser
#   session does not pass in another;
# - cookies carry the __Host- prefix (Secure, Path=/, no Domain);
# - a %0A in a path cannot forge a log line.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempfile);
use Mojo::JSON qw(encode_json);
use TG;
use TGMail;
use TGAccount;
require './t/70-helpers.pl';

sink_start();
my $base = base();
my $db = dbh();

sub sid_of {
	my ($access) = @_;
	require Crypt::JWT;
	my $c = eval { Crypt::JWT::decode_jwt(token => $access,
	    key => conf_get('jwt', 'secret'), accepted_alg => 'HS256') } // {};
	return $c->{sid};
}

# --- refresh checks the session's expiry --------------------------------
{
	my $u = signup(tag => 'hd-exp');
	$db->do('UPDATE sessions SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 '
	    . 'SECOND WHERE id = ?', undef, sid_of($u->{access}));
	my $res = jpost('/api/v1/auth/refresh', { refresh_token => $u->{refresh} });
	is($res->code, 401, 'refresh in an expired session: 401');
	ok(!eval { $res->json->{tokens} }, 'no new pair');
}

# --- tokens from before a disable stay dead ------------------------------
{
	my $adm = signup(tag => 'hd-admin');
	$db->do("UPDATE users SET role = 'admin' WHERE id = ?", undef, $adm->{id});
	my $u = signup(tag => 'hd-dis');
	my $patch = sub {
		return req(PATCH => "/api/v1/admin/users/$u->{id}",
		    H(bearer($adm->{access}), 'Content-Type' => 'application/json'),
		    encode_json({ disabled => $_[0] ? \1 : \0 }));
	};
	is($patch->(1)->code, 200, 'an admin disables the account');
	is($patch->(0)->code, 200, 'and enables it again');
	is(req(GET => '/api/v1/me', H(bearer($u->{access})))->code, 401,
	    'an access token from before the disable: 401');
	is(jpost('/api/v1/auth/refresh', { refresh_token => $u->{refresh} })->code,
	    401, 'its refresh token: 401');
	is(login($u->{email}, $u->{password})->code, 200, 'a new login works');
	$db->do('DELETE FROM users WHERE id IN (?, ?)', undef, $adm->{id}, $u->{id});
}

# --- a reset lists the API keys, with a way to revoke them all ----------
{
	my $u = verified_user(tag => 'hd-keys');
	my $preview = substr($u->{key}, 0, 12);
	my $seen = { map { $_->{file} => 1 } mails_to($u->{email}) };
	jpost('/api/v1/auth/password/forgot', { email => $u->{email} });
	my $m = wait_mail($u->{email}, sub { $_[0]{subject} =~ /reset/i
	    && !$seen->{$_[0]{file}} });
	my $pw = fresh_password();
	is(jpost('/api/v1/auth/password/reset', { token => mail_token($m,
	    '/reset-password'), password => $pw })->code, 204, 'reset');
	my $n = wait_mail($u->{email}, sub { !$seen->{$_[0]{file}}
	    && $_[0]{text} =~ /reset/i && $_[0]{text} =~ /\Q$preview\E/ });
	ok($n, 'the reset notice lists the API key by its preview');
	like($n ? $n->{text} : '', qr{\Q$base\E/profile}, 'with a link to revoke');
	like($n ? $n->{text} : '', qr/revoke/i, 'saying how');
	is(req(GET => '/demo/echo', H(bearer($u->{key})))->code, 200,
	    'the key still works until its owner says otherwise');
	my $acc = login($u->{email}, $pw)->json->{tokens}{access_token};
	is(jreq(DELETE => '/api/v1/api-keys', undef, bearer($acc))->code, 204,
	    'DELETE /api/v1/api-keys: every key revoked');
	is(req(GET => '/demo/echo', H(bearer($u->{key})))->code, 401,
	    'the key is dead at the gate');
	is(db_row('SELECT COUNT(*) AS n FROM api_keys WHERE user_id = ?',
	    $u->{id})->{n}, 0, 'none left');
}

# --- tollgatectl gc -----------------------------------------------------
sub ctl {
	my @args = @_;
	my ($ofh, $out) = tempfile(UNLINK => 1);
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		open STDIN, '<', '/dev/null' or die;
		open STDOUT, '>', $out or die;
		open STDERR, '>&', \*STDOUT or die;
		exec "$ENV{TG_ROOT}/contrib/devstack", 'ctl', @args or die "exec: $!";
	}
	waitpid $pid, 0;
	my $rc = $? >> 8;
	local $/;
	open my $o, '<', $out or die;
	return ($rc, scalar <$o> // '');
}
{
	my $u = signup(tag => 'hd-gc');
	my $live_sid = sid_of($u->{access});
	my ($old, $gone) = ('gcold' . substr(rand() =~ s/\D//gr, 0, 17),
	    'gcgon' . substr(rand() =~ s/\D//gr, 0, 17));
	$db->do(q{INSERT INTO sessions (id, user_id, kind, created_at,
	    last_used_at, expires_at) VALUES (?, ?, 'password',
	    UTC_TIMESTAMP(6) - INTERVAL 70 DAY, UTC_TIMESTAMP(6) - INTERVAL 40 DAY,
	    UTC_TIMESTAMP(6) - INTERVAL 40 DAY)}, undef, $old, $u->{id});
	$db->do(q{INSERT INTO sessions (id, user_id, kind, created_at,
	    last_used_at, expires_at, revoked_at) VALUES (?, ?, 'password',
	    UTC_TIMESTAMP(6) - INTERVAL 50 DAY, UTC_TIMESTAMP(6) - INTERVAL 40 DAY,
	    UTC_TIMESTAMP(6) - INTERVAL 20 DAY + INTERVAL 30 DAY,
	    UTC_TIMESTAMP(6) - INTERVAL 40 DAY)}, undef, $gone, $u->{id});
	my $rt_old = 'a' x 60 . sprintf('%04d', $$ % 10000);
	$db->do(q{INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
	    VALUES (?, ?, UTC_TIMESTAMP(6) - INTERVAL 2 DAY)}, undef, $rt_old,
	    $live_sid);
	my $tok_old = 'b' x 60 . sprintf('%04d', $$ % 10000);
	$db->do(q{INSERT INTO tokens (token_hash, kind, user_id, created_at,
	    expires_at) VALUES (?, 'magic', ?, UTC_TIMESTAMP(6) - INTERVAL 3 DAY,
	    UTC_TIMESTAMP(6) - INTERVAL 3 DAY + INTERVAL 15 MINUTE)}, undef,
	    $tok_old, $u->{id});
	my $lf_old = 'c' x 60 . sprintf('%04d', $$ % 10000);
	$db->do(q{INSERT INTO login_failures (key_hash, window_start, count)
	    VALUES (?, UTC_TIMESTAMP(6) - INTERVAL 1 DAY, 3)}, undef, $lf_old);
	# A rate window of two days ago, a remembered check answer of two
	# days ago and one of now, mail sent 40 days ago and 1 day ago.
	$db->do(q{INSERT INTO rate_windows (user_id, bucket, window_start, count)
	    VALUES (?, 'api', UTC_TIMESTAMP(6) - INTERVAL 2 DAY, 7)
	    ON DUPLICATE KEY UPDATE window_start = VALUES(window_start)},
	    undef, $u->{id});
	$db->do(q{INSERT INTO bucket_windows (user_id, bucket, window_start, count)
	    VALUES (?, 'hdgc', UTC_TIMESTAMP(6) - INTERVAL 2 DAY, 7)}, undef,
	    $u->{id});
	my ($ck_old, $ck_new) = ("hd-gc-old-$$", "hd-gc-new-$$");
	$db->do(q{INSERT INTO check_requests (service_key_id, idempotency_key,
	    answer, created_at) VALUES ('hdgcservicekey0000000a', ?, '{}',
	    UTC_TIMESTAMP(6) - INTERVAL 2 DAY), ('hdgcservicekey0000000a', ?,
	    '{}', UTC_TIMESTAMP(6))}, undef, $ck_old, $ck_new);
	my ($mail_old, $mail_new) = map { 'hdgc' . substr(rand() =~ s/\D//gr, 0, 18) } 1, 2;
	$db->do(q{INSERT INTO outbox (id, user_id, kind, to_addr, subject,
	    body_text, status, sent_at) VALUES (?, ?, 'welcome', 'gc@example.com',
	    's', 'b', 'sent', UTC_TIMESTAMP(6) - INTERVAL 40 DAY), (?, ?,
	    'welcome', 'gc@example.com', 's', 'b', 'sent', UTC_TIMESTAMP(6) -
	    INTERVAL 1 DAY)}, undef, $mail_old, $u->{id}, $mail_new, $u->{id});

	my ($rc, $out) = ctl('gc');
	is($rc, 0, 'tollgatectl gc: exit 0') or diag $out;
	like($out, qr/\d/, 'it says how many rows went');
	my $has = sub { $db->selectrow_array($_[0], undef, $_[1]) };
	is($has->('SELECT COUNT(*) FROM sessions WHERE id = ?', $old), 0,
	    'a session expired 40 days ago is gone');
	is($has->('SELECT COUNT(*) FROM sessions WHERE id = ?', $gone), 0,
	    'a session revoked 40 days ago is gone');
	is($has->('SELECT COUNT(*) FROM refresh_tokens WHERE token_hash = ?',
	    $rt_old), 0, 'an expired refresh token is gone');
	is($has->('SELECT COUNT(*) FROM tokens WHERE token_hash = ?', $tok_old), 0,
	    'an expired one-time token is gone');
	is($has->('SELECT COUNT(*) FROM login_failures WHERE key_hash = ?',
	    $lf_old), 0, 'an old throttle row is gone');
	is($has->(q{SELECT COUNT(*) FROM rate_windows WHERE user_id = ? AND
	    bucket = 'api'}, $u->{id}), 0, 'a rate window of two days ago is gone');
	is($has->(q{SELECT COUNT(*) FROM bucket_windows WHERE user_id = ? AND
	    bucket = 'hdgc'}, $u->{id}), 0, 'a bucket window of two days ago is gone');
	is($has->('SELECT COUNT(*) FROM check_requests WHERE idempotency_key = ?',
	    $ck_old), 0, 'a check answer of two days ago is gone');
	is($has->('SELECT COUNT(*) FROM check_requests WHERE idempotency_key = ?',
	    $ck_new), 1, 'one of now stays');
	is($has->('SELECT COUNT(*) FROM outbox WHERE id = ?', $mail_old), 0,
	    'mail sent 40 days ago is gone');
	is($has->('SELECT COUNT(*) FROM outbox WHERE id = ?', $mail_new), 1,
	    'mail sent yesterday stays');
	$db->do('DELETE FROM check_requests WHERE idempotency_key = ?', undef,
	    $ck_new);
	$db->do('DELETE FROM outbox WHERE id = ?', undef, $mail_new);
	is($has->('SELECT COUNT(*) FROM sessions WHERE id = ?', $live_sid), 1,
	    'the live session stays');
	is(jpost('/api/v1/auth/refresh', { refresh_token => $u->{refresh} })->code,
	    200, 'and its refresh token works');
}

# --- the CSRF field is bound to the session -----------------------------
{
	my $a = verified_user(tag => 'hd-csrf-a');
	my $b = verified_user(tag => 'hd-csrf-b');
	my $ua_a = browser_login($a) or BAIL_OUT('cannot sign a browser in');
	my $ua_b = browser_login($b) or BAIL_OUT('cannot sign a browser in');
	my $page_a = $ua_a->get("$base/profile" => H())->result;
	my $field_a = csrf_of($page_a->body);
	my ($cookie_a) = grep { $_->name =~ /^(?:__Host-)?tg_csrf$/ }
	    @{ $ua_a->cookie_jar->all };
	ok($field_a && $cookie_a, 'browser A has a CSRF field and cookie');
	# B's session, with A's CSRF cookie and field planted (cookie tossing).
	my ($sess_b) = grep { $_->name =~ /^(?:__Host-)?tg_session$/ }
	    @{ $ua_b->cookie_jar->all };
	my $res = ua()->post("$base/profile/name" => H(Origin => $base,
	    'Content-Type' => 'application/x-www-form-urlencoded',
	    Cookie => $sess_b->name . '=' . $sess_b->value . '; '
	    . $cookie_a->name . '=' . $cookie_a->value) =>
	    form_body([csrf => $field_a], [name => 'Planted']))->result;
	is($res->code, 403, 'A\'s CSRF pair does not pass in B\'s session');
	isnt(db_row('SELECT name FROM users WHERE id = ?', $b->{id})->{name},
	    'Planted', 'B\'s name is unchanged');
	# B's own form still works.
	my $field_b = csrf_of($ua_b->get("$base/profile" => H())->result->body);
	$res = $ua_b->post("$base/profile/name" => H(Origin => $base,
	    'Content-Type' => 'application/x-www-form-urlencoded') =>
	    form_body([csrf => $field_b], [name => 'Own']))->result;
	ok($res->code == 303 || $res->code == 200, 'B\'s own form passes');
	is(db_row('SELECT name FROM users WHERE id = ?', $b->{id})->{name}, 'Own',
	    'and changes the name');

	# --- __Host- cookies ---
	my @set = @{ $page_a->headers->every_header('Set-Cookie') // [] };
	my $r = ua()->get("$base/login" => H())->result;
	push @set, @{ $r->headers->every_header('Set-Cookie') // [] };
	my @tg = grep { /^(?:__Host-)?tg_/ } @set;
	ok(@tg, 'tollgate sets cookies');
	for my $c (@tg) {
		my ($name) = $c =~ /^([^=]+)=/;
		like($name, qr/^__Host-/, "$name: the __Host- prefix");
		like($c, qr/;\s*Secure/i, "$name: Secure");
		like($c, qr/;\s*Path=\/(?:;|$)/i, "$name: Path=/");
		unlike($c, qr/;\s*Domain=/i, "$name: no Domain");
	}
}

# --- no forged log lines ------------------------------------------------
{
	my $log = "$ENV{TG_DEVSTACK}/log/tollgated.log";
	my $size = -s $log // 0;
	my $mark = 'forged' . int(rand(1e9));
	req(GET => "/api/v1/nothing%0Ats=2020-01-01T00:00:00.000Z%20level=error"
	    . "%20event=$mark", H());
	req(GET => "/api/v1/nothing%0D%0Aevent=${mark}b", H());
	sleep 0.5;
	open my $fh, '<', $log or die "$log: $!";
	seek $fh, $size, 0;
	my @lines = grep { /$mark/ } <$fh>;
	ok(@lines, 'the request was logged');
	ok(!grep({ !/^(?:<\d>)?ts=\d{4}-\d\d-\d\dT[\d:.]+Z level=\w+ pid=\d+ event=request /
	    } @lines), 'every line with the marker is the real request line')
	    or diag(join '', @lines);
	ok(!grep({ /\r/ } @lines), 'no raw carriage return in the log');
}

done_testing();
