/*
 * pbx-authctl: the operator's command line.  It reads the daemon's
 * configuration for the database and dispatches to the command modules.
 */
#include "autoconfig.h"

#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "log.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: pbx-authctl [-c CONFIG] COMMAND [ARGS…] [--tsv | --json]\n"
	    "\n"
	    "  -c CONFIG   configuration file (default %s)\n"
	    "  --tsv       list and show print tab-separated lines without a header\n"
	    "              (the default when standard output is not a terminal)\n"
	    "  --json      list and show print JSON\n"
	    "\n"
	    "commands:\n"
	    "  migrate [--status] [--dir DIR]      apply pending schema migrations\n"
	    "  system show | set KEY=VALUE…        system metadata\n"
	    "  tenant add|set|show|list|enable|disable|delete …   tenants\n"
	    "  user add|passwd|set|list|show|delete …   users and system-level accounts\n"
	    "  session list|revoke …               signed-in sessions\n"
	    "  ms365 set|show …                    a tenant's Microsoft 365 sign-in\n"
	    "  status                              readiness: database, migrations, queue (exit 1: not ready)\n"
	    "  throttle list | clear …             failed sign-in blocks\n"
	    "  audit [--domain D] [--user U] [--event E] [--outcome O] [--since WHEN]\n"
	    "                                      the audit trail\n"
	    "\n"
	    "Each command takes --help.\n", pa_config_default_path());
}

void
ctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("pbx-authctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

bool
ctl_wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	return false;
}

const char *
ctl_bool(const char *v)
{
	static const char *const t[] = { "true", "yes", "on", "1" };
	static const char *const f[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, t[i]) == 0)
			return "true";
		if (strcasecmp(v, f[i]) == 0)
			return "false";
	}
	return NULL;
}

int
ctl_assignments(int argc, char **argv, const ctl_field_t *fields, size_t nfields,
    ctl_check_fn *check, const ctl_field_t **todo, const char **vals, size_t *n)
{
	*n = 0;
	for (int i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '='), *why;
		size_t klen = eq ? (size_t)(eq - argv[i]) : 0;
		const ctl_field_t *f = NULL;

		if (eq == NULL) {
			ctl_err("expected KEY=VALUE, got '%s'", argv[i]);
			return CTL_USAGE;
		}
		for (size_t k = 0; k < nfields; k++)
			if (strlen(fields[k].key) == klen && strncmp(fields[k].key, argv[i], klen) == 0)
				f = &fields[k];
		if (f == NULL) {
			ctl_err("unknown key '%.*s'", (int)klen, argv[i]);
			return CTL_USAGE;
		}
		for (size_t k = 0; k < *n; k++)
			if (todo[k] == f) {
				ctl_err("key '%s' given twice", f->key);
				return CTL_USAGE;
			}
		if ((why = check(f->kind, eq + 1, &vals[*n])) != NULL) {
			ctl_err("%s: %s", f->key, why);
			return CTL_FAIL;
		}
		todo[(*n)++] = f;
	}
	return CTL_OK;
}

bool
ctl_exec(ctl_t *c, const char *sql)
{
	/* pa_db_* logs the server's message. */
	return pa_db_query(c->db, sql, 0, NULL, NULL) == PA_OK;
}

const char *
ctl_db_reason(ctl_t *c)
{
	static const char *const cut[] = { " DETAIL:", " HINT:", " CONTEXT:" };
	static char buf[512];
	const char *msg = pa_db_error(c->db);
	size_t n;

	if (strncmp(msg, "ERROR:", 6) == 0)
		msg += 6 + strspn(msg + 6, " ");
	snprintf(buf, sizeof(buf), "%s", msg);
	for (size_t i = 0; i < PA_NELEM(cut); i++) {
		char *p = strstr(buf, cut[i]);

		if (p != NULL)
			*p = '\0';
	}
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == ' ')
		buf[--n] = '\0';
	return buf;
}

enum pa_err
ctl_query_quiet(ctl_t *c, const char *sql, int nparams, const char *const *params,
    pa_db_res_t **out)
{
	enum pa_log_level level = pa_log_get_level();
	enum pa_err rv;

	if (out != NULL)
		*out = NULL;
	if ((rv = pa_db_connect(c->db)) != PA_OK)
		return rv;
	pa_log_set_level(PA_LOG__MAX);
	rv = pa_db_query(c->db, sql, nparams, params, out);
	pa_log_set_level(level);
	return rv;
}

int
ctl_unknown(const char *cmd, int argc, char **argv)
{
	if (argc >= 2)
		ctl_err("unknown subcommand '%s' of %s (see pbx-authctl %s --help)", argv[1], cmd,
		    cmd);
	else
		ctl_err("usage: pbx-authctl %s SUBCOMMAND … (see pbx-authctl %s --help)", cmd, cmd);
	return CTL_USAGE;
}

