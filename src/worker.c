/*
 * The worker's accept loop: per request, read PostgreSQL notifications,
 * parse, dispatch, drain, log one access line, reset the arena.  The same
 * loop serves both worker classes; a hashing worker only lowers its CPU
 * priority and names itself.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "crypto.h"
#include "db.h"
#include "gate.h"
#include "handlers/handlers.h"
#include "http.h"
#include "log.h"
#include "meta.h"
#include "metrics.h"
#include "oidc.h"
#include "outbound.h"
#include "router.h"
#include "sessions.h"
#include "worker.h"

static volatile sig_atomic_t stopping;

static const char *const class_name[PA_CLASS__MAX] = { "request", "hash" };

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Only interrupts a blocking accept (no SA_RESTART): see the accept loop. */
static void
on_alarm(int sig)
{
	(void)sig;
}

void
pa_child_signals(void (*handler)(int), sigset_t *term)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = handler;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	sigemptyset(term);
	sigaddset(term, SIGTERM);
	sigaddset(term, SIGINT);
}

bool
pa_worker_drop_privileges(const char *user)
{
	struct passwd *pw;

	if (user == NULL || geteuid() != 0)
		return true;
	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		pa_log_error("no such user '%s'", user);
		return false;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		pa_log_syserr("cannot switch to user '%s'", user);
		return false;
	}
	return true;
}

static long long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* "session <id>" and "user <id>" concern only the gate (0010_gate.sql). */
static void
on_notify(void *arg, const char *payload)
{
	pa_ctx_t *ctx = arg;

	pa_gate_invalidate(ctx->gate, payload);
	if (strncmp(payload, "session ", 8) != 0 && strncmp(payload, "user ", 5) != 0)
		pa_meta_invalidate(ctx->meta, payload);
}

/*
 * After a request: a route that hashed a password without being marked
 * PA_CLASS_HASH is a bug of the route table (an error, so tests fail on
 * it); a route of the other class is an nginx configuration that does not
 * route by class yet (said once per worker and class).
 */
static void
check_class(const pa_route_t *r, enum pa_class cls, unsigned long hashed)
{
	static bool warned[PA_CLASS__MAX];

	if (r == NULL)
		return;
	if (hashed > 0 && r->cls != PA_CLASS_HASH)
		pa_log_error("%s %s hashed a password but is not PA_CLASS_HASH in the route table",
		    r->method, r->pattern);
	if (r->cls != cls && !warned[r->cls]) {
		warned[r->cls] = true;
		pa_log_warn("%s %s (a %s route) reached a %s worker: nginx should send the"
		    " password routes, and only those, to hash_listen (deploy/nginx)", r->method,
		    r->pattern, class_name[r->cls], class_name[cls]);
	}
}

/*
 * Reads the notifications that arrived since the last request.  While
 * requests come back to back the socket is polled at most every
 * POLL_INTERVAL_US (one poll(2) fewer of the dozen system calls a gate
 * check makes), which delays a revocation by that at most, against the
 * second gate.h promises.  What came with the results of this worker's own
 * statements is read every time.
 */
#define POLL_INTERVAL_US 10000

static bool
read_notifications(pa_ctx_t *ctx, long long now)
{
	static long long last_poll;

	if (now - last_poll < POLL_INTERVAL_US)
		return pa_db_notifies(ctx->db, on_notify, ctx);
	last_poll = now;
	return pa_db_poll(ctx->db, on_notify, ctx);
}

/*
 * The level of a request's access line: debug for probes and scrapes
 * (every few seconds, not worth a line each) and for the gate's passes
 * (one per request of the whole PBX, in nginx's access log already with
 * the same request id; and the write(2) is one of the dozen system calls a
 * check makes).  The gate's refusals stay at info.
 */
static enum pa_log_level
access_level(const char *path, int status)
{
	if (path == NULL)
		return PA_LOG_INFO;
	if (strncmp(path, "/api/health/", 12) == 0 || strcmp(path, "/api/metrics") == 0 ||
	    (strcmp(path, "/api/auth/verify") == 0 && status == 204))
		return PA_LOG_DEBUG;
	return PA_LOG_INFO;
}

