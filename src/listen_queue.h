// The accept queues of TCP listeners, read from the kernel with sock_diag
// netlink (as `ss -ltn` does): for each listening socket, how many
// connections wait to be accepted and the backlog limit.
#ifndef NAMED_SEMAPHORE_LISTEN_QUEUE_H
#define NAMED_SEMAPHORE_LISTEN_QUEUE_H

#include <stdint.h>

#include <vector>

namespace nsem {

struct Listener {
  int family;           // AF_INET or AF_INET6
  uint8_t address[16];  // network byte order; 4 bytes used for AF_INET
  uint16_t port;
  uint32_t queued;   // connections waiting to be accepted
  uint32_t backlog;  // the accept queue's limit
};

// Appends the TCP listeners on `port` (0: all) of this network namespace.
// Returns 0 or an errno.
int ListenQueues(uint16_t port, std::vector<Listener>* out);

}  // namespace nsem

#endif
