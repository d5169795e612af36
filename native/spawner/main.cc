// stratoswarm-spawner: parent and reaper of every container under one state root.
//
// One single-threaded process per state root, started on demand by the runtime. It
// outlives the host agent that started it, so containers keep running and their exit codes
// are kept when that agent dies; a later agent reconnects to the same socket. Requests and
// replies use the framing of wire.h on a SOCK_STREAM unix socket (plain Node sockets can
// speak it; the addon adds fds with SCM_RIGHTS where a request carries stdio).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "child.h"
#include "plan.h"

namespace ss {
namespace {

constexpr int kSetupTimeoutMs = 30000;

int64_t nowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void logf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void logf(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%lld spawner[%d]: %s\n", static_cast<long long>(nowMs()), getpid(), buf);
}

struct Error {
  std::string code = "ESYSCALL";
  Step step = Step::spawner;
  int err = 0;
  std::string syscall;
  std::string path;
  std::string message;
};

wire::Fields errorReply(const Error& e) {
  return {"error", e.code, stepName(e.step), std::to_string(e.err), e.err ? strerrorname_np(e.err) ?: "" : "",
          e.syscall, e.path, e.message};
}

struct Client {
  int fd = -1;
  std::string in;
  std::vector<int> fds;  // received with SCM_RIGHTS, consumed by the next request
  bool subscriber = false;
};

struct Container {
  std::string id;
  std::string stateDir;
  pid_t pid = 0;
  int pidfd = -1;
  int sync = -1;  // open until start() (parked init waiting for kStart)
  bool exited = false;
  int status = 0;
  int64_t finishedAt = 0;
};

struct ExecProc {
  int clientFd;
  std::string containerId;
};

// A time index beside each container log, so a reader can tell when every line was written
// (`docker logs --since`). The container's init writes its log directly, so only the file's
// growth is visible here: on each IN_MODIFY the log's size is checked, and growth appends a
// record { time_ms, size_after } (two little-endian u64, CLOCK_REALTIME) to "<log>.idx".
// A record means "the first size_after bytes were in the file by time_ms". The index is a
// convenience: no failure here may stop a container or this process, so every error is
// logged once per file and otherwise ignored.
class LogIndexer {
 public:
  static constexpr size_t kRecord = 16;

  void attach(int epfd) {
    epfd_ = epfd;
    ensureFd();
  }
  int fd() const { return fd_; }
  bool hasPending() const { return pending_ > 0; }

  void watch(const std::string& owner, const std::string& log) {
    if (log.empty() || !ensureFd()) return;
    for (const auto& [k, e] : entries_)
      if (e.owner == owner && e.log == log) return;  // stdout and stderr share one file
    Entry e;
    e.owner = owner;
    e.log = log;
    e.logFd = open(log.c_str(), O_PATH | O_CLOEXEC);
    struct stat st;
    if (e.logFd < 0 || fstat(e.logFd, &st) < 0) {
      logf("log index: open %s: %s", log.c_str(), strerror(errno));
      release(e);
      return;
    }
    // /dev/null, a tty or a pipe has no offsets to index.
    if (!S_ISREG(st.st_mode)) {
      release(e);
      return;
    }
    std::string idxPath = log + ".idx";
    e.idx = open(idxPath.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (e.idx < 0) {
      logf("log index: open %s: %s", idxPath.c_str(), strerror(errno));
      release(e);
      return;
    }
    resume(e);
    e.wd = inotify_add_watch(fd_, log.c_str(), IN_MODIFY);
    if (e.wd < 0) {
      logf("log index: inotify_add_watch %s: %s", log.c_str(), strerror(errno));
      release(e);
      return;
    }
    uint64_t key = next_++;
    auto& stored = entries_[key] = std::move(e);
    byWd_.emplace(stored.wd, key);
    update(stored);  // output written before the watch existed (an adopted container's)
  }

  // Records the logs of `owner` as they are now, for growth no event has reported yet
  // (the container has exited, so no later millisecond is worth waiting for).
  void settle(const std::string& owner) {
    for (auto& [k, e] : entries_)
      if (e.owner == owner) settle(e);
  }

  void settleAll() {
    for (auto& [k, e] : entries_) settle(e);
  }

  void unwatch(const std::string& owner) {
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.owner != owner) {
        ++it;
        continue;
      }
      Entry& e = it->second;
      settle(e);
      setPending(e, false);
      dropWd(e, it->first);
      release(e);
      it = entries_.erase(it);
    }
  }

