/* Issue #22, findings 2 and 3 together: a program whose SIGALRM handler (1 kHz, on the
 * main thread) closes proxied sockets and writes on a UDP socket connected through the
 * relay, while a second thread keeps connecting through the proxy and the main thread
 * forks. Every child connects through the proxy and exchanges data; nothing hangs (a
 * watchdog ends the program after 60 s). The main thread does not allocate while the timer
 * runs (fork, waitpid), so the handler's datagram through the relay — which allocates — is
 * safe here. argv: echo port, forks, children's echo port.
 * Prints "ok N", N the children that succeeded. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define POOL 32
static atomic_int pool[POOL];
static int datagrams = -1;
static atomic_int stop;

/* The handler: one pooled socket closed, one datagram written through the relay. */
static void on_alarm(int signal) {
    (void)signal;
    int saved = errno;
    for (int i = 0; i < POOL; i++) {
        int fd = atomic_exchange(&pool[i], -1);
        if (fd >= 0) {
            close(fd);
            break;
        }
    }
    if (datagrams >= 0)
        (void)send(datagrams, "tick", 4, MSG_DONTWAIT);
    errno = saved;
}

static void block_alarm(void) {
    sigset_t alarm_only;
    sigemptyset(&alarm_only);
    sigaddset(&alarm_only, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alarm_only, NULL);
}

static void *watchdog(void *unused) {
    (void)unused;
    block_alarm();
    time_t deadline = time(NULL) + 60;
    while (time(NULL) < deadline)
        sleep(1);
    fprintf(stderr, "hung\n");
    _exit(9);
}

static struct sockaddr_in echo;

static void *connector(void *unused) {
    (void)unused;
    block_alarm();
    while (!atomic_load(&stop)) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            continue;
        if (connect(fd, (struct sockaddr *)&echo, sizeof echo) != 0) {
            close(fd);
            continue;
        }
        int placed = 0;
        for (int i = 0; i < POOL && !placed; i++) {
            int empty = -1;
            placed = atomic_compare_exchange_strong(&pool[i], &empty, fd);
        }
        if (!placed)
            close(fd);
    }
    return NULL;
}

/* A child: one connection through the proxy, one round trip. */
static int child(struct sockaddr_in *target) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)target, sizeof *target) != 0)
        return 1;
    /* A forked child of a multithreaded program: no stdio here (another thread may have
       held its lock at the fork), so not echo_of, which speaks on failure. */
    char buffer[4];
    if (write(fd, "kid", 3) != 3)
        return 1;
    size_t got = 0;
    while (got < 3) {
        ssize_t n = read(fd, buffer + got, 3 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 1;
        got += (size_t)n;
    }
    return memcmp(buffer, "kid", 3) != 0;
}

int main(int argc, char **argv) {
    if (argc != 4)
        return 2;
    for (int i = 0; i < POOL; i++)
        atomic_store(&pool[i], -1);
    echo = ipv4("127.0.0.1", argv[1]);
    struct sockaddr_in children = echo;
    children.sin_port = htons((unsigned short)atoi(argv[3]));
    /* A UDP socket connected through the relay (the echo's port: nobody need answer). */
    datagrams = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(datagrams, (struct sockaddr *)&echo, sizeof echo) != 0)
        return fail("udp connect");
    pthread_t dog, worker;
    pthread_create(&dog, NULL, watchdog, NULL);
    pthread_create(&worker, NULL, connector, NULL);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_alarm;
    action.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &action, NULL);
    struct itimerval every = {.it_interval = {0, 1000}, .it_value = {0, 1000}};
    setitimer(ITIMER_REAL, &every, NULL);
    int forks = atoi(argv[2]), succeeded = 0;
    for (int round = 0; round < forks; round++) {
        pid_t pid = fork();
        if (pid < 0)
            return fail("fork");
        if (pid == 0)
            _exit(child(&children));
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            succeeded++;
        else
            fprintf(stderr, "child %d failed (status %d)\n", round, status);
    }
    struct itimerval off = {0};
    setitimer(ITIMER_REAL, &off, NULL);
    atomic_store(&stop, 1);
    pthread_join(worker, NULL);
    printf("ok %d\n", succeeded);
    return 0;
}
