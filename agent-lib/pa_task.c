/* pa_task: listing this process's threads from /proc/self/task (see pa_task.h). */
#include "pa_task.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* singleton: /proc/self/task, kept open; under lock */
static struct {
    atomic_flag lock;
    int fd; /* -1: not open */
    pid_t pid;
    dev_t dev;
    ino_t ino;
} task_singleton = {.lock = ATOMIC_FLAG_INIT, .fd = -1};

static void task_lock(void)
{
    while (atomic_flag_test_and_set_explicit(&task_singleton.lock, memory_order_acquire))
        sched_yield();
}

static void task_unlock(void)
{
    atomic_flag_clear_explicit(&task_singleton.lock, memory_order_release);
}

/* A fork child has only the forking thread: a lock another thread held is nobody's now. The fd
 * is left as it is (task_dir sees the new pid and closes the copy). */
static void atfork_child(void)
{
    atomic_flag_clear(&task_singleton.lock);
}

__attribute__((constructor)) static void task_on_load(void)
{
    pthread_atfork(NULL, NULL, atfork_child);
}

/* Under lock: the open directory of this process's threads, or -errno. */
static int task_dir(void)
{
    struct stat st;
    pid_t pid = getpid();
    int fd = task_singleton.fd, err;

    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == task_singleton.dev &&
        st.st_ino == task_singleton.ino) {
        if (task_singleton.pid == pid)
            return fd;
        close(fd); /* our copy of the parent's */
    }
    task_singleton.fd = -1;
    fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        err = errno;
        close(fd);
        return -err;
    }
    task_singleton.fd = fd;
    task_singleton.pid = pid;
    task_singleton.dev = st.st_dev;
    task_singleton.ino = st.st_ino;
    return fd;
}

/* A directory entry's name as a tid: its value, or 0 for "." and "..". */
static pid_t parse_tid(const char *name)
{
    int64_t v = 0;

    if (*name == '\0')
        return 0;
    for (; *name != '\0'; name++) {
        if (*name < '0' || *name > '9' || v > INT32_MAX / 10)
            return 0;
        v = v * 10 + (*name - '0');
    }
    return v > 0 && v <= INT32_MAX ? (pid_t)v : 0;
}

static int cmp_tid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

int pa_task_list(pid_t *tids, size_t max, size_t *n, size_t *truncated)
{
    char buf[4096];
    size_t more = 0;
    long got = 0;
    int fd, err = 0;

    *n = 0;
    task_lock();
    fd = task_dir();
    if (fd < 0)
        err = -fd;
    else if (lseek(fd, 0, SEEK_SET) < 0)
        err = errno;
    while (err == 0 && (got = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
        for (long off = 0; off < got;) {
            const struct dirent64 *e = (const struct dirent64 *)(buf + off);
            pid_t tid = parse_tid(e->d_name);
            off += e->d_reclen;
            if (tid == 0)
                continue;
            if (*n < max)
                tids[(*n)++] = tid;
            else
                more++;
        }
    }
    if (err == 0 && got < 0)
        err = errno;
    task_unlock();
    if (truncated != NULL)
        *truncated = more;
    if (err != 0)
        return -err;
    if (*n > 1)
        qsort(tids, *n, sizeof(*tids), cmp_tid);
    return 0;
}

int pa_task_count(size_t *n)
{
    size_t listed, more;
    int rc = pa_task_list(NULL, 0, &listed, &more);

    *n = rc == 0 ? listed + more : 0;
    return rc;
}
