/*
 * The per-request arena: memory handed out in chunks and given back all
 * at once when the request ends.  Request data (bodies, tokens, hashes)
 * may hold secrets, so a reset wipes what was used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/core.h"

#define CHUNK_SIZE	(64 * 1024)

struct chunk {
	struct chunk	*next;
	size_t		 size;
	size_t		 used;
	max_align_t	 data[];
};

struct arena {
	struct chunk	*head;
};

/* Returns a new chunk able to hold need bytes, owned by the caller. */
static struct chunk *
chunk_new(size_t need)
{
	struct chunk	*c;
	size_t		 size = need > CHUNK_SIZE ? need : CHUNK_SIZE;

	if ((c = malloc(sizeof(*c) + size)) == NULL)
		return NULL;
	c->next = NULL;
	c->size = size;
	c->used = 0;
	return c;
}

struct arena *
arena_new(void)
{
	struct arena	*a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	if ((a->head = chunk_new(CHUNK_SIZE)) == NULL) {
		free(a);
		return NULL;
	}
	return a;
}

/*
 * Returns size bytes aligned for any type.  Running out of memory ends
 * the process: the master replaces the worker.
 */
void *
arena_alloc(struct arena *a, size_t size)
{
	struct chunk	*c = a->head;
	size_t		 align = _Alignof(max_align_t);
	void		*p;

	size = (size + align - 1) & ~(align - 1);
	if (size == 0)
		size = align;
	if (c->size - c->used < size) {
		if ((c = chunk_new(size)) == NULL) {
			log_err("oom", " size=%zu", size);
			abort();
		}
		c->next = a->head;
		a->head = c;
	}
	p = (char *)c->data + c->used;
	c->used += size;
	return p;
}

char *
arena_strndup(struct arena *a, const char *s, size_t n)
{
	char	*p = arena_alloc(a, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
arena_strdup(struct arena *a, const char *s)
{
	return s == NULL ? NULL : arena_strndup(a, s, strlen(s));
}

char *
arena_vprintf(struct arena *a, const char *fmt, va_list ap)
{
	va_list	 aq;
	int	 n;
	char	*p;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0)
		n = 0;
	p = arena_alloc(a, (size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *
arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list	 ap;
	char	*p;

	va_start(ap, fmt);
	p = arena_vprintf(a, fmt, ap);
	va_end(ap);
	return p;
}

void
arena_reset(struct arena *a)
{
	struct chunk	*c, *next;

	for (c = a->head; c->next != NULL; c = next) {
		next = c->next;
		sodium_memzero(c->data, c->used);
		free(c);
	}
	a->head = c;
	sodium_memzero(c->data, c->used);
	c->used = 0;
}

void
arena_free(struct arena *a)
{
	if (a == NULL)
		return;
	arena_reset(a);
	free(a->head);
	free(a);
}

void
buf_init(struct buf *b, struct arena *a)
{
	b->a = a;
	b->cap = 256;
	b->len = 0;
	b->p = arena_alloc(a, b->cap);
	b->p[0] = '\0';
}

void
buf_add(struct buf *b, const void *s, size_t n)
{
	char	*np;

	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap *= 2;
		np = arena_alloc(b->a, b->cap);
		memcpy(np, b->p, b->len);
		b->p = np;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
buf_puts(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;

	va_start(ap, fmt);
	s = arena_vprintf(b->a, fmt, ap);
	va_end(ap);
	buf_puts(b, s);
}

void
buf_html(struct buf *b, const char *s)
{
	const char	*start;

	if (s == NULL)
		return;
	for (start = s; *s != '\0'; s++) {
		const char *rep;

		switch (*s) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default: continue;
		}
		buf_add(b, start, (size_t)(s - start));
		buf_puts(b, rep);
		start = s + 1;
	}
	buf_add(b, start, (size_t)(s - start));
}
