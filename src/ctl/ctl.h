/*
 * pbx-authctl's commands and the helpers they share.  Exit statuses: 0 done,
 * 1 failed (the message says why), 2 usage error.
 */
#ifndef PA_CTL_H
#define PA_CTL_H

#include <stdbool.h>

#include "config.h"
#include "db.h"

enum { CTL_OK = 0, CTL_FAIL = 1, CTL_USAGE = 2 };

typedef struct {
	pa_config_t *cfg;
	pa_db_t *db;
} ctl_t;

/* A settable column: its KEY, a kind the command's checker knows, its one UPDATE. */
typedef struct {
	const char *key;
	int kind;
	const char *sql;
} ctl_field_t;

/* Returns NULL, or what is wrong with v; *out is the value to store (NULL: SQL NULL). */
typedef const char *ctl_check_fn(int kind, const char *v, const char **out);

/*
 * Parses KEY=VALUE arguments against fields[0..nfields), validating all of
 * them before anything is changed.  Fills todo[] and vals[] (nfields entries
 * each) and *n.  Returns CTL_OK, CTL_USAGE (unknown key, no '=', a key twice)
 * or CTL_FAIL (a bad value); the message is printed.
 */
int ctl_assignments(int argc, char **argv, const ctl_field_t *fields, size_t nfields,
    ctl_check_fn *check, const ctl_field_t **todo, const char **vals, size_t *n);

int ctl_migrate(ctl_t *c, int argc, char **argv);
int ctl_system(ctl_t *c, int argc, char **argv);
int ctl_tenant(ctl_t *c, int argc, char **argv);

/* Prints "pbx-authctl: message" on stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* True when argv holds -h or --help. */
bool ctl_wants_help(int argc, char **argv);
/* Parses true/false, yes/no, on/off, 1/0 into "true"/"false"; NULL if none of them. */
const char *ctl_bool(const char *v);
/* Runs BEGIN / COMMIT / ROLLBACK; false (message printed) on failure. */
bool ctl_exec(ctl_t *c, const char *sql);

#endif
