-- 004-keys.sql: users' API keys and the operator's service keys.
--
-- api_keys holds the keys a user makes (`tgk_...`), stored only as the
-- keyed hash of the whole key, which is unique and is what the gate looks
-- up; preview is the key's first 12 characters, shown in lists.
-- Regenerating a key replaces key_hash and preview in place, so the old
-- key stops working with that one UPDATE; deleting the row stops it too.
-- expires_at is NULL for a key that never expires.  last_used_at is
-- touched at most now and then, never on every request.  The number of a
-- user's keys is limited by plans.api_keys: count them while holding the
-- user's row (SELECT ... FOR UPDATE on users) so that concurrent creations
-- cannot pass the limit together.
--
-- service_keys holds the keys (`tgs_...`) with which the operator's other
-- services report usage events; tollgatectl makes, lists and revokes
-- them.  A revoked key is kept, because usage_events scope their
-- idempotency keys by service key; live_name makes the name unique among
-- the keys that are not revoked, so a name can be given again after its
-- key was revoked.

CREATE TABLE IF NOT EXISTS api_keys (
	id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	name		VARCHAR(128) NOT NULL,
	preview		CHAR(12) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	key_hash	CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	last_used_at	DATETIME(6) NULL,
	expires_at	DATETIME(6) NULL,
	PRIMARY KEY (id),
	UNIQUE KEY api_keys_hash (key_hash),
	KEY api_keys_user (user_id, created_at),
	CONSTRAINT api_keys_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS service_keys (
	id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	name		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	preview		CHAR(12) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	key_hash	CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	last_used_at	DATETIME(6) NULL,
	revoked_at	DATETIME(6) NULL,
	live_name	VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin
			    AS (IF(revoked_at IS NULL, name, NULL)) PERSISTENT,
	PRIMARY KEY (id),
	UNIQUE KEY service_keys_hash (key_hash),
	UNIQUE KEY service_keys_live_name (live_name),
	KEY service_keys_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
