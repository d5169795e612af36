#include "log_index.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common.h"

namespace ss {

void LogIndexer::attach(int epfd) {
  epfd_ = epfd;
  ensureFd();
}

void LogIndexer::watch(const std::string& owner, const std::string& log) {
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

void LogIndexer::settle(const std::string& owner) {
  for (auto& [k, e] : entries_)
    if (e.owner == owner) settle(e);
}

void LogIndexer::settleAll() {
  for (auto& [k, e] : entries_) settle(e);
}

void LogIndexer::unwatch(const std::string& owner) {
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

void LogIndexer::onReadable() {
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

void LogIndexer::flushPending() {
  if (pending_ == 0) return;
  for (auto& [k, e] : entries_)
    if (e.pending) update(e);
}

bool LogIndexer::ensureFd() {
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

void LogIndexer::resume(Entry& e) {
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

uint64_t LogIndexer::currentSize(const Entry& e) const {
  struct stat st;
  return e.logFd >= 0 && fstat(e.logFd, &st) == 0 ? uint64_t(st.st_size) : 0;
}

void LogIndexer::settle(Entry& e) {
  update(e);
  // Growth within the millisecond of the last record is stamped 1 ms after it, at most
  // 1 ms later than the truth, instead of waiting for the next millisecond.
  if (e.pending) append(e, e.lastMs + 1, currentSize(e));
}

void LogIndexer::update(Entry& e) {
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

void LogIndexer::append(Entry& e, int64_t ms, uint64_t size) {
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

void LogIndexer::setPending(Entry& e, bool on) {
  if (e.pending == on) return;
  e.pending = on;
  pending_ += on ? 1 : -1;
}

void LogIndexer::dropWd(Entry& e, uint64_t key) {
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

void LogIndexer::release(Entry& e) {
  if (e.idx >= 0) close(e.idx);
  if (e.logFd >= 0) close(e.logFd);
  e.idx = e.logFd = -1;
}

void LogIndexer::putLE(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

uint64_t LogIndexer::getLE(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace ss
