/*
 * The mailer child of pbx-authd: delivers the mail outbox over SMTP and
 * deletes expired flows, sessions, throttle rows and old mail.  The master
 * (pool.c) runs one, restarts it when it dies and replaces it on SIGHUP.
 */
#ifndef PA_MAILER_H
#define PA_MAILER_H

#include "config.h"

/* The process name (comm) of the mailer, as ps and the tests see it. */
#define PA_MAILER_PROCNAME "pbx-authd-mail"

/*
 * Runs until SIGTERM (after finishing the message in flight, so within
 * smtp_timeout) or the master's death; returns the exit status.
 */
int pa_mailer_run(const pa_config_t *cfg);

#endif
