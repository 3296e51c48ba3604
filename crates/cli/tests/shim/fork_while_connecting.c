/* Issue #22, finding 3 (fork): four threads connect through the proxy without pause while
 * the main thread forks; each child connects through the proxy too, then exits. Before,
 * a child forked while another thread held one of the shim's locks started with it held
 * and hung on its first connect or close. argv: the threads' echo port, forks, the
 * children's echo port. Prints "ok". */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

static struct sockaddr_in echo, child_echo;
static atomic_int stop;

static int echo_once(struct sockaddr_in *to, int loud) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)to, sizeof *to) != 0) {
        if (loud)
            perror("child connect");
        if (fd >= 0)
            close(fd);
        return 1;
    }
    char byte = 0;
    int failed = write(fd, "x", 1) != 1 || read(fd, &byte, 1) != 1 || byte != 'x';
    if (failed && loud)
        perror("child echo");
    close(fd);
    return failed;
}

static void *connecting(void *unused) {
    (void)unused;
    while (!atomic_load(&stop))
        echo_once(&echo, 0);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4)
        return 2;
    echo = ipv4("127.0.0.1", argv[1]);
    child_echo = echo;
    child_echo.sin_port = htons((unsigned short)atoi(argv[3]));
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&threads[i], NULL, connecting, NULL);
    int forks = atoi(argv[2]), failed = 0;
    for (int i = 0; i < forks; i++) {
        pid_t child = fork();
        if (child == 0) {
            alarm(10); /* a child that hangs is killed, and counted */
            _exit(echo_once(&child_echo, 1));
        }
        int status = 0;
        waitpid(child, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (WIFSIGNALED(status))
                fprintf(stderr, "child %d: signal %d\n", i, WTERMSIG(status));
            failed++;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    if (failed) {
        fprintf(stderr, "%d of %d children failed or hung\n", failed, forks);
        return 1;
    }
    puts("ok");
    return 0;
}
