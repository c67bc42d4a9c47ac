/*
 * The sender: tollgated --sender, the background delivery of mail and
 * Stripe meter events and cancellations.
 */
#ifndef TG_SENDER_H
#define TG_SENDER_H

#include "app/app.h"

/* Runs the sender's loop.  Returns the exit status. */
int	 sender_run(void);

#endif /* TG_SENDER_H */
