// The event loop: the listening socket, clients, the signalfd (SIGCHLD reaps, SIGTERM and
// SIGINT stop once no container is left), the log index, and the exit when idle.
#include "spawner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ss {

int Spawner::listen(int readyFd) {
  std::string sock = root_ + "/spawner.sock";
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (sock.size() >= sizeof addr.sun_path) {
    dprintf(readyFd, "socket path too long: %s", sock.c_str());
    return -1;
  }
  memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
  listenFd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  // The lock is held, so a socket file left here belongs to a dead spawner.
  unlink(sock.c_str());
  if (listenFd_ < 0 || bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      chmod(sock.c_str(), 0600) < 0 || ::listen(listenFd_, 128) < 0) {
    dprintf(readyFd, "listen on %s: %s", sock.c_str(), strerror(errno));
    return -1;
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  sigFd_ = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.fd = listenFd_;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, listenFd_, &ev);
  ev.data.fd = sigFd_;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, sigFd_, &ev);
  logIndex_.attach(epfd_);
  return 0;
}

int Spawner::loop() {
  int64_t idleSince = nowMs();
  while (true) {
    size_t live = 0;
    for (const auto& [id, ct] : containers_) live += ct.exited ? 0 : 1;
    // Exited containers need nothing from this process: their exit.json is on disk.
    bool idle = clients_.empty() && live == 0 && execs_.empty();
    if (stopping_ && live == 0 && execs_.empty()) {
      logIndex_.settleAll();
      return 0;
    }
    if (idle && idleMs_ > 0 && nowMs() - idleSince >= idleMs_) {
      logf("idle for %d ms, exiting", idleMs_);
      logIndex_.settleAll();
      return 0;
    }
    if (!idle) idleSince = nowMs();
    struct epoll_event evs[32];
    // Growth held back by the one-record-per-millisecond rule is written in the next one.
    int n = epoll_wait(epfd_, evs, 32, logIndex_.hasPending() ? 1 : idleMs_ > 0 ? 1000 : -1);
    if (n < 0 && errno != EINTR) {
      logf("epoll_wait: %s", strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == listenFd_) accept();
      else if (fd == sigFd_) {
        struct signalfd_siginfo si;
        while (read(sigFd_, &si, sizeof si) == sizeof si) {
          if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            logf("signal %u: exiting once no container is left", si.ssi_signo);
            stopping_ = true;
          }
        }
        reap();
      } else if (fd == logIndex_.fd()) logIndex_.onReadable();
      else if (adopted_.count(fd)) adoptedExit(fd);
      else readClient(fd);
    }
    logIndex_.flushPending();
  }
}

void Spawner::accept() {
  while (true) {
    int fd = accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
    clients_[fd].fd = fd;
  }
}

void Spawner::closeClient(int fd) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  for (int x : it->second.fds) close(x);
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  clients_.erase(it);
  for (auto& [pid, ex] : execs_)
    if (ex.clientFd == fd) ex.clientFd = -1;
}

