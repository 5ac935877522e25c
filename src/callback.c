/*
 * The callback_url allow-list check.
 */
#include "autoconfig.h"

#include <string.h>

#include "callback.h"
#include "valid.h"

enum pa_err
pa_callback_check(pa_db_t *db, pa_arena_t *a, const char *domain, const char *url,
    const char **why)
{
	const char *params[1] = { domain };
	pa_db_res_t *r;
	enum pa_err err;

	size_t n = strnlen(url, PA_CALLBACK_URL_MAX + 1);

	/* Bounded before anything is stored: it ends up in a Location header. */
	if (n < 1 || n > PA_CALLBACK_URL_MAX) {
		*why = "length 1..2048";
		return PA_EINPUT;
	}
	if ((*why = pa_valid_url(url)) != NULL)
		return PA_EINPUT;
	if ((err = pa_db_exec(db, a, PA_STMT_CALLBACK_PREFIXES, params, &r)) != PA_OK)
		return err;
	for (int i = 0; i < pa_db_rows(r); i++) {
		const char *prefix = pa_db_value(r, i, 0);

		if (prefix != NULL && pa_url_prefix_match(url, prefix))
			return PA_OK;
	}
	*why = "must start with an allowed callback prefix";
	return PA_EINPUT;
}
