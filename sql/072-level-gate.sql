-- 072-level-gate.sql: level meters at the gate and in POST /api/v1/check
-- (contract section 7a, issue 18).
--
-- tg_lease (070-check.sql) is replaced: a meter declared `level` (the
-- meters table, 050-services.sql) gets no slices (it is no sum per
-- period), and the row gains a last column, 1 for a level meter, so the
-- engine decides such a check in the database each time with
-- tg_level_raise (level + cost at most the limit; raised by the cost).
-- Everything else is as in 070.
--
-- A meter's kind changing is logged in the change log for everyone, as a
-- plan's change is, so no host keeps deciding it as the other kind.

CREATE OR REPLACE TRIGGER tg_chg_meters_i AFTER INSERT ON meters FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (NULL);
CREATE OR REPLACE TRIGGER tg_chg_meters_u AFTER UPDATE ON meters FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (NULL);
CREATE OR REPLACE TRIGGER tg_chg_meters_d AFTER DELETE ON meters FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (NULL);

-- tg_lease(host, kind, a, b, meter, cost, trial_credits, need_rate,
-- need_meter, need_credits): as in 070-check.sql; a level meter gets no
-- slice, and the last column says whether the meter is a level.
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
	DECLARE v_obj CHAR(22) CHARACTER SET ascii COLLATE ascii_bin DEFAULT NULL;
	DECLARE v_disabled, v_verified, v_valid, v_is_trial, v_paying,
		v_recall TINYINT DEFAULT 0;
	DECLARE v_plan, v_b_plan
		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin DEFAULT NULL;
	DECLARE v_trial_end, v_ps, v_pe, v_ws, v_b_ps, v_b_pe, v_cred_end, v_exp
		DATETIME(6) DEFAULT NULL;
	DECLARE v_rate, v_count BIGINT DEFAULT NULL;
	DECLARE v_plan_credits, v_limit, v_allow, v_granted, v_grant
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
	IF p_kind = 'j' THEN
		SELECT u.id, u.disabled_at IS NOT NULL,
		    u.email_verified_at IS NOT NULL, s.revoked_at IS NULL AND
		    (s.expires_at IS NULL OR s.expires_at > v_now), s.id,
		    s.expires_at, u.trial_ends_at
		INTO v_uid, v_disabled, v_verified, v_valid, v_obj, v_cred_end,
		    v_trial_end
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id = p_a AND s.user_id = p_b;
	ELSEIF p_kind = 'k' THEN
		SELECT u.id, u.disabled_at IS NOT NULL,
		    u.email_verified_at IS NOT NULL,
		    k.expires_at IS NULL OR k.expires_at > v_now, k.id,
		    k.expires_at, u.trial_ends_at
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
		    u.email_verified_at IS NOT NULL, s.revoked_at IS NULL AND
		    (s.expires_at IS NULL OR s.expires_at > v_now), s.id,
		    s.expires_at, u.trial_ends_at
		INTO v_uid, v_disabled, v_verified, v_valid, v_obj, v_cred_end,
		    v_trial_end
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.cookie_hash = p_a;
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

	-- The plan and period, by the rules of 035-rules.sql.
	SET v_plan = tg_plan(v_uid);
	SET v_paying = tg_live_sub(v_uid) IS NOT NULL AND EXISTS (SELECT 1
	    FROM users WHERE id = v_uid AND stripe_customer_id IS NOT NULL);
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
		SELECT IF(window_start > v_now - INTERVAL 60 SECOND, count, 0),
		    IF(window_start > v_now - INTERVAL 60 SECOND, window_start,
		    v_now)
		INTO v_count, v_ws
		FROM rate_windows WHERE user_id = v_uid AND bucket = 'gate'
		FOR UPDATE;
		IF p_need_rate > 0 THEN
			SET v_free = v_rate - v_count;
			IF v_free >= p_need_rate THEN
				SET v_g_rate = LEAST(v_free, GREATEST(p_need_rate,
				    LEAST(v_free DIV 8, 100000)));
				UPDATE rate_windows SET window_start = v_ws,
				    count = v_count + v_g_rate
				WHERE user_id = v_uid AND bucket = 'gate';
				SET v_count = v_count + v_g_rate;
				INSERT INTO gate_leases (user_id, res, host_id,
				    period_start, granted, used, expires_at)
				VALUES (v_uid, 'rate', p_host, v_ws, v_g_rate, 0,
				    v_ws + INTERVAL 60 SECOND)
				ON DUPLICATE KEY UPDATE
				    granted = IF(period_start = v_ws, granted, 0)
					+ v_g_rate,
				    period_start = v_ws,
				    expires_at = v_ws + INTERVAL 60 SECOND;
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
		SELECT COALESCE(SUM(GREATEST(0, granted - used)), 0),
		    COALESCE(SUM(IF(host_id <> p_host, GREATEST(0,
		    granted - used), 0)), 0)
		INTO v_held, v_others
		FROM gate_leases WHERE user_id = v_uid AND res = p_meter AND
		    period_start = v_ps AND
		    expires_at > v_now - INTERVAL 5 SECOND;
		SET v_free = v_limit - v_used - v_held;
		IF p_need_meter > 0 AND v_free >= p_need_meter THEN
			SET v_g_meter = LEAST(v_free, GREATEST(p_need_meter,
			    LEAST(v_free DIV 8, 1000000)));
			SET v_exp = LEAST(v_now + INTERVAL 30 SECOND,
			    COALESCE(v_pe, v_now + INTERVAL 30 SECOND));
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

	-- The balance: a lapsed allowance is recorded and the new period's
	-- granted first, as in tg_gate.
	IF v_plan IS NOT NULL THEN
		INSERT INTO credit_balances (user_id) VALUES (v_uid)
		ON DUPLICATE KEY UPDATE user_id = user_id;
		SELECT allowance, allowance_plan, allowance_period_start,
		    allowance_period_end, granted
		INTO v_allow, v_b_plan, v_b_ps, v_b_pe, v_granted
		FROM credit_balances WHERE user_id = v_uid FOR UPDATE;
		IF NOT (v_b_plan <=> v_plan AND (v_is_trial OR
		    (v_b_ps <=> v_ps AND v_b_pe > v_now))) THEN
			IF p_meter = 'credits' AND p_cost > 0 THEN
				IF v_allow > 0 THEN
					INSERT INTO credit_ledger (id, user_id,
					    kind, delta, balance_after, reason)
					VALUES (tg_new_id(), v_uid, 'lapse',
					    -v_allow, v_granted, v_b_plan);
				END IF;
				SET v_grant = IF(v_is_trial, IF(v_b_plan IS NULL,
				    p_trial_credits, 0), v_plan_credits);
				UPDATE credit_balances SET allowance = v_grant,
				    allowance_plan = v_plan,
				    allowance_period_start = v_ps,
				    allowance_period_end = v_pe, updated_at = v_now
				WHERE user_id = v_uid;
				IF v_grant > 0 THEN
					INSERT INTO credit_ledger (id, user_id,
					    kind, delta, balance_after, reason)
					VALUES (tg_new_id(), v_uid,
					    IF(v_is_trial, 'trial', 'allowance'),
					    v_grant, v_grant + v_granted, v_plan);
				END IF;
				SET v_allow = v_grant;
			ELSE
				-- Shown, not written: the next spend writes it.
				SET v_allow = IF(v_is_trial, IF(v_b_plan IS NULL,
				    p_trial_credits, 0), v_plan_credits);
			END IF;
		ELSEIF v_is_trial AND NOT (v_b_pe <=> v_pe) AND
		    p_meter = 'credits' AND p_cost > 0 THEN
			UPDATE credit_balances SET allowance_period_end = v_pe
			WHERE user_id = v_uid;
		END IF;
		SELECT COALESCE(SUM(GREATEST(0, granted - used)), 0),
		    COALESCE(SUM(IF(host_id <> p_host, GREATEST(0,
		    granted - used), 0)), 0)
		INTO v_held, v_others
		FROM gate_leases WHERE user_id = v_uid AND res = 'credits' AND
		    expires_at > v_now - INTERVAL 5 SECOND;
		SET v_credits = v_allow + v_granted;
		SET v_free = v_credits - v_held;
		IF p_need_credits > 0 AND v_free >= p_need_credits THEN
			SET v_g_cred = LEAST(v_free, GREATEST(p_need_credits,
			    LEAST(v_free DIV 8, 1000000)));
			SET v_exp = LEAST(v_now + INTERVAL 30 SECOND,
			    COALESCE(v_pe, v_now + INTERVAL 30 SECOND));
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
	    IF(v_ws IS NULL, 60000000, GREATEST(0, TIMESTAMPDIFF(MICROSECOND,
	    v_now, v_ws + INTERVAL 60 SECOND))),
	    v_limit, v_used, v_g_meter, v_credits, v_g_cred, v_ps,
	    TIMESTAMPDIFF(SECOND, v_now, LEAST(COALESCE(v_pe,
	    v_now + INTERVAL 1 HOUR), COALESCE(v_trial_end, v_now +
	    INTERVAL 1 HOUR), COALESCE(v_cred_end, v_now + INTERVAL 1 HOUR),
	    v_now + INTERVAL 1 HOUR)),
	    v_paying, v_next, v_recall, v_ws, v_pe, v_role,
	    v_level;
END;
