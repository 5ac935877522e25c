/*
 * SMTP submission, the only user of libcurl's SMTP support: one message to
 * one recipient over smtp:// (STARTTLS required, optional or off) or smtps://
 * (implicit TLS), with AUTH, connect and total timeouts.  The server's last
 * reply is kept for the outbox's last_error.  Callers pass addresses that
 * pa_valid_email accepted: libcurl 7.88 sends CR/LF in them as they are
 * (FACTS.md §6), so this module checks them again and refuses.
 */
#ifndef PA_SMTP_H
#define PA_SMTP_H

#include <stddef.h>

#include "config.h"
#include "pa.h"

typedef struct pa_smtp pa_smtp_t;

/* Initialises libcurl once, in the master before it forks.  False on failure (logged). */
bool pa_smtp_global_init(void) PA_MUSTCHECK;

/*
 * A sender for the smtp_* keys of cfg, with the password read from
 * smtp_password_file (password may be NULL: no AUTH).  The strings are
 * copied.  Returns NULL when out of memory (logged).  Free with pa_smtp_free,
 * which also wipes the password.
 */
pa_smtp_t *pa_smtp_new(const pa_config_t *cfg, const char *password);
void pa_smtp_free(pa_smtp_t *s);

/*
 * Sends msg[0..len) (a complete RFC 5322 message, CRLF line ends; libcurl
 * dot-stuffs it) from the envelope sender `from` to `rcpt`.  reply receives
 * the server's last reply line, or libcurl's message when the server said
 * nothing useful (printable ASCII, truncated to replylen).  Returns PA_OK
 * (accepted), PA_EINPUT (refused for good: a 5xx reply to this message or an
 * invalid address), PA_EUPSTREAM (worth retrying: connection, TLS, AUTH,
 * timeout, 4xx) or PA_ENOMEM.
 */
enum pa_err pa_smtp_send(pa_smtp_t *s, const char *from, const char *rcpt, const char *msg,
    size_t len, char *reply, size_t replylen) PA_MUSTCHECK;

/*
 * After a failed pa_smtp_send: whether it failed before the recipient was
 * given (connection, TLS, AUTH, the sender), so that the server rather than
 * the message is the problem and other messages would fail the same way.
 */
bool pa_smtp_server_failed(const pa_smtp_t *s);

#endif
