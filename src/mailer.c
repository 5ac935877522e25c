/*
 * The mailer child: claims due outbox rows one per transaction (FOR UPDATE
 * SKIP LOCKED, so several hosts may run mailers), sends each over SMTP and
 * records the outcome before COMMIT; wakes on NOTIFY pbx_auth_mail and when
 * a retry falls due; deletes expired rows every cleanup_interval.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "buf.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "mail.h"
#include "mailer.h"
#include "smtp.h"
#include "valid.h"
#include "worker.h"

#define CLEAN_BATCH "1000"	/* rows per DELETE */
#define CLEAN_GRACE "3600"	/* seconds expired rows are kept */
#define IDLE_WAKE 60		/* seconds: the longest sleep without a notification */
#define SAMPLE_WAKE 10		/* seconds between outbox counts when idle (metrics) */
#define PASSWORD_MAX 1024
#define PAUSE_MAX 60		/* seconds deliveries pause after a server failure */

struct mailer {
	const pa_config_t *cfg;
	pa_db_t *db;
	pa_smtp_t *smtp;		/* NULL: no delivery (no smtp_url, or no password) */
	pa_arena_t *arena;
	pa_buf_t msg;
	sigset_t waitmask;		/* SIGTERM/SIGINT are only delivered in ppoll */
};

static volatile sig_atomic_t stopping;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
set_signals(struct mailer *m)
{
	sigset_t term;

	pa_child_signals(on_term, &term);
	sigemptyset(&m->waitmask);
	sigprocmask(SIG_SETMASK, &term, NULL);
}

/* SIGTERM arrived (it stays pending while we work, so ask). */
static bool
should_stop(const struct mailer *m)
{
	sigset_t p;

	if (stopping)
		return true;
	if (sigpending(&p) == 0 && (sigismember(&p, SIGTERM) == 1 || sigismember(&p, SIGINT) == 1))
		stopping = 1;
	return stopping;
}

/*
 * The first line of smtp_password_file, read before privileges are dropped
 * (the file may be readable by root only).  NULL on failure (logged, without
 * the content).  The caller wipes and frees it.
 */
static char *
read_password(const char *path)
{
	char *pw = NULL;
	struct stat st;
	ssize_t n;
	size_t len;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		pa_log_syserr("smtp_password_file %s", path);
		return NULL;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
		pa_log_warn("smtp_password_file %s can be read by group or others: chmod 600 it",
		    path);
	if ((pw = calloc(1, PASSWORD_MAX + 1)) == NULL) {
		pa_log_error("out of memory");
		goto out;
	}
	do
		n = read(fd, pw, PASSWORD_MAX);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		pa_log_syserr("smtp_password_file %s", path);
		goto fail;
	}
	if (memchr(pw, '\0', (size_t)n) != NULL) {
		pa_log_error("smtp_password_file %s: contains a NUL byte", path);
		goto fail;
	}
	if ((len = strcspn(pw, "\r\n")) == 0) {
		pa_log_error("smtp_password_file %s: the first line is empty", path);
		goto fail;
	}
	explicit_bzero(pw + len, PASSWORD_MAX + 1 - len);
	goto out;
fail:
	explicit_bzero(pw, PASSWORD_MAX + 1);
	free(pw);
	pw = NULL;
out:
	close(fd);
	return pw;
}

static void
on_notify(void *arg, const char *payload)
{
	(void)payload;
	(*(int *)arg)++;
}

/*
 * Sleeps up to seconds: returns early on a notification, SIGTERM, or a lost
 * connection.  A notification libpq already read (during a statement)
 * returns at once.
 */
static void
wait_for(struct mailer *m, int seconds)
{
	struct timespec ts = { seconds, 0 };
	struct pollfd p;
	int n = 0, fd;

	if (pa_db_socket(m->db) >= 0 && (!pa_db_poll(m->db, on_notify, &n) || n > 0))
		return;
	fd = pa_db_socket(m->db);
	p.fd = fd;
	p.events = POLLIN | POLLRDHUP;
	p.revents = 0;
	if (ppoll(fd >= 0 ? &p : NULL, fd >= 0 ? 1 : 0, &ts, &m->waitmask) > 0)
		(void)pa_db_poll(m->db, on_notify, &n);
}

