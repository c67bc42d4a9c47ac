/*
 * Metrics shared by all the workers of one host: an anonymous shared
 * mapping made by the master before it forks, updated with atomic adds,
 * rendered in Prometheus's text format (docs/metrics.md lists every
 * series).  They are for /metrics only and may be lost with the master;
 * no fact lives only here.
 *
 * Two kinds:
 *   - requests by route, method and status, and their latency histogram
 *     by route and method (metrics_request);
 *   - the series of the table below (metrics_count, metrics_set), one
 *     line each: its family, its labels, and (on the family's first
 *     line) its type and help.  Adding a counter or gauge is one enum
 *     value in core.h and one line here.
 */
#include <sys/mman.h>

#include <string.h>
#include <time.h>

#include "core/core.h"

#define MAX_ROUTES	128
#define NBUCKETS	12

/* The statuses we count one by one; others fall into the last slot. */
static const int statuses[] = {
	200, 201, 202, 204, 302, 303, 400, 401, 402, 403, 404, 405, 409,
	413, 415, 422, 429, 500, 503, 0
};
#define NSTATUS	(sizeof(statuses) / sizeof(statuses[0]))

/* The methods we label; others are "other" (the last slot). */
static const char *const methods[] = {
	"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"
};
#define NMETHOD	(sizeof(methods) / sizeof(methods[0]))

/* Upper bounds of the latency histogram, in seconds. */
static const double buckets[NBUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1.0, 2.5
};

/*
 * The series of enum counter.  Lines of one family are next to each
 * other; the first carries the type and help.  key is what
 * metrics_gate() matches a denial's code against.
 */
static const struct series {
	const char	*name;
	const char	*labels;	/* "" for none */
	const char	*type;		/* first of its family: counter|gauge */
	const char	*help;		/* first of its family */
	const char	*key;
} series[CTR__MAX] = {
	[CTR_GATE_ALLOW] = { "tollgate_gate_decisions_total",
	    "decision=\"allow\",code=\"ok\"", "counter",
	    "Gate checks: allowed, or denied with "
	    "the contract's error code.", "ok" },
#define DENY(e, c) [e] = { "tollgate_gate_decisions_total",		\
	    "decision=\"deny\",code=\"" c "\"", NULL, NULL, c }
	DENY(CTR_GATE_UNAUTHENTICATED, "unauthenticated"),
	DENY(CTR_GATE_TOKEN_EXPIRED, "token_expired"),
	DENY(CTR_GATE_ACCOUNT_DISABLED, "account_disabled"),
	DENY(CTR_GATE_FORBIDDEN, "forbidden"),
	DENY(CTR_GATE_EMAIL_NOT_VERIFIED, "email_not_verified"),
	DENY(CTR_GATE_SUBSCRIPTION_REQUIRED, "subscription_required"),
	DENY(CTR_GATE_TRIAL_CREDITS_EXHAUSTED, "trial_credits_exhausted"),
	DENY(CTR_GATE_QUOTA_EXCEEDED, "quota_exceeded"),
	DENY(CTR_GATE_RATE_LIMITED, "rate_limited"),
	DENY(CTR_GATE_UNAVAILABLE, "unavailable"),
	DENY(CTR_GATE_BAD_REQUEST, "bad_request"),
	DENY(CTR_GATE_OTHER, "other"),
#undef DENY
	[CTR_SPEND_OK] = { "tollgate_credit_spends_total", "result=\"ok\"",
	    "counter", "Credit spends at the gate: made, or refused for "
	    "want of credits.", NULL },
	[CTR_SPEND_REFUSED] = { "tollgate_credit_spends_total",
	    "result=\"refused\"", NULL, NULL, NULL },
	[CTR_DB_RECONNECT] = { "tollgate_db_connects_total", "", "counter",
	    "Connections made to MariaDB by the workers (a steady rise: the "
	    "link keeps breaking).", NULL },
	[CTR_PW_HASH] = { "tollgate_password_hashes_total", "", "counter",
	    "Argon2id password hashes computed (sign-ups, logins, resets, "
	    "password checks).", NULL },
	[CTR_PW_BUSY] = { "tollgate_password_hashes_refused_total", "",
	    "counter", "Password hashes refused (503) because the host's cap "
	    "of concurrent hashes stayed full.", NULL },
};

