/* Issue #22 (second review): TCP Fast Open — sendto and sendmsg with MSG_FASTOPEN connect as
 * they send, around connect(). Both go through the proxy and carry their data. Before,
 * they went straight to the target, past the proxy. argv: echo port. Prints "ok". */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    struct sockaddr_in echo = ipv4("127.0.0.1", argv[1]);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (sendto(fd, "fast", 4, MSG_FASTOPEN, (struct sockaddr *)&echo, sizeof echo) != 4)
        return fail("sendto(MSG_FASTOPEN)");
    if (echo_of(fd, "fast", "sendto(MSG_FASTOPEN)"))
        return 1;
    close(fd);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    struct iovec part = {.iov_base = "open", .iov_len = 4};
    struct msghdr message = {.msg_name = &echo, .msg_namelen = sizeof echo, .msg_iov = &part, .msg_iovlen = 1};
    if (sendmsg(fd, &message, MSG_FASTOPEN) != 4)
        return fail("sendmsg(MSG_FASTOPEN)");
    if (echo_of(fd, "open", "sendmsg(MSG_FASTOPEN)"))
        return 1;
    puts("ok");
    return 0;
}
