-- 071-buckets.sql: rate buckets per gate location (contract section 7,
-- issue 18): a location's $tollgate_bucket NAME (or /api/v1/check's
-- bucket) counts its checks in a window of its own, limited by the
-- plan's rate.NAME (plan_rates, 050-services.sql), else by the plan's
-- rate_per_minute.  The default bucket stays the engine's (rate_windows
-- `gate`, leased in slices); a named bucket is decided here, one row lock
-- per check.
--
-- bucket_windows holds one fixed window per user and bucket, as
-- rate_windows does: it starts at the first counted check, on the
-- database's clock, and lasts 60 seconds; count is the checks counted in
-- it.

CREATE TABLE IF NOT EXISTS bucket_windows (
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	bucket		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	window_start	DATETIME(6) NOT NULL,
	count		BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, bucket),
	CONSTRAINT bucket_windows_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- tg_bucket, which counts in a bucket's window, is in routines/meters.sql.
