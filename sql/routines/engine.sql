-- engine.sql: the gate engine's procedures (src/engine/; the tables
-- gate_hosts, gate_leases and gate_changes are in 040-engine.sql).
--
-- tg_lease(host, kind, a, b, meter, cost, trial_credits, need_rate,
-- need_meter, need_credits) looks the credential and its user up, and
-- grants this host at least need_* (when that fits) of the rate window,
-- the meter's quota and the credit balance, more when much is left (an
-- eighth of what is free, so slices shrink to one as the limit nears,
-- and the last ones are decided one by one here).  kind is 'j' (a JWT
-- whose signature the caller has checked: a = session id, b = user id),
-- 'k' (an API key: a = its keyed hash), 'c' (a session cookie: a = its
-- keyed hash) or 'u' (a bare user id in a: a service's check, a trusted
-- token; no session or key object stands behind it).  It runs in one
-- transaction under the rows' locks, in a fixed order (rate window,
-- usage counter, balance), and returns one row: the credential's verdict
-- (status 401 with a code, else 0), the user's state and role, and what
-- was granted (0 when need did not fit: the caller refuses).  recall is
-- 1 when other hosts hold slices of what did not fit; they have been
-- asked to give them back.  A meter declared `level` (the meters table)
-- gets no slices: the row's last column says so, and the engine decides
-- such a check in the database each time with tg_level_raise.
-- A slice: at least what is needed, else an eighth of what is free (so
-- slices shrink to one as the limit nears), at most cap, never more
-- than is free.  A meter's or the balance's slice lasts 30 seconds, and
-- never past the period's end.
CREATE OR REPLACE FUNCTION tg_slice(p_free BIGINT, p_need BIGINT,
	p_cap BIGINT)
RETURNS BIGINT
DETERMINISTIC NO SQL
RETURN LEAST(p_free, GREATEST(p_need, LEAST(p_free DIV 8, p_cap)));

CREATE OR REPLACE FUNCTION tg_slice_end(p_now DATETIME(6), p_pe DATETIME(6))
RETURNS DATETIME(6)
DETERMINISTIC NO SQL
RETURN LEAST(p_now + INTERVAL 30 SECOND,
	COALESCE(p_pe, p_now + INTERVAL 30 SECOND));

-- tg_slices_held(uid, res, ps, host, now, OUT held, OUT others): what
-- every host holds of uid's res (of the period that started at ps; any,
-- for NULL) and does not use yet, and how much of it other hosts than
-- host hold.  A slice counts until 5 seconds after it expired: its
-- records had time to land by then.
CREATE OR REPLACE PROCEDURE tg_slices_held(
	IN p_uid CHAR(22) CHARACTER SET ascii,
	IN p_res VARCHAR(64) CHARACTER SET ascii,
	IN p_ps DATETIME(6),
	IN p_host CHAR(22) CHARACTER SET ascii,
	IN p_now DATETIME(6),
	OUT p_held BIGINT,
	OUT p_others BIGINT)
READS SQL DATA
SELECT COALESCE(SUM(GREATEST(0, granted - used)), 0),
	COALESCE(SUM(IF(host_id <> p_host, GREATEST(0, granted - used), 0)),
	0)
INTO p_held, p_others
FROM gate_leases WHERE user_id = p_uid AND res = p_res AND
	(p_ps IS NULL OR period_start = p_ps) AND
	expires_at > p_now - INTERVAL 5 SECOND;

CREATE OR REPLACE PROCEDURE tg_lease(
	IN p_host CHAR(22) CHARACTER SET ascii,
	IN p_kind CHAR(1) CHARACTER SET ascii,
	IN p_a VARCHAR(64) CHARACTER SET ascii,
	IN p_b VARCHAR(64) CHARACTER SET ascii,
	IN p_meter VARCHAR(64) CHARACTER SET ascii,
	IN p_cost BIGINT,
	IN p_trial_credits BIGINT,
	IN p_need_rate BIGINT,
	IN p_need_meter BIGINT,
	IN p_need_credits BIGINT)
