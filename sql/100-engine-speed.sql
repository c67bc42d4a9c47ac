-- 100-engine-speed.sql: tg_flush, the flusher's one transaction per
-- batch (040-engine.sql), with the same effects and less work:
--
-- - The batch's JSON is parsed once, into the temporary table; the
--   Stripe meter queue reads that table (040 parsed the batch twice).
-- - Records of users deleted since are dropped with a key lookup per
--   record.  040 joined JSON_TABLE's rows to users directly, comparing
--   JSON_TABLE's utf8mb4 column with the ascii_bin id: no index could
--   serve it, so every batch scanned users once per record, converting
--   each id; under load that join was half the database's CPU.
--
-- The temporary table has a new name (tg_flush_rows, with the paying
-- flag p) so that a connection still holding 040's tg_flush_recs, of the
-- old shape, cannot feed the new statements.

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
		SELECT u, m, SUM(c) FROM tg_flush_rows
		WHERE t = 'u' AND p = 1 AND c > 0 GROUP BY u, m;
	DECLARE spends CURSOR FOR
		SELECT u, SUM(c) FROM tg_flush_rows
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
		CREATE TEMPORARY TABLE IF NOT EXISTS tg_flush_rows (
			s BIGINT UNSIGNED NOT NULL, t CHAR(1) NOT NULL,
			u CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			i CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
			m VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
			ps DATETIME(6) NULL, pe DATETIME(6) NULL, d DATE NULL,
			c BIGINT NOT NULL DEFAULT 0, b BIGINT NOT NULL DEFAULT 0,
			l TINYINT NOT NULL DEFAULT 0, k CHAR(1) NULL,
			p TINYINT NOT NULL DEFAULT 0,
			PRIMARY KEY (s)) ENGINE=Aria;
		DELETE FROM tg_flush_rows;
		INSERT INTO tg_flush_rows (s, t, u, i, m, ps, pe, d, c, b, l, k, p)
		SELECT j.s, j.t, j.u, j.i, j.m, j.ps, j.pe, j.d,
		    COALESCE(j.c, 0), COALESCE(j.b, 0), COALESCE(j.l, 0), j.k,
		    COALESCE(j.p, 0)
		FROM JSON_TABLE(p_batch, '$[*]' COLUMNS (
		    s BIGINT UNSIGNED PATH '$.s', t CHAR(1) PATH '$.t',
		    u CHAR(22) PATH '$.u', i CHAR(22) PATH '$.i',
		    m VARCHAR(64) PATH '$.m', ps DATETIME(6) PATH '$.ps',
		    pe DATETIME(6) PATH '$.pe', d DATE PATH '$.d',
		    c BIGINT PATH '$.c', b BIGINT PATH '$.b',
		    l TINYINT PATH '$.l', k CHAR(1) PATH '$.k',
		    p TINYINT PATH '$.p')) j
		WHERE j.s > v_done;
		-- Users deleted since: their records go (the temporary table's
		-- ids are ascii_bin like users.id, so this is a key lookup per
		-- record, not a scan of users per record).
		DELETE r FROM tg_flush_rows r LEFT JOIN users x ON x.id = r.u
		WHERE x.id IS NULL;

		INSERT INTO usage_counters (user_id, meter, period_start,
		    period_end, used)
		SELECT u, m, ps, MAX(pe), SUM(c) FROM tg_flush_rows
		WHERE t = 'u' AND c > 0 AND ps IS NOT NULL GROUP BY u, m, ps
		ON DUPLICATE KEY UPDATE used = used + VALUES(used);
		INSERT INTO usage_daily (user_id, meter, day, used)
		SELECT u, m, d, SUM(c) FROM tg_flush_rows
		WHERE t = 'u' AND c > 0 GROUP BY u, m, d
		ON DUPLICATE KEY UPDATE used = used + VALUES(used);
		UPDATE gate_leases g JOIN (SELECT u, m, SUM(c) c
		    FROM tg_flush_rows WHERE t = 'u' AND l = 1 GROUP BY u, m) r
		    ON g.user_id = r.u AND g.res = r.m AND g.host_id = p_host
		SET g.used = g.used + r.c;
		INSERT INTO credit_ledger (id, user_id, kind, delta, cost,
		    balance_after, meter)
		SELECT i, u, IF(t = 'u', 'spend', 'refusal'), IF(t = 'u', -c, 0),
		    c, GREATEST(0, b), m
		FROM tg_flush_rows
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
		UPDATE sessions s JOIN tg_flush_rows r ON s.id = r.i AND
		    r.t = 't' AND r.k = 's'
		SET s.last_used_at = UTC_TIMESTAMP(6);
		UPDATE api_keys a JOIN tg_flush_rows r ON a.id = r.i AND
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
		DELETE FROM tg_flush_rows;
		UPDATE gate_hosts SET flushed_seq = p_to,
		    seen_at = UTC_TIMESTAMP(6) WHERE id = p_host;
		SET v_done = p_to;
	END IF;
	COMMIT;
	SET @tg_engine = NULL;
	SELECT v_done;
END;
