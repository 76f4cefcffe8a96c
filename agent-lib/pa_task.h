/* pa_task: the threads of this process, read from /proc/self/task: the one way the agent lists
 * them (the CPU sampler's timer rescan, the thread-stacks collector, the index page's count).
 * The directory is opened once and re-read from its start (lseek + getdents64), so a listing
 * never frees an fd number for the host to reuse under our feet: with opendir/closedir per
 * listing, TSan (which does not see opendir create its fd) reported our closedir racing
 * libuv's epoll_ctl on the same, reused, number. It is reopened when the fd is not this
 * process's task directory any more: in a forked child (the copy lists the parent's threads;
 * it is ours to close) and when the host closed it (a daemon closing every fd: the number,
 * maybe theirs now, is left alone).
 * Owns: the directory's fd, for the life of the process.
 * Threads: any; listings are serialised by a spin lock held only while one runs (not a pthread
 *   mutex, which pa_lock_hook interposes; released in a fork child). Not async-signal-safe.
 * Errors: negative errno. */
#ifndef PA_TASK_H
#define PA_TASK_H

#include <stddef.h>
#include <sys/types.h>

/* The thread ids, sorted ascending, into tids[0..max) (*n of them); threads beyond max are
 * counted in *truncated (may be NULL). tids may be NULL when max is 0 (a count). */
int pa_task_list(pid_t *tids, size_t max, size_t *n, size_t *truncated);

/* How many threads this process has now. */
int pa_task_count(size_t *n);

#endif
