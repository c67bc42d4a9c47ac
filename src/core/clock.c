/*
 * The clock the layers share.
 */
#include <time.h>

#include "core/core.h"

double
now_seconds(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
