/* pg_raw_upstream: an upstream that answers with bytes a test wrote by hand, framing errors
 * included, so that what profgate does with a buggy upstream can be checked.
 *   pg_raw_upstream --listen 127.0.0.1:PORT --dir DIR
 * For each request "GET /NAME ..." (the head is read up to its blank line; a request body is
 * not expected) it sends the file DIR/NAME verbatim, with two markers:
 *   @@CONN@@   replaced by the connection's number (1, 2, ... in accept order)
 *   @@PAUSE@@  not sent: what came before it is written, then 300 ms pass (so that a proxy
 *              reads it, and relays it, before the rest arrives)
 * and then waits for the next request on the same connection. No such file (or a NAME with
 * a '/' or starting with '.'): 404 with Content-Length 0. Each connection has a thread; on
 * stdout, one line per event: "conn N GET /NAME", "conn N closed" (the peer closed). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static const char *dir_singleton;
static atomic_int conns_singleton;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(int id, const char *what, const char *arg)
{
    pthread_mutex_lock(&out_lock);
    printf("conn %d %s%s\n", id, what, arg);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Send the file's bytes [p, end), markers applied. */
static int send_script(int fd, int id, const char *p, const char *end)
{
    static const char pause[] = "@@PAUSE@@", conn[] = "@@CONN@@";
    char num[16];

    while (p < end) {
        const char *m = memmem(p, (size_t)(end - p), "@@", 2);
        const char *stop = m ? m : end;

        if (write_all(fd, p, (size_t)(stop - p)) < 0)
            return -1;
        p = stop;
        if (m == NULL)
            break;
        if ((size_t)(end - m) >= sizeof pause - 1 && memcmp(m, pause, sizeof pause - 1) == 0) {
            struct timespec ts = {0, 300 * 1000 * 1000};

            nanosleep(&ts, NULL);
            p = m + sizeof pause - 1;
        } else if ((size_t)(end - m) >= sizeof conn - 1 && memcmp(m, conn, sizeof conn - 1) == 0) {
            int n = snprintf(num, sizeof num, "%d", id);

            if (write_all(fd, num, (size_t)n) < 0)
                return -1;
            p = m + sizeof conn - 1;
        } else {
            if (write_all(fd, m, 2) < 0)
                return -1;
            p = m + 2;
        }
    }
    return 0;
}

static int answer(int fd, int id, const char *name)
{
    static const char not_found[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    char path[PATH_MAX], *text;
    long len;
    FILE *f = NULL;
    int r;

    if (name[0] != '.' && strchr(name, '/') == NULL &&
        snprintf(path, sizeof path, "%s/%s", dir_singleton, name) < (int)sizeof path)
        f = fopen(path, "rb");
    if (f == NULL)
        return write_all(fd, not_found, sizeof not_found - 1);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    text = malloc(len > 0 ? (size_t)len : 1);
    if (text == NULL || fread(text, 1, (size_t)len, f) != (size_t)len) {
        free(text);
        fclose(f);
        return -1;
    }
    fclose(f);
    r = send_script(fd, id, text, text + len);
    free(text);
    return r;
}

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg, id = atomic_fetch_add(&conns_singleton, 1) + 1;
    char buf[16384], name[256];
    size_t have = 0;

    for (;;) {
        char *end = memmem(buf, have, "\r\n\r\n", 4);
        ssize_t n;

        if (end != NULL) {
            size_t used = (size_t)(end + 4 - buf);

            if (sscanf(buf, "%*s /%255[^ ?\r\n]", name) != 1)
                name[0] = '\0';
            say(id, "GET /", name);
            if (answer(fd, id, name) < 0)
                break;
            memmove(buf, buf + used, have - used);
            have -= used;
            continue;
        }
        if (have == sizeof buf)
            break;
        n = read(fd, buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            say(id, "closed", "");
            break;
        }
        have += (size_t)n;
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    const char *listen_at = NULL;
    char host[64];
    int port, fd, one = 1, i;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            listen_at = argv[i + 1];
        else if (strcmp(argv[i], "--dir") == 0)
            dir_singleton = argv[i + 1];
    }
    if (listen_at == NULL || dir_singleton == NULL ||
        sscanf(listen_at, "%63[^:]:%d", host, &port) != 2 ||
        inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "usage: pg_raw_upstream --listen 127.0.0.1:PORT --dir DIR\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    sa.sin_port = htons((uint16_t)port);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0) {
        perror("pg_raw_upstream: listen");
        return 1;
    }
    for (;;) {
        int c = accept(fd, NULL, NULL);
        pthread_t t;

        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("pg_raw_upstream: accept");
            return 1;
        }
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (pthread_create(&t, NULL, serve, (void *)(intptr_t)c) != 0) {
            close(c);
            continue;
        }
        pthread_detach(t);
    }
}
