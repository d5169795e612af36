#include "pty.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>

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

int openPtyIn(const char* root, PtyPair* out, unsigned uid, unsigned gid, const char** what) {
  int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) {
    *what = "open";
    return -1;
  }
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_RDWR | O_NOCTTY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int m = int(syscall(SYS_openat2, rootfd, "dev/pts/ptmx", &how, sizeof how));
  int e = errno;
  close(rootfd);
  if (m < 0) {
    errno = e;
    *what = "openat2 dev/pts/ptmx";
    return -1;
  }
  int s = -1;
  auto failed = [&](const char* call) {
    int err = errno;
    if (s >= 0) close(s);
    close(m);
    errno = err;
    *what = call;
    return -1;
  };
  struct stat st;
  if (fstat(m, &st) < 0) return failed("fstat");
  // ptmx of a devpts instance is character device 5:2.
  if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2) {
    errno = ENOTTY;
    return failed("check ptmx");
  }
  int unlock = 0;
  if (ioctl(m, TIOCSPTLCK, &unlock) < 0) return failed("unlockpt");
  unsigned n = 0;
  if (ioctl(m, TIOCGPTN, &n) < 0) return failed("TIOCGPTN");
  s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (s < 0) return failed("TIOCGPTPEER");
  if (fchown(s, uid, gid) < 0) return failed("fchown");
  if (fchmod(s, 0620) < 0) return failed("fchmod");
  out->master = m;
  out->slave = s;
  out->path = "/dev/pts/" + std::to_string(n);
  return 0;
}

}  // namespace ss
