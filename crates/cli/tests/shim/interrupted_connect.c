/* Issue #22, finding 5: a program whose connects are interrupted by signals (a 1 kHz
 * SIGALRM, its handler installed without SA_RESTART), and that set its own socket
 * timeouts. Each connect through the shim either completes — the echo answers — or fails
 * as the kernel's would; the program's SO_RCVTIMEO and SO_SNDTIMEO are as it set them.
 * argv: echo address, port, rounds. Prints "ok N" with N connects that completed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "shim.h"

static volatile sig_atomic_t ticks;
static void tick(int signal) {
    (void)signal;
    ticks++;
}

int main(int argc, char **argv) {
    if (argc != 4)
        return 2;
    struct sockaddr_in echo = ipv4(argv[1], argv[2]);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = tick; /* no SA_RESTART: blocking calls return EINTR */
    sigaction(SIGALRM, &action, NULL);
    struct itimerval every = {.it_interval = {0, 1000}, .it_value = {0, 1000}};
    setitimer(ITIMER_REAL, &every, NULL);
    int rounds = atoi(argv[3]), completed = 0;
    for (int round = 0; round < rounds; round++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct timeval receive = {7, 250000}, send = {3, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &receive, sizeof receive);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send, sizeof send);
        /* As the kernel keeps them (rounded to its clock's ticks). */
        struct timeval set_receive, set_send;
        socklen_t set_length = sizeof set_receive;
        getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &set_receive, &set_length);
        set_length = sizeof set_send;
        getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &set_send, &set_length);
        int connected = connect(fd, (struct sockaddr *)&echo, sizeof echo);
        if (connected != 0 && errno != EINTR) {
            perror("connect");
            return 1;
        }
        struct timeval got_receive, got_send;
        socklen_t length = sizeof got_receive;
        getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &got_receive, &length);
        length = sizeof got_send;
        getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &got_send, &length);
        if (got_receive.tv_sec != set_receive.tv_sec || got_receive.tv_usec != set_receive.tv_usec ||
            got_send.tv_sec != set_send.tv_sec || got_send.tv_usec != set_send.tv_usec || set_send.tv_sec != 3) {
            fprintf(stderr, "timeouts changed: %ld.%06ld %ld.%06ld\n", (long)got_receive.tv_sec,
                    (long)got_receive.tv_usec, (long)got_send.tv_sec, (long)got_send.tv_usec);
            return 1;
        }
        if (connected == 0) {
            /* Completed: a working connection to the echo, not a socket left half way to
             * the proxy (which would swallow these bytes into its handshake). */
            ssize_t n;
            do
                n = write(fd, "ping", 4);
            while (n < 0 && errno == EINTR);
            char context[32];
            snprintf(context, sizeof context, "round %d", round);
            if (echo_of(fd, "ping", context))
                return 1;
            completed++;
        }
        close(fd);
    }
    printf("ok %d\n", completed);
    return ticks > 0 ? 0 : 3;
}
