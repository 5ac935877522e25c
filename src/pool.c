/*
 * Prefork supervision: spawn, reap, respawn with backoff, reload, drain; the
 * same for both worker classes (each on its own socket) and the one mailer
 * child (mailer.c).
 * Signal handlers only set flags; the loop runs on sigsuspend with the
 * signals blocked everywhere else.
 */
#include "autoconfig.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "mailer.h"
#include "notify.h"
#include "metrics.h"
#include "pool.h"
#include "worker.h"

#define MAX_WORKERS 256
/* During a reload, two generations of both classes and of the mailer. */
#define MAX_CHILDREN (2 * (2 * MAX_WORKERS + 1))
#define STOP_GRACE 30			/* seconds before a stopping worker is killed */
#define CRASH_WINDOW 10			/* seconds */

/* The worker kinds are the classes of pa_worker_run; the mailer comes after them. */
enum kind { WORKER = PA_CLASS_REQUEST, HASHER = PA_CLASS_HASH, MAILER = PA_CLASS__MAX };
static const char *const kind_name[] = { "worker", "hash worker", "mailer" };

struct child {
	pid_t pid;		/* 0: free slot */
	enum kind kind;
	unsigned gen;		/* configuration generation it runs */
	time_t stop_sent;	/* when SIGTERM was first sent, 0 if running */
};

static volatile sig_atomic_t got_chld, got_hup, got_term, got_alrm;

static struct child children[MAX_CHILDREN];
static unsigned generation;
static time_t crash_times[2 * MAX_WORKERS];
static size_t ncrash;

static void
on_signal(int sig)
{
	switch (sig) {
	case SIGCHLD: got_chld = 1; break;
	case SIGHUP: got_hup = 1; break;
	case SIGALRM: got_alrm = 1; break;
	default: got_term = 1; break;
	}
}

/* Children of this kind: running, or only those of the current generation not stopping. */
static int
count(enum kind kind, bool current_only)
{
	int n = 0;

	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i].pid != 0 && children[i].kind == kind && (!current_only ||
		    (children[i].gen == generation && children[i].stop_sent == 0)))
			n++;
	return n;
}

/* How many children of this kind the configuration asks for. */
static int
wanted(const pa_config_t *cfg, enum kind kind)
{
	return kind == WORKER ? cfg->workers : kind == HASHER ? cfg->hash_workers : 1;
}

static bool
spawn(const pa_config_t *cfg, const int fds[PA_CLASS__MAX], const sigset_t *orig,
    enum kind kind)
{
	int i;
	pid_t pid;

	for (i = 0; i < MAX_CHILDREN && children[i].pid != 0; i++)
		;
	if (i == MAX_CHILDREN) {
		pa_log_error("no free worker slot");
		return false;
	}
	pa_metrics_slot_start((size_t)i);
	if ((pid = fork()) < 0) {
		pa_log_syserr("fork");
		pa_metrics_slot_retire((size_t)i);
		return false;
	}
	if (pid == 0) {
		int rv;

		pa_log_forked();
		/* Each child keeps only its own class's socket. */
		for (int c = 0; c < PA_CLASS__MAX; c++)
			if (c != (int)kind)
				close(fds[c]);
		pa_metrics_attach((size_t)i);
		if (kind == MAILER) {
			/* It sets its own signal mask. */
			rv = pa_mailer_run(cfg);
		} else {
			sigprocmask(SIG_SETMASK, orig, NULL);
			rv = pa_worker_run(cfg, fds[kind], (enum pa_class)kind);
		}
		exit(rv);
	}
	children[i] = (struct child){ pid, kind, generation, 0 };
	return true;
}

static void
stop_child(struct child *c, time_t now)
{
	if (c->stop_sent == 0)
		c->stop_sent = now;
	if (now - c->stop_sent >= STOP_GRACE) {
		pa_log_warn("%s did not stop in %d s, killing it child_pid=%d", kind_name[c->kind],
		    STOP_GRACE, (int)c->pid);
		kill(c->pid, SIGKILL);
	} else {
		/*
		 * Sent again every second: a SIGTERM that lands just before the
		 * worker enters accept() would otherwise go unnoticed.
		 */
		kill(c->pid, SIGTERM);
	}
}

/* True when workers died too often lately: respawn after a pause then. */
static bool
crash_looping(const pa_config_t *cfg, time_t now)
{
	size_t recent = 0;

	for (size_t i = 0; i < ncrash; i++)
		recent += now - crash_times[i] < CRASH_WINDOW;
	return recent > (size_t)(cfg->workers + cfg->hash_workers) * 2;
}

static void
note_crash(time_t now)
{
	crash_times[ncrash++ % PA_NELEM(crash_times)] = now;
	if (ncrash > PA_NELEM(crash_times))
		ncrash = PA_NELEM(crash_times);
}

static void
reap(time_t now)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < MAX_CHILDREN; i++) {
			struct child *c = &children[i];
			const char *k;

			if (c->pid != pid)
				continue;
			k = kind_name[c->kind];
			if (c->stop_sent != 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
				pa_log_info("%s exited child_pid=%d status=0", k, (int)pid);
			} else if (WIFSIGNALED(status)) {
				pa_log_warn("%s exited child_pid=%d signal=%d", k, (int)pid,
				    WTERMSIG(status));
				note_crash(now);
				pa_metrics_inc(PA_M_CHILD_RESTART + (c->kind == MAILER));
			} else {
				pa_log_warn("%s exited child_pid=%d status=%d", k, (int)pid,
				    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
				note_crash(now);
				pa_metrics_inc(PA_M_CHILD_RESTART + (c->kind == MAILER));
			}
			pa_metrics_slot_retire((size_t)i);
			c->pid = 0;
		}
	}
}