  void onReadable() {
    alignas(struct inotify_event) char buf[8192];
    while (true) {
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (n < 0 && errno != EAGAIN) logf("log index: read inotify: %s", strerror(errno));
        return;
      }
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<struct inotify_event*>(p);
        p += sizeof *ev + ev->len;
        if (ev->mask & IN_Q_OVERFLOW) {
          // Events were dropped: any file may have grown.
          for (auto& [k, e] : entries_) update(e);
          continue;
        }
        auto range = byWd_.equal_range(ev->wd);
        if (ev->mask & IN_IGNORED) {
          // The kernel removed the watch (the log was deleted): nothing more will come.
          for (auto it = range.first; it != range.second; ++it) {
            auto ei = entries_.find(it->second);
            if (ei != entries_.end()) ei->second.wd = -1;
          }
          byWd_.erase(range.first, range.second);
          continue;
        }
        for (auto it = range.first; it != range.second; ++it) {
          auto ei = entries_.find(it->second);
          if (ei != entries_.end()) update(ei->second);
        }
      }
    }
  }

  void flushPending() {
    if (pending_ == 0) return;
    for (auto& [k, e] : entries_)
      if (e.pending) update(e);
  }

  // In a freshly cloned child, before it runs any of the container's plan: CLOEXEC would
  // close these at execve anyway, but the container's init should never hold them at all.
  // Allocates nothing.
  void closeInChild() const {
    if (fd_ >= 0) close(fd_);
    for (const auto& [k, e] : entries_) {
      if (e.idx >= 0) close(e.idx);
      if (e.logFd >= 0) close(e.logFd);
    }
  }

 private:
  struct Entry {
    std::string owner;  // container id
    std::string log;
    int logFd = -1;  // O_PATH: fstat sees the file the watch is on even if the path changes
    int idx = -1;
    int wd = -1;
    uint64_t lastSize = 0;
    int64_t lastMs = -1;
    bool pending = false;  // grew within the millisecond of the last record
    bool failing = false;  // an error was logged; the next ones are not
  };

  bool ensureFd() {
    if (fd_ >= 0) return true;
    if (epfd_ < 0) return false;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
      // Tried again at the next container; logged once so a full system does not flood the log.
      if (!initFailed_) logf("log index: inotify_init1: %s; logs get no time index", strerror(errno));
      initFailed_ = true;
      return false;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
      logf("log index: epoll_ctl: %s", strerror(errno));
      close(fd);
      return false;
    }
    fd_ = fd;
    initFailed_ = false;
    return true;
  }

  // Continues an index an earlier spawner left, so a re-watched file gets no duplicate records.
  void resume(Entry& e) {
    struct stat st;
    if (fstat(e.idx, &st) < 0) return;
    off_t whole = st.st_size - st.st_size % off_t(kRecord);
    // A partial record (a full disk) would misalign every record after it.
    if (whole != st.st_size && ftruncate(e.idx, whole) < 0)
      logf("log index: truncate %s.idx: %s", e.log.c_str(), strerror(errno));
    unsigned char rec[kRecord];
    if (whole >= off_t(kRecord) && pread(e.idx, rec, kRecord, whole - off_t(kRecord)) == ssize_t(kRecord)) {
      e.lastMs = int64_t(getLE(rec));
      e.lastSize = getLE(rec + 8);
    }
  }

  uint64_t currentSize(const Entry& e) const {
    struct stat st;
    return e.logFd >= 0 && fstat(e.logFd, &st) == 0 ? uint64_t(st.st_size) : 0;
  }

  void settle(Entry& e) {
    update(e);
    // Growth within the millisecond of the last record is stamped 1 ms after it, at most
    // 1 ms later than the truth, instead of waiting for the next millisecond.
    if (e.pending) append(e, e.lastMs + 1, currentSize(e));
  }

  void update(Entry& e) {
    uint64_t size = currentSize(e);
    if (size <= e.lastSize) {
      setPending(e, false);
      return;
    }
    int64_t now = nowMs();
    if (now == e.lastMs) {
      setPending(e, true);
      return;
    }
    append(e, now, size);
  }

  void append(Entry& e, int64_t ms, uint64_t size) {
    if (e.idx < 0 || size <= e.lastSize) return;
    unsigned char rec[kRecord];
    putLE(rec, uint64_t(ms));
    putLE(rec + 8, size);
    // One write to an O_APPEND fd: a reader sees a whole record or none of it.
    ssize_t n = write(e.idx, rec, kRecord);
    if (n != ssize_t(kRecord)) {
      int err = n < 0 ? errno : ENOSPC;
      struct stat st;
      if (n > 0 && fstat(e.idx, &st) == 0 && ftruncate(e.idx, st.st_size - n) < 0) err = errno;
      if (!e.failing) logf("log index: write %s.idx: %s", e.log.c_str(), strerror(err));
      e.failing = true;
      return;  // the growth stays unrecorded; the next event tries again
    }
    if (e.failing) logf("log index: writing %s.idx again", e.log.c_str());
    e.failing = false;
    e.lastMs = ms;
    e.lastSize = size;
    setPending(e, false);
  }

  void setPending(Entry& e, bool on) {
    if (e.pending == on) return;
    e.pending = on;
    pending_ += on ? 1 : -1;
  }

  void dropWd(Entry& e, uint64_t key) {
    if (e.wd < 0) return;
    bool shared = false;
    auto range = byWd_.equal_range(e.wd);
    for (auto it = range.first; it != range.second;) {
      if (it->second == key) it = byWd_.erase(it);
      else {
        shared = true;
        ++it;
      }
    }
    // One inotify watch per inode: another container's log on the same file keeps it.
    if (!shared) inotify_rm_watch(fd_, e.wd);
    e.wd = -1;
  }

  static void release(Entry& e) {
    if (e.idx >= 0) close(e.idx);
    if (e.logFd >= 0) close(e.logFd);
    e.idx = e.logFd = -1;
  }

  static void putLE(unsigned char* p, uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
  }
  static uint64_t getLE(const unsigned char* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }

  int fd_ = -1;
  int epfd_ = -1;
  bool initFailed_ = false;
  std::map<uint64_t, Entry> entries_;
  std::multimap<int, uint64_t> byWd_;
  uint64_t next_ = 0;
  size_t pending_ = 0;
};

