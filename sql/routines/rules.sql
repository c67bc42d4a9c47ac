-- rules.sql: the business rules that C and SQL share, one copy each.
-- Every statement in src/app/ and every procedure that needs one of these
-- rules calls the function here; none writes the rule out again.
--
-- tg_live_sub(uid): the user's live subscription (not deleted, status
-- active, trialing or past_due; the one Stripe changed last), or NULL.
-- tg_paying(uid): whether the user pays through Stripe now (a customer
-- and a live subscription): their metered use goes to Stripe.
--
-- tg_plan(uid): the effective plan: an admin's override, else the live
-- subscription's plan, else `trial` until the trial ends (or before it
-- starts), else the fallback plan (@tg_fallback, set per connection from
-- [trial] fallback_plan), else NULL.
--
-- tg_period_start(uid, plan), tg_period_end(uid, plan): the current
-- billing period on that plan: the trial is one period (from
-- verification, or from sign-up before it, to trial_ends_at); the guest
-- plan's period is the guest's whole life (from the account's creation,
-- never ending), so its credits are granted once (contract section 5:
-- guest, 3 in all); a plan that comes from the live subscription runs in
-- Stripe's current period; every other plan (free, the fallback, an
-- admin's override) in the calendar month, UTC.  usage_counters rows are
-- keyed by the period's start.
--
-- The allowance: credit_balances.allowance is the current period's grant
-- of the plan's credits.  It is live while allowance_plan is the user's
-- plan and, for plans other than the trial, allowance_period_start is the
-- current period's start and allowance_period_end is still ahead
-- (tg_allowance_live).  Otherwise it has lapsed, and the new period
-- grants the plan's credits; the trial's credits (trial_credits, from
-- [trial] credits) only to a user who never had any allowance
-- (tg_allowance_grant).  tg_allowance_now is what can be spent from it
-- now: the live allowance, else what the new period grants.
-- tg_allowance_renew writes the change under the balance row's lock: a
-- `lapse` ledger row for what was left, the grant (`allowance`, or
-- `trial`), and a moved trial's new end.  `granted` (admin grants,
-- purchases, a claimed guest's rest) never lapses and is spent after the
-- allowance.
--
-- tg_credits(uid, trial_credits): every credit the user can spend now, as
-- the gate counts them: tg_allowance_now plus granted.  /api/v1/me,
-- /api/v1/usage, the gate's X-Tollgate-Credits-Remaining and the admin's
-- user detail all report this number.
--
-- tg_session_live(revoked_at, expires_at): a session (and the JWTs and
-- cookie of it) counts until it is revoked or expires.  tg_key_live(
-- expires_at): an API key counts until it expires (it is deleted when
-- revoked).
--
-- The rate window (a plan's rate_per_minute at the gate, a bucket's
-- rate.NAME, the API's [limits] api_per_minute): a fixed window that
-- opens at the first request counted in it and lasts 60 seconds; the
-- first request after it opens the next.  tg_window_live(ws, now):
-- whether the window that opened at ws is open at now; tg_window_end(ws)
-- when it closes; tg_window_left_us(ws, now) its microseconds left (a
-- whole window when none is open).
--
-- tg_credit_refresh(uid, trial_credits): tg_allowance_renew for the
-- user's plan and period now, outside the gate (app/users.c
-- credit_refresh: an admin's grant, a Stripe event, a verified address).
-- A trial that has not started (the address is not verified yet) is
-- left alone: verification starts it, then refreshes.

-- A new opaque id (22 URL-safe characters) for rows made here.
CREATE OR REPLACE FUNCTION tg_new_id()
RETURNS CHAR(22) CHARACTER SET ascii
NOT DETERMINISTIC NO SQL
RETURN REPLACE(REPLACE(LEFT(TO_BASE64(RANDOM_BYTES(17)), 22), '+', '-'),
	'/', '_');

CREATE OR REPLACE FUNCTION tg_live_sub(p_uid CHAR(22) CHARACTER SET ascii)
RETURNS VARCHAR(255) CHARACTER SET ascii
NOT DETERMINISTIC READS SQL DATA
RETURN (SELECT s.id FROM subscriptions s WHERE s.user_id = p_uid AND
	s.deleted_at IS NULL AND s.status IN ('active', 'trialing', 'past_due')
	ORDER BY s.stripe_updated DESC LIMIT 1);

CREATE OR REPLACE FUNCTION tg_paying(p_uid CHAR(22) CHARACTER SET ascii)
RETURNS TINYINT
NOT DETERMINISTIC READS SQL DATA
RETURN tg_live_sub(p_uid) IS NOT NULL AND EXISTS (SELECT 1 FROM users
	WHERE id = p_uid AND stripe_customer_id IS NOT NULL);

CREATE OR REPLACE FUNCTION tg_plan(p_uid CHAR(22) CHARACTER SET ascii)
RETURNS VARCHAR(64) CHARACTER SET ascii
NOT DETERMINISTIC READS SQL DATA
RETURN (SELECT COALESCE(u.plan_override,
	(SELECT s.plan FROM subscriptions s WHERE s.id = tg_live_sub(u.id)),
	IF(u.trial_ends_at IS NULL OR u.trial_ends_at > UTC_TIMESTAMP(6),
	'trial', NULLIF(@tg_fallback, '')))
	FROM users u WHERE u.id = p_uid);

CREATE OR REPLACE FUNCTION tg_period_start(p_uid CHAR(22) CHARACTER SET ascii,
	p_plan VARCHAR(64) CHARACTER SET ascii)
RETURNS DATETIME(6)
NOT DETERMINISTIC READS SQL DATA
RETURN COALESCE(
	(SELECT COALESCE(u.trial_started_at, u.created_at) FROM users u
	    JOIN plans p ON p.name = p_plan AND p.is_trial = 1
	    WHERE u.id = p_uid),
	(SELECT u.created_at FROM users u WHERE u.id = p_uid AND
	    p_plan = 'guest'),
	(SELECT s.current_period_start FROM subscriptions s
	    WHERE s.id = tg_live_sub(p_uid) AND s.plan = p_plan),
	CAST(DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-01') AS DATETIME(6)));

CREATE OR REPLACE FUNCTION tg_period_end(p_uid CHAR(22) CHARACTER SET ascii,
	p_plan VARCHAR(64) CHARACTER SET ascii)
RETURNS DATETIME(6)
NOT DETERMINISTIC READS SQL DATA
RETURN IF(EXISTS (SELECT 1 FROM plans p WHERE p.name = p_plan AND
	p.is_trial = 1), (SELECT u.trial_ends_at FROM users u WHERE u.id = p_uid),
	IF(p_plan = 'guest', CAST('9999-12-31 00:00:00' AS DATETIME(6)),
	COALESCE(
	(SELECT s.current_period_end FROM subscriptions s
	    WHERE s.id = tg_live_sub(p_uid) AND s.plan = p_plan AND
	    s.current_period_start IS NOT NULL),
	CAST(DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-01') AS DATETIME(6)) +
	    INTERVAL 1 MONTH)));

CREATE OR REPLACE FUNCTION tg_session_live(p_revoked_at DATETIME(6),
	p_expires_at DATETIME(6))
RETURNS TINYINT
NOT DETERMINISTIC NO SQL
RETURN p_revoked_at IS NULL AND (p_expires_at IS NULL OR
	p_expires_at > UTC_TIMESTAMP(6));

CREATE OR REPLACE FUNCTION tg_key_live(p_expires_at DATETIME(6))
RETURNS TINYINT
NOT DETERMINISTIC NO SQL
RETURN p_expires_at IS NULL OR p_expires_at > UTC_TIMESTAMP(6);

CREATE OR REPLACE FUNCTION tg_window_live(p_ws DATETIME(6),
	p_now DATETIME(6))
RETURNS TINYINT
DETERMINISTIC NO SQL
RETURN p_ws > p_now - INTERVAL 60 SECOND;

CREATE OR REPLACE FUNCTION tg_window_end(p_ws DATETIME(6))
RETURNS DATETIME(6)
DETERMINISTIC NO SQL
RETURN p_ws + INTERVAL 60 SECOND;

CREATE OR REPLACE FUNCTION tg_window_left_us(p_ws DATETIME(6),
	p_now DATETIME(6))
RETURNS BIGINT
DETERMINISTIC NO SQL
RETURN IF(p_ws IS NULL, 60000000, GREATEST(0, TIMESTAMPDIFF(MICROSECOND,
	p_now, tg_window_end(p_ws))));

CREATE OR REPLACE FUNCTION tg_allowance_live(
	p_b_plan VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
	p_b_ps DATETIME(6),
	p_b_pe DATETIME(6),
	p_plan VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
	p_ps DATETIME(6),
	p_is_trial TINYINT)
RETURNS TINYINT
NOT DETERMINISTIC NO SQL
RETURN p_plan IS NOT NULL AND p_b_plan <=> p_plan AND (p_is_trial OR
	(p_b_ps <=> p_ps AND p_b_pe > UTC_TIMESTAMP(6)));

CREATE OR REPLACE FUNCTION tg_allowance_grant(
	p_b_plan VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
	p_plan VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
	p_is_trial TINYINT,
	p_plan_credits BIGINT,
	p_trial_credits BIGINT)
RETURNS BIGINT
DETERMINISTIC NO SQL
RETURN IF(p_plan IS NULL, 0, IF(p_is_trial, IF(p_b_plan IS NULL,
	p_trial_credits, 0), COALESCE(p_plan_credits, 0)));

CREATE OR REPLACE FUNCTION tg_allowance_now(
	p_allow BIGINT,
	p_b_plan VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
	p_b_ps DATETIME(6),
	p_b_pe DATETIME(6),
	p_plan VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
	p_ps DATETIME(6),
	p_is_trial TINYINT,
	p_plan_credits BIGINT,
	p_trial_credits BIGINT)
RETURNS BIGINT
NOT DETERMINISTIC NO SQL
RETURN IF(tg_allowance_live(p_b_plan, p_b_ps, p_b_pe, p_plan, p_ps,
	p_is_trial), p_allow, tg_allowance_grant(p_b_plan, p_plan, p_is_trial,
	p_plan_credits, p_trial_credits));

CREATE OR REPLACE FUNCTION tg_credits(p_uid CHAR(22) CHARACTER SET ascii,
	p_trial_credits BIGINT)
RETURNS BIGINT
NOT DETERMINISTIC READS SQL DATA
RETURN (SELECT tg_allowance_now(b.allowance, b.allowance_plan,
	b.allowance_period_start, b.allowance_period_end, x.plan, x.ps,
	p.is_trial, p.credits, p_trial_credits) + COALESCE(b.granted, 0)
	FROM (SELECT y.id, y.plan, tg_period_start(y.id, y.plan) ps
	    FROM (SELECT u.id, tg_plan(u.id) plan FROM users u
	    WHERE u.id = p_uid) y) x
	LEFT JOIN plans p ON p.name = x.plan
	LEFT JOIN credit_balances b ON b.user_id = x.id);

-- tg_allowance_renew(uid, plan, ps, pe, is_trial, plan_credits,
-- trial_credits, write, OUT allow, OUT granted): locks uid's balance row
-- (made when missing) and returns what can be spent from the allowance
-- now (tg_allowance_now) and the granted credits.  With write, a lapsed
-- allowance is written as lapsed and the new period's granted, with
-- their ledger rows, and a moved trial's end is moved; without, nothing
-- is written (the next spend writes it).  With no plan, write lapses the
-- whole allowance and keeps allowance_plan, so a trial is never granted
-- twice.  It runs inside the caller's transaction and commits nothing.
CREATE OR REPLACE PROCEDURE tg_allowance_renew(
	IN p_uid CHAR(22) CHARACTER SET ascii,
	IN p_plan VARCHAR(64) CHARACTER SET ascii,
	IN p_ps DATETIME(6),
	IN p_pe DATETIME(6),
	IN p_is_trial TINYINT,
	IN p_plan_credits BIGINT,
	IN p_trial_credits BIGINT,
	IN p_write TINYINT,
	OUT p_allow BIGINT,
	OUT p_granted BIGINT)
MODIFIES SQL DATA
BEGIN
	DECLARE v_now DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
	DECLARE v_b_plan VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin
		DEFAULT NULL;
	DECLARE v_b_ps, v_b_pe DATETIME(6) DEFAULT NULL;
	DECLARE v_allow, v_grant BIGINT DEFAULT 0;

	INSERT INTO credit_balances (user_id) VALUES (p_uid)
	ON DUPLICATE KEY UPDATE user_id = user_id;
	SELECT allowance, allowance_plan, allowance_period_start,
	    allowance_period_end, granted
	INTO v_allow, v_b_plan, v_b_ps, v_b_pe, p_granted
	FROM credit_balances WHERE user_id = p_uid FOR UPDATE;
	SET p_allow = v_allow;
	IF NOT tg_allowance_live(v_b_plan, v_b_ps, v_b_pe, p_plan, p_ps,
	    p_is_trial) THEN
		SET v_grant = tg_allowance_grant(v_b_plan, p_plan, p_is_trial,
		    p_plan_credits, p_trial_credits);
		SET p_allow = v_grant;
		IF p_write AND v_allow > 0 THEN
			INSERT INTO credit_ledger (id, user_id, kind, delta,
			    balance_after, reason)
			VALUES (tg_new_id(), p_uid, 'lapse', -v_allow, p_granted,
			    v_b_plan);
		END IF;
		IF p_write AND p_plan IS NULL THEN
			UPDATE credit_balances SET allowance = 0,
			    updated_at = v_now
			WHERE user_id = p_uid AND allowance <> 0;
		ELSEIF p_write THEN
			UPDATE credit_balances SET allowance = v_grant,
			    allowance_plan = p_plan,
			    allowance_period_start = p_ps,
			    allowance_period_end = p_pe, updated_at = v_now
			WHERE user_id = p_uid;
			IF v_grant > 0 THEN
				INSERT INTO credit_ledger (id, user_id, kind,
				    delta, balance_after, reason)
				VALUES (tg_new_id(), p_uid, IF(p_is_trial,
				    'trial', 'allowance'), v_grant,
				    v_grant + p_granted, p_plan);
			END IF;
		END IF;
	ELSEIF p_write AND p_is_trial AND NOT (v_b_pe <=> p_pe) THEN
		UPDATE credit_balances SET allowance_period_end = p_pe
		WHERE user_id = p_uid;
	END IF;
END;

CREATE OR REPLACE PROCEDURE tg_credit_refresh(
	IN p_uid CHAR(22) CHARACTER SET ascii,
	IN p_trial_credits BIGINT)
MODIFIES SQL DATA
BEGIN
	DECLARE v_plan VARCHAR(64) CHARACTER SET ascii DEFAULT NULL;
	DECLARE v_is_trial, v_started TINYINT DEFAULT 0;
	DECLARE v_credits, v_allow, v_granted BIGINT DEFAULT 0;

	SET v_plan = tg_plan(p_uid);
	SELECT COALESCE(MAX(is_trial), 0), COALESCE(MAX(credits), 0)
	INTO v_is_trial, v_credits FROM plans WHERE name = v_plan;
	SELECT trial_started_at IS NOT NULL INTO v_started FROM users
	WHERE id = p_uid;
	CALL tg_allowance_renew(p_uid, v_plan, tg_period_start(p_uid, v_plan),
	    tg_period_end(p_uid, v_plan), v_is_trial, v_credits,
	    p_trial_credits, v_started OR NOT v_is_trial, v_allow, v_granted);
END;