/* The domain of a valid recipient for the log (the full address is personal data). */
static const char *
log_domain(const char *rcpt)
{
	return pa_valid_email(rcpt) ? strchr(rcpt, '@') + 1 : "(invalid address)";
}

/*
 * Delivers one due message.  Returns 1 when one was handled (whatever the
 * outcome), 2 when it was deferred because the server failed (not the
 * message: see pa_smtp_server_failed), 0 when none is due, -1 on a database
 * failure.
 */
static int
deliver_one(struct mailer *m)
{
	const pa_config_t *cfg = m->cfg;
	pa_db_res_t *r;
	pa_mail_msg_t msg;
	char reply[256], base[16], max[16];
	const char *params[5], *id, *rcpt, *outcome, *status;
	enum pa_err frv, srv = PA_EUPSTREAM;
	int attempt, rv = -1;

	if (pa_db_begin(m->db) != PA_OK)
		return -1;
	if (pa_db_exec(m->db, m->arena, PA_STMT_MAIL_CLAIM, NULL, &r) != PA_OK)
		goto out;
	if (pa_db_rows(r) == 0) {
		rv = 0;
		goto out;
	}
	id = pa_db_value(r, 0, PA_COL_MAIL_CLAIM_ID);
	/* Lines about this message carry the id of the request that queued it. */
	pa_log_set_request_id(pa_db_value(r, 0, PA_COL_MAIL_CLAIM_REQUEST_ID));
	rcpt = pa_db_value(r, 0, PA_COL_MAIL_CLAIM_RECIPIENT);
	attempt = atoi(pa_db_value(r, 0, PA_COL_MAIL_CLAIM_ATTEMPTS)) + 1;
	msg = (pa_mail_msg_t){ strtoll(id, NULL, 10),
		strtoll(pa_db_value(r, 0, PA_COL_MAIL_CLAIM_CREATED_US), NULL, 10), cfg->smtp_from,
		cfg->smtp_from_name, rcpt, pa_db_value(r, 0, PA_COL_MAIL_CLAIM_SUBJECT),
		pa_db_value(r, 0, PA_COL_MAIL_CLAIM_BODY), time(NULL) };
	pa_buf_reset(&m->msg);
	if ((frv = pa_mail_format(&m->msg, &msg)) == PA_ENOMEM)
		goto out;
	if (frv == PA_EINPUT) {
		snprintf(reply, sizeof(reply), "invalid recipient address, not sent");
		srv = PA_EINPUT;
	} else {
		srv = pa_smtp_send(m->smtp, cfg->smtp_from, rcpt, m->msg.p, m->msg.len, reply,
		    sizeof(reply));
	}
	outcome = srv == PA_OK ? "sent" : srv == PA_EINPUT ? "failed" : "retry";
	snprintf(base, sizeof(base), "%d", cfg->smtp_retry_base);
	snprintf(max, sizeof(max), "%d", cfg->smtp_max_attempts);
	params[0] = id;
	params[1] = outcome;
	params[2] = reply;
	params[3] = base;
	params[4] = max;
	if (pa_db_exec(m->db, m->arena, PA_STMT_MAIL_RESULT, params, &r) != PA_OK ||
	    pa_db_rows(r) != 1 || pa_db_commit(m->db) != PA_OK) {
		if (srv == PA_OK)
			pa_log_error("mail was delivered but could not be recorded as sent;"
			    " it will be sent again id=%s", id);
		goto out;
	}
	status = pa_db_value(r, 0, 0);
	pa_metrics_inc(PA_M_MAIL_DELIVERY + (strcmp(status, "sent") == 0 ? 0 :
	    strcmp(status, "queued") == 0 ? 1 : 2));
	if (strcmp(status, "sent") == 0)
		pa_log_info("mail sent id=%s domain=%s attempt=%d reply=%s", id,
		    log_domain(rcpt), attempt, reply);
	else if (strcmp(status, "queued") == 0)
		pa_log_warn("mail deferred id=%s domain=%s attempt=%d retry_in=%s reply=%s", id,
		    log_domain(rcpt), attempt, pa_db_value(r, 0, 1), reply);
	else if (frv == PA_EINPUT)	/* the data's fault, not the service's */
		pa_log_warn("mail failed id=%s domain=%s attempt=%d reply=%s", id,
		    log_domain(rcpt), attempt, reply);
	else
		pa_log_error("mail failed id=%s domain=%s attempt=%d reply=%s", id,
		    log_domain(rcpt), attempt, reply);
	rv = srv == PA_EUPSTREAM && pa_smtp_server_failed(m->smtp) ? 2 : 1;
out:
	pa_db_rollback(m->db);	/* a no-op after COMMIT */
	pa_log_set_request_id(NULL);
	pa_arena_reset(m->arena);
	return rv;
}

