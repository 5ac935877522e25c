/*
 * The master process: forks the request workers and the mailer and
 * supervises them.  A child that dies is replaced (after a pause if children
 * keep dying); SIGHUP reloads the configuration and replaces the children
 * gracefully; SIGTERM or SIGINT stops them gracefully and returns.
 */
#ifndef PA_POOL_H
#define PA_POOL_H

#include "config.h"

/*
 * Runs the master loop.  *cfg may be replaced on reload (the caller frees
 * the final one).  The loop owns listen_fd: a stop closes it (and unlinks a
 * unix socket) before the children finish.  Returns the exit status.
 */
int pa_pool_run(const char *config_path, pa_config_t **cfg, int listen_fd);

#endif