class Spawner {
 public:
  Spawner(std::string root, int idleMs) : root_(std::move(root)), idleMs_(idleMs) {}
  int listen(int readyFd);
  int loop();

 private:
  void accept();
  void readClient(int fd);
  void closeClient(int fd);
  void handle(Client& c, const wire::Fields& f);
  void reply(int fd, const wire::Fields& f);
  void reap();
  void recordExit(Container& ct, int status, bool known = true);

  wire::Fields create(Client& c, const wire::Fields& f);
  wire::Fields start(const wire::Fields& f);
  wire::Fields kill(const wire::Fields& f);
  wire::Fields execKill(const wire::Fields& f);
  wire::Fields forget(const wire::Fields& f);
  wire::Fields exec(Client& c, const wire::Fields& f, bool* deferred);
  wire::Fields status(const wire::Fields& f);
  wire::Fields adopt(const wire::Fields& f);
  void adoptedExit(int pidfd);

  // Clones a child that runs `plan`, joins its cgroups, writes its id maps, lets it run
  // to its first report and returns it. Cleans up the child on any failure.
  bool launch(Plan& plan, const ChildFds& childFds, unsigned long flags, pid_t* pid, int* sync, Error* e,
              pid_t* workload);
  bool awaitReport(int sync, pid_t pid, ChildReport* r, bool* eof, Error* e);

  std::string root_;
  int idleMs_;
  int epfd_ = -1;
  int listenFd_ = -1;
  int sigFd_ = -1;
  bool stopping_ = false;
  std::map<int, Client> clients_;
  std::map<std::string, Container> containers_;
  std::map<pid_t, ExecProc> execs_;
  std::map<pid_t, std::string> pidToId_;
  // Containers of an earlier spawner that died: not our children, watched through pidfds.
  std::map<int, std::string> adopted_;
  LogIndexer logIndex_;
};

// socketpair + a raw clone(): the child keeps sv[1], the parent sv[0]. A raw clone() behaves
// like fork() here (no CLONE_VM, no new stack): the child gets a copy of this single-threaded
// process. Returns the pid (0 in the child), or -1 with *e set.
long cloneWithSync(unsigned long flags, int sv[2], Step step, Error* e) {
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    *e = {"ESYSCALL", step, errno, "socketpair", "", ""};
    return -1;
  }
  long pid = syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, 0);
  if (pid < 0) {
    *e = {"ESYSCALL", step, int(errno), "clone", "", ""};
    close(sv[0]);
    close(sv[1]);
    return -1;
  }
  close(pid == 0 ? sv[0] : sv[1]);
  return pid;
}

bool writeFileAll(const std::string& path, const std::string& data, Error* e, Step step) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    *e = {"ESYSCALL", step, errno, "open", path, ""};
    return false;
  }
  ssize_t n = write(fd, data.data(), data.size());
  int err = errno;
  close(fd);
  if (n != ssize_t(data.size())) {
    *e = {"ESYSCALL", step, n < 0 ? err : EIO, "write", path, "value \"" + data + "\""};
    return false;
  }
  return true;
}

