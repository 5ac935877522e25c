/*
 * libpq connection, statement table, reconnect and LISTEN/NOTIFY polling.
 */
#include "autoconfig.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db.h"
#include "log.h"

struct stmt {
	const char *name, *sql;
	int nparams;
	bool idempotent;	/* safe to run again after a lost connection */
};

static const struct stmt stmts[PA_STMT__MAX] = {
	[PA_STMT_SYSTEM_INFO] = { "system_info",
	    "SELECT web_domain, private_ipv4, public_ipv4, enable_ipv6, private_ipv6, public_ipv6,"
	    " primary_dns_server, secondary_dns_server, enable_dataflow, public_base_url"
	    " FROM system_settings WHERE id", 0, true },
	[PA_STMT_TENANT_INFO] = { "tenant_info",
	    "SELECT name, domain, website, avatar_url, ms365_enabled, ms365_directory_id,"
	    " ms365_national_cloud FROM tenants WHERE lower(domain) = lower($1) AND enabled",
	    1, true },
};

struct pa_db {
	PGconn *conn;
	char *conninfo, *appname;
	int flags;
	bool down;		/* the last connection attempt failed (logged once) */
	bool fresh;		/* connected since the last pa_db_poll */
	char errmsg[512];
};

#define RES(r) ((PGresult *)(r))

pa_db_t *
pa_db_new(const char *conninfo, const char *application_name, int flags)
{
	pa_db_t *db = calloc(1, sizeof(*db));

	if (db == NULL)
		return NULL;
	db->conninfo = strdup(conninfo);
	db->appname = strdup(application_name);
	if (db->conninfo == NULL || db->appname == NULL) {
		pa_db_free(db);
		return NULL;
	}
	db->flags = flags;
	return db;
}

void
pa_db_free(pa_db_t *db)
{
	if (db == NULL)
		return;
	if (db->conn != NULL)
		PQfinish(db->conn);
	free(db->conninfo);
	free(db->appname);
	free(db);
}

const char *
pa_db_error(pa_db_t *db)
{
	return db->errmsg;
}

/* Copies libpq's message (one line, no trailing newline) for pa_db_error. */
static void
set_error(pa_db_t *db, const char *msg)
{
	size_t n;

	snprintf(db->errmsg, sizeof(db->errmsg), "%s", msg ? msg : "unknown error");
	n = strlen(db->errmsg);
	while (n > 0 && (db->errmsg[n - 1] == '\n' || db->errmsg[n - 1] == ' '))
		db->errmsg[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (db->errmsg[i] == '\n')
			db->errmsg[i] = ' ';
}

static void
disconnect(pa_db_t *db)
{
	if (db->conn != NULL) {
		PQfinish(db->conn);
		db->conn = NULL;
	}
}

/* Server notices ("relation already exists, skipping") go to the debug log. */
static void
on_notice(void *arg, const char *msg)
{
	(void)arg;
	pa_log_debug("PostgreSQL notice: %s", msg);
}

static enum pa_err
setup(pa_db_t *db)
{
	PGresult *r;

	PQsetNoticeProcessor(db->conn, on_notice, NULL);

	if (db->flags & PA_DB_PREPARE)
		for (int i = 0; i < PA_STMT__MAX; i++) {
			r = PQprepare(db->conn, stmts[i].name, stmts[i].sql, stmts[i].nparams, NULL);
			if (PQresultStatus(r) != PGRES_COMMAND_OK) {
				set_error(db, PQresultErrorMessage(r));
				pa_log_error("cannot prepare statement %s: %s", stmts[i].name, db->errmsg);
				PQclear(r);
				return PA_EDB;
			}
			PQclear(r);
		}
	if (db->flags & PA_DB_LISTEN) {
		r = PQexec(db->conn, "LISTEN " PA_DB_CACHE_CHANNEL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			set_error(db, PQresultErrorMessage(r));
			pa_log_error("cannot LISTEN: %s", db->errmsg);
			PQclear(r);
			return PA_EDB;
		}
		PQclear(r);
	}
	return PA_OK;
}

enum pa_err
pa_db_connect(pa_db_t *db)
{
	/*
	 * Our defaults come first so that the connection string, expanded from
	 * "dbname", can override them (libpq processes keywords in order).
	 */
	const char *const kw[] = { "application_name", "connect_timeout", "tcp_user_timeout",
		"keepalives_idle", "options", "dbname", NULL };
	/*
	 * A request must not wait forever on a database that stopped answering:
	 * statements are cut at 10 s (daemon only: migrations may take longer)
	 * and TCP notices a silent peer.
	 */
	const char *const val[] = { db->appname, "5", "10000", "30",
		(db->flags & PA_DB_PREPARE) ? "-c statement_timeout=10s" : "", db->conninfo, NULL };

	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		return PA_OK;
	disconnect(db);
	db->conn = PQconnectdbParams(kw, val, 1);
	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
		set_error(db, db->conn ? PQerrorMessage(db->conn) : "out of memory");
		if (!db->down)
			pa_log_error("cannot connect to PostgreSQL: %s", db->errmsg);
		else
			pa_log_debug("still cannot connect to PostgreSQL: %s", db->errmsg);
		db->down = true;
		disconnect(db);
		return PA_EDB;
	}
	if (setup(db) != PA_OK) {
		db->down = true;
		disconnect(db);
		return PA_EDB;
	}
	if (db->down)
		pa_log_info("connected to PostgreSQL again");
	db->down = false;
	db->fresh = true;
	return PA_OK;
}

