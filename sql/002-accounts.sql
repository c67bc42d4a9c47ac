-- 002-accounts.sql: users, one-time tokens, throttles, the second factor,
-- and the record of trials already given.
--
-- users holds one row per account.  The email is kept as typed (email)
-- beside its lookup form (email_lc), in which the application has
-- lower-cased the ASCII letters A-Z and nothing else, so that `José@x`
-- and `jose@x` stay different addresses; both use a binary collation and
-- email_lc is unique.  password_hash is an Argon2id string, or NULL for an
-- account that signs in only through GitHub or magic links.  role is read
-- from here on every request.  plan_override is a plan set by an admin; it
-- wins over the subscription, the trial and the fallback plan.  A trial
-- runs from trial_started_at (set at email verification) to
-- trial_ends_at; its credits live in credit_balances (005).  github_id
-- links a GitHub account, stripe_customer_id the Stripe customer made once
-- per user.  Deleting an account is a real DELETE: the rows that belong
-- to it go with it through ON DELETE CASCADE, while the audit log, the
-- credit ledger, payments and trial_history keep plain copies of its id.
--
-- trial_history remembers every email (its email_lc) and every GitHub id
-- that was ever given a trial, so that each gets one trial, ever, even
-- after the account is deleted and made again.  The application inserts
-- one row per identifier with INSERT IGNORE when it starts a trial: zero
-- affected rows means a trial was given before.
--
-- tokens holds the one-time tokens sent by mail (email verification,
-- password reset, magic link, email change), stored only as the keyed
-- hash of the token.  A token is used by setting used_at in a statement
-- that also requires used_at IS NULL and expires_at in the future, so two
-- concurrent uses cannot both succeed.  An email-change token carries the
-- new address (as typed and lower-cased).
--
-- login_failures counts failed logins in a fixed 15-minute window per
-- key, where the key is the keyed hash of "email_lc|address" or of the
-- address alone (never the email alone).  mail_throttle does the same for
-- mail to one recipient (forgot-password, magic link, resend) over an
-- hour, keyed by the hash of the recipient's email_lc.  Both are updated
-- with one INSERT ... ON DUPLICATE KEY UPDATE that restarts the window
-- when it has run out; stale rows may be purged by window_start.
--
-- totp_secrets holds a user's TOTP secret, encrypted with the crypto key
-- (nonce and ciphertext, as the application lays them out).  The row is
-- made at enrolment; enabled_at is set on confirmation, and only then is
-- the second factor on.  last_step is the last RFC 6238 time step
-- accepted: a code is accepted by an UPDATE that requires last_step to be
-- NULL or smaller than the code's step, which refuses replays.
-- recovery_codes holds the ten single-use recovery codes as keyed hashes.

CREATE TABLE IF NOT EXISTS users (
	id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	email		VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
			    NOT NULL,
	email_lc	VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
			    NOT NULL,
	name		VARCHAR(255) NOT NULL DEFAULT '',
	password_hash	VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
	role		ENUM('user', 'admin') NOT NULL DEFAULT 'user',
	email_verified_at DATETIME(6) NULL,
	disabled_at	DATETIME(6) NULL,
	plan_override	VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
	trial_started_at DATETIME(6) NULL,
	trial_ends_at	DATETIME(6) NULL,
	github_id	BIGINT UNSIGNED NULL,
	github_login	VARCHAR(100) NULL,
	stripe_customer_id VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin
			    NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	updated_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (id),
	UNIQUE KEY users_email_lc (email_lc),
	UNIQUE KEY users_github (github_id),
	UNIQUE KEY users_stripe_customer (stripe_customer_id),
	KEY users_created (created_at, id),
	KEY users_name (name),
	KEY users_role (role, disabled_at),
	KEY users_trial_ends (trial_ends_at),
	CONSTRAINT users_plan_fk FOREIGN KEY (plan_override)
	    REFERENCES plans (name) ON UPDATE CASCADE ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS trial_history (
	kind		ENUM('email', 'github') NOT NULL,
	subject		VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
			    NOT NULL,
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	granted_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (kind, subject)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS tokens (
	token_hash	CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	kind		ENUM('verify', 'reset', 'magic', 'email_change') NOT NULL,
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	new_email	VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
			    NULL,
	new_email_lc	VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
			    NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	expires_at	DATETIME(6) NOT NULL,
	used_at		DATETIME(6) NULL,
	PRIMARY KEY (token_hash),
	KEY tokens_user (user_id, kind),
	KEY tokens_expires (expires_at),
	CONSTRAINT tokens_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS login_failures (
	key_hash	CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	window_start	DATETIME(6) NOT NULL,
	count		INT UNSIGNED NOT NULL DEFAULT 0,
	PRIMARY KEY (key_hash),
	KEY login_failures_window (window_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS mail_throttle (
	email_hash	CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	window_start	DATETIME(6) NOT NULL,
	count		INT UNSIGNED NOT NULL DEFAULT 0,
	PRIMARY KEY (email_hash),
	KEY mail_throttle_window (window_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS totp_secrets (
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	secret_enc	VARBINARY(255) NOT NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	enabled_at	DATETIME(6) NULL,
	last_step	BIGINT NULL,
	PRIMARY KEY (user_id),
	CONSTRAINT totp_secrets_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS recovery_codes (
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	code_hash	CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	used_at		DATETIME(6) NULL,
	PRIMARY KEY (user_id, code_hash),
	CONSTRAINT recovery_codes_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
