/* Issue #22, finding 3 (signals): a SIGALRM handler (1 kHz) closes proxied sockets while
 * the main thread keeps connecting new ones. close is async-signal-safe in C; before, the
 * handler could find the shim's lock held by the very thread it interrupted, and hang
 * forever. Every connect completes through the proxy (the shim rides out the interruptions).
 * argv: echo port, rounds. Prints "ok N", N the connects that completed. */
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
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define POOL 64
static atomic_int pool[POOL];

static void close_one(int signal) {
    (void)signal;
    for (int i = 0; i < POOL; i++) {
        int fd = atomic_exchange(&pool[i], -1);
        if (fd >= 0) {
            close(fd);
            return;
        }
    }
}

static void *watchdog(void *unused) {
    (void)unused;
    /* Not this thread's signal: a handler here would cut the sleep short. */
    sigset_t alarm_only;
    sigemptyset(&alarm_only);
    sigaddset(&alarm_only, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alarm_only, NULL);
    time_t deadline = time(NULL) + 30;
    while (time(NULL) < deadline)
        sleep(1);
    fprintf(stderr, "hung\n");
    _exit(9);
}

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    for (int i = 0; i < POOL; i++)
        atomic_store(&pool[i], -1);
    pthread_t dog;
    pthread_create(&dog, NULL, watchdog, NULL);
    struct sockaddr_in echo = ipv4("127.0.0.1", argv[1]);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = close_one;
    action.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &action, NULL);
    struct itimerval every = {.it_interval = {0, 1000}, .it_value = {0, 1000}};
    setitimer(ITIMER_REAL, &every, NULL);
    int rounds = atoi(argv[2]), connected = 0;
    for (int round = 0; round < rounds; round++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            continue;
        if (connect(fd, (struct sockaddr *)&echo, sizeof echo) == 0)
            connected++;
        else
            perror("connect");
        /* Into the pool, for the handler to close (or closed here when it is full). */
        int placed = 0;
        for (int i = 0; i < POOL && !placed; i++) {
            int empty = -1;
            placed = atomic_compare_exchange_strong(&pool[i], &empty, fd);
        }
        if (!placed)
            close(fd);
    }
    struct itimerval off = {0};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("ok %d\n", connected);
    return 0;
}
