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

}  // namespace ss::cgroup
