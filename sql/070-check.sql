-- 070-check.sql: decisions for services (contract section 7a, issue
-- 18): a credential kind for a bare user id, the user's role in the
-- engine's answer, and the idempotency of POST /api/v1/check.
--
-- tg_lease (routines/engine.sql) takes kind u, a user id: the user is
-- looked up by id alone, with no session or key object behind it (POST
-- /api/v1/check with {user_id} from a service key, and trusted tokens);
-- its row ends with the user's role, so a gate location can require an
-- admin ($tollgate_role) and the upstream learns the role.
--
-- check_requests remembers, per service key and idempotency key, the
-- answer POST /api/v1/check gave, for 24 hours: the same key again gets
-- that answer and counts nothing.  A request claims its row first (the
-- primary key makes one of two concurrent duplicates the claimer; the
-- other waits for the answer), decides, then stores its answer; a claim
-- whose decision failed is deleted so the next try decides afresh.

CREATE TABLE IF NOT EXISTS check_requests (
	service_key_id	CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	idempotency_key	VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
			    NOT NULL,
	answer		TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	created_at	DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6),
	PRIMARY KEY (service_key_id, idempotency_key),
	KEY check_requests_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
