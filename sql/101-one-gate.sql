-- 101-one-gate.sql: the gate decides in one place, the engine (tg_lease,
-- 072-level-gate.sql, and the gate workers' memory).  tg_gate, the
-- procedure that decided each check in one database round trip before
-- the engine (020-gate.sql), had no caller left but its copy of the
-- rules (plan, rate window, quota, credits): it goes.

DROP PROCEDURE IF EXISTS tg_gate;
