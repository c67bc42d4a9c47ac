/*
 * tollgatectl's one output style, for the commands that live in this
 * layer and in ctl: a list prints a header line of upper-case column
 * names and one line per row, columns aligned and separated by two
 * spaces ("-" for a NULL); with --json it prints a JSON array of objects
 * whose members are the columns' lower-case names.  An action prints one
 * sentence on stdout; errors go to stderr as "tollgatectl: ...".  Exit
 * statuses: 0 done, 1 failed (or nothing matched), 2 bad usage.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"

/*
 * Prints rows (ncols columns named cols, lower case) as a table or, with
 * json, as a JSON array.  Columns listed in numeric (a NUL-free string of
 * 'n' and '-', one per column, or NULL) become JSON numbers.
 */
void
ctl_print_rows(const struct dbrows *rows, const char *const *cols,
    size_t ncols, const char *numeric, bool json)
{
	size_t	 i, j, w[32], n;

	if (ncols > sizeof(w) / sizeof(w[0]))
		ncols = sizeof(w) / sizeof(w[0]);
	if (json) {
		struct json_object *arr = json_object_new_array(), *o;

		for (i = 0; i < rows->n; i++) {
			o = json_object_new_object();
			for (j = 0; j < ncols; j++) {
				const char *v = dbv(rows, i, j);

				json_object_object_add(o, cols[j], v == NULL ?
				    NULL : numeric != NULL && numeric[j] == 'n' ?
				    json_object_new_int64(dbi(rows, i, j)) :
				    json_object_new_string(v));
			}
			json_object_array_add(arr, o);
		}
		printf("%s\n", json_object_to_json_string_ext(arr,
		    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
		return;
	}
	for (j = 0; j < ncols; j++) {
		w[j] = strlen(cols[j]);
		for (i = 0; i < rows->n; i++) {
			const char *v = dbv(rows, i, j);

			n = v != NULL ? strlen(v) : 1;
			if (n > w[j])
				w[j] = n > 60 ? 60 : n;
		}
	}
	for (j = 0; j < ncols; j++) {
		for (n = 0; cols[j][n] != '\0'; n++)
			putchar(toupper((unsigned char)cols[j][n]));
		if (j + 1 < ncols)
			printf("%*s", (int)(w[j] - n + 2), "");
	}
	putchar('\n');
	for (i = 0; i < rows->n; i++) {
		for (j = 0; j < ncols; j++) {
			const char *v = dbv(rows, i, j);
			char	   cell[64];

			if (v == NULL)
				v = "-";
			/* One line a row: control bytes become spaces. */
			snprintf(cell, sizeof(cell), "%s", v);
			for (n = 0; cell[n] != '\0'; n++)
				if ((unsigned char)cell[n] < 0x20)
					cell[n] = ' ';
			if (j + 1 < ncols)
				printf("%-*s  ", (int)w[j], cell);
			else
				printf("%s", cell);
		}
		putchar('\n');
	}
}

/*
 * A stand-in request for audit() from tollgatectl: the actor is the
 * operator at the machine ("tollgatectl", no user id), the address
 * "local".
 */
void
ctl_local_req(struct req *r, struct arena *a)
{
	memset(r, 0, sizeof(*r));
	r->a = a;
	r->remote_addr = "local";
	r->who.email = "tollgatectl";
}

/*
 * Prints tollgatectl's message for a failed database call of what (rc a
 * DB_* code) on standard error.  Returns the exit status 1.
 */
int
ctl_db_fail(const char *what, int rc)
{
	fprintf(stderr, "tollgatectl: %s: %s\n", what, rc == DB_DOWN ?
	    "the database is unreachable" : rc == DB_DUP ? "already exists" :
	    "database error (see above)");
	return 1;
}

/*
 * One line of standard input, when it is not a terminal (a password
 * piped in), without its line end; NULL for none or an empty line.  In
 * the arena.
 */
char *
ctl_read_line(struct arena *a)
{
	char	 line[512];
	size_t	 n;

	if (isatty(STDIN_FILENO) || fgets(line, sizeof(line), stdin) == NULL)
		return NULL;
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	return n == 0 ? NULL : arena_strdup(a, line);
}

/* Removes "--json" from argv (returning true when it was there). */
bool
ctl_take_json(int *argc, char *argv[])
{
	int	 i, j;
	bool	 found = false;

	for (i = j = 0; i < *argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			found = true;
		else
			argv[j++] = argv[i];
	}
	*argc = j;
	return found;
}
