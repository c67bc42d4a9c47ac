/*
 * The server: tollgated's master (main.c), the worker's accept loop and
 * dispatch (worker.c), and the route table (routes.c), the top layer.
 */
#ifndef TG_SERVER_H
#define TG_SERVER_H

#include "app/app.h"
#include "pages/pages.h"
#include "sender/sender.h"
#include "engine/engine.h"

extern const struct route routes[];
extern const size_t nroutes;

/*
 * Finds the route for path and method.  Returns its index and fills
 * r->params, -1 when no pattern matches the path, or -2 when a pattern
 * matches but not the method (then *allow holds the allowed methods).
 */
int	 route_match(struct req *, const char *path, enum method,
	    unsigned *allow);
/* The metrics label of a route index. */
const char *route_label(int);

/* ------------------------------------------------------------------ */
/* worker.c and main.c                                                 */
/* ------------------------------------------------------------------ */

/* Runs a worker's accept loop on the FastCGI socket fd; never returns. */
void	 worker_run(int fd) __attribute__((noreturn));
/*
 * Runs a gate worker (gate_worker.c) on the gate socket lfd, as gate
 * worker index (its event fd in the engine's file); never returns.
 */
void	 eng_gate_run(int lfd, int index) __attribute__((noreturn));
/* True when the worker was asked to stop. */
extern volatile int worker_stopping;
/* Seconds since the epoch as a double (CLOCK_REALTIME). */

#endif /* TG_SERVER_H */
