-- 001-plans.sql: plans and their per-meter limits, with the defaults of
-- contract section 5.
--
-- A plan is named by a short slug (trial, free, pro, team, or one the
-- operator adds), which is what users, subscriptions and the gate's
-- X-Tollgate-Plan header carry.  The plans table holds what a plan costs,
-- its per-minute rate limit on gate checks, the credits it grants at the
-- start of each billing period (the trial's credits are granted once, for
-- the whole trial), how many API keys a user on it may hold, the Stripe
-- price id that selects it in Checkout and in subscription webhooks, and
-- the order in which GET /api/v1/plans lists it.  Exactly the trial plan
-- has is_trial set.
--
-- plan_limits holds, per plan and meter, the most a user may consume in
-- one billing period; a meter without a row for a plan has no limit on
-- it.  The row for the meter `credits` repeats plans.credits so that
-- /api/v1/usage and /api/v1/plans can list every meter from one table;
-- whoever edits one should edit the other.
--
-- The seed rows use INSERT IGNORE: running this file again (after a
-- partial failure, or on a database an operator has edited) never
-- overwrites a price, limit or price id the operator has changed.

CREATE TABLE IF NOT EXISTS plans (
	name		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	display_name	VARCHAR(128) NOT NULL,
	price_cents	BIGINT NOT NULL DEFAULT 0,
	currency	CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL
			    DEFAULT 'usd',
	rate_per_minute	INT NOT NULL,
	credits		BIGINT NOT NULL DEFAULT 0,
	api_keys	INT NOT NULL,
	stripe_price_id	VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
	sort_order	INT NOT NULL DEFAULT 0,
	is_trial	TINYINT(1) NOT NULL DEFAULT 0,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	updated_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (name),
	UNIQUE KEY plans_stripe_price (stripe_price_id),
	KEY plans_sort (sort_order, name),
	CONSTRAINT plans_price_ck CHECK (price_cents >= 0),
	CONSTRAINT plans_rate_ck CHECK (rate_per_minute >= 0),
	CONSTRAINT plans_credits_ck CHECK (credits >= 0),
	CONSTRAINT plans_keys_ck CHECK (api_keys >= 0),
	CONSTRAINT plans_trial_ck CHECK (is_trial IN (0, 1))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS plan_limits (
	plan		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	meter		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	period_limit	BIGINT NOT NULL,
	PRIMARY KEY (plan, meter),
	CONSTRAINT plan_limits_plan_fk FOREIGN KEY (plan)
	    REFERENCES plans (name) ON UPDATE CASCADE ON DELETE CASCADE,
	CONSTRAINT plan_limits_limit_ck CHECK (period_limit >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT IGNORE INTO plans
	(name, display_name, price_cents, currency, rate_per_minute, credits,
	 api_keys, stripe_price_id, sort_order, is_trial)
VALUES
	('trial', 'Trial',    0, 'usd',  10,     10,  2, NULL, 10, 1),
	('free',  'Free',     0, 'usd',  20,    100,  2, NULL, 20, 0),
	('pro',   'Pro',   2900, 'usd', 120,  10000, 10, NULL, 30, 0),
	('team',  'Team',  9900, 'usd', 600, 100000, 50, NULL, 40, 0);

INSERT IGNORE INTO plan_limits (plan, meter, period_limit)
VALUES
	('trial', 'api_calls',          1000),
	('trial', 'credits',              10),
	('trial', 'compute_minutes',      60),
	('free',  'api_calls',         10000),
	('free',  'credits',             100),
	('free',  'compute_minutes',     120),
	('pro',   'api_calls',        100000),
	('pro',   'credits',           10000),
	('pro',   'compute_minutes',    6000),
	('team',  'api_calls',       1000000),
	('team',  'credits',          100000),
	('team',  'compute_minutes',   30000);
