-- 050-services.sql: what services report and hold (contract sections 5,
-- 7 and 7a; issue 18): money and metadata on usage events, meters that
-- are levels, per-plan rate buckets, and the queue status of meters that
-- are not billed.
--
-- usage_events gains metadata (the service's JSON object, at most 1024
-- bytes as stored, e.g. the model name) and cost_micros (money, in
-- millionths of the plan's currency), both optional; created_at gets
-- its own index for the admin's export across users and a period.
-- usage_counters gains cost_micros, the period's sum of its events'
-- money, added by the same upsert that adds their quantity, so the
-- usage page reads the money without summing events.
--
-- meters declares a meter's kind where it is not the default: `sum` (used
-- adds up per billing period, in usage_counters) or `level` (how much is
-- in use now: running workspaces, stored bytes).  A meter without a row
-- is a sum.  A level meter's limit per plan is its plan_limits row (at
-- most that much at a time).  tollgatectl meters set NAME kind=level.
--
-- usage_levels holds each user's current level of each level meter.  A
-- service sets it with PUT /api/v1/usage/levels/{meter} (one upsert, so
-- concurrent sets never interleave: the last one stands); checks raise it
-- with one UPDATE whose WHERE clause keeps level + cost within the limit.
--
-- plan_rates holds a plan's per-minute limit for a named rate bucket (a
-- gate location's $tollgate_bucket); a bucket without a row uses the
-- plan's rate_per_minute.  tollgatectl plans set PLAN rate.NAME=N.
--
-- meter_reports.status gains `skipped`: a sum of a meter that [stripe]
-- meter_prices does not bill, which the sender leaves unsent.

ALTER TABLE usage_events
	ADD COLUMN IF NOT EXISTS metadata TEXT CHARACTER SET utf8mb4
	    COLLATE utf8mb4_bin NULL,
	ADD COLUMN IF NOT EXISTS cost_micros BIGINT NULL;
ALTER TABLE usage_events
	ADD CONSTRAINT IF NOT EXISTS usage_events_metadata_ck CHECK
	    (metadata IS NULL OR (JSON_VALID(metadata) AND
	    LENGTH(metadata) <= 1024)),
	ADD CONSTRAINT IF NOT EXISTS usage_events_cost_ck CHECK
	    (cost_micros IS NULL OR cost_micros >= 0);
ALTER TABLE usage_counters
	ADD COLUMN IF NOT EXISTS cost_micros BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS usage_events_created
	ON usage_events (created_at, id);
CREATE INDEX IF NOT EXISTS usage_events_user_meter
	ON usage_events (user_id, meter, created_at);

CREATE TABLE IF NOT EXISTS meters (
	name		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	kind		ENUM('sum', 'level') NOT NULL DEFAULT 'sum',
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	updated_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS usage_levels (
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	meter		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	level		BIGINT NOT NULL DEFAULT 0,
	updated_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (user_id, meter),
	CONSTRAINT usage_levels_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE,
	CONSTRAINT usage_levels_level_ck CHECK (level >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS plan_rates (
	plan		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	bucket		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	per_minute	INT NOT NULL,
	PRIMARY KEY (plan, bucket),
	CONSTRAINT plan_rates_plan_fk FOREIGN KEY (plan)
	    REFERENCES plans (name) ON UPDATE CASCADE ON DELETE CASCADE,
	CONSTRAINT plan_rates_rate_ck CHECK (per_minute >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

ALTER TABLE meter_reports MODIFY COLUMN status
	ENUM('pending', 'sent', 'failed', 'skipped') NOT NULL DEFAULT 'pending';

-- tg_level_raise, which raises a level within its limit, is in
-- routines/meters.sql.