// Writes `data` to `path` atomically: a reader sees the old file or the whole new one.
bool writeAtomic(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  // No fsync: the state root is per boot (tmpfs); rename alone keeps readers consistent.
  bool ok = write(fd, data.data(), data.size()) == ssize_t(data.size());
  close(fd);
  return ok && rename(tmp.c_str(), path.c_str()) == 0;
}

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
  for (struct cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
      size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      int* p = reinterpret_cast<int*>(CMSG_DATA(cm));
      for (size_t k = 0; k < count; ++k) c.fds.push_back(p[k]);
    }
  }
  c.in.append(buf, size_t(n));
  while (c.in.size() >= 4) {
    uint32_t len = wire::getU32(c.in.data());
    if (len > wire::kMaxFrame) {
      logf("client sent a %u-byte frame; closing it", len);
      closeClient(fd);
      return;
    }
    if (c.in.size() < 4 + size_t(len)) break;
    wire::Fields f;
    bool ok = wire::decodeBody(c.in.data() + 4, len, &f);
    c.in.erase(0, 4 + size_t(len));
    if (!ok || f.empty()) {
      reply(fd, errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "malformed request"}));
      continue;
    }
    handle(c, f);
    if (clients_.find(fd) == clients_.end()) return;
  }
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

void Spawner::handle(Client& c, const wire::Fields& f) {
  const std::string& verb = f[0];
  int fd = c.fd;
  wire::Fields out;
  bool deferred = false;
  if (verb == "ping") out = {"ok", std::to_string(getpid())};
  else if (verb == "create") out = create(c, f);
  else if (verb == "start") out = start(f);
  else if (verb == "kill") out = kill(f);
  else if (verb == "exec-kill") out = execKill(f);
  else if (verb == "forget") out = forget(f);
  else if (verb == "exec") out = exec(c, f, &deferred);
  else if (verb == "status") out = status(f);
  else if (verb == "adopt") out = adopt(f);
  else if (verb == "subscribe") {
    c.subscriber = true;
    out = {"ok"};
  } else if (verb == "shutdown") {
    // Exits once no container is left; "force" kills what is left first.
    if (f.size() > 1 && f[1] == "force") {
      for (auto& [id, ct] : containers_)
        if (!ct.exited) syscall(SYS_pidfd_send_signal, ct.pidfd, SIGKILL, nullptr, 0);
    }
    stopping_ = true;
    out = {"ok", std::to_string(containers_.size())};
  } else out = errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "unknown request \"" + verb + "\""});
  // Fds a request did not use are not kept for the next one.
  for (int x : c.fds) close(x);
  c.fds.clear();
  if (!deferred) reply(fd, out);
}

bool Spawner::awaitReport(int sync, pid_t pid, ChildReport* r, bool* eof, Error* e) {
  struct pollfd p = {sync, POLLIN, 0};
  int rc;
  do rc = poll(&p, 1, kSetupTimeoutMs);
  while (rc < 0 && errno == EINTR);
  if (rc == 0) {
    *e = {"ETIMEDOUT", Step::spawner, ETIMEDOUT, "", "", "container init did not report within " +
                                                              std::to_string(kSetupTimeoutMs) + " ms"};
    (void)pid;
    return false;
  }
  ssize_t n;
  do n = recv(sync, r, sizeof *r, 0);
  while (n < 0 && errno == EINTR);
  *eof = n == 0;
  if (n == 0) return true;
  if (n != ssize_t(sizeof *r)) {
    *e = {"EPROTO", Step::spawner, n < 0 ? errno : EPROTO, "recv", "", "short report from container init"};
    return false;
  }
  if (r->type == kError) {
    r->path[sizeof r->path - 1] = '\0';
    Step s = r->step < unsigned(Step::count_) ? Step(r->step) : Step::none;
    *e = {"ESPAWN", s, r->err, "", r->path, ""};
    return false;
  }
  return true;
}

bool Spawner::launch(Plan& plan, const ChildFds& childFds, unsigned long flags, pid_t* pidOut, int* syncOut,
                     Error* e, pid_t* workload) {
  int sv[2];
  long pid = cloneWithSync(flags, sv, Step::clone, e);
  if (pid < 0) return false;
  if (pid == 0) {
    logIndex_.closeInChild();
    ChildFds fds = childFds;
    fds.sync = sv[1];
    runChild(plan, fds);
  }
  auto abandon = [&]() {
    ::kill(pid_t(pid), SIGKILL);
    waitpid(pid_t(pid), nullptr, 0);
    close(sv[0]);
  };
  std::string spid = std::to_string(pid);
  for (const auto& procs : plan.cgroupProcs) {
    if (!writeFileAll(procs, spid, e, Step::cgroup)) {
      abandon();
      return false;
    }
  }
  if ((flags & CLONE_NEWUSER) && (!plan.uidMap.empty() || !plan.gidMap.empty())) {
    std::string base = "/proc/" + spid;
    if ((!plan.uidMap.empty() && !writeFileAll(base + "/uid_map", plan.uidMap, e, Step::id_map)) ||
        (!plan.gidMap.empty() && !writeFileAll(base + "/gid_map", plan.gidMap, e, Step::id_map))) {
      abandon();
      return false;
    }
  }
  char go = kGo;
  if (send(sv[0], &go, 1, MSG_NOSIGNAL) != 1) {
    *e = {"ESYSCALL", Step::sync, errno, "send", "", ""};
    abandon();
    return false;
  }
  ChildReport r;
  bool eof = false;
  if (workload != nullptr) {
    // An exec's first child reports the pid of the process it forked inside the pid
    // namespace, then exits; that process carries on with the plan.
    *workload = 0;
    if (!awaitReport(sv[0], pid_t(pid), &r, &eof, e) || eof || r.type != kPid) {
      if (eof) *e = {"EPROTO", Step::setns, EPROTO, "", "", "exec helper exited without a report"};
      abandon();
      return false;
    }
    *workload = r.value;
    waitpid(pid_t(pid), nullptr, 0);
  }
  if (!awaitReport(sv[0], pid_t(pid), &r, &eof, e)) {
    if (workload != nullptr && *workload > 0) {
      ::kill(*workload, SIGKILL);
      waitpid(*workload, nullptr, 0);
      close(sv[0]);
    } else {
      abandon();
    }
    return false;
  }
  *pidOut = pid_t(pid);
  if (eof) {
    close(sv[0]);
    *syncOut = -1;
  } else {
    *syncOut = sv[0];
  }
  return true;
}

