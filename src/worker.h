/*
 * A request worker: accepts FastCGI requests on the inherited socket and
 * answers them through the route table, with one PostgreSQL connection and
 * one per-request arena.
 */
#ifndef PA_WORKER_H
#define PA_WORKER_H

#include <signal.h>

#include "config.h"

/* Runs until SIGTERM (or the master's death); returns the exit status. */
int pa_worker_run(const pa_config_t *cfg, int listen_fd);

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
