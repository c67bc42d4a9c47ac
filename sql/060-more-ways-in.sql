-- 060-more-ways-in.sql: guest accounts, magic-link sign-up, OpenID
-- Connect sign-in and trusted tokens (contract section 3, "More ways in").
--
-- A guest is a users row with no email yet (email and email_lc NULL; a
-- unique key admits any number of NULLs) and guest_at set to when it was
-- made.  Its plan is the `guest` plan, held as its plan_override, so the
-- gate and every rule (tg_plan) see it as any other plan the operator
-- edits with `tollgatectl plans set guest ...`.  Having no mailbox to
-- prove, a guest counts as verified for the gate (email_verified_at is
-- its creation time); the user object says email_verified only for an
-- address that exists.  A guest is claimed (becomes a full account, same
-- id, usage and credits) by sign-up, a magic link, GitHub or OpenID
-- Connect presented with its own token: guest_at and the plan_override
-- `guest` are cleared and the address set.  The sender deletes guests
-- never claimed after `[guest] days` without activity (no session used).
--
-- guest_throttle counts guest creations per client address (keyed hash)
-- in a fixed one-hour window, as mail_throttle does per recipient.
--
-- signup_links holds the magic links that make an account when followed
-- (`[accounts] magic_link_signup`) and those that claim a guest for an
-- address (guest_id set): the keyed hash of the token, the address, and
-- the usual single use (used_at) and 15-minute life.  The account is made
-- (or the guest claimed) only when the link is followed.
--
-- external_ids links a subject of another identity service to one user:
-- provider is `oidc:NAME` for an `[oidc NAME]` sign-in, `trust:NAME` for
-- a `[trust NAME]` token issuer; subject is the provider's `sub`.  Each
-- (provider, subject) names one user, and a user has at most one subject
-- per provider.  trial_history records OpenID subjects (kind `oidc`,
-- subject "provider|sub") as it does GitHub ids.
--
-- oidc_replay remembers the nonces of ID tokens already used, until they
-- expire, so one ID token never signs in twice.

ALTER TABLE users MODIFY email VARCHAR(254) CHARACTER SET utf8mb4
	COLLATE utf8mb4_bin NULL;
ALTER TABLE users MODIFY email_lc VARCHAR(254) CHARACTER SET utf8mb4
	COLLATE utf8mb4_bin NULL;
ALTER TABLE users ADD COLUMN IF NOT EXISTS guest_at DATETIME(6) NULL;
CREATE INDEX IF NOT EXISTS users_guest ON users (guest_at);

ALTER TABLE sessions MODIFY kind ENUM('signup', 'password', 'magic',
	'github', 'device', 'guest', 'oidc', 'trust') NOT NULL;
ALTER TABLE trial_history MODIFY kind ENUM('email', 'github', 'oidc')
	NOT NULL;

INSERT IGNORE INTO plans
	(name, display_name, price_cents, currency, rate_per_minute, credits,
	 api_keys, stripe_price_id, sort_order, is_trial)
VALUES
	('guest', 'Guest', 0, 'usd', 5, 3, 0, NULL, 5, 0);

INSERT IGNORE INTO plan_limits (plan, meter, period_limit)
VALUES
	('guest', 'credits',          3),
	('guest', 'compute_minutes',  0);

CREATE TABLE IF NOT EXISTS guest_throttle (
	addr_hash	CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	window_start	DATETIME(6) NOT NULL,
	count		INT UNSIGNED NOT NULL DEFAULT 0,
	PRIMARY KEY (addr_hash),
	KEY guest_throttle_window (window_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS signup_links (
	token_hash	CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	email		VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
			    NOT NULL,
	email_lc	VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
			    NOT NULL,
	guest_id	CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	expires_at	DATETIME(6) NOT NULL,
	used_at		DATETIME(6) NULL,
	PRIMARY KEY (token_hash),
	KEY signup_links_expires (expires_at),
	KEY signup_links_guest (guest_id),
	CONSTRAINT signup_links_guest_fk FOREIGN KEY (guest_id)
	    REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS external_ids (
	provider	VARCHAR(80) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	subject		VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
			    NOT NULL,
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (provider, subject),
	UNIQUE KEY external_ids_user (user_id, provider),
	CONSTRAINT external_ids_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS oidc_replay (
	nonce_hash	CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	expires_at	DATETIME(6) NOT NULL,
	PRIMARY KEY (nonce_hash),
	KEY oidc_replay_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