// Makes the container's user namespace before its init exists: a helper process creates it
// (and, when asked, a network namespace it owns, with loopback up), the spawner writes the id
// maps, keeps fds of both namespaces, and lets the helper go. The init then mounts as the
// host's root and joins these namespaces last.
bool prepareUserns(const Plan& plan, ChildFds* fds, Error* e) {
  int sv[2];
  long pid = cloneWithSync(CLONE_NEWUSER, sv, Step::id_map, e);
  if (pid < 0) return false;
  if (pid == 0) {
    char c;
    if (recv(sv[1], &c, 1, 0) != 1) _exit(0);
    int err = 0;
    if (plan.usernsOwnsNet) {
      if (unshare(CLONE_NEWNET) < 0) err = errno;
      else {
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        memcpy(ifr.ifr_name, "lo", 3);
        if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) err = errno;
        ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
        if (err == 0 && ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) err = errno;
      }
    }
    (void)send(sv[1], &err, sizeof err, MSG_NOSIGNAL);
    if (recv(sv[1], &c, 1, 0) < 0) _exit(1);  // EOF: the spawner has what it needs
    _exit(0);
  }
  std::string base = "/proc/" + std::to_string(pid);
  auto done = [&](bool ok) {
    close(sv[0]);
    ::kill(pid_t(pid), SIGKILL);
    waitpid(pid_t(pid), nullptr, 0);
    return ok;
  };
  if (!writeFileAll(base + "/uid_map", plan.uidMap, e, Step::id_map) ||
      !writeFileAll(base + "/gid_map", plan.gidMap, e, Step::id_map)) {
    return done(false);
  }
  char go = kGo;
  int err = 0;
  if (send(sv[0], &go, 1, MSG_NOSIGNAL) != 1 || recv(sv[0], &err, sizeof err, 0) != ssize_t(sizeof err)) {
    *e = {"ESYSCALL", Step::id_map, errno, "recv", "", "user namespace helper"};
    return done(false);
  }
  if (err != 0) {
    *e = {"ESYSCALL", Step::loopback, err, "", "lo", "network namespace of the user namespace"};
    return done(false);
  }
  fds->userns = open((base + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC);
  if (fds->userns < 0) {
    *e = {"ESYSCALL", Step::id_map, errno, "open", base + "/ns/user", ""};
    return done(false);
  }
  if (plan.usernsOwnsNet) {
    fds->netns = open((base + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC);
    if (fds->netns < 0) {
      *e = {"ESYSCALL", Step::id_map, errno, "open", base + "/ns/net", ""};
      return done(false);
    }
  }
  return done(true);
}

bool openStdio(const Plan& plan, ChildFds* fds, Error* e) {
  const std::string* paths[3] = {&plan.stdinPath, &plan.stdoutPath, &plan.stderrPath};
  for (int i = 0; i < 3; ++i) {
    if (paths[i]->empty()) continue;
    int flags = i == 0 ? O_RDONLY : O_WRONLY | O_APPEND | O_CREAT;
    fds->stdio[i] = open(paths[i]->c_str(), flags | O_CLOEXEC | O_NOCTTY, 0640);
    if (fds->stdio[i] < 0) {
      *e = {"ESYSCALL", Step::stdio, errno, "open", *paths[i], ""};
      return false;
    }
  }
  return true;
}

void closeStdio(ChildFds* fds) {
  for (int& x : fds->stdio)
    if (x >= 0) {
      close(x);
      x = -1;
    }
  for (int* x : {&fds->userns, &fds->netns})
    if (*x >= 0) {
      close(*x);
      *x = -1;
    }
}

wire::Fields Spawner::create(Client&, const wire::Fields& f) {
  if (f.size() < 2) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "create needs an id"});
  const std::string& id = f[1];
  if (stopping_) return errorReply({"EBUSY", Step::spawner, ESHUTDOWN, "", "", "spawner is shutting down"});
  if (containers_.count(id)) return errorReply({"EEXIST", Step::spawner, EEXIST, "", "", "container " + id + " exists"});
  Plan plan;
  std::string err;
  if (!parsePlan(f, 2, &plan, &err)) return errorReply({"EPROTO", Step::config, EINVAL, "", "", err});
  ChildFds fds;
  Error e;
  if (!openStdio(plan, &fds, &e) || (!plan.uidMap.empty() && !prepareUserns(plan, &fds, &e))) {
    closeStdio(&fds);
    return errorReply(e);
  }
  pid_t pid = 0;
  int sync = -1;
  bool ok = launch(plan, fds, plan.cloneFlags, &pid, &sync, &e, nullptr);
  closeStdio(&fds);
  if (!ok) return errorReply(e);
  Container ct;
  ct.id = id;
  ct.stateDir = plan.stateDir;
  ct.pid = pid;
  ct.pidfd = int(syscall(SYS_pidfd_open, pid, 0));
  ct.sync = sync;
  containers_[id] = ct;
  pidToId_[pid] = id;
  // Before start: the init writes nothing until then, so no line predates the watch.
  logIndex_.watch(id, plan.stdoutPath);
  logIndex_.watch(id, plan.stderrPath);
  return {"ok", std::to_string(pid)};
}

