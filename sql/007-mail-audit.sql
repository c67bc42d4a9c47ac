-- 007-mail-audit.sql: the mail outbox, the record of trial mails, and the
-- audit log.
--
-- outbox holds every message tollgate sends, written in the same
-- transaction as the event that causes it.  The sender claims due rows
-- (status pending, next_attempt_at passed, or a sending row whose lease
-- ran out) by setting status to sending with a lease (locked_by,
-- locked_until), delivers over SMTP, and marks the row sent; a failure
-- puts it back to pending with a later next_attempt_at and last_error,
-- and after the last attempt leaves it failed, visible to the operator.
-- user_id is a plain value, not a foreign key, so mail about a deleted
-- account is still delivered.
--
-- trial_notices records the trial mails sent to a user (7, 3 and 1 days
-- before the end, and at the end), each once; trial_ends_at is the end
-- the mail announced.  When an admin moves a trial's end, the application
-- deletes the user's rows here so the mails go again for the new end.
--
-- audit_log records who did what to whom: the actor and the target are
-- stored as plain ids and emails, with no foreign keys, so rows outlive
-- the users they name.  detail is a JSON object.

CREATE TABLE IF NOT EXISTS outbox (
	id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
	kind		VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	to_addr		VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
			    NOT NULL,
	subject		VARCHAR(255) NOT NULL,
	body_text	MEDIUMTEXT NOT NULL,
	body_html	MEDIUMTEXT NULL,
	status		ENUM('pending', 'sending', 'sent', 'failed') NOT NULL
			    DEFAULT 'pending',
	attempts	INT NOT NULL DEFAULT 0,
	next_attempt_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	locked_by	VARCHAR(128) NULL,
	locked_until	DATETIME(6) NULL,
	last_error	VARCHAR(1024) NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	sent_at		DATETIME(6) NULL,
	PRIMARY KEY (id),
	KEY outbox_due (status, next_attempt_at),
	KEY outbox_user (user_id, created_at),
	KEY outbox_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS trial_notices (
	user_id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	kind		ENUM('7d', '3d', '1d', 'ended') NOT NULL,
	trial_ends_at	DATETIME(6) NULL,
	sent_at		DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (user_id, kind),
	CONSTRAINT trial_notices_user_fk FOREIGN KEY (user_id)
	    REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS audit_log (
	id		CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	at		DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	actor_id	CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
	actor_email	VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
			    NULL,
	action		VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	target_id	CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
	target_email	VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
			    NULL,
	detail		JSON NULL,
	address		VARCHAR(45) CHARACTER SET ascii COLLATE ascii_bin NULL,
	PRIMARY KEY (id),
	KEY audit_log_target (target_id, at),
	KEY audit_log_actor (actor_id, at),
	KEY audit_log_at (at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
