// The event loop: the listening socket, the signalfd (SIGCHLD reaps, SIGTERM and
// SIGINT stop once no container is left), the log index, and the exit when idle. Client
// connections are in clients.cc.
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
  // pidfd is not taken yet (its helper's report is still unread), or while CRIU restores a
  // tree that is to be reparented here, nothing is reaped blind: it would be that workload
  // (or that restored init, or CRIU itself), and its exit status would be lost.
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