/* Counts the outbox for the metrics (scrapes never query: they read this). */
static void
sample_outbox(struct mailer *m)
{
	pa_db_res_t *r;

	if (pa_db_exec(m->db, m->arena, PA_STMT_MAIL_STATS, NULL, &r) == PA_OK &&
	    pa_db_rows(r) == 1)
		pa_metrics_outbox(atol(pa_db_value(r, 0, 0)), atol(pa_db_value(r, 0, 1)),
		    atol(pa_db_value(r, 0, 2)), atol(pa_db_value(r, 0, 3)));
	pa_arena_reset(m->arena);
}

/* Seconds until the next queued message is due (at least 1), or -1: none queued. */
static int
next_due(struct mailer *m)
{
	pa_db_res_t *r;
	const char *v;
	int rv = -1;

	if (pa_db_exec(m->db, m->arena, PA_STMT_MAIL_NEXT, NULL, &r) == PA_OK &&
	    (v = pa_db_value(r, 0, 0)) != NULL)
		rv = atoi(v) < 1 ? 1 : atoi(v);	/* due but locked by another mailer: soon */
	pa_arena_reset(m->arena);
	return rv;
}

/* Deletes expired flows, sessions, throttle rows, old sent or failed mail and old audit rows. */
static void
cleanup(struct mailer *m)
{
	static const struct { enum pa_stmt st; const char *what; } jobs[] = {
		{ PA_STMT_CLEAN_FLOWS, "flows" }, { PA_STMT_CLEAN_SESSIONS, "sessions" },
		{ PA_STMT_CLEAN_THROTTLE, "throttle" }, { PA_STMT_CLEAN_MAIL, "mail" },
		{ PA_STMT_CLEAN_AUDIT, "audit" },
	};
	const pa_config_t *cfg = m->cfg;
	char window[16], days[16], audit_days[16];
	long total[PA_NELEM(jobs)] = { 0 };
	bool any = false;

	snprintf(window, sizeof(window), "%d",
	    cfg->throttle_ip_window > cfg->throttle_account_window ? cfg->throttle_ip_window
	    : cfg->throttle_account_window);
	snprintf(days, sizeof(days), "%d", cfg->mail_keep_days);
	snprintf(audit_days, sizeof(audit_days), "%d", cfg->audit_keep_days);
	for (size_t j = 0; j < PA_NELEM(jobs); j++) {
		const char *grace[] = { CLEAN_BATCH, CLEAN_GRACE };
		const char *throttle[] = { CLEAN_BATCH, window, CLEAN_GRACE };
		const char *mail[] = { CLEAN_BATCH, days };
		const char *audit[] = { CLEAN_BATCH, audit_days };
		const char *const *params = jobs[j].st == PA_STMT_CLEAN_THROTTLE ? throttle :
		    jobs[j].st == PA_STMT_CLEAN_MAIL ? mail : jobs[j].st == PA_STMT_CLEAN_AUDIT ?
		    audit : grace;
		pa_db_res_t *r;
		long n;

		do {
			if (pa_db_exec(m->db, m->arena, jobs[j].st, params, &r) != PA_OK) {
				pa_arena_reset(m->arena);
				return;
			}
			n = pa_db_affected(r);
			total[j] += n;
			pa_arena_reset(m->arena);
		} while (n >= atol(CLEAN_BATCH) && !should_stop(m));
	}
	for (size_t j = 0; j < PA_NELEM(jobs); j++)
		any |= total[j] > 0;
	/* The keys are in the format: log.c takes them from there. */
	pa_log_write(any ? PA_LOG_INFO : PA_LOG_DEBUG, NULL, 0,
	    "cleanup deleted flows=%ld sessions=%ld throttle=%ld mail=%ld audit=%ld", total[0],
	    total[1], total[2], total[3], total[4]);
}

