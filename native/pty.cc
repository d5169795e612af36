#include "pty.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace ss {

int openPty(PtyPair* out, unsigned uid, unsigned gid, const char** what) {
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) {
    *what = "posix_openpt";
    return -1;
  }
  char name[64];
  int s = -1;
  auto failed = [&](const char* call) {
    int e = errno;
    if (s >= 0) close(s);
    close(m);
    errno = e;
    *what = call;
    return -1;
  };
  if (grantpt(m) < 0) return failed("grantpt");
  if (unlockpt(m) < 0) return failed("unlockpt");
  if (ptsname_r(m, name, sizeof name) != 0) return failed("ptsname_r");
  s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (s < 0) return failed("open");
  // The slave's owner is who the terminal belongs to: the container's user, not host root
  // (which a user namespace shows as nobody).
  if (fchown(s, uid, gid) < 0) return failed("fchown");
  if (fchmod(s, 0620) < 0) return failed("fchmod");
  out->master = m;
  out->slave = s;
  out->path = name;
  return 0;
}

}  // namespace ss
