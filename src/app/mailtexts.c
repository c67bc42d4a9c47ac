/*
 * The texts of the mails, in one place: share/mail-texts.txt, compiled
 * in as the default (make writes app/mail_texts.h from it), and an
 * operator's copy named by [server] mail_texts whose messages replace
 * the default ones of the same name.  Loaded once per process (a reload
 * starts new workers, which read it again).  The file's format is
 * described at its top.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/mail_texts.h"

struct mtext {
	char	*name;
	char	*subject;	/* NULL for a part */
	char	*body;
};

static struct mtext	*texts;
static size_t		 ntexts;
static bool		 loaded;

/* The entry named name, or NULL. */
static struct mtext *
find(const char *name)
{
	size_t	 i;

	for (i = 0; i < ntexts; i++)
		if (strcmp(texts[i].name, name) == 0)
			return &texts[i];
	return NULL;
}

/* Adds (or replaces) an entry; takes ownership of its strings. */
static void
put(char *name, char *subject, char *body)
{
	struct mtext	*t, *n;

	if ((t = find(name)) != NULL) {
		free(t->name);
		free(t->subject);
		free(t->body);
	} else {
		if ((n = realloc(texts, (ntexts + 1) * sizeof(*texts))) == NULL) {
			free(name);
			free(subject);
			free(body);
			return;
		}
		texts = n;
		t = &texts[ntexts++];
	}
	t->name = name;
	t->subject = subject;
	t->body = body;
}

/*
 * Reads the entries of src (the format of share/mail-texts.txt) into the
 * table.  Returns the number read, or -1 (with why in err) when a
 * message has no Subject line or an entry has no name.
 */
static int
parse(const char *src, const char *where, char *err, size_t errlen)
{
	const char	*p = src, *eol;
	char		*name = NULL, *subject = NULL;
	struct buf	 body;
	struct arena	*a = arena_new();
	size_t		 len, line = 0, start_line = 0;
	int		 n = 0, rc = -1;
	bool		 in = false, first = false;

	if (a == NULL)
		return -1;
	buf_init(&body, a);
	for (;;) {
		bool end = *p == '\0';
		bool head = !end && strncmp(p, "== ", 3) == 0;

		eol = end ? p : p + strcspn(p, "\n");
		len = (size_t)(eol - p);
		line++;
		if ((end || head) && in) {
			/* The entry before: trailing empty lines dropped. */
			while (body.len > 0 && body.p[body.len - 1] == '\n')
				body.p[--body.len] = '\0';
			put(name, subject, strdup(body.len ? body.p : ""));
			name = subject = NULL;
			n++;
			in = false;
		}
		if (end)
			break;
		if (head) {
			name = strndup(p + 3, len - 3);
			if (name == NULL || strspn(name, "abcdefghijklmnopqrstu"
			    "vwxyz0123456789_.") != strlen(name) || !*name) {
				snprintf(err, errlen, "%s line %zu: a name of "
				    "a-z, 0-9, _ and . after \"== \"", where,
				    line);
				free(name);
				goto out;
			}
			in = true;
			first = true;
			start_line = line;
			buf_init(&body, a);
		} else if (len > 0 && *p == '#') {
			/* A comment. */
		} else if (in && first && strncmp(p, "Subject: ", 9) == 0) {
			subject = strndup(p + 9, len - 9);
			/* The empty line after the subject is not text. */
			if (eol[0] == '\n' && eol[1] == '\n') {
				eol++;
				line++;
			}
			first = false;
		} else if (in) {
			if (first && len == 0) {
				/* Empty lines before a part's text: none. */
			} else {
				buf_add(&body, p, len);
				buf_add(&body, "\n", 1);
				first = false;
			}
		} else if (len > 0) {
			snprintf(err, errlen, "%s line %zu: text before the "
			    "first \"== NAME\" line", where, line);
			goto out;
		}
		p = *eol == '\n' ? eol + 1 : eol;
	}
	(void)start_line;
	rc = n;
out:
	arena_free(a);
	return rc;
}

