/* Issue #22 (second review): a proxy that answers every UDP ASSOCIATE with a relay named by
 * a domain name — no address the shim could send to. Each send fails, and the shim keeps no
 * descriptor for it: after 300 sends the process has the descriptors it started with.
 * Before, each attempt left its control connection open. argv: none. Prints "ok". */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shim.h"

int main(void) {
    struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, "10.9.8.7", &target.sin_addr);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int before = open_descriptors();
    for (int i = 0; i < 300; i++) {
        if (sendto(fd, "q", 1, 0, (struct sockaddr *)&target, sizeof target) != -1) {
            fputs("a send through a relay with no address succeeded\n", stderr);
            return 1;
        }
    }
    int after = open_descriptors();
    if (after != before) {
        fprintf(stderr, "%d descriptors before, %d after 300 failed sends\n", before, after);
        return 1;
    }
    puts("ok");
    return 0;
}
