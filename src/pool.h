/*
 * The master process: forks the request workers, the hashing workers and
 * the mailer and supervises them.  A child that dies is replaced (after a pause if children
 * keep dying); SIGHUP reloads the configuration and replaces the children
 * gracefully; SIGTERM or SIGINT stops them gracefully and returns.
 */
#ifndef PA_POOL_H
#define PA_POOL_H

#include "config.h"
#include "router.h"

/*
 * Runs the master loop.  fds are the listening sockets, indexed by worker
 * class (listen, hash_listen).  *cfg may be replaced on reload (the caller
 * frees the final one).  The loop owns the sockets: a stop closes them
 * (and unlinks unix sockets) before the children finish.  Returns the
 * process exit status.
 */
int pa_pool_run(const char *config_path, pa_config_t **cfg, const int fds[PA_CLASS__MAX]);

#endif
