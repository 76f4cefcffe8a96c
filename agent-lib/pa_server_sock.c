/* pa_server_sock: the agent server's socket file and who may connect (see pa_server.h), split
 * out of pa_server.c, which keeps the HTTP connections; the two share pa__server_sock_t.
 *
 * Who may connect. The kernel's SO_PEERCRED uid of each accepted connection is the gate: our
 * own effective uid, root, and the uids of pa_server_access_t (PROFAGENT_ALLOW_UID). File
 * permissions only decide who reaches the socket at all:
 *     allowed uids   group   socket file        a directory we create
 *     none           none    0600               0700
 *     some           none    0666               0711 (search, no listing, no writing)
 *     any            G       0660, group G      0710, group G
 * With allowed uids and no group, the file is open to everyone and SO_PEERCRED alone decides:
 * a gateway running as another user then needs nothing set up but its uid, and a stranger's
 * connection is closed before a byte is read. A group (PROFAGENT_SOCKET_GROUP), when the
 * operator can arrange one that both users belong to, keeps strangers from even connecting.
 * Directories that exist are never changed, only checked: one that others could write to
 * (or that another user owns) lets them replace the socket, and one an allowed uid cannot
 * search keeps that uid out; both are logged at start.
 *
 * Not async-signal-safe (allocates for name lookups, logs). Runs on the thread that starts
 * the server (listen) and on the agent thread (admit). */
#include "pa_server.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define REFUSED_LOG_EVERY_NS (10 * 1000000000LL) /* at most one refusal line per 10 s */
#define NAME_BUF_MAX (1 << 20)                   /* getpwnam_r/getgrnam_r buffer bound */

/* ---- access: modes and names ---- */

static int has_uids(const pa_server_access_t *a)
{
    for (size_t i = 0; i < PA_SERVER_MAX_ALLOW; i++) {
        if (a->allow_uid[i] != 0)
            return 1;
    }
    return 0;
}

mode_t pa__server_socket_mode(const pa_server_access_t *a)
{
    if (a->socket_gid != 0)
        return 0660;
    return has_uids(a) ? 0666 : 0600;
}

mode_t pa__server_dir_mode(const pa_server_access_t *a)
{
    if (a->socket_gid != 0)
        return 0710;
    return has_uids(a) ? 0711 : 0700;
}

int pa__server_uid_allowed(const pa_server_access_t *a, unsigned int peer, unsigned int self)
{
    if (peer == self || peer == 0)
        return 1;
    for (size_t i = 0; i < PA_SERVER_MAX_ALLOW; i++) {
        if (a->allow_uid[i] != 0 && a->allow_uid[i] == peer)
            return 1;
    }
    return 0;
}

/* A decimal id in 0..2^32-2 ((uid_t)-1 means "no id" to the kernel). */
static int parse_id(const char *s, size_t len, unsigned int *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 10)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v >= UINT32_MAX)
        return -ERANGE;
    *out = (unsigned int)v;
    return 0;
}

/* Look a user (is_group 0) or group name up in the system's databases (NSS). */
static int lookup_name(const char *name, int is_group, unsigned int *out)
{
    size_t cap = 16384;
    int rc;

    for (;;) {
        char *buf = malloc(cap);
        if (buf == NULL)
            return -ENOMEM;
        if (is_group) {
            struct group g, *res = NULL;
            rc = getgrnam_r(name, &g, buf, cap, &res);
            if (rc == 0 && res != NULL)
                *out = (unsigned int)g.gr_gid;
            else if (rc == 0)
                rc = ENOENT;
        } else {
            struct passwd pw, *res = NULL;
            rc = getpwnam_r(name, &pw, buf, cap, &res);
            if (rc == 0 && res != NULL)
                *out = (unsigned int)pw.pw_uid;
            else if (rc == 0)
                rc = ENOENT;
        }
        free(buf);
        if (rc != ERANGE || cap >= NAME_BUF_MAX)
            return -rc;
        cap *= 2;
    }
}

/* One entry of a list: a number, else a name. */
static int parse_entry(const char *s, size_t len, int is_group, unsigned int *out)
{
    char name[256];

    if (len > 0 && s[0] >= '0' && s[0] <= '9')
        return parse_id(s, len, out);
    if (len == 0 || len >= sizeof(name))
        return -EINVAL;
    memcpy(name, s, len);
    name[len] = '\0';
    return lookup_name(name, is_group, out);
}

static const char *entry_error(int rc)
{
    return rc == -ENOENT   ? "no such name"
           : rc == -EINVAL ? "not a number or a name"
                           : strerror(-rc);
}

