-- changes.sql: the change log's triggers (the table gate_changes is in
-- 040-engine.sql).  Each adds the user id of a change the gate must see
-- (a revoked session or key, a disabled, deleted or re-verified user, a
-- plan, trial or subscription change, a credit grant, usage counted by
-- someone else, a moved rate window), or NULL for "all" (a plan's row or
-- limits, a meter's kind).  Every host's engine polls the log and drops
-- what it cached for those users; a gate check waits for a poll that
-- began after the check arrived, so a change committed before a check is
-- seen by it, on every host.  The engine's own writes set @tg_engine and
-- log nothing.

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
CREATE OR REPLACE TRIGGER tg_chg_meters_i AFTER INSERT ON meters FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (NULL);
CREATE OR REPLACE TRIGGER tg_chg_meters_u AFTER UPDATE ON meters FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (NULL);
CREATE OR REPLACE TRIGGER tg_chg_meters_d AFTER DELETE ON meters FOR EACH ROW
	INSERT INTO gate_changes (user_id) VALUES (NULL);