static void
serve(pa_http_conn_t *conn, pa_ctx_t *ctx, pa_arena_t *arena, enum pa_class cls)
{
	long long t0 = now_us();
	unsigned long hashings = pa_passwd_hashings();
	const pa_route_t *r = NULL;
	const char *method, *path, *addr;
	pa_req_t req;

	if (!read_notifications(ctx, t0)) {
		pa_meta_flush(ctx->meta);
		/* Reconnected: notifications may have been missed.  Lost: see gate.h. */
		if (pa_db_connected(ctx->db))
			pa_gate_flush(ctx->gate);
		pa_gate_offline(ctx->gate, !pa_db_connected(ctx->db));
	} else {
		pa_gate_offline(ctx->gate, false);
	}
	if (pa_http_request_init(&req, conn, arena) != PA_OK) {
		pa_http_reply_error(&req, 500, NULL, "Internal error", NULL);
	} else {
		pa_log_set_request_id(req.request_id);
		/* Before the request: it may be the retry the database must know of. */
		if (pa_session_lost_pending())
			pa_session_mark_lost(ctx->db, arena, ctx->cfg);
		r = pa_router_dispatch(pa_routes, pa_nroutes, &req, ctx);
	}
	check_class(r, cls, pa_passwd_hashings() - hashings);
	/* The CGI parameters die with the request: copies for the access line. */
	method = req.method ? pa_strndup(arena, req.method, strnlen(req.method, 64)) : NULL;
	path = req.path ? pa_strndup(arena, req.path, strnlen(req.path, 512)) : NULL;
	addr = req.remote_addr && *req.remote_addr ?
	    pa_strndup(arena, req.remote_addr, strnlen(req.remote_addr, 64)) : NULL;
	/* Counted before the answer leaves: a client holding it sees it counted. */
	pa_metrics_request(req.route, req.status, now_us() - t0);
	pa_http_finish(conn);
	/* log.c escapes method and path (and cuts them to its value limit). */
	pa_log_write(access_level(path, req.status), NULL, 0,
	    "request method=%s path=%s status=%d us=%lld addr=%s user=%s",
	    method ? method : "", path ? path : "", req.status, now_us() - t0,
	    addr ? addr : "-", req.user_id ? req.user_id : "-");
	if (req.after != NULL)
		req.after(ctx, arena, req.after_arg);
	pa_log_set_request_id(NULL);
	pa_buf_free(&req.headers);
	pa_arena_reset(arena);
}

/*
 * Adds inc to this process's nice value (at most 19): relative to the
 * request workers, whatever nice value the daemon was started with, and
 * raising one's own nice value needs no privilege.
 *
 * With autogroups (kernel.sched_autogroup_enabled, Linux's default), that
 * alone is not enough: CPU time is shared between sessions first, and a
 * nice value weighs only against the processes of the same session.  Left
 * in the daemon's session, the hashing workers would compete with nginx's
 * and PostgreSQL's sessions (each of those has one) as the daemon's equal,
 * and a request would wait for a hashing worker's time slice at every hop
 * through nginx and PostgreSQL.  So the worker also leaves for a session of
 * its own and gives that autogroup the same increment over the daemon's
 * (it starts at nice 0).  Without autogroups (the file is missing, or the
 * sysctl is off, or the daemon runs in a cgroup with a CPU controller of
 * its own), the process's nice value does the work.
 */
static void
lower_priority(int inc)
{
	char line[128];
	const char *p;
	FILE *f;
	int cur, want, fd, len, group = 0;

	if (inc == 0)
		return;
	errno = 0;
	cur = getpriority(PRIO_PROCESS, 0);
	if (cur == -1 && errno != 0) {
		pa_log_syserr("getpriority");
		return;
	}
	want = cur + inc > 19 ? 19 : cur + inc;
	if (setpriority(PRIO_PROCESS, 0, want) != 0)
		pa_log_syserr("setpriority %d", want);

	/* "/autogroup-42 nice 0" */
	if ((f = fopen("/proc/self/autogroup", "re")) == NULL) {
		pa_log_debug("no autogroup (%s): the nice value alone", strerror(errno));
		return;
	}
	if (fgets(line, sizeof(line), f) != NULL && (p = strstr(line, " nice ")) != NULL)
		group = atoi(p + 6);
	fclose(f);
	if (setsid() < 0) {
		pa_log_syserr("setsid");
		return;
	}
	want = group + inc > 19 ? 19 : group + inc;
	len = snprintf(line, sizeof(line), "%d", want);
	if ((fd = open("/proc/self/autogroup", O_WRONLY | O_CLOEXEC)) < 0 ||
	    write(fd, line, (size_t)len) != len)
		pa_log_syserr("setting the autogroup's nice value to %d", want);
	if (fd >= 0)
		close(fd);
}

