/* init.h — a container's PID 1 after a live upgrade: forwards signals, reaps (init.c). */
#ifndef SL_INIT_H
#define SL_INIT_H

/* Runs until no process is left in the namespace; returns the exit status of the last one
 * reaped. */
int sl__init_forward(const char *pid_file);

#endif
