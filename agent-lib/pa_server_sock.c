/* pa_server_sock: the agent server's socket file (see pa_server.h): the directory, the file's
 * mode, stale and live files, and removing the file only while it is still ours. Split out of
 * pa_server.c, which keeps the HTTP connections; the two share pa__server_sock_t. Also who
 * may connect: the peer check on each accepted connection.
 * Not async-signal-safe (allocates nothing, but logs and makes syscalls that may block). */
#include "pa_server.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int make_parent_dirs(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    char *slash;

    if (len >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    slash = strrchr(buf, '/');
    if (slash == NULL || slash == buf)
        return 0;
    *slash = '\0';
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    strcpy(sa->sun_path, path);
    return 0;
}

/* 0 if nothing or a stale socket is at path; -EADDRINUSE if a process answers there; -EEXIST
 * if it is not a socket (we never replace a user's file). */
static int check_existing(const char *path)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, rc;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    if ((rc = fill_addr(&sa, path)) < 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    return rc == 0 ? -EADDRINUSE : 0;
}

int pa__server_sock_listen(pa__server_sock_t *k, const char *path)
{
    char tmp[sizeof(((struct sockaddr_un *)0)->sun_path) + 32];
    struct sockaddr_un sa;
    struct stat st;
    int fd = -1, rc;

    if ((rc = fill_addr(&sa, path)) < 0)
        return rc;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >= sizeof(tmp))
        return -ENAMETOOLONG;
    if ((rc = fill_addr(&sa, tmp)) < 0)
        return rc;
    if ((rc = make_parent_dirs(path)) < 0)
        return rc;
    if ((rc = check_existing(path)) < 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    /* Linux creates the file with the socket inode's mode minus umask: 0600 from the start */
    (void)fchmod(fd, 0600);
    (void)unlink(tmp);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        goto fail;
    if (chmod(tmp, 0600) < 0 || listen(fd, 64) < 0)
        goto fail_unlink;
    if (rename(tmp, path) < 0)
        goto fail_unlink;
    if (stat(path, &st) == 0) {
        k->dev = st.st_dev;
        k->ino = st.st_ino;
    }
    k->fd = fd;
    return 0;
fail_unlink:
    rc = -errno;
    (void)unlink(tmp);
    close(fd);
    return rc;
fail:
    rc = -errno;
    close(fd);
    return rc;
}

void pa__server_sock_unlink(const pa__server_sock_t *k, const char *path)
{
    struct stat st;

    /* remove the file only if it is still ours, not a successor's */
    if (stat(path, &st) == 0 && st.st_dev == k->dev && st.st_ino == k->ino)
        (void)unlink(path);
}

int pa__server_sock_admit(pa__server_sock_t *k, int fd)
{
    struct ucred cred;
    socklen_t clen = sizeof(cred);

    (void)k;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0)
        return -errno;
    return cred.uid == geteuid() || cred.uid == 0 ? 0 : -EACCES;
}
