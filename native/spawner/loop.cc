// The event loop: the listening socket, clients, the signalfd (SIGCHLD reaps, SIGTERM and
// SIGINT stop once no container is left), the log index, and the exit when idle.
#include "spawner.h"

#include <fcntl.h>
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
#include <algorithm>
#include <climits>
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
  // Before any clone(): every init inherits the region it receives its start image into.
  if (!mapStartRegion()) {
    dprintf(readyFd, "map the start region: %s", strerror(errno));
    return -1;
  }
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
    bool idle = clients_.empty() && live == 0 && execs_.empty() && launches_.empty();
    if (stopping_ && live == 0 && execs_.empty() && launches_.empty()) {
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
    int n = epoll_wait(epfd_, evs, 32, nextTimeoutMs(logIndex_.hasPending() ? 1 : idleMs_ > 0 ? 1000 : -1));
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
      else if (launches_.count(fd)) onLaunchReadable(fd);
      else if (clients_.count(fd)) onClient(fd, evs[i].events);
      dropDoomed();
    }
    expireLaunches();
    dropDoomed();
    logIndex_.flushPending();
  }
}

// The epoll timeout: `fallback`, or sooner when a launch's deadline comes first.
int Spawner::nextTimeoutMs(int fallback) {
  if (launches_.empty()) return fallback;
  int64_t now = nowMs(), soonest = INT64_MAX;
  for (const auto& [fd, l] : launches_) soonest = std::min(soonest, l->deadline);
  int64_t wait = std::max<int64_t>(0, soonest - now);
  return fallback < 0 ? int(std::min<int64_t>(wait, INT32_MAX)) : int(std::min<int64_t>(wait, fallback));
}

void Spawner::accept() {
  while (true) {
    // Non-blocking: a client that stops reading or stops mid-frame can never hold up the
    // loop; what it does not take waits in its queue.
    int fd = accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    Client& c = clients_[fd];
    c = Client();
    c.fd = fd;
    c.serial = nextSerial_++;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = c.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
      logf("epoll_ctl add client: %s", strerror(errno));
      clients_.erase(fd);
      close(fd);
    }
  }
}

void Spawner::closeClient(int fd) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  for (int x : it->second.fds) close(x);
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  clients_.erase(it);
}

void Spawner::dropDoomed() {
  for (auto it = clients_.begin(); it != clients_.end();) {
    int fd = it->first;
    bool drop = it->second.drop;
    ++it;
    if (drop) closeClient(fd);
  }
}

// Reads while this client is not busy with a launch; writes while it has queued output.
// EPOLLHUP and EPOLLERR come regardless, so a client that goes away is always seen.
void Spawner::setInterest(Client& c) {
  uint32_t want = (c.busy ? 0u : uint32_t(EPOLLIN)) | (c.outOff < c.out.size() ? uint32_t(EPOLLOUT) : 0u);
  if (want == c.events) return;
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = want;
  ev.data.fd = c.fd;
  if (epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev) < 0) {
    logf("epoll_ctl client %d: %s", c.fd, strerror(errno));
    c.drop = true;
    return;
  }
  c.events = want;
}

void Spawner::onClient(int fd, uint32_t events) {
  Client& c = clients_[fd];
  if (events & EPOLLOUT) flush(c);
  if (!c.drop && !c.busy && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) readClient(c);
  // Gone for good: a reply still owed (a launch in progress) has nobody to go to.
  if (events & (EPOLLHUP | EPOLLERR)) c.drop = true;
}

void Spawner::flush(Client& c) {
  while (c.outOff < c.out.size()) {
    ssize_t n = send(c.fd, c.out.data() + c.outOff, c.out.size() - c.outOff, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      c.drop = true;  // EPIPE, ECONNRESET: the peer is gone
      return;
    }
    c.outOff += size_t(n);
  }
  if (c.outOff == c.out.size()) {
    c.out.clear();
    c.outOff = 0;
  } else if (c.outOff > (64u << 10)) {
    c.out.erase(0, c.outOff);
    c.outOff = 0;
  }
  setInterest(c);
}

void Spawner::reply(Client& c, const wire::Fields& f) {
  if (c.drop) return;
  c.out += wire::encode(f);
  if (c.out.size() - c.outOff > kMaxClientQueue) {
    logf("client %d has %zu bytes of replies it does not read; dropping it", c.fd, c.out.size() - c.outOff);
    c.drop = true;
    return;
  }
  flush(c);
}

void Spawner::reply(const ReplyTo& to, const wire::Fields& f) {
  auto it = clients_.find(to.fd);
  if (it == clients_.end() || it->second.serial != to.serial) return;
  reply(it->second, f);
}

void Spawner::readClient(Client& c) {
  // Bounded per readiness, so one client sending without pause cannot starve the others;
  // level-triggered epoll comes back for the rest.
  for (int round = 0; round < 16 && !c.busy && !c.drop; ++round) {
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
    ssize_t n = recvmsg(c.fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      c.drop = true;  // EOF (a frame cut short dies with it) or a socket error
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
      c.drop = true;
      return;
    }
    c.in.append(buf, size_t(n));
    processInput(c);
  }
}

// Handles the whole frames in c.in, in order, until one is deferred (a launch).
void Spawner::processInput(Client& c) {
  size_t off = 0;
  while (!c.busy && !c.drop && c.in.size() - off >= 4) {
    uint32_t len = wire::getU32(c.in.data() + off);
    if (len > wire::kMaxFrame) {
      // The framing itself is broken: nothing after this length can be trusted.
      logf("client sent a %u-byte frame (at most %u); closing it", len, wire::kMaxFrame);
      c.drop = true;
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
      reply(c, errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "malformed request: " + why}));
      continue;
    }
    handle(c, f);
  }
  c.in.erase(0, off);
  setInterest(c);
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
  reply(it->second.to, {"exit", std::to_string(code), std::to_string(sig)});
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
  for (auto it = zombies_.begin(); it != zombies_.end();) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    // ECHILD: reaped already by the pass below.
    if (waitid(kPidfd, id_t(*it), &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0) {
      ++it;
      continue;
    }
    close(*it);
    it = zombies_.erase(it);
  }
  // Anything else is an orphan this subreaper inherited. A known child that exited since
  // the passes above can turn up here too: it is still unreaped until this waitpid, so its
  // pid cannot have been reused and names it. While an exec's workload exists but its
  // pidfd is not taken yet (its helper's report is still unread), nothing is reaped blind:
  // it would be that workload, and its exit status would be lost.
  if (execLaunchPending()) return;
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
