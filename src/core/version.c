/*
 * What this build is: the package version and the schema version it
 * expects, the highest migration in sql/ when it was built (make writes
 * schema_version.h from the file names, see Makefile.am).
 */
#include "core/core.h"
#include "core/schema_version.h"

const char *
tg_version(void)
{
	return PACKAGE_VERSION;
}

int
tg_schema_version(void)
{
	return TG_SCHEMA_VERSION;
}
