#include "socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace ss::sock {

int connectUnix(const std::string& path, int* err, const char** syscall) {
  *syscall = "connect";
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    *err = ENAMETOOLONG;
    return -1;
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  *syscall = "socket";
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  *syscall = "connect";
  int rc;
  do rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    *err = errno;
    close(fd);
    return -1;
  }
  return fd;
}

namespace {

int64_t monoMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

ssize_t sendWithFds(int fd, const void* data, size_t len, const int* fds, size_t nfds, bool wait, int timeoutMs,
                    int* err) {
  if (nfds > kMaxFds) {
    *err = E2BIG;
    return -1;
  }
  struct iovec iov = {const_cast<void*>(data), len};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  union {
    char b[CMSG_SPACE(sizeof(int) * kMaxFds)];
    struct cmsghdr align;
  } control;
  if (nfds > 0) {
    msg.msg_control = control.b;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
  }
  int64_t deadline = monoMs() + timeoutMs;
  while (true) {
    // MSG_DONTWAIT: the socket may be blocking or not (libuv makes it non-blocking); this
    // call never sleeps in sendmsg, only in the poll below when asked to.
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      *err = errno;
      return -1;
    }
    if (!wait) return 0;
    int left = int(deadline - monoMs());
    if (left <= 0) {
      *err = ETIMEDOUT;
      return -1;
    }
    struct pollfd p = {fd, POLLOUT, 0};
    if (poll(&p, 1, left) < 0 && errno != EINTR) {
      *err = errno;
      return -1;
    }
  }
}

bool peerGone(int fd) {
  struct pollfd p = {fd, short(POLLRDHUP), 0};
  int n;
  do n = poll(&p, 1, 0);
  while (n < 0 && errno == EINTR);
  return n > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace ss::sock