int
pa_worker_run(const pa_config_t *cfg, int listen_fd, enum pa_class cls)
{
	pa_http_conn_t *conn = NULL;
	pa_arena_t *arena = NULL;
	sigset_t term, hold, wait;
	pa_ctx_t ctx = { cfg, NULL, NULL, NULL, NULL, NULL };
	int rv = 1;

	/* SIGTERM/SIGINT end the accept wait; SIGHUP is the master's. */
	pa_child_signals(on_term, &term);
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sigemptyset(&sa.sa_mask);
		sa.sa_handler = on_alarm;
		sigaction(SIGALRM, &sa, NULL);
	}
	/*
	 * SIGTERM, SIGINT and SIGALRM are held (blocked) except while waiting
	 * for a request (pa_http_accept, the poll below): they end the wait,
	 * and never cut a read or a request short.  One that comes meanwhile
	 * is taken at the next wait.
	 */
	hold = term;
	sigaddset(&hold, SIGALRM);
	sigprocmask(SIG_BLOCK, &hold, &wait);
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(&hold, sig) == 1)
			sigdelset(&wait, sig);
	/* Stop with the master, even when it is killed outright. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		return 0;
	if (cls == PA_CLASS_HASH) {
		prctl(PR_SET_NAME, PA_HASH_PROCNAME);
		lower_priority(cfg->hash_nice);
	}
	if (!pa_worker_drop_privileges(cfg->user))
		goto out;
	if ((arena = pa_arena_new()) == NULL ||
	    (ctx.db = pa_db_new(cfg->database, "pbx-authd", PA_DB_PREPARE | PA_DB_LISTEN)) == NULL ||
	    (ctx.meta = pa_meta_new(cfg)) == NULL || (ctx.gate = pa_gate_new(cfg)) == NULL ||
	    (ctx.oidc = pa_oidc_new(cfg)) == NULL ||
	    (conn = pa_http_conn_new(listen_fd)) == NULL) {
		pa_log_error("out of memory starting a worker");
		goto out;
	}
	/* Computes the dummy hash: one full hashing, before the first request. */
	if ((ctx.passwd = pa_passwd_new((unsigned long)cfg->password_hash_cost)) == NULL)
		goto out;
	pa_log_info("worker started class=%s", class_name[cls]);
	if (pa_db_connect(ctx.db) != PA_OK)	/* logged; each request tries again */
		pa_log_debug("starting without a database connection");
	/*
	 * SIGTERM alone (a reload retiring this worker, or the master gone)
	 * ends the loop once the request in flight is answered: the socket's
	 * queue belongs to the workers that stay.  SIGTERM with the socket
	 * draining (the whole service stops, pa_http_stop_listening) first
	 * serves every connection the kernel had queued, until accept finds
	 * the queue empty.
	 */
	while (!stopping || pa_http_draining(listen_fd)) {
		enum pa_accept a;
		bool timed = false;

		/*
		 * With lost rotations to report, do not wait for a request to
		 * reach the database: try every second (the retry may come to
		 * another worker).
		 */
		if (!stopping && pa_session_lost_pending()) {
			struct pollfd p = { listen_fd, POLLIN, 0 };
			const struct timespec second = { 1, 0 };
			int n = ppoll(&p, 1, &second, &wait);

			if (n == 0) {
				pa_session_mark_lost(ctx.db, arena, cfg);
				pa_arena_reset(arena);
			}
			if (n <= 0)
				continue;
			/*
			 * Readable, but another worker may take the connection
			 * first: then accept would block until the next request.
			 * A second's alarm interrupts it, and the loop tries the
			 * database again.
			 */
			timed = true;
			alarm(1);
		}
		a = pa_http_accept(conn, &wait, &stopping);
		if (timed)
			alarm(0);
		if (a == PA_ACCEPT_INTERRUPTED)
			continue;
		if (a != PA_ACCEPT_OK)
			break;
		serve(conn, &ctx, arena, cls);
	}
	rv = 0;
out:
	pa_http_conn_free(conn);
	pa_passwd_free(ctx.passwd);
	pa_meta_free(ctx.meta);
	pa_gate_free(ctx.gate);
	pa_oidc_free(ctx.oidc);
	pa_outbound_cleanup();
	pa_db_free(ctx.db);
	pa_arena_free(arena);
	return rv;
}