int pa__server_parse_uids(const char *list, unsigned int *uids, size_t max)
{
    size_t n = 0;
    const char *p = list;

    memset(uids, 0, max * sizeof(*uids));
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        unsigned int uid;
        int rc;

        p += len + (end != NULL);
        while (len > 0 && (*s == ' ' || *s == '\t'))
            s++, len--;
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (len == 0)
            continue;
        rc = parse_entry(s, len, 0, &uid);
        if (rc < 0) {
            fprintf(stderr, "profagent: PROFAGENT_ALLOW_UID: \"%.*s\" ignored: %s\n", (int)len, s,
                    entry_error(rc));
            continue;
        }
        if (uid == 0)
            continue; /* root may always connect */
        if (n == max) {
            fprintf(stderr, "profagent: PROFAGENT_ALLOW_UID: \"%.*s\" ignored: at most %zu uids\n",
                    (int)len, s, max);
            continue;
        }
        uids[n++] = uid;
    }
    return (int)n;
}

int pa__server_parse_gid(const char *s, unsigned int *gid)
{
    unsigned int g = 0;
    int rc = parse_entry(s, strlen(s), 1, &g);

    if (rc == 0 && g == 0) {
        fprintf(stderr, "profagent: PROFAGENT_SOCKET_GROUP=\"%s\" ignored: not the root group\n",
                s);
        return -EINVAL; /* 0 means "no group" in the options */
    }
    if (rc < 0) {
        fprintf(stderr, "profagent: PROFAGENT_SOCKET_GROUP=\"%s\" ignored: %s\n", s,
                entry_error(rc));
        return rc;
    }
    *gid = g;
    return 0;
}

/* ---- the directory ---- */

/* Create the missing directories of path's parent, giving each one we create mode and, if
 * gid is not 0, that group (explicitly: mkdir's mode is cut by the umask). */
static int make_parent_dirs(const char *path, mode_t mode, unsigned int gid)
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
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        int last = *p == '\0';
        *p = '\0';
        if (mkdir(buf, 0700) == 0) {
            if (gid != 0 && chown(buf, (uid_t)-1, (gid_t)gid) < 0) {
                int e = errno;
                fprintf(stderr, "profagent: cannot give directory %s to group %u: %s\n", buf, gid,
                        strerror(e));
                (void)rmdir(buf); /* ours, empty: leave nothing half-made behind */
                return -e;
            }
            if (chmod(buf, mode) < 0)
                return -errno;
        } else if (errno != EEXIST) {
            return -errno;
        }
        if (last)
            break;
        *p = '/';
    }
    return 0;
}

/* Can uid search (x) a directory with this stat? gid: the socket group, which we take uid to
 * belong to (its other groups are not looked up). */
static int searchable_by(const struct stat *st, unsigned int uid, unsigned int gid)
{
    if (uid == 0)
        return 1;
    if (st->st_uid == uid)
        return (st->st_mode & S_IXUSR) != 0;
    if (gid != 0 && st->st_gid == gid)
        return (st->st_mode & S_IXGRP) != 0;
    return (st->st_mode & S_IXOTH) != 0;
}

/* Walk the socket's directories, innermost first, and log what would let others replace the
 * socket, and which allowed uid could not reach it. Warnings only: nothing is changed. */
static void check_dirs(const char *path, const pa_server_access_t *a)
{
    char buf[PATH_MAX];
    int replace_warned = 0;
    int reach_warned[PA_SERVER_MAX_ALLOW] = {0};
    unsigned int self = (unsigned int)geteuid();
    char *slash;

    if (strlen(path) >= sizeof(buf) || path[0] != '/')
        return;
    strcpy(buf, path);
    while ((slash = strrchr(buf, '/')) != NULL) {
        struct stat st;
        if (slash == buf)
            slash[1] = '\0'; /* "/" itself */
        else
            *slash = '\0';
        if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode)) {
            int writable = (st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX);
            int foreign = st.st_uid != self && st.st_uid != 0;
            if (!replace_warned && (writable || foreign)) {
                fprintf(stderr,
                        "profagent: warning: socket %s: directory %s (mode %04o, owner uid %u) "
                        "%s: others could replace the socket and impersonate the agent\n",
                        path, buf, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
                        writable ? "is writable by group or others without the sticky bit"
                                 : "belongs to another user");
                replace_warned = 1;
            }
            for (size_t i = 0; i < PA_SERVER_MAX_ALLOW; i++) {
                unsigned int u = a->allow_uid[i];
                if (u == 0 || reach_warned[i] || searchable_by(&st, u, a->socket_gid))
                    continue;
                fprintf(stderr,
                        "profagent: warning: allowed uid %u cannot reach socket %s: directory %s "
                        "(mode %04o) is not searchable by it (chmod o+x, or "
                        "PROFAGENT_SOCKET_GROUP)\n",
                        u, path, buf, (unsigned)(st.st_mode & 07777));
                reach_warned[i] = 1;
            }
        }
        if (slash == buf)
            break;
    }
}

/* ---- the socket file ---- */

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

