-- 071-buckets.sql: rate buckets per gate location (contract section 7,
-- issue 18): a location's $tollgate_bucket NAME (or /api/v1/check's
-- bucket) counts its checks in a window of its own, limited by the
-- plan's rate.NAME (plan_rates, 050-services.sql), else by the plan's
-- rate_per_minute.  The default bucket stays the engine's (rate_windows
-- `gate`, leased in slices); a named bucket is decided here, one row lock
-- per check.
--
-- bucket_windows holds one fixed window per user and bucket, as
-- rate_windows does: it starts at the first counted check, on the
-- database's clock, and lasts 60 seconds; count is the checks counted in
-- it.

CREATE TABLE IF NOT EXISTS bucket_windows (
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	bucket		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	window_start	DATETIME(6) NOT NULL,
	count		BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, bucket),
	CONSTRAINT bucket_windows_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

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
	SELECT IF(window_start > v_now - INTERVAL 60 SECOND, count, 0),
	    IF(window_start > v_now - INTERVAL 60 SECOND, window_start, v_now)
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
	    IF(v_ws IS NULL, 60000000, GREATEST(0, TIMESTAMPDIFF(MICROSECOND,
	    v_now, v_ws + INTERVAL 60 SECOND))), v_ws;
END;
