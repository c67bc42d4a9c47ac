/*
 * Rotating [crypto] key.  While [crypto] previous_key is set:
 *   - what was sealed with the old key still opens (core/crypto.c), and
 *     `tollgatectl rekey` seals it again under the new key;
 *   - a token or key hashed with the old key still verifies: before each
 *     lookup, hash_rekey() moves the row that holds its old hash to the
 *     new one (one indexed UPDATE, only while previous_key is set), so
 *     the lookup then finds it and it is on the new key from then on.
 * Hashes cannot be moved without the secrets they hash, which tollgate
 * never keeps; that is why they move on first use.
 */
#include <stdio.h>
#include <string.h>

#include "app/app.h"

static struct sql q_move[HASHED__MAX] = {
	[HASHED_API_KEY] = SQL("UPDATE api_keys SET key_hash = ? "
	    "WHERE key_hash = ?"),
	[HASHED_SERVICE_KEY] = SQL("UPDATE service_keys SET key_hash = ? "
	    "WHERE key_hash = ?"),
	[HASHED_COOKIE] = SQL("UPDATE sessions SET cookie_hash = ? "
	    "WHERE cookie_hash = ?"),
	[HASHED_REFRESH] = SQL("UPDATE refresh_tokens SET token_hash = ? "
	    "WHERE token_hash = ?"),
	[HASHED_TOKEN] = SQL("UPDATE tokens SET token_hash = ? "
	    "WHERE token_hash = ?"),
	[HASHED_RECOVERY] = SQL("UPDATE recovery_codes SET code_hash = ? "
	    "WHERE code_hash = ?"),
};

void
hash_rekey(struct req *r, enum hashed h, const char *input)
{
	const char	*prev;
	int		 rc;

	if (!cfg.has_previous_key || h >= HASHED__MAX || input == NULL ||
	    (prev = token_hash_previous(r->a, input)) == NULL)
		return;
	if ((rc = db_exec(&q_move[h], "ss", token_hash(r->a, input),
	    prev)) < 0)
		log_warn("hash_rekey", " table=%d rc=%d", (int)h, rc);
	else if (rc > 0)
		log_info("hash_rekey", " table=%d moved=%d", (int)h, rc);
}

/* The sealed columns: table, key column, sealed column. */
static struct sealed_col {
	const char	*table;
	struct sql	 list, put;
} sealed_cols[] = {
	{ "totp_secrets",
	  SQL("SELECT user_id, secret_enc FROM totp_secrets"),
	  SQL("UPDATE totp_secrets SET secret_enc = ? WHERE user_id = ? "
	      "AND secret_enc = ?") },
	{ "refresh_tokens",
	  SQL("SELECT token_hash, successor_enc FROM refresh_tokens WHERE "
	      "successor_enc IS NOT NULL"),
	  SQL("UPDATE refresh_tokens SET successor_enc = ? WHERE token_hash "
	      "= ? AND successor_enc = ?") },
};
#define NSEALED	(sizeof(sealed_cols) / sizeof(sealed_cols[0]))

/*
 * tollgatectl rekey [--json]: seals again under [crypto] key every value
 * that only [crypto] previous_key opens; prints per table how many rows
 * moved, were on the new key already, or open with neither key.  Exits
 * 0, or 1 (no previous_key, a database error, or unreadable rows).
 */
int
ctl_rekey(int argc, char *argv[])
{
	struct arena		*a;
	struct req		 r;
	struct dbrows		 rows;
	struct json_object	*out = json_object_new_object(), *t;
	const char		*plain;
	unsigned char		*sealed;
	size_t			 i, k, len, plen;
	long long		 moved, current, bad, all_moved = 0, all_bad = 0;
	bool			 json = ctl_take_json(&argc, argv), old;
	int			 rc;

	(void)argv;
	if (argc != 0) {
		fprintf(stderr, "usage: tollgatectl rekey [--json]\n");
		json_object_put(out);
		return 2;
	}
	if (!cfg.has_previous_key) {
		fprintf(stderr, "tollgatectl: rekey: set [crypto] previous_key "
		    "to the old key (and key to the new one) first\n");
		json_object_put(out);
		return 1;
	}
	
	a = arena_new();
	ctl_local_req(&r, a);
	for (i = 0; i < NSEALED; i++) {
		moved = current = bad = 0;
		if ((rc = db_select(a, &sealed_cols[i].list, &rows, "")) < 0)
			goto dberr;
		for (k = 0; k < rows.n; k++) {
			plain = unseal_ex(a, dbv(&rows, k, 1), rows.len[k *
			    rows.ncol + 1], &plen, &old);
			if (plain == NULL) {
				bad++;
				continue;
			}
			if (!old) {
				current++;
				continue;
			}
			sealed = seal(a, plain, plen, &len);
			/* Only if nobody changed it meanwhile. */
			if ((rc = db_exec(&sealed_cols[i].put, "bsb", sealed, len,
			    dbv(&rows, k, 0), dbv(&rows, k, 1),
			    rows.len[k * rows.ncol + 1])) < 0)
				goto dberr;
			moved += rc;
		}
		t = json_object_new_object();
		json_object_object_add(t, "moved", json_object_new_int64(moved));
		json_object_object_add(t, "current",
		    json_object_new_int64(current));
		json_object_object_add(t, "unreadable",
		    json_object_new_int64(bad));
		json_object_object_add(out, sealed_cols[i].table, t);
		if (!json)
			printf("%s: %lld moved to the new key, %lld on it "
			    "already, %lld open with neither key\n",
			    sealed_cols[i].table, moved, current, bad);
		all_moved += moved;
		all_bad += bad;
	}
	if (all_moved > 0)
		audit(&r, "crypto.rekey", NULL, arena_printf(a, "%lld sealed "
		    "values moved to the new key", all_moved));
	if (json)
		printf("%s\n", json_object_to_json_string_ext(out,
		    JSON_C_TO_STRING_PRETTY));
	else
		printf("hashes of keys and tokens move to the new key when "
		    "each is next used; keep previous_key until the keys made "
		    "before the rotation have been used or replaced\n");
	json_object_put(out);
	db_close();
	arena_free(a);
	return all_bad > 0 ? 1 : 0;
dberr:
	ctl_db_fail("rekey", rc);
	json_object_put(out);
	db_close();
	arena_free(a);
	return 1;
}
