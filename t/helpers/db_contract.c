/*
 * The statement contract check of db.c against a real database, for
 * t/db_contract.t:
 *
 *   db_contract CONNINFO                      connect (prepares and checks)
 *   db_contract CONNINFO STMT NPARAMS NCOLS   then check again with statement
 *                                             STMT's expected counts replaced
 *
 * Prints connect=OK|EDB and, with STMT, check=OK|EDB.  Exit 0 when the calls
 * were made, 2 on a usage error.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"

int
main(int argc, char **argv)
{
	pa_db_t *db;
	pa_db_expect_t o;
	enum pa_err e;

	if (argc != 2 && argc != 5) {
		fprintf(stderr, "usage: db_contract CONNINFO [STMT_INDEX NPARAMS NCOLS]\n");
		return 2;
	}
	pa_log_init("db_contract");
	if ((db = pa_db_new(argv[1], "db_contract", PA_DB_PREPARE)) == NULL)
		return 1;
	e = pa_db_connect(db);
	printf("connect=%s\n", e == PA_OK ? "OK" : "EDB");
	if (argc == 5 && e == PA_OK) {
		o.id = (enum pa_stmt)atoi(argv[2]);
		o.nparams = atoi(argv[3]);
		o.ncols = atoi(argv[4]);
		e = pa_db_check_statements(db, &o);
		printf("check=%s\n", e == PA_OK ? "OK" : "EDB");
	}
	pa_db_free(db);
	return 0;
}
