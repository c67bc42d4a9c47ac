-- 030-billing-queues.sql: the queue of subscription cancellations (the
-- meter-report procedure that was here is in routines/meters.sql).
--
-- stripe_cancellations holds the Stripe subscriptions to cancel because
-- their account was deleted: the account deletion inserts one row per
-- live subscription in its own transaction, and the sender sends DELETE
-- /v1/subscriptions/{id} with retries and backoff (status pending ->
-- done, or failed after the last attempt), claiming rows with a lease
-- like the outbox.  user_id is a plain copy of the deleted account's id.

CREATE TABLE IF NOT EXISTS stripe_cancellations (
	subscription_id	VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin
			    NOT NULL,
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
	status		ENUM('pending', 'done', 'failed') NOT NULL
			    DEFAULT 'pending',
	attempts	INT NOT NULL DEFAULT 0,
	next_attempt_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	locked_by	VARCHAR(128) NULL,
	locked_until	DATETIME(6) NULL,
	last_error	VARCHAR(1024) NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	done_at		DATETIME(6) NULL,
	PRIMARY KEY (subscription_id),
	KEY stripe_cancellations_due (status, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
