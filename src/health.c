/*
 * The schema check behind readiness: known migrations against the rows of
 * schema_migrations.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"

const pa_migration_t pa_migrations[] = {
#include "pa_migrations.h"
};
const size_t pa_nmigrations = PA_NELEM(pa_migrations);

enum pa_err
pa_health_migrations(const pa_db_res_t *r, char *why, size_t whylen)
{
	int n = pa_db_rows(r);

	for (size_t i = 0; i < pa_nmigrations; i++) {
		const char *sum = NULL;
		bool found = false;

		for (int row = 0; row < n && !found; row++) {
			const char *v = pa_db_value(r, row, 0);

			if (v != NULL && atoi(v) == pa_migrations[i].version) {
				found = true;
				sum = pa_db_value(r, row, 1);
			}
		}
		if (!found) {
			snprintf(why, whylen, "%s not applied", pa_migrations[i].name);
			return PA_EINPUT;
		}
		if (sum == NULL || strcmp(sum, pa_migrations[i].checksum) != 0) {
			snprintf(why, whylen, "%s %s", pa_migrations[i].name, sum == NULL ?
			    "has no recorded checksum" : "checksum mismatch");
			return PA_EINPUT;
		}
	}
	return PA_OK;
}
