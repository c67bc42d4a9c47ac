-- meters.sql: level meters, named rate buckets, and the Stripe meter
-- queue.

-- tg_level_raise(uid, meter, cost) raises uid's level of meter by cost
-- when level + cost stays within the limit of uid's plan on that meter
-- (no row in plan_limits: no limit; a cost of 0, a pure check, passes
-- only while the level is below the limit, as contract section 7 says of
-- cost 0), and returns one row: allowed (1 or
-- 0), the level after it, and the limit (NULL: none).  The decision is
-- the UPDATE's WHERE clause under the row's lock, so of any number of
-- concurrent raises exactly those that fit pass.  It runs in the
-- caller's transaction (autocommit: on its own).  The engine calls it
-- for a check of a level meter, at the gate and in POST /api/v1/check.
CREATE OR REPLACE PROCEDURE tg_level_raise(
	IN p_uid CHAR(22) CHARACTER SET ascii,
	IN p_meter VARCHAR(64) CHARACTER SET ascii,
	IN p_cost BIGINT)
MODIFIES SQL DATA
BEGIN
	DECLARE v_limit BIGINT DEFAULT NULL;
	DECLARE v_ok INT DEFAULT 0;
	DECLARE CONTINUE HANDLER FOR NOT FOUND BEGIN END;

	SELECT l.period_limit INTO v_limit FROM plan_limits l
	    WHERE l.plan = tg_plan(p_uid) AND l.meter = p_meter;
	INSERT IGNORE INTO usage_levels (user_id, meter, level)
	    SELECT u.id, p_meter, 0 FROM users u WHERE u.id = p_uid;
	UPDATE usage_levels SET level = level + p_cost,
	    updated_at = UTC_TIMESTAMP(6)
	    WHERE user_id = p_uid AND meter = p_meter AND p_cost >= 0 AND
	    (v_limit IS NULL OR level + GREATEST(p_cost, 1) <= v_limit);
	SET v_ok = ROW_COUNT();
	SELECT v_ok > 0 AS allowed, (SELECT v.level FROM usage_levels v
	    WHERE v.user_id = p_uid AND v.meter = p_meter) AS level,
	    v_limit AS `limit`;
END;

-- tg_bucket(uid, bucket, mode, ws) counts in uid's window of bucket: mode
-- 1 takes one check when it fits (count < limit), 0 only looks, -1 gives
-- one back (the check it was taken for was refused later) when the
-- window that started at ws is still the current one.  Returns one row:
-- ok (1: taken, or would fit), the limit, the count after it, the
-- microseconds left in the window, and the window's start.  The decision
-- is taken under the row's lock, so of any number of concurrent takes
-- exactly those that fit pass.  Autocommit: on its own.
CREATE OR REPLACE PROCEDURE tg_bucket(
	IN p_uid CHAR(22) CHARACTER SET ascii,
	IN p_bucket VARCHAR(64) CHARACTER SET ascii,
	IN p_mode INT,
	IN p_ws DATETIME(6))
MODIFIES SQL DATA
BEGIN
	DECLARE v_now DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
	DECLARE v_plan VARCHAR(64) CHARACTER SET ascii DEFAULT NULL;
	DECLARE v_limit, v_count BIGINT DEFAULT NULL;
	DECLARE v_ws DATETIME(6) DEFAULT NULL;
	DECLARE v_ok INT DEFAULT 0;
	DECLARE CONTINUE HANDLER FOR NOT FOUND BEGIN END;
	DECLARE EXIT HANDLER FOR SQLEXCEPTION
		BEGIN ROLLBACK; RESIGNAL; END;

	SET v_plan = tg_plan(p_uid);
	SELECT COALESCE(r.per_minute, p.rate_per_minute) INTO v_limit
	FROM plans p LEFT JOIN plan_rates r ON r.plan = p.name AND
	    r.bucket = p_bucket
	WHERE p.name = v_plan;
	START TRANSACTION;
	INSERT INTO bucket_windows (user_id, bucket, window_start, count)
	SELECT u.id, p_bucket, v_now, 0 FROM users u WHERE u.id = p_uid
	ON DUPLICATE KEY UPDATE count = count;
	SELECT IF(tg_window_live(window_start, v_now), count, 0),
	    IF(tg_window_live(window_start, v_now), window_start, v_now)
	INTO v_count, v_ws
	FROM bucket_windows WHERE user_id = p_uid AND bucket = p_bucket
	FOR UPDATE;
	IF v_ws IS NOT NULL AND v_limit IS NOT NULL THEN
		IF p_mode = -1 THEN
			IF v_ws = p_ws AND v_count > 0 THEN
				SET v_count = v_count - 1;
			END IF;
			SET v_ok = 1;
		ELSEIF v_count < v_limit THEN
			SET v_ok = 1;
			IF p_mode = 1 THEN
				SET v_count = v_count + 1;
			END IF;
		END IF;
		IF p_mode <> 0 THEN
			UPDATE bucket_windows SET window_start = v_ws,
			    count = v_count
			WHERE user_id = p_uid AND bucket = p_bucket;
		END IF;
	END IF;
	COMMIT;
	SELECT v_ok, COALESCE(v_limit, 0), COALESCE(v_count, 0),
	    tg_window_left_us(v_ws, v_now), v_ws;
END;

-- tg_meter_report_add(uid, meter, quantity, interval) adds quantity to
-- the meter_reports row (006) of that user, meter and interval, where
-- the interval is the `interval` seconds long slice of UTC time, counted
-- from the epoch, that holds the current time.  It does so only for a
-- paying user (tg_paying, rules.sql); for anyone else it does nothing.
-- The row is made by the first addition, becomes due 10 seconds after
-- its interval ends (next_attempt_at), and is frozen from the sender's
-- first claim on (attempts > 0 or a lease): its quantity is what goes to
-- Stripe, under the same identifier and Idempotency-Key on every retry,
-- so an addition that arrives later than that is dropped rather than
-- changing what was sent.  The flusher (tg_flush) calls it in the
-- transaction that counts the usage, so usage is counted and queued
-- together.  It takes the interval as an argument because [stripe]
-- report_interval lives in the configuration, not the database.
CREATE OR REPLACE PROCEDURE tg_meter_report_add(
	p_uid CHAR(22) CHARACTER SET ascii,
	p_meter VARCHAR(64) CHARACTER SET ascii,
	p_qty BIGINT,
	p_interval INT)
MODIFIES SQL DATA
BEGIN
	DECLARE v_start DATETIME DEFAULT TIMESTAMP('1970-01-01') +
	    INTERVAL (TIMESTAMPDIFF(SECOND, TIMESTAMP('1970-01-01'),
	    UTC_TIMESTAMP()) DIV p_interval * p_interval) SECOND;

	INSERT INTO meter_reports (id, user_id, meter, interval_start,
	    interval_end, quantity, stripe_customer_id, next_attempt_at)
	SELECT tg_new_id(), u.id, p_meter, v_start,
	    v_start + INTERVAL p_interval SECOND, p_qty, u.stripe_customer_id,
	    v_start + INTERVAL p_interval + 10 SECOND
	FROM users u
	WHERE u.id = p_uid AND p_qty > 0 AND p_interval > 0 AND tg_paying(u.id)
	ON DUPLICATE KEY UPDATE quantity = quantity +
	    IF(status = 'pending' AND attempts = 0 AND locked_by IS NULL,
	    VALUES(quantity), 0);
END;