struct shared {
	unsigned long long	 requests[MAX_ROUTES + 1][NMETHOD][NSTATUS];
	unsigned long long	 bucket[MAX_ROUTES + 1][NMETHOD][NBUCKETS + 1];
	unsigned long long	 sum_us[MAX_ROUTES + 1][NMETHOD];
	unsigned long long	 counters[CTR__MAX];
	long long		 started;	/* Unix time of metrics_init */
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
	shm->started = (long long)time(NULL);
	return 0;
}

/* Index of a route in the shared table; unmatched paths share the last. */
static size_t
route_slot(int route_index)
{
	return route_index < 0 || route_index >= MAX_ROUTES ?
	    MAX_ROUTES : (size_t)route_index;
}

static size_t
method_slot(const char *method)
{
	size_t	 m;

	for (m = 0; method != NULL && m < NMETHOD - 1; m++)
		if (strcmp(methods[m], method) == 0)
			return m;
	return NMETHOD - 1;
}

void
metrics_request(int route_index, const char *method, int status,
    double seconds)
{
	size_t	 r = route_slot(route_index), m = method_slot(method), s, b;

	if (shm == NULL)
		return;
	for (s = 0; s < NSTATUS - 1 && statuses[s] != status; s++)
		continue;
	for (b = 0; b < NBUCKETS && seconds > buckets[b]; b++)
		continue;
	__atomic_fetch_add(&shm->requests[r][m][s], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&shm->bucket[r][m][b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&shm->sum_us[r][m],
	    (unsigned long long)(seconds * 1e6), __ATOMIC_RELAXED);
}

void
metrics_count(enum counter c, unsigned long long n)
{
	if (shm != NULL && c < CTR__MAX)
		__atomic_fetch_add(&shm->counters[c], n, __ATOMIC_RELAXED);
}

void
metrics_set(enum counter c, unsigned long long v)
{
	if (shm != NULL && c < CTR__MAX)
		__atomic_store_n(&shm->counters[c], v, __ATOMIC_RELAXED);
}

void
metrics_gate(const char *code)
{
	size_t	 i;

	if (code == NULL) {
		metrics_count(CTR_GATE_ALLOW, 1);
		return;
	}
	for (i = CTR_GATE_UNAUTHENTICATED; i < CTR_GATE_OTHER; i++)
		if (strcmp(series[i].key, code) == 0) {
			metrics_count((enum counter)i, 1);
			return;
		}
	metrics_count(CTR_GATE_OTHER, 1);
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
label_of(size_t slot)
{
	int	 i = slot == MAX_ROUTES ? -1 : (int)slot;

	return route_label_fn != NULL ? route_label_fn(i) : "unmatched";
}

/*
 * Several routes may share a pattern (one per method): their counts are
 * rendered once, summed.  leader[q] is the first slot whose label equals
 * slot q's; it is worked out at each render.
 */
static size_t	 leader[MAX_ROUTES + 1];

static void
group_routes(void)
{
	size_t	 q, r;

	for (q = 0; q <= MAX_ROUTES; q++) {
		leader[q] = q;
		for (r = 0; r < q; r++)
			if (leader[r] == r &&
			    strcmp(label_of(r), label_of(q)) == 0) {
				leader[q] = r;
				break;
			}
	}
}

/*
 * The sum, over every slot led by r, of one cell: rows of stride bytes
 * from base, the cell at off within a row.
 */
static unsigned long long
sum_routes(size_t r, const void *base, size_t stride, size_t off)
{
	const char		*p = base;
	unsigned long long	 sum = 0;
	size_t			 q;

	for (q = r; q <= MAX_ROUTES; q++)
		if (leader[q] == r)
			sum += load((const unsigned long long *)(const void *)
			    (p + q * stride + off));
	return sum;
}

/* CELL(shm->requests, [m][s]): that cell summed over r's group. */
#define CELL(arr, idx) sum_routes(r, (arr), sizeof((arr)[0]),		\
	(size_t)((const char *)&(arr)[0]idx - (const char *)&(arr)[0]))

static void
render_requests(struct buf *b)
{
	size_t			 r, m, s, k;
	unsigned long long	 v, cum, cnt;

	buf_puts(b, "# HELP tollgate_requests_total Requests answered by "
	    "tollgate, by route pattern, method and status.\n"
	    "# TYPE tollgate_requests_total counter\n");
	group_routes();
	for (r = 0; r <= MAX_ROUTES; r++) {
		if (leader[r] != r)
			continue;
		for (m = 0; m < NMETHOD; m++)
			for (s = 0; s < NSTATUS; s++) {
				if ((v = CELL(shm->requests, [m][s])) == 0)
					continue;
				buf_printf(b, "tollgate_requests_total{route="
				    "\"%s\",method=\"%s\",status=\"%s\"} "
				    "%llu\n", label_of(r), methods[m],
				    statuses[s] ? arena_printf(b->a, "%d",
				    statuses[s]) : "other", v);
			}
	}
	buf_puts(b, "# HELP tollgate_request_duration_seconds Time from the "
	    "request read to the answer written, in the worker, by route "
	    "pattern and method.\n"
	    "# TYPE tollgate_request_duration_seconds histogram\n");
	for (r = 0; r <= MAX_ROUTES; r++) {
		if (leader[r] != r)
			continue;
		for (m = 0; m < NMETHOD; m++) {
			for (cnt = 0, k = 0; k <= NBUCKETS; k++)
				cnt += CELL(shm->bucket, [m][k]);
			if (cnt == 0)
				continue;
			for (cum = 0, k = 0; k < NBUCKETS; k++) {
				cum += CELL(shm->bucket, [m][k]);
				buf_printf(b, "tollgate_request_duration_"
				    "seconds_bucket{route=\"%s\",method=\"%s\","
				    "le=\"%g\"} %llu\n", label_of(r),
				    methods[m], buckets[k], cum);
			}
			buf_printf(b, "tollgate_request_duration_seconds_"
			    "bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"} "
			    "%llu\n", label_of(r), methods[m], cnt);
			buf_printf(b, "tollgate_request_duration_seconds_sum"
			    "{route=\"%s\",method=\"%s\"} %.6f\n",
			    label_of(r), methods[m],
			    (double)CELL(shm->sum_us, [m]) / 1e6);
			buf_printf(b, "tollgate_request_duration_seconds_"
			    "count{route=\"%s\",method=\"%s\"} %llu\n",
			    label_of(r), methods[m], cnt);
		}
	}
}

void
metrics_render(struct buf *b)
{
	size_t		 k;

	if (shm == NULL)
		return;
	buf_printf(b, "# HELP tollgate_build_info The version of tollgate "
	    "and the schema version it expects (always 1).\n"
	    "# TYPE tollgate_build_info gauge\n"
	    "tollgate_build_info{version=\"%s\",schema=\"%d\"} 1\n",
	    tg_version(), tg_schema_version());
	buf_printf(b, "# HELP tollgate_start_time_seconds When this tollgated "
	    "master started, in Unix time.\n"
	    "# TYPE tollgate_start_time_seconds gauge\n"
	    "tollgate_start_time_seconds %lld\n", shm->started);
	render_requests(b);
	for (k = 0; k < CTR__MAX; k++) {
		if (series[k].help != NULL)
			buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n",
			    series[k].name, series[k].help, series[k].name,
			    series[k].type);
		buf_printf(b, "%s%s%s%s %llu\n", series[k].name,
		    series[k].labels[0] ? "{" : "", series[k].labels,
		    series[k].labels[0] ? "}" : "",
		    load(&shm->counters[k]));
	}
}