wire::Fields Spawner::start(const wire::Fields& f) {
  if (f.size() < 2) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "start needs an id"});
  auto it = containers_.find(f[1]);
  if (it == containers_.end()) return errorReply({"ENOTFOUND", Step::spawner, ESRCH, "", "", "no container " + f[1]});
  Container& ct = it->second;
  if (ct.exited) return errorReply({"ESTATE", Step::spawner, ESRCH, "", "", "container init has exited"});
  if (ct.sync < 0) return errorReply({"ESTATE", Step::spawner, EALREADY, "", "", "container was started already"});
  char s = kStart;
  Error e;
  if (send(ct.sync, &s, 1, MSG_NOSIGNAL) != 1) {
    e = {"ESYSCALL", Step::ready, errno, "send", "", ""};
  } else {
    ChildReport r;
    bool eof = false;
    if (awaitReport(ct.sync, ct.pid, &r, &eof, &e) && eof) {
      close(ct.sync);
      ct.sync = -1;
      return {"ok", std::to_string(ct.pid)};
    }
  }
  close(ct.sync);
  ct.sync = -1;
  return errorReply(e);
}

wire::Fields Spawner::kill(const wire::Fields& f) {
  if (f.size() < 3) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "kill needs an id and a signal"});
  auto it = containers_.find(f[1]);
  if (it == containers_.end()) return errorReply({"ENOTFOUND", Step::signal, ESRCH, "", "", "no container " + f[1]});
  Container& ct = it->second;
  if (ct.exited) return errorReply({"ESTATE", Step::signal, ESRCH, "", "", "container has exited"});
  int sig = atoi(f[2].c_str());
  // This process is the init's parent and has not reaped it, so the pid (and the pidfd)
  // cannot name any other process.
  if (syscall(SYS_pidfd_send_signal, ct.pidfd, sig, nullptr, 0) < 0) {
    return errorReply({"ESYSCALL", Step::signal, errno, "pidfd_send_signal", "", ""});
  }
  return {"ok"};
}

// Signals an exec's workload. Its pid is safe to use while it is in execs_: this process
// reaps it and erases the entry in the same step, so until then the pid cannot be reused.
wire::Fields Spawner::execKill(const wire::Fields& f) {
  if (f.size() < 4) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "exec-kill needs an id, a pid and a signal"});
  char* end = nullptr;
  long pid = strtol(f[2].c_str(), &end, 10);
  int sig = atoi(f[3].c_str());
  auto it = pid > 0 && end && *end == 0 ? execs_.find(pid_t(pid)) : execs_.end();
  if (it == execs_.end() || it->second.containerId != f[1]) {
    return errorReply({"ESTATE", Step::signal, ESRCH, "", "", "no such exec running in container " + f[1]});
  }
  if (sig < 1 || sig > 64) return errorReply({"EPROTO", Step::signal, EINVAL, "", "", "bad signal " + f[3]});
  if (::kill(pid_t(pid), sig) < 0) return errorReply({"ESYSCALL", Step::signal, errno, "kill", "", ""});
  return {"ok"};
}

