package TGMail;

# An SMTP sink on loopback for the mail tests: a forked Perl process that
# listens on 127.0.0.1:TG_PORT+10 (the dev stack's [smtp] url), accepts
# every message and saves each to a file of its own.  The tests read the
# saved messages back (mails_to, wait_mail), follow the links in them,
# and stop and start the sink to play a relay outage.

use strict;
use warnings;

use Exporter 'import';
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use POSIX ();

our @EXPORT = qw(sink_start sink_stop sink_port mails_to wait_mail
    mail_link mail_token unique_email);

my ($pid, $dir, $owner);

sub sink_port { $ENV{TG_PORT} + 10 }

# A fresh address for one test (ASCII lower case unless told otherwise).
sub unique_email {
	my ($tag) = @_;
	return sprintf '%s-%d-%d@example.com', $tag // 'u', $$,
	    int(rand(1e9));
}

# Serves one SMTP connection, saving each message to the directory.
sub serve {
	my ($c, $n) = @_;
	my ($from, @rcpt);
	local $/ = "\r\n";
	print $c "220 tollgate-test-sink ESMTP\r\n";
	while (defined(my $line = <$c>)) {
		$line =~ s/\r?\n\z//;
		if ($line =~ /^(EHLO|HELO)\b/i) {
			print $c uc($1) eq 'EHLO'
			    ? "250-tollgate-test-sink\r\n250 8BITMIME\r\n"
			    : "250 tollgate-test-sink\r\n";
		} elsif ($line =~ /^MAIL FROM:\s*<([^>]*)>/i) {
			($from, @rcpt) = ($1);
			print $c "250 OK\r\n";
		} elsif ($line =~ /^RCPT TO:\s*<([^>]*)>/i) {
			push @rcpt, $1;
			print $c "250 OK\r\n";
		} elsif ($line =~ /^DATA\b/i) {
			print $c "354 go on\r\n";
			my $msg = '';
			while (defined(my $d = <$c>)) {
				last if $d eq ".\r\n";
				$d =~ s/^\.//;
				$msg .= $d;
			}
			my $name = sprintf '%s/%.6f-%d-%d', $dir, time, $$, ++$$n;
			open my $fh, '>', "$name.tmp" or die "$name: $!";
			print $fh "X-Sink-Rcpt: @rcpt\r\n$msg";
			close $fh;
			rename "$name.tmp", "$name.eml" or die "rename: $!";
			print $c "250 OK saved\r\n";
		} elsif ($line =~ /^(RSET|NOOP)\b/i) {
			print $c "250 OK\r\n";
		} elsif ($line =~ /^QUIT\b/i) {
			print $c "221 bye\r\n";
			last;
		} else {
			print $c "502 not here\r\n";
		}
	}
	close $c;
}

# Starts the sink (again); returns true once it accepts connections.
sub sink_start {
	$dir //= tempdir('tg-mail-XXXXXX', TMPDIR => 1, CLEANUP => 1);
	return 1 if $pid;
	my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
	    LocalPort => sink_port(), Listen => 16, ReuseAddr => 1,
	    Proto => 'tcp') or die "sink: cannot listen on " . sink_port()
	    . ": $!";
	$owner = $$;
	$pid = fork // die "fork: $!";
	if ($pid == 0) {
		$SIG{TERM} = sub { POSIX::_exit(0) };
		my $n = 0;
		while (my $c = $srv->accept) {
			$c->autoflush(1);
			eval { serve($c, \$n) };
		}
		POSIX::_exit(0);
	}
	close $srv;
	return 1;
}

# Stops the sink: the port is closed when this returns.
sub sink_stop {
	return unless $pid && $owner == $$;
	kill 'TERM', $pid;
	waitpid $pid, 0;
	undef $pid;
}

END { sink_stop() }

# Reads one saved message into a hash: to, subject, message_id, text
# (the plain-text part), raw.
sub parse {
	my ($file) = @_;
	open my $fh, '<', $file or return undef;
	local $/;
	my $raw = <$fh>;
	close $fh;
	my ($head, $body) = split /\r\n\r\n/, $raw, 2;
	my %h;
	for (split /\r\n(?!\s)/, $head) {
		my ($k, $v) = /^([^:]+):\s*(.*)\z/s or next;
		$h{lc $k} //= $v;
	}
	my $text = $body // '';
	if (($h{'content-type'} // '') =~ /boundary="([^"]+)"/) {
		my $b = $1;
		my @parts = split /\r\n--\Q$b\E(?:--)?\r\n|^--\Q$b\E\r\n/m, $body;
		for my $p (@parts) {
			next unless $p =~ m{^Content-Type: text/plain}mi;
			(undef, $text) = split /\r\n\r\n/, $p, 2;
			last;
		}
	}
	my ($to) = ($h{to} // '') =~ /<([^>]+)>/;
	return { file => $file, raw => $raw, text => $text,
	    to => $to // $h{to}, rcpt => $h{'x-sink-rcpt'},
	    subject => $h{subject}, message_id => $h{'message-id'},
	    headers => \%h };
}

# Every message saved so far whose envelope recipient is $addr (compared
# exactly), oldest first.
sub mails_to {
	my ($addr) = @_;
	return () unless $dir;
	opendir my $dh, $dir or return ();
	my @f = sort grep { /\.eml\z/ } readdir $dh;
	closedir $dh;
	return grep { defined $_->{rcpt} && $_->{rcpt} eq $addr }
	    map { parse("$dir/$_") } @f;
}

# Waits (up to $timeout seconds, default 20) for a message to $addr for
# which $pred (given the parsed message) is true; returns it or undef.
sub wait_mail {
	my ($addr, $pred, $timeout) = @_;
	$pred //= sub { 1 };
	my $end = time + ($timeout // 20);
	while (1) {
		for my $m (mails_to($addr)) {
			return $m if $pred->($m);
		}
		return undef if time >= $end;
		sleep 0.1;
	}
}

# The first link to $path ("/verify-email", ...) in a message's text.
sub mail_link {
	my ($m, $path) = @_;
	return undef unless $m;
	my $base = $ENV{TG_BASE};
	return $m->{text} =~ m{(\Q$base$path\E\?token=[A-Za-z0-9_-]+)}
	    ? $1 : undef;
}

# The token of that link.
sub mail_token {
	my ($m, $path) = @_;
	my $l = mail_link($m, $path) // return undef;
	return $l =~ /token=([A-Za-z0-9_-]+)/ ? $1 : undef;
}

1;
