/* agent_fork: an agent host that forks. The parent's agent comes from PROFAGENT_SOCKET; the
 * child must start clean: no agent inherited (profagent_socket_path() is NULL), its exit must
 * not remove the parent's socket, and it may start an agent of its own.
 *   agent_fork CHILD_SOCKET SECONDS
 * The child serves CHILD_SOCKET for SECONDS then exits 0; the parent waits for it, prints
 * "child exit N", then lives SECONDS more (so the test can check the parent's socket). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "profagent.h"

int main(int argc, char **argv)
{
    int seconds, status = 0;
    pid_t pid;

    if (argc != 3) {
        fprintf(stderr, "usage: agent_fork CHILD_SOCKET SECONDS\n");
        return 2;
    }
    seconds = atoi(argv[2]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("parent agent %s\n", profagent_socket_path() ? profagent_socket_path() : "(none)");
    pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        profagent_options_t o;
        const char *inherited = profagent_socket_path();
        printf("child inherited %s\n", inherited ? inherited : "(none)");
        if (inherited != NULL)
            _exit(3);
        profagent_options_init(&o);
        o.socket_path = argv[1];
        if (profagent_start(&o) != 0)
            _exit(4);
        printf("child agent %s\n", profagent_socket_path());
        sleep((unsigned)seconds);
        profagent_stop();
        exit(0); /* runs destructors: must not touch the parent's socket */
    }
    waitpid(pid, &status, 0);
    printf("child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    sleep((unsigned)seconds);
    profagent_stop();
    return 0;
}
