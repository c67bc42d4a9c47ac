/*
 * tollgatectl: the control tool's commands.
 */
#ifndef TG_CTL_H
#define TG_CTL_H

#include "app/app.h"

/* user_cmds.c: tollgatectl's admin and user commands (exit statuses). */
int	 ctl_admin_create(int, char *[]);
int	 ctl_user_show(int, char *[]);
int	 ctl_user_disable(int, char *[]);

/* ops_cmds.c: accounts and the outbox, for the operator (exit statuses). */
int	 ctl_user_enable(int, char *[]);
int	 ctl_user_verify(int, char *[]);
int	 ctl_user_set_password(int, char *[]);
int	 ctl_user_list(int, char *[]);
int	 ctl_outbox_list(int, char *[]);
int	 ctl_outbox_retry(int, char *[]);
/* gc.c: tollgatectl gc, the purge of expired rows. */
int	 ctl_gc(int, char *[]);

#endif /* TG_CTL_H */
