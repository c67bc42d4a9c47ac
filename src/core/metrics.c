/*
 * Counters shared by all the workers of one host: an anonymous shared
 * mapping made by the master before it forks, updated with atomic adds.
 * They are for /metrics only and may be lost with the master; no fact
 * lives only here.
 */
#include <sys/mman.h>

#include <string.h>

#include "core/core.h"

#define MAX_ROUTES	128
#define NBUCKETS	12

/* The statuses we count one by one; others fall into the last slot. */
static const int statuses[] = {
	200, 201, 202, 204, 302, 303, 400, 401, 402, 403, 404, 405, 409,
	413, 415, 422, 429, 500, 503, 0
};
#define NSTATUS	(sizeof(statuses) / sizeof(statuses[0]))

/* Upper bounds of the latency histogram, in seconds. */
static const double buckets[NBUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1.0, 2.5
};

static const char *const counter_names[CTR__MAX][2] = {
	{ "tollgate_gate_decisions_total", "decision=\"allow\"" },
	{ "tollgate_gate_decisions_total", "decision=\"401\"" },
	{ "tollgate_gate_decisions_total", "decision=\"402\"" },
	{ "tollgate_gate_decisions_total", "decision=\"403\"" },
	{ "tollgate_gate_decisions_total", "decision=\"429\"" },
	{ "tollgate_gate_decisions_total", "decision=\"503\"" },
	{ "tollgate_credit_spends_total", "result=\"ok\"" },
	{ "tollgate_credit_spends_total", "result=\"refused\"" },
	{ "tollgate_db_connects_total", "" },
	{ "tollgate_password_hashes_total", "" },
	{ "tollgate_password_hashes_refused_total", "" },
};

struct shared {
	unsigned long long	 requests[MAX_ROUTES + 1][NSTATUS];
	unsigned long long	 bucket[MAX_ROUTES + 1][NBUCKETS + 1];
	unsigned long long	 sum_us[MAX_ROUTES + 1];
	unsigned long long	 counters[CTR__MAX];
};

static struct shared	*shm;

int
metrics_init(void)
{
	void	*p;

	p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	memset(p, 0, sizeof(struct shared));
	shm = p;
	return 0;
}

/* Index of a route in the shared table; unmatched paths share the last. */
static size_t
route_slot(int route_index)
{
	return route_index < 0 || route_index >= MAX_ROUTES ?
	    MAX_ROUTES : (size_t)route_index;
}

void
metrics_request(int route_index, int status, double seconds)
{
	size_t	 r = route_slot(route_index), s, b;

	if (shm == NULL)
		return;
	for (s = 0; s < NSTATUS - 1 && statuses[s] != status; s++)
		continue;
	for (b = 0; b < NBUCKETS && seconds > buckets[b]; b++)
		continue;
	__atomic_fetch_add(&shm->requests[r][s], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&shm->bucket[r][b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&shm->sum_us[r],
	    (unsigned long long)(seconds * 1e6), __ATOMIC_RELAXED);
}

void
metrics_count(enum counter c, unsigned long long n)
{
	if (shm != NULL && c < CTR__MAX)
		__atomic_fetch_add(&shm->counters[c], n, __ATOMIC_RELAXED);
}

static unsigned long long
load(const unsigned long long *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/*
 * The route label of an index, given by the server at start (the route
 * table lives above this layer).
 */
static const char *(*route_label_fn)(int);

void
metrics_route_labels(const char *(*fn)(int))
{
	route_label_fn = fn;
}

static const char *
label_of(int route_index)
{
	return route_label_fn != NULL ? route_label_fn(route_index) :
	    "unmatched";
}

void
metrics_render(struct buf *b)
{
	size_t			 r, s, k;
	unsigned long long	 v, cum;
	const char		*last = "";

	if (shm == NULL)
		return;
	buf_puts(b, "# HELP tollgate_requests_total Requests answered, by "
	    "route and status.\n# TYPE tollgate_requests_total counter\n");
	for (r = 0; r <= MAX_ROUTES; r++)
		for (s = 0; s < NSTATUS; s++) {
			if ((v = load(&shm->requests[r][s])) == 0)
				continue;
			buf_printf(b, "tollgate_requests_total{route=\"%s\","
			    "status=\"%s\"} %llu\n", label_of(r ==
			    MAX_ROUTES ? -1 : (int)r), statuses[s] ?
			    arena_printf(b->a, "%d", statuses[s]) : "other", v);
		}
	buf_puts(b, "# HELP tollgate_request_duration_seconds Time to "
	    "answer, by route.\n# TYPE tollgate_request_duration_seconds "
	    "histogram\n");
	for (r = 0; r <= MAX_ROUTES; r++) {
		const char *label = label_of(r == MAX_ROUTES ? -1 : (int)r);

		for (cum = 0, k = 0; k <= NBUCKETS; k++)
			cum += load(&shm->bucket[r][k]);
		if (cum == 0)
			continue;
		for (cum = 0, k = 0; k < NBUCKETS; k++) {
			cum += load(&shm->bucket[r][k]);
			buf_printf(b, "tollgate_request_duration_seconds_bucket"
			    "{route=\"%s\",le=\"%g\"} %llu\n", label,
			    buckets[k], cum);
		}
		cum += load(&shm->bucket[r][NBUCKETS]);
		buf_printf(b, "tollgate_request_duration_seconds_bucket"
		    "{route=\"%s\",le=\"+Inf\"} %llu\n", label, cum);
		buf_printf(b, "tollgate_request_duration_seconds_sum"
		    "{route=\"%s\"} %.6f\n", label,
		    (double)load(&shm->sum_us[r]) / 1e6);
		buf_printf(b, "tollgate_request_duration_seconds_count"
		    "{route=\"%s\"} %llu\n", label, cum);
	}
	for (k = 0; k < CTR__MAX; k++) {
		if (strcmp(last, counter_names[k][0]) != 0) {
			buf_printf(b, "# TYPE %s counter\n", counter_names[k][0]);
			last = counter_names[k][0];
		}
		buf_printf(b, "%s%s%s%s %llu\n", counter_names[k][0],
		    counter_names[k][1][0] ? "{" : "", counter_names[k][1],
		    counter_names[k][1][0] ? "}" : "",
		    load(&shm->counters[k]));
	}
}