wire::Fields Spawner::status(const wire::Fields& f) {
  if (f.size() < 2) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "status needs an id"});
  auto it = containers_.find(f[1]);
  if (it == containers_.end()) return {"ok", "unknown"};
  const Container& ct = it->second;
  if (!ct.exited) return {"ok", ct.sync >= 0 ? "created" : "running", std::to_string(ct.pid)};
  return {"ok", "exited", std::to_string(ct.pid), std::to_string(ct.status), std::to_string(ct.finishedAt)};
}

wire::Fields Spawner::forget(const wire::Fields& f) {
  if (f.size() < 2) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "forget needs an id"});
  auto it = containers_.find(f[1]);
  if (it == containers_.end()) return {"ok"};
  if (!it->second.exited) return errorReply({"EBUSY", Step::cleanup, EBUSY, "", "", "container is still running"});
  pidToId_.erase(it->second.pid);
  logIndex_.unwatch(it->first);
  containers_.erase(it);
  return {"ok"};
}

wire::Fields Spawner::exec(Client& c, const wire::Fields& f, bool* deferred) {
  if (f.size() < 2) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "exec needs an id"});
  auto it = containers_.find(f[1]);
  if (it == containers_.end()) return errorReply({"ENOTFOUND", Step::setns, ESRCH, "", "", "no container " + f[1]});
  Container& ct = it->second;
  if (ct.exited || ct.sync >= 0) return errorReply({"ESTATE", Step::setns, ESRCH, "", "", "container is not running"});
  Plan plan;
  std::string err;
  if (!parsePlan(f, 2, &plan, &err)) return errorReply({"EPROTO", Step::config, EINVAL, "", "", err});
  ChildFds fds;
  fds.targetPidfd = ct.pidfd;
  // stdio comes with the request (pipes the caller made), in order stdin, stdout, stderr.
  for (size_t i = 0; i < 3 && i < c.fds.size(); ++i) fds.stdio[i] = c.fds[i];
  pid_t helper = 0, workload = 0;
  int sync = -1;
  Error e;
  if (!launch(plan, fds, 0, &helper, &sync, &e, &workload)) return errorReply(e);
  if (sync >= 0) close(sync);
  execs_[workload] = {c.fd, ct.id};
  reply(c.fd, {"ok", std::to_string(workload)});
  *deferred = true;  // the exit follows on the same connection
  reap();            // the workload may have exited already
  return {};
}

// A container whose spawner died: its init was reparented, so no waitpid() will ever report
// it here. A pidfd still names exactly that process (never a later one with the same pid)
// and becomes readable when it exits; the exit code itself is lost with the old parent.
wire::Fields Spawner::adopt(const wire::Fields& f) {
  if (f.size() < 5) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "adopt needs id, pid, start time, state dir"});
  const std::string& id = f[1];
  if (containers_.count(id)) return {"ok", "known"};
  pid_t pid = pid_t(atoi(f[2].c_str()));
  int pidfd = int(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return errorReply({"ESTATE", Step::spawner, errno, "pidfd_open", "", "container init is gone"});
  // The pidfd is taken first, then the start time checked: if it matches, the pidfd names the
  // recorded process, even if that exits and its pid is reused a moment later.
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  std::string startTime;
  if (FILE* fp = fopen(path, "re")) {
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    const char* p = strrchr(buf, ')');
    for (int field = 2; p != nullptr && field < 22; ++field) p = strchr(p + 1, ' ');
    if (p != nullptr) startTime.assign(p + 1, strcspn(p + 1, " "));
  }
  if (startTime != f[3]) {
    close(pidfd);
    return errorReply({"ESTATE", Step::spawner, ESRCH, "", path, "pid " + f[2] + " is another process now"});
  }
  Container ct;
  ct.id = id;
  ct.pid = pid;
  ct.pidfd = pidfd;
  ct.stateDir = f[4];
  containers_[id] = ct;
  adopted_[pidfd] = id;
  // Optional "stdout <path>" / "stderr <path>" after the state dir: without them (what the
  // runtime sends today) an adopted container's logs get no further index records.
  for (size_t i = 5; i + 1 < f.size(); i += 2)
    if (f[i] == "stdout" || f[i] == "stderr") logIndex_.watch(id, f[i + 1]);
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.fd = pidfd;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, pidfd, &ev);
  logf("adopted container %s (pid %d)", id.c_str(), pid);
  return {"ok", "adopted"};
}

void Spawner::adoptedExit(int pidfd) {
  auto it = adopted_.find(pidfd);
  std::string id = it->second;
  adopted_.erase(it);
  epoll_ctl(epfd_, EPOLL_CTL_DEL, pidfd, nullptr);
  auto ci = containers_.find(id);
  if (ci != containers_.end()) recordExit(ci->second, 0, false);
}

