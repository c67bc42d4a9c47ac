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

-- The change log's triggers are in routines/changes.sql, the engine's
-- procedures (tg_lease, tg_lease_return, tg_flush) in routines/engine.sql.