/*
 * The operator as audit rows name it: the login name of the effective
 * user, and the user sudo names (SUDO_USER, set by sudo and by anyone who
 * can set the environment: a hint, not a proof) with characters outside
 * [A-Za-z0-9._@-] replaced.
 */
static void
operator_name(char *buf, size_t size)
{
	struct passwd *pw = getpwuid(geteuid());
	const char *sudo = getenv("SUDO_USER");
	size_t n;

	if (pw != NULL && pw->pw_name != NULL)
		n = (size_t)snprintf(buf, size, "operator=%s", pw->pw_name);
	else
		n = (size_t)snprintf(buf, size, "operator=uid:%u", (unsigned)geteuid());
	if (sudo != NULL && *sudo != '\0' && n < size) {
		snprintf(buf + n, size - n, " sudo_user=%.64s", sudo);
		for (char *p = buf + n + 11; *p; p++)
			if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-",
			    *p) == NULL)
				*p = '?';
	}
}

/* Takes --tsv and --json out of argv (anywhere after the command); false if both. */
static bool
output_options(int *argc, char **argv)
{
	bool tsv = false, json = false;
	int n = 0;

	for (int i = 0; i < *argc; i++) {
		if (strcmp(argv[i], "--tsv") == 0)
			tsv = true;
		else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else
			argv[n++] = argv[i];
	}
	argv[n] = NULL;
	*argc = n;
	ctl_format = json ? CTL_FMT_JSON : tsv || !isatty(STDOUT_FILENO) ? CTL_FMT_TSV :
	    CTL_FMT_TABLE;
	return !(tsv && json);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct {
		const char *name;
		int (*fn)(ctl_t *, int, char **);
	} cmds[] = {
		{ "migrate", ctl_migrate }, { "system", ctl_system }, { "tenant", ctl_tenant },
		{ "user", ctl_user }, { "session", ctl_session }, { "audit", ctl_audit },
		{ "ms365", ctl_ms365 }, { "throttle", ctl_throttle }, { "status", ctl_status },
	};
	const char *path = pa_config_default_path();
	const char *params[1];
	ctl_t c = { NULL, NULL };
	char err[512], op[160];
	int ch, cmd = -1, rv = CTL_FAIL;

	pa_log_init("pbx-authctl");
	pa_log_set_level(PA_LOG_WARN);
	/* "+": stop at the command so that its options are its own. */
	while ((ch = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'h': usage(stdout); return CTL_OK;
		default: usage(stderr); return CTL_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return CTL_USAGE;
	}
	if (strcmp(argv[0], "help") == 0) {
		usage(stdout);
		return CTL_OK;
	}
	for (size_t i = 0; i < PA_NELEM(cmds); i++)
		if (strcmp(argv[0], cmds[i].name) == 0)
			cmd = (int)i;
	if (cmd < 0) {
		ctl_err("unknown command '%s'", argv[0]);
		usage(stderr);
		return CTL_USAGE;
	}
	if (!output_options(&argc, argv)) {
		ctl_err("--tsv and --json exclude each other");
		return CTL_USAGE;
	}
	if ((c.cfg = pa_config_new()) == NULL) {
		ctl_err("out of memory");
		return CTL_FAIL;
	}
	/* --help works without a configuration. */
	if (!ctl_wants_help(argc, argv) && pa_config_load(c.cfg, path, err, sizeof(err)) != PA_OK) {
		ctl_err("%s", err);
		goto out;
	}
	/* ctl_database: the owner role; pbx-authd's runtime role may not change tenants. */
	if ((c.db = pa_db_new(c.cfg->ctl_database ? c.cfg->ctl_database : c.cfg->database ?
	    c.cfg->database : "", "pbx-authctl", 0)) == NULL) {
		ctl_err("out of memory");
		goto out;
	}
	optind = 0;	/* (GNU: re-initialise) commands parse their own options with getopt */
	if (!ctl_wants_help(argc, argv)) {
		/* Every audit row this connection writes names the operator (0005). */
		operator_name(op, sizeof(op));
		params[0] = op;
		/* status writes nothing and reports an unreachable database itself. */
		if (pa_db_query(c.db, "SELECT set_config('pbx_auth.operator', $1, false)", 1,
		    params, NULL) != PA_OK && cmds[cmd].fn != ctl_status)
			goto out;
	}
	rv = cmds[cmd].fn(&c, argc, argv);
out:
	pa_db_free(c.db);
	pa_config_free(c.cfg);
	return rv;
}
