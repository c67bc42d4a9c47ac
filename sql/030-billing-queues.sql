-- 030-billing-queues.sql: the procedure that adds usage to the Stripe
-- meter-report queue, and the queue of subscription cancellations.
--
-- tg_meter_report_add(uid, meter, quantity, interval) adds quantity to
-- the meter_reports row (006) of that user, meter and interval, where
-- the interval is the `interval` seconds long slice of UTC time, counted
-- from the epoch, that holds the current time.  It does so only for a
-- paying user: one with a Stripe customer and a live subscription
-- (active, trialing or past_due, not deleted); for anyone else it does
-- nothing.  The row is made by the first addition (its id is 16 random
-- bytes in base64url, like the application's), becomes due 10 seconds
-- after its interval ends (next_attempt_at), and is frozen from the
-- sender's first claim on (attempts > 0 or a lease): its quantity is what
-- goes to Stripe, under the same identifier and Idempotency-Key on every
-- retry, so an addition that arrives later than that is dropped rather
-- than changing what was sent.  The gate calls it in the transaction that
-- counts the usage, so usage is counted and queued together.  It takes
-- the interval as an argument because [stripe] report_interval lives in
-- the configuration, not the database.
--
-- stripe_cancellations holds the Stripe subscriptions to cancel because
-- their account was deleted: the account deletion inserts one row per
-- live subscription in its own transaction, and the sender sends DELETE
-- /v1/subscriptions/{id} with retries and backoff (status pending ->
-- done, or failed after the last attempt), claiming rows with a lease
-- like the outbox.  user_id is a plain copy of the deleted account's id.

CREATE OR REPLACE PROCEDURE tg_meter_report_add(
	p_uid CHAR(22) CHARACTER SET ascii,
	p_meter VARCHAR(64) CHARACTER SET ascii,
	p_qty BIGINT,
	p_interval INT)
MODIFIES SQL DATA
INSERT INTO meter_reports (id, user_id, meter, interval_start,
	interval_end, quantity, stripe_customer_id, next_attempt_at)
SELECT REPLACE(REPLACE(LEFT(TO_BASE64(RANDOM_BYTES(16)), 22), '+', '-'),
	'/', '_'), u.id, p_meter,
	TIMESTAMP('1970-01-01') + INTERVAL (TIMESTAMPDIFF(SECOND,
	    TIMESTAMP('1970-01-01'), UTC_TIMESTAMP()) DIV p_interval *
	    p_interval) SECOND,
	TIMESTAMP('1970-01-01') + INTERVAL (TIMESTAMPDIFF(SECOND,
	    TIMESTAMP('1970-01-01'), UTC_TIMESTAMP()) DIV p_interval *
	    p_interval + p_interval) SECOND,
	p_qty, u.stripe_customer_id,
	TIMESTAMP('1970-01-01') + INTERVAL (TIMESTAMPDIFF(SECOND,
	    TIMESTAMP('1970-01-01'), UTC_TIMESTAMP()) DIV p_interval *
	    p_interval + p_interval + 10) SECOND
FROM users u
WHERE u.id = p_uid AND p_qty > 0 AND p_interval > 0
	AND u.stripe_customer_id IS NOT NULL
	AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = u.id
	    AND s.deleted_at IS NULL
	    AND s.status IN ('active', 'trialing', 'past_due'))
ON DUPLICATE KEY UPDATE quantity = quantity +
	IF(status = 'pending' AND attempts = 0 AND locked_by IS NULL,
	    VALUES(quantity), 0);

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
