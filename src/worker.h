/*
 * A worker: accepts FastCGI requests on the inherited socket and answers
 * them through the route table, with one PostgreSQL connection and one
 * per-request arena.  Workers come in two classes (router.h): request
 * workers, and hashing workers on their own socket for the routes that
 * verify or set a password.  Either class serves every route.
 */
#ifndef PA_WORKER_H
#define PA_WORKER_H

#include <signal.h>

#include "config.h"
#include "router.h"

/* The process name (comm) of a hashing worker. */
#define PA_HASH_PROCNAME "pbx-authd-hash"

/*
 * Runs a worker of class cls (PA_CLASS_HASH: hash_nice added to its nice
 * value, named PA_HASH_PROCNAME) until SIGTERM or the master's death; returns the exit
 * status.
 */
int pa_worker_run(const pa_config_t *cfg, int listen_fd, enum pa_class cls);

/*
 * When running as root, switches to user (NULL: stays); true on success, or
 * when there is nothing to do.  Logs failures.  Also used by the mailer.
 */
bool pa_worker_drop_privileges(const char *user) PA_MUSTCHECK;

/*
 * The signal dispositions of a child of the master (worker or mailer):
 * SIGTERM and SIGINT call handler (no SA_RESTART, so they end a wait), SIGHUP
 * and SIGPIPE are ignored, SIGCHLD and SIGALRM restored.  *term receives the
 * set {SIGTERM, SIGINT}.
 */
void pa_child_signals(void (*handler)(int), sigset_t *term);

#endif