void Spawner::recordExit(Container& ct, int status, bool known) {
  // The last output may not have raised its event yet; the index is complete before anyone
  // hears of the exit, so a reader that stops at the exit finds every byte indexed.
  logIndex_.settle(ct.id);
  ct.exited = true;
  ct.status = status;
  ct.finishedAt = nowMs();
  if (ct.sync >= 0) {
    close(ct.sync);
    ct.sync = -1;
  }
  if (ct.pidfd >= 0) {
    close(ct.pidfd);
    ct.pidfd = -1;
  }
  int code = known && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  int sig = known && WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  char json[256];
  snprintf(json, sizeof json, "{\"pid\":%d,\"exitCode\":%d,\"signal\":%d,\"finishedAt\":%lld%s}\n", ct.pid,
           code, sig, static_cast<long long>(ct.finishedAt), known ? "" : ",\"unknown\":true");
  if (!ct.stateDir.empty() && !writeAtomic(ct.stateDir + "/exit.json", json)) {
    logf("write %s/exit.json: %s", ct.stateDir.c_str(), strerror(errno));
  }
  wire::Fields ev = {"exit", ct.id, std::to_string(ct.pid), std::to_string(code), std::to_string(sig),
                     std::to_string(ct.finishedAt)};
  for (auto& [fd, cl] : clients_)
    if (cl.subscriber) reply(fd, ev);
}

void Spawner::reap() {
  while (true) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
    if (pid <= 0) return;
    auto pi = pidToId_.find(pid);
    if (pi != pidToId_.end()) {
      auto ci = containers_.find(pi->second);
      if (ci != containers_.end() && ci->second.pid == pid) recordExit(ci->second, status);
      continue;
    }
    auto ei = execs_.find(pid);
    if (ei != execs_.end()) {
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      reply(ei->second.clientFd, {"exit", std::to_string(code), std::to_string(sig)});
      execs_.erase(ei);
    }
    // Anything else is an exec helper or an orphan this subreaper inherited.
  }
}

int lockRoot(const std::string& root, int readyFd) {
  std::string lock = root + "/spawner.lock";
  int fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    dprintf(readyFd, "open %s: %s", lock.c_str(), strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    dprintf(readyFd, "busy");
    return -2;
  }
  return fd;
}

}  // namespace
}  // namespace ss

int main(int argc, char** argv) {
  std::string root;
  int idleMs = 60000;
  bool foreground = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--root" && i + 1 < argc) root = argv[++i];
    else if (a == "--idle-ms" && i + 1 < argc) idleMs = atoi(argv[++i]);
    else if (a == "--foreground") foreground = true;
    else {
      fprintf(stderr, "usage: stratoswarm-spawner --root DIR [--idle-ms N] [--foreground]\n");
      return 2;
    }
  }
  if (root.empty() || root[0] != '/') {
    fprintf(stderr, "stratoswarm-spawner: --root must be an absolute path\n");
    return 2;
  }
  if (mkdir(root.c_str(), 0700) < 0 && errno != EEXIST) {
    fprintf(stderr, "stratoswarm-spawner: mkdir %s: %s\n", root.c_str(), strerror(errno));
    return 1;
  }
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) < 0) return 1;
  if (!foreground) {
    // Daemonize: the process the runtime started waits for the daemon's first word, then
    // exits, so the runtime never has a child to reap and the daemon holds no stdio of it.
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid > 0) {
      close(ready[1]);
      char msg[512] = {0};
      ssize_t n = read(ready[0], msg, sizeof msg - 1);
      if (n == 2 && memcmp(msg, "ok", 2) == 0) return 0;
      if (n == 4 && memcmp(msg, "busy", 4) == 0) return 3;
      fprintf(stderr, "stratoswarm-spawner: %s\n", n > 0 ? msg : "exited before it was ready");
      return 1;
    }
    close(ready[0]);
    setsid();
    if (chdir("/") < 0) _exit(1);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    std::string logPath = root + "/spawner.log";
    int log = open(logPath.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    dup2(null, 0);
    dup2(null, 1);
    dup2(log >= 0 ? log : null, 2);
    if (null > 2) close(null);
    if (log > 2) close(log);
  }
  umask(022);
  signal(SIGPIPE, SIG_IGN);
  // Orphans of exec helpers come back here instead of to the host's init.
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  int lock = ss::lockRoot(root, ready[1]);
  if (lock < 0) return lock == -2 ? 3 : 1;
  ss::Spawner sp(root, idleMs);
  if (sp.listen(ready[1]) < 0) return 1;
  if (write(ready[1], "ok", 2) != 2) return 1;
  close(ready[1]);
  ss::logf("listening under %s", root.c_str());
  int rc = sp.loop();
  unlink((root + "/spawner.sock").c_str());
  return rc;
}