static time_t
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

int
pa_mailer_run(const pa_config_t *cfg)
{
	static const char *const tls[PA_SMTP_TLS__MAX] = { "required", "optional", "off" };
	struct mailer m = { .cfg = cfg, .msg = PA_BUF_INIT };
	char *password = NULL;
	time_t next_cleanup = 0, paused_until = 0, next_sample = 0;
	int rv = 1;

	/* First: ps and the tests tell the mailer from the workers by it. */
	prctl(PR_SET_NAME, PA_MAILER_PROCNAME);
	set_signals(&m);
	/* Stop with the master, even when it is killed outright. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		return 0;
	if (cfg->smtp_url != NULL && cfg->smtp_password_file != NULL &&
	    (password = read_password(cfg->smtp_password_file)) == NULL)
		pa_log_error("mail is not delivered until smtp_password_file can be read"
		    " (then reload)");
	if (!pa_worker_drop_privileges(cfg->user))
		goto out;
	if ((m.arena = pa_arena_new()) == NULL ||
	    (m.db = pa_db_new(cfg->database, "pbx-authd mailer",
	    PA_DB_PREPARE | PA_DB_LISTEN_MAIL)) == NULL) {
		pa_log_error("out of memory starting the mailer");
		goto out;
	}
	if (cfg->smtp_url != NULL && (cfg->smtp_password_file == NULL || password != NULL) &&
	    (m.smtp = pa_smtp_new(cfg, password)) == NULL)
		goto out;
	if (password != NULL) {		/* the sender holds its own copy */
		explicit_bzero(password, strlen(password));
		free(password);
		password = NULL;
	}
	if (m.smtp != NULL)
		pa_log_info("mailer started smtp=%s starttls=%s auth=%s", cfg->smtp_url,
		    tls[cfg->smtp_starttls], cfg->smtp_user ? "yes" : "no");
	else
		pa_log_info("mailer started without delivery (%s): mail stays queued",
		    cfg->smtp_url ? "no password" : "no smtp_url");
	while (!should_stop(&m)) {
		int wait = IDLE_WAKE, due;
		time_t now;

		if (pa_db_connect(m.db) != PA_OK) {	/* logged once per outage */
			wait_for(&m, 5);
			continue;
		}
		if ((now = mono()) >= next_cleanup) {
			cleanup(&m);
			next_cleanup = now + cfg->cleanup_interval;
		}
		/*
		 * While the server is unreachable (or refuses us), a large queue
		 * is not walked message by message, each costing a connect
		 * timeout and an attempt: deliveries pause for a while.
		 */
		if (m.smtp != NULL && mono() >= paused_until) {
			int got = 0;

			while (!should_stop(&m) && (got = deliver_one(&m)) == 1)
				;
			if (got == 2)
				paused_until = mono() + (cfg->smtp_retry_base < PAUSE_MAX ?
				    cfg->smtp_retry_base : PAUSE_MAX);
			if (got < 0)		/* the database failed: try again soon */
				wait = 5;
			else if ((due = next_due(&m)) > 0 && due < wait)
				wait = due;
		}
		/*
		 * The outbox gauges: after activity at most once a second, and
		 * every SAMPLE_WAKE seconds when idle, so their age stays bounded.
		 */
		if (mono() >= next_sample) {
			sample_outbox(&m);
			next_sample = mono() + 1;
		}
		if (wait > SAMPLE_WAKE)
			wait = SAMPLE_WAKE;
		if (paused_until > mono() && paused_until - mono() < wait)
			wait = (int)(paused_until - mono());
		if (next_cleanup - mono() < wait)
			wait = next_cleanup - mono() < 1 ? 1 : (int)(next_cleanup - mono());
		if (!should_stop(&m))
			wait_for(&m, wait);
	}
	pa_log_info("mailer stopped");
	rv = 0;
out:
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	pa_smtp_free(m.smtp);
	pa_buf_free(&m.msg);
	pa_db_free(m.db);
	pa_arena_free(m.arena);
	return rv;
}
