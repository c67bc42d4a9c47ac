-- 040-engine.sql: the gate engine's tables, change log and procedures
-- (src/engine/, issue 14).
--
-- The engine decides gate checks in memory on each host, within slices
-- (leases) of each user's rate window, meter quota and credit balance
-- that it reserves here.  The database never hands out more than the
-- limit or the balance: a lease is granted under the row lock of the
-- thing it is a slice of, and counts what every host holds.
--
-- gate_hosts: one row per host (the id is made when the host's shared
-- file is made).  flushed_seq is the last journal sequence number whose
-- records are committed: the flusher writes it in the same transaction
-- as the records, so a batch whose COMMIT answer was lost is recognised
-- and never applied twice.
--
-- gate_leases: what a host holds, per user and resource (`rate` or a
-- meter name; `credits` is the credit balance).  For a meter or credits,
-- granted - used is reserved: usage_counters.used and the balance are
-- what was actually used and spent (the flusher adds to them and to used
-- in one transaction), and a new lease may take only limit (or balance)
-- minus used minus every host's reservation.  A host stops using a lease
-- at expires_at; a row that expired is deleted by any host's engine a
-- little later (its records are flushed by then), and what it reserved
-- is free again: that is how a dead host's slices come back.  For the
-- rate window, rate_windows.count counts every slot granted in the
-- window; a host that gives slots back takes them off count.
--
-- gate_changes: the change log.  Triggers add the user id of every change
-- the gate must see (a revoked session or key, a disabled, deleted or
-- re-verified user, a plan, trial or subscription change, a credit grant,
-- usage counted by someone else, a moved rate window), or NULL for "all"
-- (a plan's row or limits).  Every host's engine polls it and drops what
-- it cached for those users; a gate check waits for a poll that began
-- after the check arrived, so a change committed before a check is seen
-- by it, on every host.  The engine's own writes set @tg_engine and log
-- nothing.  A lease that finds its slice held by other hosts logs a
-- `recall` for the user: the holders give back what they did not use.

CREATE TABLE IF NOT EXISTS gate_hosts (
	id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	flushed_seq	BIGINT UNSIGNED NOT NULL DEFAULT 0,
	seen_at		DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS gate_leases (
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	res		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	host_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	period_start	DATETIME(6) NOT NULL,
	granted		BIGINT NOT NULL DEFAULT 0,
	used		BIGINT NOT NULL DEFAULT 0,
	expires_at	DATETIME(6) NOT NULL,
	PRIMARY KEY (user_id, res, host_id),
	KEY gate_leases_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS gate_changes (
	id		BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
	at		DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (id),
	KEY gate_changes_at (at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE OR REPLACE TRIGGER tg_chg_users_u AFTER UPDATE ON users FOR EACH ROW
	IF @tg_engine IS NULL AND NOT (OLD.email_verified_at <=>
	    NEW.email_verified_at AND OLD.disabled_at <=> NEW.disabled_at AND
	    OLD.plan_override <=> NEW.plan_override AND OLD.trial_started_at
	    <=> NEW.trial_started_at AND OLD.trial_ends_at <=>
	    NEW.trial_ends_at AND OLD.stripe_customer_id <=>
	    NEW.stripe_customer_id AND OLD.role <=> NEW.role) THEN
		INSERT INTO gate_changes (user_id) VALUES (NEW.id);
	END IF;
CREATE OR REPLACE TRIGGER tg_chg_users_d AFTER DELETE ON users FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (OLD.id);
CREATE OR REPLACE TRIGGER tg_chg_sessions_u AFTER UPDATE ON sessions
FOR EACH ROW
	IF NOT (OLD.revoked_at <=> NEW.revoked_at AND OLD.expires_at <=>
	    NEW.expires_at AND OLD.cookie_hash <=> NEW.cookie_hash AND
	    OLD.user_id <=> NEW.user_id) THEN
		INSERT INTO gate_changes (user_id) VALUES (OLD.user_id);
	END IF;
CREATE OR REPLACE TRIGGER tg_chg_sessions_d AFTER DELETE ON sessions
FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (OLD.user_id);
CREATE OR REPLACE TRIGGER tg_chg_keys_u AFTER UPDATE ON api_keys FOR EACH ROW
	IF NOT (OLD.key_hash <=> NEW.key_hash AND OLD.expires_at <=>
	    NEW.expires_at AND OLD.user_id <=> NEW.user_id) THEN
		INSERT INTO gate_changes (user_id) VALUES (OLD.user_id);
	END IF;
CREATE OR REPLACE TRIGGER tg_chg_keys_d AFTER DELETE ON api_keys FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (OLD.user_id);
CREATE OR REPLACE TRIGGER tg_chg_subs_i AFTER INSERT ON subscriptions
FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (NEW.user_id);
CREATE OR REPLACE TRIGGER tg_chg_subs_u AFTER UPDATE ON subscriptions
FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (COALESCE(NEW.user_id,
	    OLD.user_id));
CREATE OR REPLACE TRIGGER tg_chg_subs_d AFTER DELETE ON subscriptions
FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (OLD.user_id);
CREATE OR REPLACE TRIGGER tg_chg_bal_i AFTER INSERT ON credit_balances
FOR EACH ROW
	IF @tg_engine IS NULL THEN
		INSERT INTO gate_changes (user_id) VALUES (NEW.user_id);
	END IF;
CREATE OR REPLACE TRIGGER tg_chg_bal_u AFTER UPDATE ON credit_balances
FOR EACH ROW
	IF @tg_engine IS NULL THEN
		INSERT INTO gate_changes (user_id) VALUES (NEW.user_id);
	END IF;
CREATE OR REPLACE TRIGGER tg_chg_rate_u AFTER UPDATE ON rate_windows
FOR EACH ROW
	IF @tg_engine IS NULL AND NEW.bucket = 'gate' THEN
		INSERT INTO gate_changes (user_id) VALUES (NEW.user_id);
	END IF;
CREATE OR REPLACE TRIGGER tg_chg_rate_d AFTER DELETE ON rate_windows
FOR EACH ROW
	IF @tg_engine IS NULL AND OLD.bucket = 'gate' THEN
		INSERT INTO gate_changes (user_id) VALUES (OLD.user_id);
	END IF;
CREATE OR REPLACE TRIGGER tg_chg_use_i AFTER INSERT ON usage_counters
FOR EACH ROW
	IF @tg_engine IS NULL THEN
		INSERT INTO gate_changes (user_id) VALUES (NEW.user_id);
	END IF;
CREATE OR REPLACE TRIGGER tg_chg_use_u AFTER UPDATE ON usage_counters
FOR EACH ROW
	IF @tg_engine IS NULL THEN
		INSERT INTO gate_changes (user_id) VALUES (NEW.user_id);
	END IF;
CREATE OR REPLACE TRIGGER tg_chg_plans_i AFTER INSERT ON plans FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (NULL);
CREATE OR REPLACE TRIGGER tg_chg_plans_u AFTER UPDATE ON plans FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (NULL);
CREATE OR REPLACE TRIGGER tg_chg_plans_d AFTER DELETE ON plans FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (NULL);
CREATE OR REPLACE TRIGGER tg_chg_limits_i AFTER INSERT ON plan_limits
FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (NULL);
CREATE OR REPLACE TRIGGER tg_chg_limits_u AFTER UPDATE ON plan_limits
FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (NULL);
CREATE OR REPLACE TRIGGER tg_chg_limits_d AFTER DELETE ON plan_limits
FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (NULL);

-- tg_lease(host, kind, a, b, meter, cost, trial_credits, need_rate,
-- need_meter, need_credits) looks the credential and its user up (kind,
-- a, b as for tg_gate), and grants this host at least need_* (when that
-- fits) of the rate window, the meter's quota and the credit balance,
-- more when much is left (an eighth of what is free, so slices shrink to
-- one as the limit nears, and the last ones are decided one by one
-- here).  It runs in one transaction under the rows' locks, in tg_gate's
-- order (rate window, usage counter, balance), and returns one row: the
-- credential's verdict (status 401 with a code, else 0), the user's
-- state, and what was granted (0 when need did not fit: the caller
-- refuses).  recall is 1 when other hosts hold slices of what did not
-- fit; they have been asked to give them back.
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
	    v_paying, v_next, v_recall, v_ws, v_pe;
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
		SELECT j.u, j.m, SUM(j.c) FROM JSON_TABLE(p_batch, '$[*]'
		    COLUMNS (s BIGINT UNSIGNED PATH '$.s', t CHAR(1) PATH '$.t',
		    u CHAR(22) PATH '$.u', m VARCHAR(64) PATH '$.m',
		    c BIGINT PATH '$.c', p TINYINT PATH '$.p')) j
		WHERE j.t = 'u' AND j.p = 1 AND j.s > v_done AND j.c > 0
		GROUP BY j.u, j.m;
	DECLARE spends CURSOR FOR
		SELECT u, SUM(c) FROM tg_flush_recs
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
		CREATE TEMPORARY TABLE IF NOT EXISTS tg_flush_recs (
			s BIGINT UNSIGNED NOT NULL, t CHAR(1) NOT NULL,
			u CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			i CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
			m VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
			ps DATETIME(6) NULL, pe DATETIME(6) NULL, d DATE NULL,
			c BIGINT NOT NULL DEFAULT 0, b BIGINT NOT NULL DEFAULT 0,
			l TINYINT NOT NULL DEFAULT 0, k CHAR(1) NULL,
			PRIMARY KEY (s)) ENGINE=Aria;
		DELETE FROM tg_flush_recs;
		INSERT INTO tg_flush_recs (s, t, u, i, m, ps, pe, d, c, b, l, k)
		SELECT j.s, j.t, j.u, j.i, j.m, j.ps, j.pe, j.d,
		    COALESCE(j.c, 0), COALESCE(j.b, 0), COALESCE(j.l, 0), j.k
		FROM JSON_TABLE(p_batch, '$[*]' COLUMNS (
		    s BIGINT UNSIGNED PATH '$.s', t CHAR(1) PATH '$.t',
		    u CHAR(22) PATH '$.u', i CHAR(22) PATH '$.i',
		    m VARCHAR(64) PATH '$.m', ps DATETIME(6) PATH '$.ps',
		    pe DATETIME(6) PATH '$.pe', d DATE PATH '$.d',
		    c BIGINT PATH '$.c', b BIGINT PATH '$.b',
		    l TINYINT PATH '$.l', k CHAR(1) PATH '$.k')) j
		JOIN users x ON x.id = j.u
		WHERE j.s > v_done;

		INSERT INTO usage_counters (user_id, meter, period_start,
		    period_end, used)
		SELECT u, m, ps, MAX(pe), SUM(c) FROM tg_flush_recs
		WHERE t = 'u' AND c > 0 AND ps IS NOT NULL GROUP BY u, m, ps
		ON DUPLICATE KEY UPDATE used = used + VALUES(used);
		INSERT INTO usage_daily (user_id, meter, day, used)
		SELECT u, m, d, SUM(c) FROM tg_flush_recs
		WHERE t = 'u' AND c > 0 GROUP BY u, m, d
		ON DUPLICATE KEY UPDATE used = used + VALUES(used);
		UPDATE gate_leases g JOIN (SELECT u, m, SUM(c) c
		    FROM tg_flush_recs WHERE t = 'u' AND l = 1 GROUP BY u, m) r
		    ON g.user_id = r.u AND g.res = r.m AND g.host_id = p_host
		SET g.used = g.used + r.c;
		INSERT INTO credit_ledger (id, user_id, kind, delta, cost,
		    balance_after, meter)
		SELECT i, u, IF(t = 'u', 'spend', 'refusal'), IF(t = 'u', -c, 0),
		    c, GREATEST(0, b), m
		FROM tg_flush_recs
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
		UPDATE sessions s JOIN tg_flush_recs r ON s.id = r.i AND
		    r.t = 't' AND r.k = 's'
		SET s.last_used_at = UTC_TIMESTAMP(6);
		UPDATE api_keys a JOIN tg_flush_recs r ON a.id = r.i AND
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
		DELETE FROM tg_flush_recs;
		UPDATE gate_hosts SET flushed_seq = p_to,
		    seen_at = UTC_TIMESTAMP(6) WHERE id = p_host;
		SET v_done = p_to;
	END IF;
	COMMIT;
	SET @tg_engine = NULL;
	SELECT v_done;
END;
