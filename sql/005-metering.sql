-- 005-metering.sql: credits, rate limits and usage meters.
--
-- credit_balances holds one row per user (made at signup) with two
-- amounts that can never go below zero.  allowance is the plan's grant
-- for the current period (the trial's credits for the trial) and counts
-- only while allowance_period_end is in the future: after that it has
-- lapsed, whatever the column still says, until the application records
-- the lapse and the next period's grant (allowance_plan names the plan
-- that granted it, so a change of plan is noticed).  granted holds the
-- credits given by an admin or bought, which never lapse and are spent
-- after the allowance.  A spend of c credits is one UPDATE whose WHERE
-- clause requires the live allowance plus granted to cover c, and which
-- takes from the allowance first: exactly the spends that fit succeed,
-- and the CHECK constraints are a last guard.
--
-- credit_ledger records every change of a balance and every refusal:
-- spends (delta = -cost), refusals (delta = 0, cost = what was asked),
-- period allowances and the trial's grant, admin grants and purchases,
-- and lapses, each with the total balance after it.  It has no foreign
-- key to users and outlives them.  request_key, when set, is unique: a
-- client that lost the answer to a COMMIT looks its effect up by it
-- instead of spending again.
--
-- rate_windows holds one fixed window per user and bucket (`gate` for
-- the plan's limit on gate checks, `api` for tollgate's own API): it
-- starts at the first counted hit, on the database's clock, and lasts 60
-- seconds.  The application counts a hit with one INSERT ... ON
-- DUPLICATE KEY UPDATE ... RETURNING that restarts an expired window and
-- returns the count and the window's start.
--
-- usage_counters holds what each user consumed of each meter in each
-- billing period (period_start identifies the period); a limited action
-- is counted by one upsert that adds the cost only when used + cost stays
-- within the plan's limit.  usage_daily sums the same by UTC day for the
-- usage chart.  usage_events records the events services report with a
-- service key; (service_key_id, idempotency_key) is unique, so the same
-- event sent twice counts once.  usage_notices records the 80 % and 100 %
-- mails sent for a user, meter and period, so each goes once.

CREATE TABLE IF NOT EXISTS credit_balances (
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	allowance	BIGINT NOT NULL DEFAULT 0,
	allowance_plan	VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
	allowance_period_start DATETIME(6) NULL,
	allowance_period_end DATETIME(6) NULL,
	granted		BIGINT NOT NULL DEFAULT 0,
	updated_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (user_id),
	KEY credit_balances_period_end (allowance_period_end),
	CONSTRAINT credit_balances_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE,
	CONSTRAINT credit_balances_allowance_ck CHECK (allowance >= 0),
	CONSTRAINT credit_balances_granted_ck CHECK (granted >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS credit_ledger (
	id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	kind		ENUM('spend', 'refusal', 'allowance', 'trial', 'grant',
			    'purchase', 'lapse') NOT NULL,
	delta		BIGINT NOT NULL,
	cost		BIGINT NULL,
	balance_after	BIGINT NOT NULL,
	meter		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
	reason		VARCHAR(255) NULL,
	actor_id	CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
	request_key	VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (id),
	UNIQUE KEY credit_ledger_request (request_key),
	KEY credit_ledger_user (user_id, created_at),
	KEY credit_ledger_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS rate_windows (
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	bucket		ENUM('gate', 'api') NOT NULL,
	window_start	DATETIME(6) NOT NULL,
	count		INT UNSIGNED NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, bucket),
	CONSTRAINT rate_windows_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS usage_counters (
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	meter		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	period_start	DATETIME(6) NOT NULL,
	period_end	DATETIME(6) NULL,
	used		BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, meter, period_start),
	CONSTRAINT usage_counters_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE,
	CONSTRAINT usage_counters_used_ck CHECK (used >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS usage_events (
	id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	service_key_id	CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	idempotency_key	VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
			    NOT NULL,
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	meter		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	quantity	BIGINT NOT NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (id),
	UNIQUE KEY usage_events_idem (service_key_id, idempotency_key),
	KEY usage_events_user (user_id, created_at),
	CONSTRAINT usage_events_service_key_fk FOREIGN KEY (service_key_id)
	    REFERENCES service_keys (id),
	CONSTRAINT usage_events_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE,
	CONSTRAINT usage_events_quantity_ck CHECK (quantity > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS usage_daily (
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	meter		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	day		DATE NOT NULL,
	used		BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, meter, day),
	CONSTRAINT usage_daily_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS usage_notices (
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	meter		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	period_start	DATETIME(6) NOT NULL,
	threshold	TINYINT UNSIGNED NOT NULL,
	sent_at		DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (user_id, meter, period_start, threshold),
	CONSTRAINT usage_notices_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