MODIFIES SQL DATA
proc: BEGIN
	DECLARE v_now DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
	DECLARE v_uid CHAR(22) CHARACTER SET ascii COLLATE ascii_bin DEFAULT NULL;
	DECLARE v_obj, v_sid, v_suid
		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin DEFAULT NULL;
	DECLARE v_disabled, v_verified, v_valid, v_is_trial, v_paying,
		v_recall TINYINT DEFAULT 0;
	DECLARE v_plan
		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin DEFAULT NULL;
	DECLARE v_trial_end, v_ps, v_pe, v_ws, v_cred_end, v_exp
		DATETIME(6) DEFAULT NULL;
	DECLARE v_rate, v_count BIGINT DEFAULT NULL;
	DECLARE v_plan_credits, v_limit, v_allow, v_granted
		BIGINT DEFAULT NULL;
	DECLARE v_used, v_held, v_free, v_g_rate, v_g_meter, v_g_cred,
		v_credits, v_others BIGINT DEFAULT 0;
	DECLARE v_status INT DEFAULT 0;
	DECLARE v_code VARCHAR(32) CHARACTER SET ascii DEFAULT NULL;
	DECLARE v_next VARCHAR(128) DEFAULT NULL;
	DECLARE v_role VARCHAR(16) CHARACTER SET ascii DEFAULT NULL;
	DECLARE v_level TINYINT DEFAULT 0;
	DECLARE CONTINUE HANDLER FOR NOT FOUND BEGIN END;
	DECLARE EXIT HANDLER FOR SQLEXCEPTION
		BEGIN SET @tg_engine = NULL; ROLLBACK; RESIGNAL; END;

	SET @tg_engine = 1;
	decide: BEGIN
	-- A session cookie names its session by the cookie's hash; a JWT
	-- by the session's and the user's ids.
	IF p_kind = 'c' THEN
		SELECT s.id, s.user_id INTO v_sid, v_suid FROM sessions s
		WHERE s.cookie_hash = p_a;
	ELSEIF p_kind = 'j' THEN
		SET v_sid = p_a, v_suid = p_b;
	END IF;
	IF p_kind = 'k' THEN
		SELECT u.id, u.disabled_at IS NOT NULL,
		    u.email_verified_at IS NOT NULL, tg_key_live(k.expires_at),
		    k.id, k.expires_at, u.trial_ends_at
		INTO v_uid, v_disabled, v_verified, v_valid, v_obj, v_cred_end,
		    v_trial_end
		FROM api_keys k JOIN users u ON u.id = k.user_id
		WHERE k.key_hash = p_a;
	ELSEIF p_kind = 'u' THEN
		-- A bare user id (a service's check, a trusted token): no
		-- session or key object stands behind it.
		SELECT u.id, u.disabled_at IS NOT NULL,
		    u.email_verified_at IS NOT NULL, 1, NULL, NULL,
		    u.trial_ends_at
		INTO v_uid, v_disabled, v_verified, v_valid, v_obj, v_cred_end,
		    v_trial_end
		FROM users u WHERE u.id = p_a;
	ELSE
		SELECT u.id, u.disabled_at IS NOT NULL,
		    u.email_verified_at IS NOT NULL,
		    tg_session_live(s.revoked_at, s.expires_at), s.id,
		    s.expires_at, u.trial_ends_at
		INTO v_uid, v_disabled, v_verified, v_valid, v_obj, v_cred_end,
		    v_trial_end
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id = v_sid AND s.user_id = v_suid;
	END IF;
	SELECT role INTO v_role FROM users WHERE id = v_uid;
	IF v_uid IS NULL OR (NOT v_valid AND p_kind <> 'k') THEN
		SET v_status = 401, v_code = 'unauthenticated', v_uid = NULL;
		LEAVE decide;
	END IF;
	IF NOT v_valid THEN
		SET v_status = 401, v_code = 'token_expired', v_uid = NULL;
		LEAVE decide;
	END IF;
	IF v_disabled THEN
		LEAVE decide;
	END IF;

	-- The plan and period, by the rules of rules.sql.
	SET v_plan = tg_plan(v_uid);
	SET v_paying = tg_paying(v_uid);
	SELECT p.rate_per_minute, p.is_trial, p.credits, l.period_limit
	INTO v_rate, v_is_trial, v_plan_credits, v_limit
	FROM plans p
	LEFT JOIN plan_limits l ON l.plan = p.name AND l.meter = p_meter
	WHERE p.name = v_plan;
	IF v_rate IS NOT NULL THEN
		SET v_ps = tg_period_start(v_uid, v_plan),
		    v_pe = tg_period_end(v_uid, v_plan);
	END IF;
	IF v_rate IS NULL THEN
		SET v_plan = NULL, v_ps = NULL, v_pe = NULL;
	END IF;
	IF p_meter = 'credits' THEN
		SET v_limit = NULL;	-- the balance is the limit
	END IF;
	-- A level meter is decided in the database at each check
	-- (tg_level_raise): no slices of it.
	IF EXISTS (SELECT 1 FROM meters WHERE name = p_meter AND
	    kind = 'level') THEN
		SET v_level = 1, v_limit = NULL;
	END IF;
	SELECT n.display_name INTO v_next
	FROM plans p JOIN plans n ON n.sort_order > p.sort_order AND
	    n.price_cents > 0 AND n.is_trial = 0
	WHERE p.name = v_plan ORDER BY n.sort_order, n.name LIMIT 1;

	START TRANSACTION;
	-- Leases that ran out are deleted now and then by the engines; here
	-- they simply do not count once their records had time to land.
	IF v_plan IS NOT NULL THEN
		INSERT INTO rate_windows (user_id, bucket, window_start, count)
		VALUES (v_uid, 'gate', v_now, 0)
		ON DUPLICATE KEY UPDATE count = count;
		SELECT IF(tg_window_live(window_start, v_now), count, 0),
		    IF(tg_window_live(window_start, v_now), window_start, v_now)
		INTO v_count, v_ws
		FROM rate_windows WHERE user_id = v_uid AND bucket = 'gate'
		FOR UPDATE;
		IF p_need_rate > 0 THEN
			SET v_free = v_rate - v_count;
			IF v_free >= p_need_rate THEN
				SET v_g_rate = tg_slice(v_free, p_need_rate, 100000);
				UPDATE rate_windows SET window_start = v_ws,
				    count = v_count + v_g_rate
				WHERE user_id = v_uid AND bucket = 'gate';
				SET v_count = v_count + v_g_rate;
				INSERT INTO gate_leases (user_id, res, host_id,
				    period_start, granted, used, expires_at)
				VALUES (v_uid, 'rate', p_host, v_ws, v_g_rate, 0,
				    tg_window_end(v_ws))
				ON DUPLICATE KEY UPDATE
				    granted = IF(period_start = v_ws, granted, 0)
					+ v_g_rate,
				    period_start = v_ws,
				    expires_at = tg_window_end(v_ws);
			ELSEIF EXISTS (SELECT 1 FROM gate_leases WHERE
			    user_id = v_uid AND res = 'rate' AND host_id <> p_host
			    AND period_start = v_ws AND granted > 0) THEN
				SET v_recall = 1;
			END IF;
		END IF;
	END IF;

	-- The meter's quota (not for credits, whose limit is the balance).
	IF v_plan IS NOT NULL AND v_limit IS NOT NULL THEN
		INSERT INTO usage_counters (user_id, meter, period_start,
		    period_end, used)
		VALUES (v_uid, p_meter, v_ps, v_pe, 0)
		ON DUPLICATE KEY UPDATE used = used;
		SELECT used INTO v_used FROM usage_counters
		WHERE user_id = v_uid AND meter = p_meter AND
		    period_start = v_ps FOR UPDATE;
		CALL tg_slices_held(v_uid, p_meter, v_ps, p_host, v_now, v_held,
		    v_others);
		SET v_free = v_limit - v_used - v_held;
		IF p_need_meter > 0 AND v_free >= p_need_meter THEN
			SET v_g_meter = tg_slice(v_free, p_need_meter, 1000000);
			SET v_exp = tg_slice_end(v_now, v_pe);
			INSERT INTO gate_leases (user_id, res, host_id,
			    period_start, granted, used, expires_at)
			VALUES (v_uid, p_meter, p_host, v_ps, v_g_meter, 0, v_exp)
			ON DUPLICATE KEY UPDATE
			    granted = IF(period_start = v_ps AND
				expires_at > v_now, granted, used) + v_g_meter,
			    period_start = v_ps, expires_at = v_exp;
		ELSEIF p_need_meter > 0 AND v_others > 0 THEN
			SET v_recall = 1;
		END IF;
		-- What is left for everyone: the host's own slice counts in
		-- v_held, so the caller adds what it holds back.
		SET v_used = v_used + v_held + v_g_meter;
	END IF;

	-- The balance: a spend first writes a lapsed allowance and the new
	-- period's grant (rules.sql); any other check only reads them.
	IF v_plan IS NOT NULL THEN
		CALL tg_allowance_renew(v_uid, v_plan, v_ps, v_pe, v_is_trial,
		    v_plan_credits, p_trial_credits,
		    p_meter = 'credits' AND p_cost > 0, v_allow, v_granted);
		CALL tg_slices_held(v_uid, 'credits', NULL, p_host, v_now, v_held,
		    v_others);
		SET v_credits = v_allow + v_granted;
		SET v_free = v_credits - v_held;
		IF p_need_credits > 0 AND v_free >= p_need_credits THEN
			SET v_g_cred = tg_slice(v_free, p_need_credits, 1000000);
			SET v_exp = tg_slice_end(v_now, v_pe);
			INSERT INTO gate_leases (user_id, res, host_id,
			    period_start, granted, used, expires_at)
			VALUES (v_uid, 'credits', p_host, COALESCE(v_ps, v_now),
			    v_g_cred, 0, v_exp)
			ON DUPLICATE KEY UPDATE
			    granted = IF(expires_at > v_now, granted, used)
				+ v_g_cred,
			    period_start = COALESCE(v_ps, v_now),
			    expires_at = v_exp;
		ELSEIF p_need_credits > 0 AND v_others > 0 THEN
			SET v_recall = 1;
		END IF;
		-- The balance as others see it: what is reserved is not spent.
		SET v_credits = v_credits - v_held - v_g_cred;
	END IF;
	IF v_recall THEN
		INSERT INTO gate_changes (user_id) VALUES (v_uid);
	END IF;
	COMMIT;
	END decide;
	SET @tg_engine = NULL;

	SELECT v_status, v_code, v_uid, v_obj, v_disabled, v_verified, v_plan,
	    v_is_trial, v_rate, v_count, v_g_rate,
	    tg_window_left_us(v_ws, v_now),
	    v_limit, v_used, v_g_meter, v_credits, v_g_cred, v_ps,
	    TIMESTAMPDIFF(SECOND, v_now, LEAST(COALESCE(v_pe,
	    v_now + INTERVAL 1 HOUR), COALESCE(v_trial_end, v_now +
	    INTERVAL 1 HOUR), COALESCE(v_cred_end, v_now + INTERVAL 1 HOUR),
	    v_now + INTERVAL 1 HOUR)),
	    v_paying, v_next, v_recall, v_ws, v_pe, v_role,
	    v_level;
END;

-- tg_lease_return(host, uid, rate_window_start, rate, meter, meter_n,
-- credits) gives back what a host holds and did not use: rate slots of
-- the window that started at rate_window_start (when it is still the
-- current one), and the unused part of its meter and credit slices.
CREATE OR REPLACE PROCEDURE tg_lease_return(
	IN p_host CHAR(22) CHARACTER SET ascii,
	IN p_uid CHAR(22) CHARACTER SET ascii,
	IN p_ws DATETIME(6),
	IN p_rate BIGINT,
	IN p_meter VARCHAR(64) CHARACTER SET ascii,
	IN p_meter_n BIGINT,
	IN p_credits BIGINT)
MODIFIES SQL DATA
BEGIN
	DECLARE EXIT HANDLER FOR SQLEXCEPTION
		BEGIN SET @tg_engine = NULL; ROLLBACK; RESIGNAL; END;
	SET @tg_engine = 1;
	START TRANSACTION;
	IF p_rate > 0 THEN
		UPDATE rate_windows SET count = GREATEST(0, CAST(count AS SIGNED)
		    - p_rate)
		WHERE user_id = p_uid AND bucket = 'gate' AND window_start = p_ws;
		UPDATE gate_leases SET granted = GREATEST(0, granted - p_rate)
		WHERE user_id = p_uid AND res = 'rate' AND host_id = p_host AND
		    period_start = p_ws;
	END IF;
	IF p_meter_n > 0 THEN
		UPDATE gate_leases SET granted = GREATEST(used, granted - p_meter_n)
		WHERE user_id = p_uid AND res = p_meter AND host_id = p_host;
	END IF;
	IF p_credits > 0 THEN
		UPDATE gate_leases SET granted = GREATEST(used, granted - p_credits)
		WHERE user_id = p_uid AND res = 'credits' AND host_id = p_host;
	END IF;
	COMMIT;
	SET @tg_engine = NULL;
END;

-- tg_flush(host, from, to, interval, batch) commits the host's journal
-- records from..to (batch: a JSON array of them, each with its sequence
-- number s) in one transaction, with gate_hosts.flushed_seq, so a batch
-- is applied exactly once: records at or below flushed_seq (a batch whose
-- COMMIT answer was lost, replayed after a restart) are skipped.  Record
-- types: u (a check's use: usage counter, day, the lease's used, Stripe's
-- meter queue for paying users, and for the meter `credits` a spend:
-- ledger row and balance), r (a refused spend: ledger row), t (last_used
-- of a session or key).  Users deleted since are skipped.  Returns the
-- host's flushed_seq.
CREATE OR REPLACE PROCEDURE tg_flush(
	IN p_host CHAR(22) CHARACTER SET ascii,
	IN p_from BIGINT UNSIGNED,
	IN p_to BIGINT UNSIGNED,
	IN p_interval INT,
	IN p_batch LONGTEXT)
MODIFIES SQL DATA
BEGIN
	DECLARE v_done BIGINT UNSIGNED DEFAULT 0;
	DECLARE v_eof TINYINT DEFAULT 0;
	DECLARE v_u CHAR(22) CHARACTER SET ascii;
	DECLARE v_m VARCHAR(64) CHARACTER SET ascii;
	DECLARE v_c BIGINT;
	DECLARE cur CURSOR FOR
		SELECT u, m, SUM(c) FROM tg_flush_rows
		WHERE t = 'u' AND p = 1 AND c > 0 GROUP BY u, m;
	DECLARE spends CURSOR FOR
		SELECT u, SUM(c) FROM tg_flush_rows
		WHERE t = 'u' AND m = 'credits' AND c > 0 GROUP BY u;
	DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_eof = 1;
	DECLARE EXIT HANDLER FOR SQLEXCEPTION
		BEGIN SET @tg_engine = NULL; ROLLBACK; RESIGNAL; END;

	SET @tg_engine = 1;
	START TRANSACTION;
	INSERT INTO gate_hosts (id) VALUES (p_host)
	ON DUPLICATE KEY UPDATE id = id;
	SELECT flushed_seq INTO v_done FROM gate_hosts WHERE id = p_host
	FOR UPDATE;
	IF v_done < p_to THEN
		CREATE TEMPORARY TABLE IF NOT EXISTS tg_flush_rows (
			s BIGINT UNSIGNED NOT NULL, t CHAR(1) NOT NULL,
			u CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			i CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
			m VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
			ps DATETIME(6) NULL, pe DATETIME(6) NULL, d DATE NULL,
			c BIGINT NOT NULL DEFAULT 0, b BIGINT NOT NULL DEFAULT 0,
			l TINYINT NOT NULL DEFAULT 0, k CHAR(1) NULL,
			p TINYINT NOT NULL DEFAULT 0,
			PRIMARY KEY (s)) ENGINE=Aria;
		DELETE FROM tg_flush_rows;
		INSERT INTO tg_flush_rows (s, t, u, i, m, ps, pe, d, c, b, l, k, p)
		SELECT j.s, j.t, j.u, j.i, j.m, j.ps, j.pe, j.d,
		    COALESCE(j.c, 0), COALESCE(j.b, 0), COALESCE(j.l, 0), j.k,
		    COALESCE(j.p, 0)
		FROM JSON_TABLE(p_batch, '$[*]' COLUMNS (
		    s BIGINT UNSIGNED PATH '$.s', t CHAR(1) PATH '$.t',
		    u CHAR(22) PATH '$.u', i CHAR(22) PATH '$.i',
		    m VARCHAR(64) PATH '$.m', ps DATETIME(6) PATH '$.ps',
		    pe DATETIME(6) PATH '$.pe', d DATE PATH '$.d',
		    c BIGINT PATH '$.c', b BIGINT PATH '$.b',
		    l TINYINT PATH '$.l', k CHAR(1) PATH '$.k',
		    p TINYINT PATH '$.p')) j
		WHERE j.s > v_done;
		-- Users deleted since: their records go (the temporary table's
		-- ids are ascii_bin like users.id, so this is a key lookup per
		-- record, not a scan of users per record).
		DELETE r FROM tg_flush_rows r LEFT JOIN users x ON x.id = r.u
		WHERE x.id IS NULL;

		INSERT INTO usage_counters (user_id, meter, period_start,
		    period_end, used)
		SELECT u, m, ps, MAX(pe), SUM(c) FROM tg_flush_rows
		WHERE t = 'u' AND c > 0 AND ps IS NOT NULL GROUP BY u, m, ps
		ON DUPLICATE KEY UPDATE used = used + VALUES(used);
		INSERT INTO usage_daily (user_id, meter, day, used)
		SELECT u, m, d, SUM(c) FROM tg_flush_rows
		WHERE t = 'u' AND c > 0 GROUP BY u, m, d
		ON DUPLICATE KEY UPDATE used = used + VALUES(used);
		UPDATE gate_leases g JOIN (SELECT u, m, SUM(c) c
		    FROM tg_flush_rows WHERE t = 'u' AND l = 1 GROUP BY u, m) r
		    ON g.user_id = r.u AND g.res = r.m AND g.host_id = p_host
		SET g.used = g.used + r.c;
		INSERT INTO credit_ledger (id, user_id, kind, delta, cost,
		    balance_after, meter)
		SELECT i, u, IF(t = 'u', 'spend', 'refusal'), IF(t = 'u', -c, 0),
		    c, GREATEST(0, b), m
		FROM tg_flush_rows
		WHERE i IS NOT NULL AND (t = 'r' OR (t = 'u' AND m = 'credits'))
		ON DUPLICATE KEY UPDATE id = id;
		-- Spends take from the allowance first, then from granted
		-- (assignments run left to right in a single-table UPDATE).
		OPEN spends;
		sp: LOOP
			FETCH spends INTO v_u, v_c;
			IF v_eof THEN
				LEAVE sp;
			END IF;
			UPDATE credit_balances
			SET granted = GREATEST(0, granted -
				GREATEST(0, v_c - allowance)),
			    allowance = allowance - LEAST(allowance, v_c),
			    updated_at = UTC_TIMESTAMP(6)
			WHERE user_id = v_u;
		END LOOP;
		CLOSE spends;
		SET v_eof = 0;
		UPDATE sessions s JOIN tg_flush_rows r ON s.id = r.i AND
		    r.t = 't' AND r.k = 's'
		SET s.last_used_at = UTC_TIMESTAMP(6);
		UPDATE api_keys a JOIN tg_flush_rows r ON a.id = r.i AND
		    r.t = 't' AND r.k = 'k'
		SET a.last_used_at = UTC_TIMESTAMP(6);
		OPEN cur;
		rep: LOOP
			FETCH cur INTO v_u, v_m, v_c;
			IF v_eof THEN
				LEAVE rep;
			END IF;
			CALL tg_meter_report_add(v_u, v_m, v_c, p_interval);
		END LOOP;
		CLOSE cur;
		DELETE FROM tg_flush_rows;
		UPDATE gate_hosts SET flushed_seq = p_to,
		    seen_at = UTC_TIMESTAMP(6) WHERE id = p_host;
		SET v_done = p_to;
	END IF;
	COMMIT;
	SET @tg_engine = NULL;
	SELECT v_done;
END;
