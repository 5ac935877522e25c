/*
 * What readiness means: the migrations this build was made for (names and
 * SHA-256, embedded at build time from sql/migrations) are all applied with
 * the checksums pbx-authctl migrate recorded.  Shared by GET
 * /api/health/ready and pbx-authctl status.
 */
#ifndef PA_HEALTH_H
#define PA_HEALTH_H

#include <stddef.h>

#include "db.h"
#include "pa.h"

typedef struct {
	int version;
	const char *name;	/* "0008_request_id.sql" */
	const char *checksum;	/* SHA-256 of the file, hex */
} pa_migration_t;

extern const pa_migration_t pa_migrations[];
extern const size_t pa_nmigrations;

/*
 * Checks rows of (version, checksum) from schema_migrations against
 * pa_migrations.  Returns PA_OK when every known migration is applied with
 * its checksum; else PA_EINPUT with the first problem in why ("0008_request_id.sql
 * not applied", "... checksum mismatch").
 */
enum pa_err pa_health_migrations(const pa_db_res_t *r, char *why, size_t whylen);

#endif
