-- 006-billing.sql: Stripe subscriptions, payments, webhook events and the
-- queue of metered usage reported to Stripe.
--
-- subscriptions mirrors each Stripe subscription, keyed by Stripe's own
-- id.  plan is the plan whose stripe price id is on the subscription's
-- first item (NULL when no plan has that price); status is Stripe's
-- (active, past_due, canceled, ...).  stripe_updated is the time of the
-- newest Stripe object applied to the row (unix seconds, from the
-- event): a webhook changes the row only when its object is at least as
-- new, and never once deleted_at is set, so a late event cannot revive a
-- deleted subscription or undo a newer state.  A user may have several
-- subscriptions over time; the current one is the newest that is not
-- deleted.  When the user is deleted the row is kept with user_id NULL.
--
-- payments records each invoice (paid or failed), keyed by a tollgate id
-- and unique on Stripe's invoice id, with the amount in the currency's
-- smallest unit.  It has no foreign key to users and outlives them.
--
-- stripe_events records each webhook event id that took effect, inserted
-- in the same transaction as its effect, so an event replayed or
-- delivered twice at once takes effect once.
--
-- meter_reports is the queue of usage sums sent to Stripe's meter
-- events: one row per user, meter and interval (report_interval
-- seconds), to which usage is added while the interval runs.  After
-- interval_end the sender claims due rows with a lease (locked_by,
-- locked_until), posts each once with an identifier and Idempotency-Key
-- derived from the row's id, and marks it sent; failures are retried at
-- next_attempt_at with backoff.  The row keeps the Stripe customer id, so
-- it can still be sent after the user is gone.

CREATE TABLE IF NOT EXISTS subscriptions (
	id		VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
	stripe_customer_id VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin
			    NULL,
	plan		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
	price_id	VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
	status		VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	current_period_start DATETIME(6) NULL,
	current_period_end DATETIME(6) NULL,
	cancel_at_period_end TINYINT(1) NOT NULL DEFAULT 0,
	stripe_updated	BIGINT NOT NULL DEFAULT 0,
	deleted_at	DATETIME(6) NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	updated_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (id),
	KEY subscriptions_user (user_id, deleted_at),
	KEY subscriptions_customer (stripe_customer_id),
	CONSTRAINT subscriptions_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS payments (
	id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
	stripe_invoice_id VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin
			    NOT NULL,
	subscription_id	VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
	amount		BIGINT NOT NULL,
	currency	CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	status		VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	invoice_url	VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	updated_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (id),
	UNIQUE KEY payments_invoice (stripe_invoice_id),
	KEY payments_user (user_id, created_at),
	KEY payments_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS stripe_events (
	id		VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	type		VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	created		BIGINT NULL,
	received_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (id),
	KEY stripe_events_received (received_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS meter_reports (
	id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	meter		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	interval_start	DATETIME(6) NOT NULL,
	interval_end	DATETIME(6) NOT NULL,
	quantity	BIGINT NOT NULL DEFAULT 0,
	stripe_customer_id VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin
			    NOT NULL,
	status		ENUM('pending', 'sent', 'failed') NOT NULL
			    DEFAULT 'pending',
	attempts	INT NOT NULL DEFAULT 0,
	next_attempt_at	DATETIME(6) NOT NULL,
	locked_by	VARCHAR(128) NULL,
	locked_until	DATETIME(6) NULL,
	sent_at		DATETIME(6) NULL,
	last_error	VARCHAR(1024) NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (id),
	UNIQUE KEY meter_reports_interval (user_id, meter, interval_start),
	KEY meter_reports_due (status, next_attempt_at),
	CONSTRAINT meter_reports_quantity_ck CHECK (quantity >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
