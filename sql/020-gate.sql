-- 020-gate.sql: the gate's decision as one stored procedure, and the
-- plan and billing-period rules as functions for the other paths.
--
-- tg_plan(uid) is the effective plan of a user, the same rule as
-- PLAN_EXPR in src/tollgate.h: an admin's override, else an active
-- subscription's plan, else `trial` until the trial ends (or before it
-- starts), else the fallback plan (@tg_fallback, set per connection from
-- [trial] fallback_plan), else NULL.
--
-- tg_period_start(uid, plan) and tg_period_end(uid, plan) are the user's
-- current billing period on that plan: the trial is one period (from
-- verification, or from sign-up before it, to trial_ends_at); a plan that
-- comes from a subscription runs in Stripe's current period; every other
-- plan (free, the fallback, an admin's override) in the calendar month,
-- UTC.  usage_counters rows are keyed by the period's start.
--
-- Credits: credit_balances.allowance is the current period's grant.  It
-- is live while allowance_plan is the user's plan and, for plans other
-- than the trial, allowance_period_start is the current period's start
-- and allowance_period_end is still ahead.  Otherwise it has lapsed: the
-- next spend (inside tg_gate, under the balance's row lock) writes a
-- `lapse` ledger row for what was left, and grants the plan's credits for
-- the new period (`allowance`).  The trial's credits are granted by
-- email verification (`trial`); tg_gate grants them only to a user who
-- never had any allowance (a user verified by hand).  `granted` (admin
-- grants, purchases) never lapses and is spent after the allowance.
--
-- tg_gate(kind, a, b, meter, cost, trial_credits) decides one gate check
-- in one round trip and returns one row (see the final SELECT).  kind is
-- 'j' (a JWT whose signature the caller has checked: a = session id, b =
-- user id), 'k' (an API key: a = its keyed hash) or 'c' (a session
-- cookie: a = its keyed hash).  The checks run in the contract's order:
-- the credential (unknown, revoked or expired: 401), a disabled account
-- (403), the plan's rate limit (429), email verified (403), a plan at all
-- (402), the meter's quota (403), credits (403).
--
-- Happy path: a read of the credential, the subscription, the plan and
-- the user's counters (plain reads, no locks), then one UPDATE that
-- counts the check in the rate window and the cost in the period and day
-- counters, with every limit in its WHERE clause, so the row locks make
-- the decision exact; a credit spend adds one UPDATE of the balance whose
-- WHERE clause requires the credits, and a ledger row, in one
-- transaction.  When a row is missing, a window or an allowance has run
-- out, or a limit is hit, the slow path takes the rows' locks in a fixed
-- order (rate window, usage counter, balance) inside a transaction, makes
-- what is missing, and decides there; a credit refusal is recorded in the
-- ledger.  Only checks that are allowed are counted in the rate window.

CREATE OR REPLACE FUNCTION tg_plan(p_uid CHAR(22) CHARACTER SET ascii)
RETURNS VARCHAR(64) CHARACTER SET ascii
NOT DETERMINISTIC READS SQL DATA
RETURN (SELECT COALESCE(u.plan_override, (SELECT s.plan FROM subscriptions s
	WHERE s.user_id = u.id AND s.deleted_at IS NULL AND s.status IN
	('active', 'trialing', 'past_due') ORDER BY s.stripe_updated DESC
	LIMIT 1), IF(u.trial_ends_at IS NULL OR u.trial_ends_at >
	UTC_TIMESTAMP(6), 'trial', NULLIF(@tg_fallback, '')))
	FROM users u WHERE u.id = p_uid);

CREATE OR REPLACE FUNCTION tg_period_start(p_uid CHAR(22) CHARACTER SET ascii,
	p_plan VARCHAR(64) CHARACTER SET ascii)
RETURNS DATETIME(6)
NOT DETERMINISTIC READS SQL DATA
RETURN COALESCE(
	(SELECT COALESCE(u.trial_started_at, u.created_at) FROM users u
	    JOIN plans p ON p.name = p_plan AND p.is_trial = 1
	    WHERE u.id = p_uid),
	(SELECT s.current_period_start FROM subscriptions s
	    WHERE s.user_id = p_uid AND s.deleted_at IS NULL AND s.status IN
	    ('active', 'trialing', 'past_due') AND s.plan = p_plan AND
	    s.current_period_start IS NOT NULL
	    ORDER BY s.stripe_updated DESC LIMIT 1),
	CAST(DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-01') AS DATETIME(6)));

CREATE OR REPLACE FUNCTION tg_period_end(p_uid CHAR(22) CHARACTER SET ascii,
	p_plan VARCHAR(64) CHARACTER SET ascii)
RETURNS DATETIME(6)
NOT DETERMINISTIC READS SQL DATA
RETURN IF(EXISTS (SELECT 1 FROM plans p WHERE p.name = p_plan AND
	p.is_trial = 1), (SELECT u.trial_ends_at FROM users u WHERE u.id = p_uid),
	COALESCE(
	(SELECT s.current_period_end FROM subscriptions s
	    WHERE s.user_id = p_uid AND s.deleted_at IS NULL AND s.status IN
	    ('active', 'trialing', 'past_due') AND s.plan = p_plan AND
	    s.current_period_start IS NOT NULL
	    ORDER BY s.stripe_updated DESC LIMIT 1),
	CAST(DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-01') AS DATETIME(6)) +
	    INTERVAL 1 MONTH));

-- A new opaque id (22 URL-safe characters) for ledger rows made here.
CREATE OR REPLACE FUNCTION tg_new_id()
RETURNS CHAR(22) CHARACTER SET ascii
NOT DETERMINISTIC NO SQL
RETURN REPLACE(REPLACE(LEFT(TO_BASE64(RANDOM_BYTES(17)), 22), '+', '-'),
	'/', '_');

CREATE OR REPLACE PROCEDURE tg_gate(
	IN p_kind CHAR(1) CHARACTER SET ascii,
	IN p_a VARCHAR(64) CHARACTER SET ascii,
	IN p_b VARCHAR(64) CHARACTER SET ascii,
	IN p_meter VARCHAR(64) CHARACTER SET ascii,
	IN p_cost BIGINT,
	IN p_trial_credits BIGINT)
MODIFIES SQL DATA
proc: BEGIN
	DECLARE v_now DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
	DECLARE v_uid CHAR(22) CHARACTER SET ascii COLLATE ascii_bin DEFAULT NULL;
	DECLARE v_obj CHAR(22) CHARACTER SET ascii COLLATE ascii_bin DEFAULT NULL;
	DECLARE v_disabled, v_verified, v_valid, v_stale, v_is_trial,
		v_fast TINYINT DEFAULT 0;
	DECLARE v_override, v_sub_plan, v_plan, v_b_plan
		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin DEFAULT NULL;
	DECLARE v_trial_start, v_trial_end, v_created, v_sub_ps, v_sub_pe,
		v_ps, v_pe, v_ws, v_b_ps, v_b_pe DATETIME(6) DEFAULT NULL;
	DECLARE v_rate, v_count BIGINT DEFAULT NULL;
	DECLARE v_plan_credits, v_limit, v_used, v_allow, v_granted,
		v_credits, v_grant BIGINT DEFAULT NULL;
	DECLARE v_has_counter, v_has_day, v_n80, v_n100
		TINYINT DEFAULT 0;
	DECLARE v_status INT DEFAULT 204;
	DECLARE v_code VARCHAR(32) CHARACTER SET ascii DEFAULT NULL;
	DECLARE v_notice INT DEFAULT NULL;
	DECLARE v_next VARCHAR(128) DEFAULT NULL;
	DECLARE CONTINUE HANDLER FOR NOT FOUND BEGIN END;
	DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;

	decide: BEGIN
	-- The credential and its user.
	IF p_kind = 'j' THEN
		SELECT u.id, u.disabled_at IS NOT NULL,
		    u.email_verified_at IS NOT NULL, s.revoked_at IS NULL AND
		    (s.expires_at IS NULL OR s.expires_at > v_now),
		    s.last_used_at < v_now - INTERVAL 60 SECOND, s.id,
		    u.plan_override, u.trial_started_at, u.trial_ends_at,
		    u.created_at
		INTO v_uid, v_disabled, v_verified, v_valid, v_stale, v_obj,
		    v_override, v_trial_start, v_trial_end, v_created
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id = p_a AND s.user_id = p_b;
	ELSEIF p_kind = 'k' THEN
		SELECT u.id, u.disabled_at IS NOT NULL,
		    u.email_verified_at IS NOT NULL,
		    k.expires_at IS NULL OR k.expires_at > v_now,
		    k.last_used_at IS NULL OR
		    k.last_used_at < v_now - INTERVAL 60 SECOND, k.id,
		    u.plan_override, u.trial_started_at, u.trial_ends_at,
		    u.created_at
		INTO v_uid, v_disabled, v_verified, v_valid, v_stale, v_obj,
		    v_override, v_trial_start, v_trial_end, v_created
		FROM api_keys k JOIN users u ON u.id = k.user_id
		WHERE k.key_hash = p_a;
	ELSE
		SELECT u.id, u.disabled_at IS NOT NULL,
		    u.email_verified_at IS NOT NULL, s.revoked_at IS NULL AND
		    (s.expires_at IS NULL OR s.expires_at > v_now),
		    s.last_used_at < v_now - INTERVAL 60 SECOND, s.id,
		    u.plan_override, u.trial_started_at, u.trial_ends_at,
		    u.created_at
		INTO v_uid, v_disabled, v_verified, v_valid, v_stale, v_obj,
		    v_override, v_trial_start, v_trial_end, v_created
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
		SET v_status = 403, v_code = 'account_disabled';
		LEAVE decide;
	END IF;
	-- last_used_at moves at most once a minute.
	IF v_stale AND p_kind = 'k' THEN
		UPDATE api_keys SET last_used_at = v_now WHERE id = v_obj;
	ELSEIF v_stale THEN
		UPDATE sessions SET last_used_at = v_now WHERE id = v_obj;
	END IF;

	-- The plan (the rule of tg_plan), then the plan's row, its limit on
	-- the meter and the user's counters in one read (plain reads: a
	-- denial seen here holds, since counts only grow within a window
	-- or period).  The period is the rule of tg_period_*.
	SELECT s.plan, s.current_period_start, s.current_period_end
	INTO v_sub_plan, v_sub_ps, v_sub_pe
	FROM subscriptions s WHERE s.user_id = v_uid AND s.deleted_at IS NULL
	    AND s.status IN ('active', 'trialing', 'past_due')
	ORDER BY s.stripe_updated DESC LIMIT 1;
	SET v_plan = COALESCE(v_override, v_sub_plan, IF(v_trial_end IS NULL OR
	    v_trial_end > v_now, 'trial', NULLIF(@tg_fallback, ''))),
	    v_ps = CAST(DATE_FORMAT(v_now, '%Y-%m-01') AS DATETIME(6));
	SELECT p.rate_per_minute, p.is_trial, p.credits, l.period_limit,
	    IF(p.is_trial, COALESCE(v_trial_start, v_created),
	    IF(v_sub_plan <=> p.name AND v_sub_ps IS NOT NULL, v_sub_ps, v_ps)),
	    IF(p.is_trial, v_trial_end, IF(v_sub_plan <=> p.name AND
	    v_sub_ps IS NOT NULL, v_sub_pe, v_ps + INTERVAL 1 MONTH)),
	    IF(w.window_start > v_now - INTERVAL 60 SECOND, w.count, 0),
	    IF(w.window_start > v_now - INTERVAL 60 SECOND, w.window_start, NULL),
	    c.user_id IS NOT NULL, COALESCE(c.used, 0), d.user_id IS NOT NULL,
	    b.allowance, b.allowance_period_start, b.allowance_period_end,
	    COALESCE(b.granted, 0), b.allowance_plan
	INTO v_rate, v_is_trial, v_plan_credits, v_limit, v_ps, v_pe, v_count,
	    v_ws, v_has_counter, v_used, v_has_day, v_allow, v_b_ps, v_b_pe,
	    v_granted, v_b_plan
	FROM plans p
	LEFT JOIN plan_limits l ON l.plan = p.name AND l.meter = p_meter
	LEFT JOIN rate_windows w ON w.user_id = v_uid AND w.bucket = 'gate'
	LEFT JOIN usage_counters c ON c.user_id = v_uid AND c.meter = p_meter AND
	    c.period_start = IF(p.is_trial, COALESCE(v_trial_start, v_created),
	    IF(v_sub_plan <=> p.name AND v_sub_ps IS NOT NULL, v_sub_ps, v_ps))
	LEFT JOIN usage_daily d ON d.user_id = v_uid AND d.meter = p_meter AND
	    d.day = DATE(v_now)
	LEFT JOIN credit_balances b ON b.user_id = v_uid
	WHERE p.name = v_plan;
	IF v_rate IS NULL THEN
		SET v_plan = NULL, v_count = 0, v_credits = 0;
	ELSE
		-- The live allowance (NULL when it has lapsed), and what the
		-- balance is, or will be after a lapse and a new grant.
		SET v_allow = IF(v_b_plan <=> v_plan AND (v_is_trial OR
		    (v_b_ps <=> v_ps AND v_b_pe > v_now)), v_allow, NULL);
		SET v_credits = COALESCE(v_allow, IF(v_is_trial, IF(v_b_plan IS NULL,
		    p_trial_credits, 0), v_plan_credits)) + v_granted;
	END IF;

	IF v_plan IS NOT NULL AND v_count >= v_rate THEN
		SET v_status = 429, v_code = 'rate_limited';
		LEAVE decide;
	END IF;
	IF NOT v_verified THEN
		SET v_status = 403, v_code = 'email_not_verified';
		LEAVE decide;
	END IF;
	IF v_plan IS NULL THEN
		SET v_status = 402, v_code = 'subscription_required';
		LEAVE decide;
	END IF;
	IF p_meter <> 'credits' AND v_limit IS NOT NULL AND
	    v_used + p_cost > v_limit THEN
		SET v_status = 403, v_code = 'quota_exceeded';
		LEAVE decide;
	END IF;

	-- The happy path: every row there, the window open, the allowance
	-- current and, as far as the plain read shows, every limit met.
	IF v_ws IS NOT NULL AND (p_cost = 0 OR (v_has_counter AND v_has_day))
	    AND (p_meter <> 'credits' OR p_cost = 0 OR
	    (v_allow IS NOT NULL AND v_allow + v_granted >= p_cost)) THEN
		IF p_meter = 'credits' AND p_cost > 0 THEN
			START TRANSACTION;
		END IF;
		IF p_cost = 0 THEN
			UPDATE rate_windows w SET w.count = w.count + 1
			WHERE w.user_id = v_uid AND w.bucket = 'gate' AND
			    w.window_start > v_now - INTERVAL 60 SECOND AND
			    w.count < v_rate;
			SET v_fast = ROW_COUNT() = 1;
		ELSE
			UPDATE rate_windows w, usage_counters c, usage_daily d
			SET w.count = w.count + 1, c.used = c.used + p_cost,
			    d.used = d.used + p_cost
			WHERE w.user_id = v_uid AND w.bucket = 'gate' AND
			    w.window_start > v_now - INTERVAL 60 SECOND AND
			    w.count < v_rate AND
			    c.user_id = v_uid AND c.meter = p_meter AND
			    c.period_start = v_ps AND (p_meter = 'credits' OR
			    v_limit IS NULL OR c.used + p_cost <= v_limit) AND
			    d.user_id = v_uid AND d.meter = p_meter AND
			    d.day = DATE(v_now);
			SET v_fast = ROW_COUNT() = 3;
		END IF;
		IF v_fast AND p_meter = 'credits' AND p_cost > 0 THEN
			UPDATE credit_balances
			SET granted = granted - GREATEST(0, p_cost - allowance),
			    allowance = allowance - LEAST(allowance, p_cost),
			    updated_at = v_now
			WHERE user_id = v_uid AND allowance_plan <=> v_plan AND
			    (v_is_trial OR (allowance_period_start <=> v_ps AND
			    allowance_period_end > v_now)) AND
			    allowance + granted >= p_cost;
			SET v_fast = ROW_COUNT() = 1;
			IF v_fast THEN
				SELECT allowance + granted INTO v_credits
				FROM credit_balances WHERE user_id = v_uid;
				INSERT INTO credit_ledger (id, user_id, kind, delta,
				    cost, balance_after, meter)
				VALUES (tg_new_id(), v_uid, 'spend', -p_cost,
				    p_cost, v_credits, p_meter);
			END IF;
		END IF;
		IF v_fast THEN
			COMMIT;
			SET v_count = v_count + 1, v_used = v_used + p_cost;
			LEAVE decide;
		END IF;
		ROLLBACK;
	END IF;

	-- The slow path, under the rows' locks, in a fixed order.
	START TRANSACTION;
	INSERT INTO rate_windows (user_id, bucket, window_start, count)
	VALUES (v_uid, 'gate', v_now, 0) ON DUPLICATE KEY UPDATE count = count;
	SELECT IF(window_start > v_now - INTERVAL 60 SECOND, count, 0),
	    IF(window_start > v_now - INTERVAL 60 SECOND, window_start, NULL)
	INTO v_count, v_ws
	FROM rate_windows WHERE user_id = v_uid AND bucket = 'gate' FOR UPDATE;
	IF v_count >= v_rate THEN
		ROLLBACK;
		SET v_status = 429, v_code = 'rate_limited';
		LEAVE decide;
	END IF;
	IF p_cost > 0 THEN
		INSERT INTO usage_counters (user_id, meter, period_start,
		    period_end, used)
		VALUES (v_uid, p_meter, v_ps, v_pe, 0)
		ON DUPLICATE KEY UPDATE used = used;
		SELECT used INTO v_used FROM usage_counters
		WHERE user_id = v_uid AND meter = p_meter AND
		    period_start = v_ps FOR UPDATE;
		IF p_meter <> 'credits' AND v_limit IS NOT NULL AND
		    v_used + p_cost > v_limit THEN
			ROLLBACK;
			SET v_status = 403, v_code = 'quota_exceeded';
			LEAVE decide;
		END IF;
	END IF;
	IF p_meter = 'credits' AND p_cost > 0 THEN
		INSERT INTO credit_balances (user_id) VALUES (v_uid)
		ON DUPLICATE KEY UPDATE user_id = user_id;
		SELECT allowance, allowance_plan, allowance_period_start,
		    allowance_period_end, granted
		INTO v_allow, v_b_plan, v_b_ps, v_b_pe, v_granted
		FROM credit_balances WHERE user_id = v_uid FOR UPDATE;
		IF NOT (v_b_plan <=> v_plan AND (v_is_trial OR
		    (v_b_ps <=> v_ps AND v_b_pe > v_now))) THEN
			-- The allowance lapses; the new period's is granted.
			IF v_allow > 0 THEN
				INSERT INTO credit_ledger (id, user_id, kind,
				    delta, balance_after, reason)
				VALUES (tg_new_id(), v_uid, 'lapse', -v_allow,
				    v_granted, v_b_plan);
			END IF;
			SET v_grant = IF(v_is_trial, IF(v_b_plan IS NULL,
			    p_trial_credits, 0), v_plan_credits);
			UPDATE credit_balances SET allowance = v_grant,
			    allowance_plan = v_plan, allowance_period_start = v_ps,
			    allowance_period_end = v_pe, updated_at = v_now
			WHERE user_id = v_uid;
			IF v_grant > 0 THEN
				INSERT INTO credit_ledger (id, user_id, kind,
				    delta, balance_after, reason)
				VALUES (tg_new_id(), v_uid, IF(v_is_trial, 'trial',
				    'allowance'), v_grant, v_grant + v_granted,
				    v_plan);
			END IF;
			SET v_allow = v_grant;
		ELSEIF v_is_trial AND NOT (v_b_pe <=> v_pe) THEN
			-- The trial was moved: its credits end with it.
			UPDATE credit_balances SET allowance_period_end = v_pe
			WHERE user_id = v_uid;
		END IF;
		SET v_credits = v_allow + v_granted;
		IF v_credits < p_cost THEN
			INSERT INTO credit_ledger (id, user_id, kind, delta, cost,
			    balance_after, meter)
			VALUES (tg_new_id(), v_uid, 'refusal', 0, p_cost,
			    v_credits, p_meter);
			COMMIT;
			SET v_status = 403, v_code = IF(v_is_trial,
			    'trial_credits_exhausted', 'quota_exceeded');
			LEAVE decide;
		END IF;
		UPDATE credit_balances
		SET granted = granted - GREATEST(0, p_cost - allowance),
		    allowance = allowance - LEAST(allowance, p_cost),
		    updated_at = v_now
		WHERE user_id = v_uid;
		SET v_credits = v_credits - p_cost;
		INSERT INTO credit_ledger (id, user_id, kind, delta, cost,
		    balance_after, meter)
		VALUES (tg_new_id(), v_uid, 'spend', -p_cost, p_cost, v_credits,
		    p_meter);
	END IF;
	IF p_cost > 0 THEN
		UPDATE usage_counters SET used = used + p_cost
		WHERE user_id = v_uid AND meter = p_meter AND
		    period_start = v_ps;
		INSERT INTO usage_daily (user_id, meter, day, used)
		VALUES (v_uid, p_meter, DATE(v_now), p_cost)
		ON DUPLICATE KEY UPDATE used = used + p_cost;
		SET v_used = v_used + p_cost;
	END IF;
	UPDATE rate_windows
	SET count = IF(window_start > v_now - INTERVAL 60 SECOND, count + 1, 1),
	    window_start = IF(window_start > v_now - INTERVAL 60 SECOND,
	    window_start, v_now)
	WHERE user_id = v_uid AND bucket = 'gate';
	COMMIT;
	SET v_count = v_count + 1, v_ws = COALESCE(v_ws, v_now);
	END decide;

	IF v_status = 204 AND v_limit > 0 AND p_cost > 0 AND
	    v_used * 5 >= v_limit * 4 THEN
		-- 80 % or 100 % of the meter's limit: is its notice due?
		SELECT COALESCE(MAX(n.threshold = 80), 0),
		    COALESCE(MAX(n.threshold = 100), 0)
		INTO v_n80, v_n100
		FROM usage_notices n
		WHERE n.user_id = v_uid AND n.meter = p_meter AND
		    n.period_start = v_ps;
		SET v_notice = IF(v_used >= v_limit, IF(v_n100, NULL, 100),
		    IF(v_n80, NULL, 80));
	END IF;
	IF v_code IN ('quota_exceeded', 'trial_credits_exhausted') THEN
		-- The next plan up, for the message.
		SELECT n.display_name INTO v_next
		FROM plans p JOIN plans n ON n.sort_order > p.sort_order AND
		    n.price_cents > 0 AND n.is_trial = 0
		WHERE p.name = v_plan ORDER BY n.sort_order, n.name LIMIT 1;
	END IF;

	SELECT v_status, v_code, v_uid, v_plan, v_credits, v_rate,
	    GREATEST(0, v_rate - v_count),
	    IF(v_ws IS NULL, 60, GREATEST(1, CEIL(TIMESTAMPDIFF(MICROSECOND,
	    v_now, v_ws + INTERVAL 60 SECOND) / 1000000))),
	    v_next, v_notice, v_ps, v_used, v_limit;
END;
