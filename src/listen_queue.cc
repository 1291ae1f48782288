#include "glibc_compat.h"

#include "listen_queue.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace nsem {

namespace {

// Sends one inet_diag dump request for listening TCP sockets of `family`
// and collects the answers.
int DumpFamily(int fd, int family, uint16_t port, std::vector<Listener>* out) {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message;
  memset(&message, 0, sizeof message);
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.request.sdiag_family = static_cast<uint8_t>(family);
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = 1u << TCP_LISTEN;

  sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) <
      0) {
    return errno;
  }

  alignas(nlmsghdr) char buffer[32768];
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    int len = static_cast<int>(n);
    for (nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(h, len);
         h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type == NLMSG_DONE) return 0;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const nlmsgerr* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        return e->error == 0 ? 0 : -e->error;
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      const inet_diag_msg* d = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      uint16_t sport = ntohs(d->id.idiag_sport);
      if (port != 0 && sport != port) continue;
      Listener l;
      memset(&l, 0, sizeof l);
      l.family = d->idiag_family;
      memcpy(l.address, d->id.idiag_src, d->idiag_family == AF_INET ? 4 : 16);
      l.port = sport;
      // For a listener the kernel reports the accept queue in rqueue and its
      // limit (the backlog) in wqueue.
      l.queued = d->idiag_rqueue;
      l.backlog = d->idiag_wqueue;
      out->push_back(l);
    }
  }
}

}  // namespace

int ListenQueues(uint16_t port, std::vector<Listener>* out) {
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return errno;
  int err = DumpFamily(fd, AF_INET, port, out);
  if (err == 0) err = DumpFamily(fd, AF_INET6, port, out);
  close(fd);
  return err;
}

}  // namespace nsem