int pa__server_sock_listen(pa__server_sock_t *k, const char *path, const pa_server_access_t *acc)
{
    char tmp[sizeof(((struct sockaddr_un *)0)->sun_path) + 32];
    struct sockaddr_un sa;
    struct stat st;
    int fd = -1, rc;

    if (acc != NULL)
        k->access = *acc;
    k->path = path;
    if ((rc = fill_addr(&sa, path)) < 0)
        return rc;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >= sizeof(tmp))
        return -ENAMETOOLONG;
    if ((rc = fill_addr(&sa, tmp)) < 0)
        return rc;
    if ((rc = make_parent_dirs(path, pa__server_dir_mode(&k->access), k->access.socket_gid)) < 0)
        return rc;
    if ((rc = check_existing(path)) < 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    /* Linux creates the file with the socket inode's mode minus umask: 0600 from the start;
     * the final mode and group are given under the temporary name, before anyone can dial */
    (void)fchmod(fd, 0600);
    (void)unlink(tmp);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        goto fail;
    if (k->access.socket_gid != 0 && chown(tmp, (uid_t)-1, (gid_t)k->access.socket_gid) < 0) {
        fprintf(stderr,
                "profagent: cannot give socket %s to group %u: %s (the agent's user must belong "
                "to it)\n",
                path, k->access.socket_gid, strerror(errno));
        goto fail_unlink;
    }
    if (chmod(tmp, pa__server_socket_mode(&k->access)) < 0 || listen(fd, 64) < 0)
        goto fail_unlink;
    if (rename(tmp, path) < 0)
        goto fail_unlink;
    if (stat(path, &st) == 0) {
        k->dev = st.st_dev;
        k->ino = st.st_ino;
    }
    k->fd = fd;
    check_dirs(path, &k->access);
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

/* ---- the peer ---- */

/* Log a refusal: the first at once, then at most one line per REFUSED_LOG_EVERY_NS with the
 * number of refusals not logged in between (a stranger dialling in a loop cannot flood the
 * host's stderr). */
static void log_refused(pa__server_sock_t *k, const struct ucred *cred, int err)
{
    int64_t now = pa_server_now_ns();
    char line[768];
    size_t n;

    if (k->refused_logged_ns != 0 && now - k->refused_logged_ns < REFUSED_LOG_EVERY_NS) {
        k->refused_quiet++;
        return;
    }
    if (err != 0)
        snprintf(line, sizeof(line),
                 "profagent: refused a connection to %s: cannot read its credentials: %s",
                 k->path ? k->path : "", strerror(err));
    else
        snprintf(line, sizeof(line),
                 "profagent: refused a connection to %s from uid %u (pid %ld): only uid %u, root "
                 "and PROFAGENT_ALLOW_UID may connect",
                 k->path ? k->path : "", (unsigned)cred->uid, (long)cred->pid, (unsigned)geteuid());
    n = strlen(line);
    if (k->refused_quiet > 0 && n < sizeof(line))
        snprintf(line + n, sizeof(line) - n, " (%" PRIu64 " more refused since the last such line)",
                 k->refused_quiet);
    fprintf(stderr, "%s\n", line); /* one write, not interleaved with the host's lines */
    k->refused_quiet = 0;
    k->refused_logged_ns = now;
}

int pa__server_sock_admit(pa__server_sock_t *k, int fd)
{
    struct ucred cred;
    socklen_t clen = sizeof(cred);

    memset(&cred, 0, sizeof(cred));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
        int e = errno;
        log_refused(k, &cred, e);
        return -e;
    }
    if (pa__server_uid_allowed(&k->access, (unsigned int)cred.uid, (unsigned int)geteuid()))
        return 0;
    k->refused++;
    log_refused(k, &cred, 0);
    return -EACCES;
}

/* ---- options ---- */

int pa_server_new_for(const profagent_options_t *o, pa_server_handler_fn handler, void *arg,
                      pa_server_t **out)
{
    pa_server_access_t acc;

    memset(&acc, 0, sizeof(acc));
    memcpy(acc.allow_uid, o->allow_uid, sizeof(acc.allow_uid));
    acc.socket_gid = o->socket_gid;
    return pa_server_new_access(o->socket_path, &acc, handler, arg, out);
}

void pa_server_options_env(profagent_options_t *o)
{
    const char *v = getenv("PROFAGENT_ALLOW_UID");
    unsigned int gid;

    if (v != NULL)
        (void)pa__server_parse_uids(v, o->allow_uid, PROFAGENT_MAX_ALLOW_UIDS);
    v = getenv("PROFAGENT_SOCKET_GROUP");
    if (v != NULL && *v != '\0' && pa__server_parse_gid(v, &gid) == 0)
        o->socket_gid = gid;
}

/* allow_uid and socket_gid took five of the six ints reserved for later knobs: the ABI's
 * size and alignment stay those of the struct before them */
struct options_before_allow_uid {
    const char *socket_path;
    int cpu_hz;
    int reserved[6];
};
_Static_assert(sizeof(profagent_options_t) == sizeof(struct options_before_allow_uid) &&
                   _Alignof(profagent_options_t) == _Alignof(struct options_before_allow_uid),
               "profagent_options_t must keep its size");
