/*
 * The RFC 5322 form of a message of the mail outbox (the mailer, mailer.c,
 * sends it).
 */
#ifndef PA_MAIL_H
#define PA_MAIL_H

#include <time.h>

#include "buf.h"
#include "pa.h"

/* A message as the outbox holds it. */
typedef struct {
	long long id;			/* mail_outbox.id: makes the Message-ID */
	long long created_us;		/* created_at in microseconds since the epoch */
	const char *from;		/* smtp_from */
	const char *from_name;		/* smtp_from_name, or NULL */
	const char *to;			/* the recipient address */
	const char *subject;		/* UTF-8, one line */
	const char *body;		/* UTF-8 plain text, LF or CRLF line ends */
	time_t date;
} pa_mail_msg_t;

/*
 * Appends the message to b: Date, From, To, Subject, Message-ID,
 * MIME-Version, Content-Type (text/plain; charset=utf-8),
 * Content-Transfer-Encoding (7bit, or quoted-printable for 8-bit text or
 * long lines) and Auto-Submitted: auto-generated, then the body, all with
 * CRLF line ends.  The subject and display name are RFC 2047 encoded-words
 * when they are not short printable ASCII; control characters in them
 * become spaces, so no field can start another header.  Returns PA_OK,
 * PA_EINPUT (the sender or recipient is not a valid address: nothing
 * appended) or PA_ENOMEM.
 */
enum pa_err pa_mail_format(pa_buf_t *b, const pa_mail_msg_t *m) PA_MUSTCHECK;

#endif