/* Loads the default texts and the operator's copy, once. */
static void
load(void)
{
	char	 err[256];
	FILE	*f;
	char	*src;
	long	 size;

	if (loaded)
		return;
	loaded = true;
	if (parse(mail_texts_builtin, "the built-in mail texts", err,
	    sizeof(err)) < 0)
		log_err("mail_texts", " msg=\"%s\"", err);
	if (cfg.mail_texts == NULL || cfg.mail_texts[0] == '\0')
		return;
	if ((f = fopen(cfg.mail_texts, "r")) == NULL) {
		log_err("mail_texts", " path=%s errno=%d msg=\"cannot read it; "
		    "the built-in texts are used\"", cfg.mail_texts, errno);
		return;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
	    size < 1024 * 1024 && fseek(f, 0, SEEK_SET) == 0 &&
	    (src = malloc((size_t)size + 1)) != NULL) {
		size_t got = fread(src, 1, (size_t)size, f);

		src[got] = '\0';
		if (parse(src, cfg.mail_texts, err, sizeof(err)) < 0)
			log_err("mail_texts", " msg=\"%s; the rest of the "
			    "file is not used\"", err);
		free(src);
	}
	fclose(f);
}

/*
 * s with each {name} replaced: from vars (name, value pairs, NULL
 * ended), then product, base_url and support_url; an unknown one stays.
 */
static char *
fill(struct arena *a, const char *s, const char *const *vars)
{
	struct buf	 b;
	const char	*open, *close, *v;
	size_t		 n, i;

	buf_init(&b, a);
	while ((open = strchr(s, '{')) != NULL &&
	    (close = strchr(open, '}')) != NULL) {
		buf_add(&b, s, (size_t)(open - s));
		n = (size_t)(close - open - 1);
		v = NULL;
		for (i = 0; vars != NULL && vars[i] != NULL; i += 2)
			if (strlen(vars[i]) == n &&
			    strncmp(vars[i], open + 1, n) == 0) {
				v = vars[i + 1] != NULL ? vars[i + 1] : "";
				break;
			}
		if (v == NULL && n == 7 && strncmp(open + 1, "product", 7) == 0)
			v = cfg.product_name;
		if (v == NULL && n == 8 && strncmp(open + 1, "base_url", 8) == 0)
			v = cfg.base_url;
		if (v == NULL && n == 11 &&
		    strncmp(open + 1, "support_url", 11) == 0)
			v = cfg.support_url;
		if (v != NULL)
			buf_puts(&b, v);
		else
			buf_add(&b, open, (size_t)(close - open + 1));
		s = close + 1;
	}
	buf_puts(&b, s);
	return b.p;
}

const char *
mail_part(struct arena *a, const char *name, const char *const *vars)
{
	struct mtext	*t;

	load();
	if ((t = find(name)) == NULL) {
		log_err("mail_texts", " name=%s msg=\"no such text\"", name);
		return "";
	}
	return fill(a, t->body, vars);
}

const char *
mail_message(struct arena *a, const char *name, const char *const *vars,
    const char **subject)
{
	struct mtext	*t;

	load();
	if ((t = find(name)) == NULL || t->subject == NULL) {
		log_err("mail_texts", " name=%s msg=\"no such message\"", name);
		return NULL;
	}
	*subject = fill(a, t->subject, vars);
	return arena_printf(a, "%s\n", fill(a, t->body, vars));
}

int
mail_texts_check(const char *path, char *err, size_t errlen)
{
	FILE	*f;
	char	*src;
	long	 size;
	int	 n = -1;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
	    size < 1024 * 1024 && fseek(f, 0, SEEK_SET) == 0 &&
	    (src = malloc((size_t)size + 1)) != NULL) {
		size_t got = fread(src, 1, (size_t)size, f);

		src[got] = '\0';
		n = parse(src, path, err, errlen);
		free(src);
	} else
		snprintf(err, errlen, "%s is too large or unreadable", path);
	fclose(f);
	return n;
}
