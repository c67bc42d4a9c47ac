package TGGate;

# Helpers for the gate's tests (t/30-*.t to t/49-*.t): users made through
# the API and verified in the database as verify-email would, test-only
# plans with small numbers, service keys, and the clean-up of them all
# when the test ends.

use strict;
use warnings;

use Exporter 'import';
use TG;

our @EXPORT = qw(gdb new_user verify test_plan on_plan bearer service_key);

my ($DB, @users, @plans, @skeys);

# The test's database handle (as the tollgate user).
sub gdb { $DB //= dbh() }

END {
	return unless $DB;
	for my $k (@skeys) {
		$DB->do("DELETE FROM $_ WHERE service_key_id = ?", undef, $k)
		    for qw(check_requests usage_events);
		$DB->do('DELETE FROM service_keys WHERE id = ?', undef, $k);
	}
	$DB->do('DELETE FROM users WHERE id = ?', undef, $_) for @users;
	$DB->do('DELETE FROM plans WHERE name = ?', undef, $_) for @plans;
}

# A new service key named name, made by tollgatectl.  Returns the key
# (undef when tollgatectl printed none), its id, and tollgatectl's exit
# status and output.  The key, and the check answers and usage events
# made with it, go when the test ends.
sub service_key {
	my ($name) = @_;
	my ($rc, $out) = TG::ctl('service-key', 'create', $name);
	my ($key) = $out =~ /(tgs_\S+)\s*\z/;
	my $id = gdb()->selectrow_array('SELECT id FROM service_keys WHERE '
	    . 'name = ? AND revoked_at IS NULL', undef, $name);
	push @skeys, $id if defined $id;
	return ($key, $id, $rc, $out);
}

# A new account through the API, verified in the database as
# verify-email would (trial started, its credits granted) unless
# unverified => 1.  Returns {id, email, token, refresh, key, key_id}.
sub new_user {
	my (%o) = @_;
	(my $tag = $0) =~ s{.*/|\.t$}{}g;
	my $email = sprintf '%s.%d.%06d@example.com', $tag, $$, int rand 1e6;
	my $res = json_post('/api/v1/auth/signup', { email => $email,
	    password => 'correct horse battery', name => 'Gate' });
	die 'signup: ' . ($res->code // 'none') . ' ' . $res->body
	    unless ($res->code // 0) == 201;
	my $j = $res->json;
	push @users, $j->{user}{id};
	verify($j->{user}{id}) unless $o{unverified};
	return { id => $j->{user}{id}, email => $email,
	    token => $j->{tokens}{access_token},
	    refresh => $j->{tokens}{refresh_token},
	    key => $j->{api_key}{key}, key_id => $j->{api_key}{id} };
}

sub verify {
	my ($uid) = @_;
	gdb()->do(q{UPDATE users SET email_verified_at = COALESCE(email_verified_at,
	    UTC_TIMESTAMP(6)), trial_started_at = COALESCE(trial_started_at,
	    UTC_TIMESTAMP(6)), trial_ends_at = COALESCE(trial_ends_at,
	    UTC_TIMESTAMP(6) + INTERVAL 30 DAY) WHERE id = ?}, undef, $uid);
	gdb()->do(q{UPDATE credit_balances b JOIN users u ON u.id = b.user_id
	    SET b.allowance = 10, b.allowance_plan = 'trial',
	    b.allowance_period_end = u.trial_ends_at
	    WHERE b.user_id = ? AND b.allowance_plan IS NULL}, undef, $uid);
}

# A plan for this test only (rate, credits, keys, limits => {meter => n}),
# removed at the end.  Returns its name.
sub test_plan {
	my (%v) = @_;
	my $name = sprintf 'tp_%d_%d', $$, int rand 1e6;
	gdb()->do(q{INSERT INTO plans (name, display_name, price_cents,
	    rate_per_minute, credits, api_keys, sort_order) VALUES
	    (?, 'Test', 0, ?, ?, ?, 25)}, undef, $name, $v{rate} // 1000,
	    $v{credits} // 0, $v{keys} // 5);
	push @plans, $name;
	for my $m (keys %{ $v{limits} // {} }) {
		gdb()->do('INSERT INTO plan_limits VALUES (?, ?, ?)', undef, $name,
		    $m, $v{limits}{$m});
	}
	return $name;
}

# Puts user $u on plan $plan (an admin's override).
sub on_plan {
	my ($u, $plan) = @_;
	gdb()->do('UPDATE users SET plan_override = ? WHERE id = ?', undef, $plan,
	    $u->{id});
}

sub bearer { return { Authorization => "Bearer $_[0]" } }

1;