bool
pa_db_poll(pa_db_t *db, pa_db_notify_fn *fn, void *arg)
{
	bool fresh = db->fresh;
	struct pollfd p;
	PGnotify *n;

	db->fresh = false;
	if (db->conn == NULL)
		return false;
	/*
	 * One poll(2) says whether anything arrived.  POLLRDHUP matters: after
	 * a server shutdown the socket holds a FATAL message and then EOF, and
	 * PQconsumeInput would read the message and report the connection
	 * fine until the next call.
	 */
	p.fd = PQsocket(db->conn);
	p.events = POLLIN | POLLRDHUP;
	p.revents = 0;
	if (p.fd < 0 || poll(&p, 1, 0) < 0)
		return !fresh;
	if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
		pa_log_warn("lost the PostgreSQL connection");
		disconnect(db);
		return false;
	}
	if (!(p.revents & POLLIN))
		return !fresh;
	if (!PQconsumeInput(db->conn) || PQstatus(db->conn) != CONNECTION_OK) {
		set_error(db, PQerrorMessage(db->conn));
		pa_log_warn("lost the PostgreSQL connection: %s", db->errmsg);
		disconnect(db);
		return false;
	}
	while ((n = PQnotifies(db->conn)) != NULL) {
		if (strcmp(n->relname, PA_DB_CACHE_CHANNEL) == 0)
			fn(arg, n->extra);
		PQfreemem(n);
	}
	return !fresh;
}

static void
res_cleanup(void *p)
{
	PQclear(p);
}

/* Maps a result to a status; logs and records server errors. */
static enum pa_err
check_result(pa_db_t *db, PGresult *r, const char *what)
{
	const char *state;

	switch (PQresultStatus(r)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		return PA_OK;
	default:
		break;
	}
	set_error(db, r ? PQresultErrorMessage(r) : PQerrorMessage(db->conn));
	state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (state != NULL && strcmp(state, "23505") == 0)
		return PA_ECONFLICT;
	if (PQstatus(db->conn) != CONNECTION_OK) {
		pa_log_warn("lost the PostgreSQL connection during %s: %s", what, db->errmsg);
		disconnect(db);
	} else {
		pa_log_error("%s failed: %s", what, db->errmsg);
	}
	return PA_EDB;
}

enum pa_err
pa_db_exec(pa_db_t *db, pa_arena_t *a, enum pa_stmt id, const char *const *params,
    pa_db_res_t **out)
{
	const struct stmt *st = &stmts[id];
	PGresult *r = NULL;
	enum pa_err rv;

	*out = NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		bool was_connected = db->conn != NULL;

		if ((rv = pa_db_connect(db)) != PA_OK)
			return rv;
		r = PQexecPrepared(db->conn, st->name, st->nparams, params, NULL, NULL, 0);
		rv = check_result(db, r, st->name);
		if (rv == PA_OK)
			break;
		PQclear(r);
		r = NULL;
		/* A connection that died while idle: retry once on a fresh one. */
		if (rv != PA_EDB || db->conn != NULL || !was_connected || !st->idempotent)
			return rv;
	}
	if (r == NULL)
		return PA_EDB;
	if (pa_arena_cleanup(a, res_cleanup, r) != 0)
		return PA_ENOMEM;
	*out = (pa_db_res_t *)r;
	return PA_OK;
}

enum pa_err
pa_db_query(pa_db_t *db, const char *sql, int nparams, const char *const *params,
    pa_db_res_t **out)
{
	PGresult *r;
	enum pa_err rv;

	if (out != NULL)
		*out = NULL;
	if ((rv = pa_db_connect(db)) != PA_OK)
		return rv;
	r = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if ((rv = check_result(db, r, "query")) != PA_OK || out == NULL)
		PQclear(r);
	else
		*out = (pa_db_res_t *)r;
	return rv;
}

enum pa_err
pa_db_script(pa_db_t *db, const char *sql)
{
	PGresult *r;
	enum pa_err rv;

	if ((rv = pa_db_connect(db)) != PA_OK)
		return rv;
	r = PQexec(db->conn, sql);
	rv = check_result(db, r, "script");
	PQclear(r);
	return rv;
}

int
pa_db_rows(const pa_db_res_t *r)
{
	return PQntuples(RES(r));
}

const char *
pa_db_value(const pa_db_res_t *r, int row, int col)
{
	if (PQgetisnull(RES(r), row, col))
		return NULL;
	return PQgetvalue(RES(r), row, col);
}

bool
pa_db_bool(const pa_db_res_t *r, int row, int col)
{
	const char *v = pa_db_value(r, row, col);

	return v != NULL && v[0] == 't';
}

long
pa_db_affected(const pa_db_res_t *r)
{
	return strtol(PQcmdTuples(RES(r)), NULL, 10);
}

void
pa_db_res_free(pa_db_res_t *r)
{
	PQclear(RES(r));
}
