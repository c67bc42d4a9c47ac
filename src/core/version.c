/*
 * What this build is: the package version and the schema it expects:
 * the highest migration in sql/ when it was built, and the SHA-256 of
 * the files of sql/routines/ (make writes schema_version.h from them,
 * see Makefile.am).
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

const char *
tg_routines_digest(void)
{
	return TG_ROUTINES_DIGEST;
}
