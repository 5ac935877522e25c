/*
 * pbx-authctl migrate: applies sql/migrations/NNNN_name.sql files in order,
 * each in its own transaction, under an advisory lock, recording a SHA-256
 * per file and refusing to go on when an applied file has changed.
 */
#include "autoconfig.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "ctl/ctl.h"

#define MAX_FILES 1000
#define MAX_FILE_SIZE (4 * 1024 * 1024)
/* pg_advisory_lock key shared by every pbx-authctl migrate ("pbxa"). */
#define LOCK_KEY "1885497441"

struct mfile {
	int version;
	char name[256];
	char *sql;
	char sum[PA_SHA256_HEX_LEN + 1];
	enum { PENDING, APPLIED, UNRECORDED, CHANGED } state;
};

/*
 * The schema pbx_auth (0005) first, so that a new database gets every table
 * there from 0001 on (pbx-authctl connects with search_path pbx_auth,
 * public); creating it needs CREATE on the database, which a DBA may
 * instead use to create it for the owner role.  schema_migrations is
 * created only when there is none on the search path: before 0005 moves it,
 * an older database has it in public.
 */
static const char create_sql[] =
    "DO $$ BEGIN"
    " IF to_regnamespace('pbx_auth') IS NULL THEN CREATE SCHEMA pbx_auth; END IF;"
    " IF to_regclass('schema_migrations') IS NULL THEN"
    "  CREATE TABLE pbx_auth.schema_migrations (version integer PRIMARY KEY,"
    "  name text NOT NULL, checksum text, applied_at timestamptz NOT NULL DEFAULT now());"
    " END IF; END $$";

static void
usage(FILE *f)
{
	fprintf(f, "usage: pbx-authctl migrate [--status] [--dir DIR]\n"
	    "  Applies the pending migration files of DIR (default: migrations_dir of the\n"
	    "  configuration) in order, each in one transaction.  An applied file that has\n"
	    "  changed since stops the run before anything is applied.\n"
	    "  --status   list each file as applied, pending or changed; apply nothing.\n"
	    "             Exit status 0: up to date, 3: files pending, 4: an applied file\n"
	    "             changed (for deployment scripts).\n");
}

/* NNNN_name.sql, with a lower-case name: returns the version, or -1. */
static int
parse_name(const char *n)
{
	size_t len = strlen(n);

	if (len < 10 || len >= 256 || strspn(n, "0123456789") != 4 || n[4] != '_' ||
	    strcmp(n + len - 4, ".sql") != 0 ||
	    strspn(n + 5, "abcdefghijklmnopqrstuvwxyz0123456789_") != len - 9)
		return -1;
	return atoi(n);
}

