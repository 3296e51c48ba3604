/* Issue #22, finding 1: buffers and addresses C allows and a Rust slice does not — a null
 * buffer of length 0 (send, recv, an empty iovec), a sockaddr at an odd offset of a byte
 * buffer, an address too short to hold its family, a null buffer that claims bytes —
 * through a redirected UDP socket.
 * argv: target address, UDP echo port. Prints "ok" when every call did what the kernel
 * would have done. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"

/* The next datagram of `want` bytes, skipping empty ones (the echo answers those too). */
static int expect(int fd, const char *want) {
    char buffer[64];
    for (int tries = 0; tries < 10; tries++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) != 1)
            return fail("no answer");
        ssize_t n = recv(fd, buffer, sizeof buffer, 0);
        if (n < 0)
            return fail("recv");
        if (n == (ssize_t)strlen(want) && memcmp(buffer, want, n) == 0)
            return 0;
    }
    fprintf(stderr, "never got %s\n", want);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    struct sockaddr_in target = {0};
    target.sin_family = AF_INET;
    target.sin_port = htons((unsigned short)atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &target.sin_addr);
    /* The address at an odd offset: no struct alignment. */
    char raw[sizeof target + 1];
    memset(raw, 0, sizeof raw);
    memcpy(raw + 1, &target, sizeof target);
    struct sockaddr *odd = (struct sockaddr *)(raw + 1);

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return fail("socket");
    if (sendto(fd, NULL, 0, 0, odd, sizeof target) != 0)
        return fail("sendto(NULL, 0)");
    if (sendto(fd, "one", 3, 0, odd, sizeof target) != 3)
        return fail("sendto");
    if (expect(fd, "one"))
        return 1;
    /* recv into nothing: no datagram waits, so EAGAIN, as the kernel says. */
    if (recv(fd, NULL, 0, MSG_DONTWAIT) != -1 || (errno != EAGAIN && errno != EWOULDBLOCK))
        return fail("recv(NULL, 0)");
    /* sendmsg with an empty iovec next to a real one. */
    struct iovec parts[2] = {{.iov_base = NULL, .iov_len = 0}, {.iov_base = "two", .iov_len = 3}};
    struct msghdr message = {.msg_name = odd, .msg_namelen = sizeof target, .msg_iov = parts, .msg_iovlen = 2};
    if (sendmsg(fd, &message, 0) != 3)
        return fail("sendmsg");
    if (expect(fd, "two"))
        return 1;
    /* A null buffer that claims bytes: EFAULT, as the kernel says — sending nothing (or
     * writing through null) is not what was asked. */
    struct iovec null_part = {.iov_base = NULL, .iov_len = 5};
    struct msghdr faulty = {.msg_name = odd, .msg_namelen = sizeof target, .msg_iov = &null_part, .msg_iovlen = 1};
    errno = 0;
    if (sendmsg(fd, &faulty, 0) != -1 || errno != EFAULT)
        return fail("sendmsg(NULL, 5)");
    if (sendto(fd, "three", 5, 0, odd, sizeof target) != 5)
        return fail("sendto");
    struct pollfd ready = {.fd = fd, .events = POLLIN};
    if (poll(&ready, 1, 5000) != 1)
        return fail("no answer");
    struct msghdr into_null = {.msg_iov = &null_part, .msg_iovlen = 1};
    errno = 0;
    if (recvmsg(fd, &into_null, MSG_DONTWAIT) != -1 || errno != EFAULT)
        return fail("recvmsg(NULL, 5)");
    if (expect(fd, "three"))
        return 1;
    /* An address shorter than its family: refused as the kernel refuses it. */
    errno = 0;
    if (sendto(fd, "x", 1, 0, (struct sockaddr *)&target, 1) != -1 || errno != EINVAL)
        return fail("sendto(1-byte address)");
    puts("ok");
    return 0;
}
