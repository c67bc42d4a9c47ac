-- 003-sessions.sql: logins (sessions), their refresh-token families, and
-- the device authorization grant of RFC 8628.
--
-- A session is one login: by password, at signup, through a magic link,
-- through GitHub, or by a device (a CLI or editor extension, named by
-- client_name).  Access tokens carry the session id (`sid`) and are good
-- only while the session's revoked_at is NULL, so revoking a session
-- stops its access tokens at once on every host.  A browser login is a
-- session too: cookie_hash is the keyed hash of the session cookie's
-- secret, looked up on every cookie request.  last_used_at is touched
-- now and then, not on every request; expires_at, when set, ends a
-- session that is not refreshed.  Revoked sessions are kept (marked) so
-- that a late refresh of one of their tokens is recognised as reuse.
--
-- refresh_tokens holds the refresh tokens of each session (its family),
-- stored as keyed hashes.  Rotation is one UPDATE that sets used_at,
-- replaced_by_hash (the successor's hash) and successor_enc where used_at
-- IS NULL: the statement that changes one row wins.  successor_enc is the
-- new pair encrypted with the crypto key, kept so that a retry of the same
-- token within the 10-second grace window gets the same pair back; it may
-- be set to NULL once the window is over.  A token presented after its
-- grace window is reuse, and the application revokes the whole session.
--
-- device_codes holds pending device sign-ins.  The device code is stored
-- as a keyed hash; the user code is stored normalised (eight upper-case
-- letters from an alphabet without ambiguous ones, no hyphen).  A code is
-- pending until a logged-in user approves or denies it (user_id and
-- decided_at are then set), and becomes used when the device collects its
-- tokens; session_id names the session made for it.  interval_s and
-- last_poll_at implement slow_down.  Expired rows may be purged by
-- expires_at; a new user code that collides with an old one is retried.

CREATE TABLE IF NOT EXISTS sessions (
	id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	kind		ENUM('signup', 'password', 'magic', 'github', 'device')
			    NOT NULL,
	cookie_hash	CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
	user_agent	VARCHAR(512) NULL,
	client_name	VARCHAR(128) NULL,
	address		VARCHAR(45) CHARACTER SET ascii COLLATE ascii_bin NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	last_used_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	expires_at	DATETIME(6) NULL,
	revoked_at	DATETIME(6) NULL,
	revoked_reason	VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
	PRIMARY KEY (id),
	UNIQUE KEY sessions_cookie (cookie_hash),
	KEY sessions_user (user_id, created_at),
	KEY sessions_expires (expires_at),
	CONSTRAINT sessions_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS refresh_tokens (
	token_hash	CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	session_id	CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	issued_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	expires_at	DATETIME(6) NOT NULL,
	used_at		DATETIME(6) NULL,
	replaced_by_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
	successor_enc	VARBINARY(2048) NULL,
	PRIMARY KEY (token_hash),
	KEY refresh_tokens_session (session_id),
	KEY refresh_tokens_expires (expires_at),
	CONSTRAINT refresh_tokens_session_fk FOREIGN KEY (session_id)
	    REFERENCES sessions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS device_codes (
	device_code_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	user_code	CHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	client_name	VARCHAR(128) NOT NULL,
	address		VARCHAR(45) CHARACTER SET ascii COLLATE ascii_bin NULL,
	status		ENUM('pending', 'approved', 'denied', 'used')
			    NOT NULL DEFAULT 'pending',
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
	session_id	CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
	interval_s	INT NOT NULL DEFAULT 5,
	last_poll_at	DATETIME(6) NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	expires_at	DATETIME(6) NOT NULL,
	decided_at	DATETIME(6) NULL,
	PRIMARY KEY (device_code_hash),
	UNIQUE KEY device_codes_user_code (user_code),
	KEY device_codes_expires (expires_at),
	CONSTRAINT device_codes_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE,
	CONSTRAINT device_codes_session_fk FOREIGN KEY (session_id)
	    REFERENCES sessions (id) ON DELETE SET NULL,
	CONSTRAINT device_codes_interval_ck CHECK (interval_s > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