static bool
same_string(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
clamp_workers(pa_config_t *cfg)
{
	if (cfg->workers > MAX_WORKERS)
		cfg->workers = MAX_WORKERS;
	if (cfg->hash_workers > MAX_WORKERS)
		cfg->hash_workers = MAX_WORKERS;
}

/* The kind of the next child to start, or -1 when all are running. */
static int
missing(const pa_config_t *cfg)
{
	static const enum kind order[] = { MAILER, WORKER, HASHER };

	for (size_t i = 0; i < PA_NELEM(order); i++)
		if (count(order[i], true) < wanted(cfg, order[i]))
			return (int)order[i];
	return -1;
}

static void
reload(const char *path, pa_config_t **cfg, time_t now)
{
	pa_config_t *nc = pa_config_new();
	char err[512];

	if (nc == NULL || pa_config_load(nc, path, err, sizeof(err)) != PA_OK) {
		pa_log_error("configuration not reloaded, keeping the running one: %s",
		    nc ? err : "out of memory");
		pa_config_free(nc);
		return;
	}
	if (strcmp(nc->listen, (*cfg)->listen) != 0)
		pa_log_warn("a new 'listen' takes effect at restart, not reload (still %s)",
		    (*cfg)->listen);
	if (strcmp(nc->hash_listen, (*cfg)->hash_listen) != 0 ||
	    nc->hash_queue_max != (*cfg)->hash_queue_max)
		pa_log_warn("a new 'hash_listen' or 'hash_queue_max' takes effect at restart, not"
		    " reload (still %s, %d)", (*cfg)->hash_listen, (*cfg)->hash_queue_max);
	if (!same_string(nc->pidfile, (*cfg)->pidfile) || !same_string(nc->user, (*cfg)->user) ||
	    !same_string(nc->listen_group, (*cfg)->listen_group) ||
	    nc->listen_mode != (*cfg)->listen_mode)
		pa_log_warn("a new pidfile, user, listen_group or listen_mode takes effect at"
		    " restart, not reload");
	clamp_workers(nc);
	/*
	 * Old workers keep their copy of the old configuration (fork); the
	 * master's copy can go once the new generation is started.
	 */
	pa_config_free(*cfg);
	*cfg = nc;
	pa_log_set_level(nc->log_level);
	pa_log_set_format(nc->log_format);
	generation++;
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i].pid != 0 && children[i].gen != generation)
			stop_child(&children[i], now);
	pa_log_info("configuration reloaded workers=%d hash_workers=%d", nc->workers,
	    nc->hash_workers);
}

int
pa_pool_run(const char *path, pa_config_t **cfg, const int fds[PA_CLASS__MAX])
{
	struct sigaction sa;
	sigset_t block, orig;
	bool draining = false, announce = true;	/* READY=1 due once the workers run */

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGALRM);
	sigprocmask(SIG_BLOCK, &block, &orig);
	clamp_workers(*cfg);
	if (!pa_metrics_init(MAX_CHILDREN))
		return 1;
	pa_log_info("master started workers=%d listen=%s hash_workers=%d hash_listen=%s",
	    (*cfg)->workers, (*cfg)->listen, (*cfg)->hash_workers, (*cfg)->hash_listen);

	for (;;) {
		time_t now = time(NULL);
		bool pending = false;

		if (got_chld) {
			got_chld = 0;
			reap(now);
		}
		if (got_term && !draining) {
			draining = true;
			pa_notify("STOPPING=1");
			pa_log_info("stopping: no new connections; serving those queued and in flight");
			for (int c = 0; c < PA_CLASS__MAX; c++)
				pa_http_stop_listening(fds[c]);
		}
		if (got_hup) {
			got_hup = 0;
			if (!draining) {
				pa_notify_reloading();
				reload(path, cfg, now);
				announce = true;	/* also after a refused file: still serving */
			}
		}
		if (draining) {
			if (count(WORKER, false) + count(HASHER, false) + count(MAILER, false) == 0)
				break;
			for (int i = 0; i < MAX_CHILDREN; i++)
				if (children[i].pid != 0)
					stop_child(&children[i], now);
		} else {
			for (int k; (k = missing(*cfg)) >= 0;) {
				if (crash_looping(*cfg, now)) {
					pa_log_warn("workers keep dying; next start in 1 s");
					pending = true;
					break;
				}
				if (!spawn(*cfg, fds, &orig, (enum kind)k)) {
					pending = true;
					break;
				}
			}
			if (announce && count(WORKER, true) >= (*cfg)->workers) {
				pa_notify("READY=1\nSTATUS=serving");
				announce = false;
			}
			for (int i = 0; i < MAX_CHILDREN; i++)
				if (children[i].pid != 0 && children[i].stop_sent != 0 &&
				    got_alrm)
					stop_child(&children[i], now);
			for (int k = 0; k <= MAILER; k++)
				pending = pending || count(k, false) > count(k, true);
		}
		got_alrm = 0;
		/* A 1 s tick while something waits: resends, kills, delayed spawns. */
		alarm(draining || pending ? 1 : 0);
		if (!got_chld && !got_hup && !(got_term && !draining))
			sigsuspend(&orig);
	}
	alarm(0);
	pa_log_info("master stopped");
	return 0;
}
