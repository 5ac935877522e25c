/*
 * Service manager readiness (sd_notify(3)'s datagram protocol, without
 * libsystemd): "READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..." sent to
 * $NOTIFY_SOCKET when it is set, nothing otherwise.
 */
#ifndef PA_NOTIFY_H
#define PA_NOTIFY_H

#include <stdbool.h>

/* Sends one state string (newline-separated assignments); false on error (logged). */
bool pa_notify(const char *state);
/* "RELOADING=1" with the MONOTONIC_USEC= systemd asks for since version 253. */
bool pa_notify_reloading(void);

#endif
