-- 045-credit-refresh.sql: tg_credit_refresh(uid, trial_credits) brings a
-- user's credit allowance up to date under the balance row's lock, by the
-- rule of 020-gate.sql: an allowance that is not the current plan's and
-- period's lapses (a `lapse` ledger row for what was left) and the
-- period's is granted (`allowance`, or `trial` for the trial's credits to
-- a user who never had any allowance); a moved trial moves its end.  A
-- user with no plan keeps no allowance.  Afterwards the row's allowance
-- is what the user can spend from it now, so a change that takes credits
-- away (an admin's negative grant) can take from the allowance first.
-- A trial that has not started (the email is not verified yet) has no
-- allowance yet: verification grants its credits, so nothing is done.
-- It runs inside the caller's transaction and commits nothing; the row
-- stays locked until the caller ends it.

CREATE OR REPLACE PROCEDURE tg_credit_refresh(
	IN p_uid CHAR(22) CHARACTER SET ascii,
	IN p_trial_credits BIGINT)
MODIFIES SQL DATA
BEGIN
	DECLARE v_now DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
	DECLARE v_plan, v_b_plan VARCHAR(64) CHARACTER SET ascii DEFAULT NULL;
	DECLARE v_ps, v_pe, v_b_ps, v_b_pe DATETIME(6) DEFAULT NULL;
	DECLARE v_is_trial TINYINT DEFAULT 0;
	DECLARE v_allow, v_granted, v_grant, v_plan_credits BIGINT DEFAULT 0;

	SET v_plan = tg_plan(p_uid);
	INSERT INTO credit_balances (user_id) VALUES (p_uid)
	ON DUPLICATE KEY UPDATE user_id = user_id;
	SELECT allowance, allowance_plan, allowance_period_start,
	    allowance_period_end, granted
	INTO v_allow, v_b_plan, v_b_ps, v_b_pe, v_granted
	FROM credit_balances WHERE user_id = p_uid FOR UPDATE;
	IF v_plan IS NULL THEN
		IF v_allow > 0 THEN
			INSERT INTO credit_ledger (id, user_id, kind, delta,
			    balance_after, reason)
			VALUES (tg_new_id(), p_uid, 'lapse', -v_allow, v_granted,
			    v_b_plan);
			UPDATE credit_balances SET allowance = 0, updated_at = v_now
			WHERE user_id = p_uid;
		END IF;
	ELSE
		SELECT COALESCE(MAX(is_trial), 0), COALESCE(MAX(credits), 0)
		INTO v_is_trial, v_plan_credits FROM plans WHERE name = v_plan;
		SET v_ps = tg_period_start(p_uid, v_plan);
		SET v_pe = tg_period_end(p_uid, v_plan);
		IF v_is_trial AND (SELECT trial_started_at IS NULL FROM users
		    WHERE id = p_uid) THEN
			DO 0;	-- not started: verification grants its credits
		ELSEIF NOT (v_b_plan <=> v_plan AND (v_is_trial OR
		    (v_b_ps <=> v_ps AND v_b_pe > v_now))) THEN
			IF v_allow > 0 THEN
				INSERT INTO credit_ledger (id, user_id, kind,
				    delta, balance_after, reason)
				VALUES (tg_new_id(), p_uid, 'lapse', -v_allow,
				    v_granted, v_b_plan);
			END IF;
			SET v_grant = IF(v_is_trial, IF(v_b_plan IS NULL,
			    p_trial_credits, 0), v_plan_credits);
			UPDATE credit_balances SET allowance = v_grant,
			    allowance_plan = v_plan, allowance_period_start = v_ps,
			    allowance_period_end = v_pe, updated_at = v_now
			WHERE user_id = p_uid;
			IF v_grant > 0 THEN
				INSERT INTO credit_ledger (id, user_id, kind,
				    delta, balance_after, reason)
				VALUES (tg_new_id(), p_uid, IF(v_is_trial, 'trial',
				    'allowance'), v_grant, v_grant + v_granted,
				    v_plan);
			END IF;
		ELSEIF v_is_trial AND NOT (v_b_pe <=> v_pe) THEN
			UPDATE credit_balances SET allowance_period_end = v_pe
			WHERE user_id = p_uid;
		END IF;
	END IF;
END;