void Spawner::readClient(int fd) {
  Client& c = clients_[fd];
  char buf[65536];
  union {
    char b[CMSG_SPACE(sizeof(int) * 16)];
    struct cmsghdr align;
  } control;
  struct iovec iov = {buf, sizeof buf};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.b;
  msg.msg_controllen = sizeof control.b;
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    closeClient(fd);
    return;
  }
  bool badFds = (msg.msg_flags & MSG_CTRUNC) != 0;
  for (struct cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len >= CMSG_LEN(0)) {
      size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      int* p = reinterpret_cast<int*>(CMSG_DATA(cm));
      for (size_t k = 0; k < count; ++k) {
        int x;
        memcpy(&x, p + k, sizeof x);
        c.fds.push_back(x);
      }
    }
  }
  // More fds than any request takes, or fds the kernel had to drop (MSG_CTRUNC): this peer
  // does not speak the protocol; its fds are closed with it.
  if (badFds || c.fds.size() > kMaxClientFds) {
    logf("client sent %zu fds%s; closing it", c.fds.size(), badFds ? " (truncated)" : "");
    closeClient(fd);
    return;
  }
  c.in.append(buf, size_t(n));
  size_t off = 0;
  while (c.in.size() - off >= 4) {
    uint32_t len = wire::getU32(c.in.data() + off);
    if (len > wire::kMaxFrame) {
      // The framing itself is broken: nothing after this length can be trusted.
      logf("client sent a %u-byte frame (at most %u); closing it", len, wire::kMaxFrame);
      closeClient(fd);
      return;
    }
    if (c.in.size() - off - 4 < size_t(len)) break;
    wire::Fields f;
    bool ok = wire::decodeBody(c.in.data() + off + 4, len, &f);
    off += 4 + size_t(len);
    if (!ok || f.empty()) {
      // The frame's own length was sound, so the stream stays in step; this frame is refused
      // and any fds that came with it are closed.
      for (int x : c.fds) close(x);
      c.fds.clear();
      std::string why = f.empty() && ok ? "an empty frame (no verb)"
                        : f.size() >= wire::kMaxFields
                            ? "more than " + std::to_string(wire::kMaxFields) + " fields"
                            : "field " + std::to_string(f.size()) + " runs past the end of the frame";
      reply(fd, errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "malformed request: " + why}));
      if (clients_.find(fd) == clients_.end()) return;
      continue;
    }
    handle(c, f);
    if (clients_.find(fd) == clients_.end()) return;
  }
  c.in.erase(0, off);
}

void Spawner::reply(int fd, const wire::Fields& f) {
  if (fd < 0) return;
  std::string frame = wire::encode(f);
  size_t off = 0;
  while (off < frame.size()) {
    ssize_t n = send(fd, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      struct pollfd p = {fd, POLLOUT, 0};
      if (poll(&p, 1, 5000) <= 0) return;
      continue;
    }
    if (n <= 0) return;
    off += size_t(n);
  }
}

namespace {

// A waitid() result as the wait status recordExit and exec exits are written from.
int waitStatus(const siginfo_t& si) {
  if (si.si_code == CLD_EXITED) return (si.si_status & 0xff) << 8;
  return (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? 0x80 : 0);
}

// Reaps the child `pidfd` names if it has exited; false while it runs.
bool reapPidfd(int pidfd, int* status) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid(kPidfd, id_t(pidfd), &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0) return false;
  *status = waitStatus(si);
  return true;
}

}  // namespace

void Spawner::execExited(std::map<int, ExecProc>::iterator it, int status) {
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  reply(it->second.clientFd, {"exit", std::to_string(code), std::to_string(sig)});
  close(it->first);
  execs_.erase(it);
}

// Every child this process knows of is reaped through its own pidfd, so an exit is
// matched to the process that made it, never to a later one with a reused pid.
void Spawner::reap() {
  int status = 0;
  for (auto& [id, ct] : containers_)
    if (!ct.exited && !ct.adopted && ct.pidfd >= 0 && reapPidfd(ct.pidfd, &status)) recordExit(ct, status);
  for (auto it = execs_.begin(); it != execs_.end();) {
    auto cur = it++;
    if (reapPidfd(cur->first, &status)) execExited(cur, status);
  }
  // Anything else is an exec helper or an orphan this subreaper inherited. A known child
  // that exited since the passes above can turn up here too: it is still unreaped until
  // this waitpid, so its pid cannot have been reused and names it.
  while (true) {
    pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
    if (pid <= 0) return;
    for (auto& [id, ct] : containers_)
      if (!ct.exited && !ct.adopted && ct.pid == pid) recordExit(ct, status);
    for (auto it = execs_.begin(); it != execs_.end(); ++it)
      if (it->second.pid == pid) {
        execExited(it, status);
        break;
      }
  }
}

}  // namespace ss
