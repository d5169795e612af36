#include "cgroup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace ss::cgroup {

int writeValue(const std::string& path, const std::string& value, const char** syscall) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    *syscall = "open";
    return errno;
  }
  ssize_t n;
  do n = write(fd, value.data(), value.size());
  while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : (size_t(n) != value.size() ? EIO : 0);
  close(fd);
  *syscall = "write";
  return err;
}

int readValue(const std::string& path, std::string* out, const char** syscall) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *syscall = "open";
    return errno;
  }
  char buf[4096];
  out->clear();
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      *syscall = "read";
      return err;
    }
    if (n == 0) break;
    out->append(buf, size_t(n));
  }
  close(fd);
  return 0;
}

}  // namespace ss::cgroup
