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
