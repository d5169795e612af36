#include "cgroup_batch.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace ss::cgroup {

namespace {

constexpr std::size_t kMaxFile = 4096;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// The number at `p` (decimal, optionally negative), or NaN when there is none.
double number(const char* p, const char* end) {
  while (p < end && *p == ' ') ++p;
  if (p == end) return kNaN;
  char* stop = nullptr;
  // The buffer is NUL-terminated past `end`, so strtod cannot run off it.
  double v = std::strtod(p, &stop);
  return stop == p ? kNaN : v;
}

// The value of line "key value" in a flat-keyed file, or NaN.
double keyed(const char* text, std::size_t len, const std::string& key) {
  const char* p = text;
  const char* end = text + len;
  while (p < end) {
    const char* eol = static_cast<const char*>(std::memchr(p, '\n', std::size_t(end - p)));
    if (eol == nullptr) eol = end;
    std::size_t n = std::size_t(eol - p);
    if (n > key.size() && p[key.size()] == ' ' && std::memcmp(p, key.data(), key.size()) == 0) {
      return number(p + key.size() + 1, eol);
    }
    p = eol + 1;
  }
  return kNaN;
}

}  // namespace

CounterTable::~CounterTable() {
  for (const Entry& e : entries_) {
    if (e.fd >= 0) ::close(e.fd);
  }
}

int CounterTable::open(const std::string& path, std::vector<std::string> keys, const char** syscall) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *syscall = "open";
    return -errno;
  }
  if (keys.empty()) keys.emplace_back();
  int handle;
  if (!free_.empty()) {
    handle = free_.back();
    free_.pop_back();
  } else {
    handle = int(entries_.size());
    entries_.emplace_back();
  }
  entries_[std::size_t(handle)] = Entry{fd, std::move(keys)};
  return handle;
}

void CounterTable::close(int handle) {
  if (handle < 0 || std::size_t(handle) >= entries_.size() || entries_[std::size_t(handle)].fd < 0) return;
  Entry& e = entries_[std::size_t(handle)];
  ::close(e.fd);
  e.fd = -1;
  e.keys.clear();
  free_.push_back(handle);
}

std::size_t CounterTable::width(int handle) const {
  if (handle < 0 || std::size_t(handle) >= entries_.size() || entries_[std::size_t(handle)].fd < 0) return 0;
  return entries_[std::size_t(handle)].keys.size();
}

std::size_t CounterTable::read(const int32_t* handles, std::size_t n, double* out, std::size_t outLen,
                               int32_t* errors) const {
  char buf[kMaxFile + 1];
  std::size_t at = 0;
  for (std::size_t i = 0; i < n; ++i) {
    int h = handles[i];
    if (h < 0 || std::size_t(h) >= entries_.size() || entries_[std::size_t(h)].fd < 0) {
      errors[i] = EBADF;
      continue;
    }
    const Entry& e = entries_[std::size_t(h)];
    if (at + e.keys.size() > outLen) {
      errors[i] = EOVERFLOW;
      continue;
    }
    ssize_t got;
    do {
      got = ::pread(e.fd, buf, kMaxFile + 1, 0);
    } while (got < 0 && errno == EINTR);
    int err = got < 0 ? errno : (std::size_t(got) > kMaxFile ? EOVERFLOW : 0);
    errors[i] = err;
    std::size_t len = err == 0 ? std::size_t(got) : 0;
    buf[len] = '\0';
    for (const std::string& key : e.keys) {
      out[at++] = err != 0 ? kNaN : key.empty() ? number(buf, buf + len) : keyed(buf, len, key);
    }
  }
  return at;
}

}  // namespace ss::cgroup
