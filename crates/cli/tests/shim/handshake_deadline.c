/* Issue #22, finding 5 (the bound): with SO_SNDTIMEO at 1 s, a connect through a proxy
 * that answers one byte every 0.6 s fails with ETIMEDOUT after about 1 s in all — before,
 * the bound applied to each read, and the trickle kept the handshake going. argv: a target
 * port (never reached). Prints "ok SECONDS". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    struct sockaddr_in target = ipv4("192.0.2.1", argv[1]);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval second = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &second, sizeof second);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int connected = connect(fd, (struct sockaddr *)&target, sizeof target);
    int error = errno;
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
    if (connected == 0 || error != ETIMEDOUT) {
        fprintf(stderr, "connect: %d, errno %d, after %.2f s\n", connected, error, seconds);
        return 1;
    }
    printf("ok %.2f\n", seconds);
    return 0;
}