static int
cmp_files(const void *a, const void *b)
{
	return ((const struct mfile *)a)->version - ((const struct mfile *)b)->version;
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n;

	if (f == NULL) {
		ctl_err("%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(MAX_FILE_SIZE + 1)) == NULL) {
		ctl_err("out of memory");
		goto out;
	}
	n = fread(buf, 1, MAX_FILE_SIZE + 1, f);
	if (ferror(f) || n > MAX_FILE_SIZE || memchr(buf, '\0', n) != NULL) {
		ctl_err("%s: unreadable, larger than 4 MiB or not text", path);
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = '\0';
out:
	fclose(f);
	return buf;
}

/* Loads the directory's migration files sorted by version; returns the count or -1. */
static int
load_files(const char *dir, struct mfile *files)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL) {
		ctl_err("%s: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		char path[4096];
		int v = parse_name(e->d_name);

		if (v < 0)
			continue;
		if (n == MAX_FILES) {
			ctl_err("%s: more than %d migration files", dir, MAX_FILES);
			goto fail;
		}
		files[n].version = v;
		snprintf(files[n].name, sizeof(files[n].name), "%s", e->d_name);
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		files[n].state = PENDING;
		if ((files[n].sql = read_file(path)) == NULL)
			goto fail;
		n++;
		if (pa_sha256_hex(files[n - 1].sql, strlen(files[n - 1].sql), files[n - 1].sum) != PA_OK)
			goto fail;
	}
	closedir(d);
	qsort(files, (size_t)n, sizeof(*files), cmp_files);
	for (int i = 1; i < n; i++)
		if (files[i].version == files[i - 1].version) {
			ctl_err("%s and %s have the same version", files[i - 1].name, files[i].name);
			goto fail_closed;
		}
	if (n == 0)
		ctl_err("warning: no migration files in %s", dir);
	return n;
fail:
	closedir(d);
fail_closed:
	for (int i = 0; i < n; i++)
		free(files[i].sql);
	return -1;
}

/* Marks each file applied/unrecorded/changed from schema_migrations. */
static bool
read_applied(ctl_t *c, struct mfile *files, int n, bool have_table)
{
	pa_db_res_t *r;

	if (!have_table)
		return true;
	if (pa_db_query(c->db, "SELECT version, checksum, name FROM schema_migrations",
	    0, NULL, &r) != PA_OK)
		return false;
	for (int row = 0; row < pa_db_rows(r); row++) {
		int v = atoi(pa_db_value(r, row, 0));
		const char *sum = pa_db_value(r, row, 1);
		bool found = false;

		for (int i = 0; i < n; i++) {
			if (files[i].version != v)
				continue;
			found = true;
			files[i].state = sum == NULL ? UNRECORDED :
			    strcmp(sum, files[i].sum) == 0 ? APPLIED : CHANGED;
		}
		if (!found)
			ctl_err("warning: applied migration %s has no file here",
			    pa_db_value(r, row, 2));
	}
	pa_db_res_free(r);
	return true;
}

static bool
table_exists(ctl_t *c, bool *exists)
{
	pa_db_res_t *r;

	if (pa_db_query(c->db, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL,
	    &r) != PA_OK)
		return false;
	*exists = pa_db_bool(r, 0, 0);
	pa_db_res_free(r);
	return true;
}

static bool
record(ctl_t *c, const struct mfile *f)
{
	char version[16];
	const char *params[3] = { version, f->name, f->sum };

	snprintf(version, sizeof(version), "%d", f->version);
	return pa_db_query(c->db, "INSERT INTO schema_migrations (version, name, checksum)"
	    " VALUES ($1::integer, $2, $3) ON CONFLICT (version) DO UPDATE"
	    " SET name = EXCLUDED.name, checksum = EXCLUDED.checksum", 3, params, NULL) == PA_OK;
}

static int
apply(ctl_t *c, struct mfile *files, int n)
{
	int applied = 0;

	for (int i = 0; i < n; i++)
		if (files[i].state == CHANGED) {
			ctl_err("migration %s was changed after it was applied (checksum mismatch);"
			    " nothing applied", files[i].name);
			return CTL_FAIL;
		}
	for (int i = 0; i < n; i++) {
		struct mfile *f = &files[i];

		if (f->state == UNRECORDED) {
			/* Applied by hand (psql): adopt its checksum. */
			if (!record(c, f))
				return CTL_FAIL;
			printf("recorded %s (applied outside pbx-authctl)\n", f->name);
			continue;
		}
		if (f->state != PENDING)
			continue;
		if (!ctl_exec(c, "BEGIN"))
			return CTL_FAIL;
		if (pa_db_script(c->db, f->sql) != PA_OK || !record(c, f) || !ctl_exec(c, "COMMIT")) {
			ctl_err("migration %s failed and was rolled back: %s", f->name,
			    pa_db_error(c->db));
			(void)ctl_exec(c, "ROLLBACK");
			return CTL_FAIL;
		}
		printf("applied %s\n", f->name);
		applied++;
	}
	if (applied == 0)
		printf("database is up to date\n");
	return CTL_OK;
}

int
ctl_migrate(ctl_t *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "status", no_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct mfile files[MAX_FILES];
	const char *dir = c->cfg->migrations_dir;
	bool status = false, have_table = false, locked = false;
	int ch, n, rv = CTL_FAIL;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 's': status = true; break;
		case 'd': dir = optarg; break;
		case 'h': usage(stdout); return CTL_OK;
		default: usage(stderr); return CTL_USAGE;
		}
	}
	if (optind != argc || dir == NULL) {
		usage(stderr);
		return CTL_USAGE;
	}
	if ((n = load_files(dir, files)) < 0)
		return CTL_FAIL;
	if (pa_db_connect(c->db) != PA_OK)
		goto out;
	if (!status) {
		/* Serialises concurrent runs, including the CREATE TABLE below. */
		if (!ctl_exec(c, "SELECT pg_advisory_lock(" LOCK_KEY ")"))
			goto out;
		locked = true;
		if (!ctl_exec(c, create_sql))
			goto out;
	}
	if (!table_exists(c, &have_table) || !read_applied(c, files, n, have_table))
		goto out;
	if (status) {
		static const char *const names[] = { "pending", "applied", "applied", "changed" };

		rv = CTL_OK;
		for (int i = 0; i < n; i++) {
			printf("%s %s%s\n", names[files[i].state], files[i].name,
			    files[i].state == CHANGED ? " (checksum mismatch)" :
			    files[i].state == UNRECORDED ? " (no checksum recorded)" : "");
			if (files[i].state == CHANGED)
				rv = CTL_MIGRATE_CHANGED;
			else if (files[i].state == PENDING && rv == CTL_OK)
				rv = CTL_MIGRATE_PENDING;
		}
	} else {
		rv = apply(c, files, n);
	}
out:
	if (locked)
		(void)ctl_exec(c, "SELECT pg_advisory_unlock(" LOCK_KEY ")");
	for (int i = 0; i < n; i++)
		free(files[i].sql);
	return rv;
}
