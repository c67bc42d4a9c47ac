-- 035-rules.sql: the business rules that C and SQL share, one copy each.
--
-- Every statement in src/app/ and every procedure that needs one of these
-- rules calls the function; none writes the rule out again.
--
-- tg_live_sub(uid): the user's live subscription (not deleted, status
-- active, trialing or past_due; the one Stripe changed last), or NULL.
--
-- tg_plan(uid): the effective plan: an admin's override, else the live
-- subscription's plan, else `trial` until the trial ends (or before it
-- starts), else the fallback plan (@tg_fallback, set per connection from
-- [trial] fallback_plan), else NULL.
--
-- tg_period_start(uid, plan), tg_period_end(uid, plan): the current
-- billing period on that plan: the trial is one period (from
-- verification, or from sign-up before it, to trial_ends_at); a plan that
-- comes from the live subscription runs in Stripe's current period; every
-- other plan (free, the fallback, an admin's override) in the calendar
-- month, UTC.
--
-- tg_credits(uid, trial_credits): every credit the user can spend now, as
-- the gate counts them: the live allowance (its plan is the user's plan
-- and, but for the trial, its period is the current one), or what the
-- next spend would grant when it has lapsed (the plan's credits; for the
-- trial, trial_credits to a user who never had an allowance), plus the
-- granted credits, which never lapse.  /api/v1/me, /api/v1/usage, the
-- gate's X-Tollgate-Credits-Remaining and the admin's user detail all
-- report this number.

CREATE OR REPLACE FUNCTION tg_live_sub(p_uid CHAR(22) CHARACTER SET ascii)
RETURNS VARCHAR(255) CHARACTER SET ascii
NOT DETERMINISTIC READS SQL DATA
RETURN (SELECT s.id FROM subscriptions s WHERE s.user_id = p_uid AND
	s.deleted_at IS NULL AND s.status IN ('active', 'trialing', 'past_due')
	ORDER BY s.stripe_updated DESC LIMIT 1);

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
	(SELECT s.current_period_start FROM subscriptions s
	    WHERE s.id = tg_live_sub(p_uid) AND s.plan = p_plan),
	CAST(DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-01') AS DATETIME(6)));

CREATE OR REPLACE FUNCTION tg_period_end(p_uid CHAR(22) CHARACTER SET ascii,
	p_plan VARCHAR(64) CHARACTER SET ascii)
RETURNS DATETIME(6)
NOT DETERMINISTIC READS SQL DATA
RETURN IF(EXISTS (SELECT 1 FROM plans p WHERE p.name = p_plan AND
	p.is_trial = 1), (SELECT u.trial_ends_at FROM users u WHERE u.id = p_uid),
	COALESCE(
	(SELECT s.current_period_end FROM subscriptions s
	    WHERE s.id = tg_live_sub(p_uid) AND s.plan = p_plan AND
	    s.current_period_start IS NOT NULL),
	CAST(DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-01') AS DATETIME(6)) +
	    INTERVAL 1 MONTH));

CREATE OR REPLACE FUNCTION tg_credits(p_uid CHAR(22) CHARACTER SET ascii,
	p_trial_credits BIGINT)
RETURNS BIGINT
NOT DETERMINISTIC READS SQL DATA
RETURN (SELECT IF(x.plan IS NULL, 0, COALESCE(IF(b.allowance_plan <=> x.plan
	AND (p.is_trial OR (b.allowance_period_start <=> x.ps AND
	b.allowance_period_end > UTC_TIMESTAMP(6))), b.allowance, NULL),
	IF(p.is_trial, IF(b.allowance_plan IS NULL, p_trial_credits, 0),
	p.credits))) + COALESCE(b.granted, 0)
	FROM (SELECT y.id, y.plan, tg_period_start(y.id, y.plan) ps
	    FROM (SELECT u.id, tg_plan(u.id) plan FROM users u
	    WHERE u.id = p_uid) y) x
	LEFT JOIN plans p ON p.name = x.plan
	LEFT JOIN credit_balances b ON b.user_id = x.id);
