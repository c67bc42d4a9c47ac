-- 080-guest-in-all.sql: the guest plan's credits are granted once, "in
-- all" (contract section 5's table: guest, 3 in all), not again every
-- calendar month as for the free plan.
--
-- A plan's allowance is granted at the start of each of its periods
-- (tg_credit_refresh, tg_credits, tg_lease).  For `guest` the period is
-- the account's whole life as a guest: it starts when the account was
-- made (users.created_at) and does not end, so the allowance is granted
-- once and what is spent of it never comes back; meters count over the
-- same life.  A claim (app/claim.c guest_claim) turns what is left into
-- granted credits and leaves the plan, so the new account's own trial or
-- plan starts afresh.  The trial and paid plans are unchanged; the free
-- plan and any other plan keep the calendar month.

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
