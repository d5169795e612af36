// See unpack.h. Only this process writes into a layer's directory while it is unpacked (a
// private temporary directory renamed into place afterwards), so the archive is the only
// adversary: each step below keeps it beneath the root.
#include "unpack.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ss::unpack {
namespace {

constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

int openBeneath(int root, const std::string& rel, uint64_t flags) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = flags | O_CLOEXEC;
  how.resolve = kResolve;
  return int(syscall(SYS_openat2, root, rel.empty() ? "." : rel.c_str(), &how, sizeof how));
}

// Splits "a/b/c" into "a/b" and "c".
void split(const std::string& path, std::string* dir, std::string* base) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) {
    dir->clear();
    *base = path;
  } else {
    *dir = path.substr(0, slash);
    *base = path.substr(slash + 1);
  }
}

// The parent directory of `path`, made when missing: one component at a time, each opened
// beneath the root without following links.
int openParent(int root, const std::string& path, std::string* base, int* out, const char** call) {
  std::string dir;
  split(path, &dir, base);
  if (base->empty() || *base == "." || *base == "..") {
    *call = "path";
    return EINVAL;
  }
  int fd = openBeneath(root, dir, O_PATH | O_DIRECTORY);
  if (fd >= 0 || errno != ENOENT) {
    *out = fd;
    *call = "openat2";
    return fd >= 0 ? 0 : errno;
  }
  size_t pos = 0;
  while (pos <= dir.size()) {
    size_t next = dir.find('/', pos);
    if (next == std::string::npos) next = dir.size();
    std::string prefix = dir.substr(0, next);
    std::string parent, name;
    split(prefix, &parent, &name);
    int pfd = openBeneath(root, parent, O_PATH | O_DIRECTORY);
    if (pfd < 0) {
      *call = "openat2";
      return errno;
    }
    int r = mkdirat(pfd, name.c_str(), 0755);
    int err = r < 0 && errno != EEXIST ? errno : 0;
    close(pfd);
    if (err != 0) {
      *call = "mkdirat";
      return err;
    }
    pos = next + 1;
  }
  fd = openBeneath(root, dir, O_PATH | O_DIRECTORY);
  *call = "openat2";
  *out = fd;
  return fd >= 0 ? 0 : errno;
}

// Makes room for a new entry called `base` in `dir`: a non-directory is unlinked, a
// directory is kept when the new entry is one too, else removed (it must be empty).
int clear(int dir, const std::string& base, bool keepDirectory, bool* kept) {
  struct stat st;
  *kept = false;
  if (fstatat(dir, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return errno == ENOENT ? 0 : errno;
  if (S_ISDIR(st.st_mode)) {
    if (keepDirectory) {
      *kept = true;
      return 0;
    }
    return unlinkat(dir, base.c_str(), AT_REMOVEDIR) < 0 ? errno : 0;
  }
  return unlinkat(dir, base.c_str(), 0) < 0 ? errno : 0;
}

}  // namespace

int openRoot(const std::string& path, int* fd) {
  *fd = open(path.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  return *fd >= 0 ? 0 : errno;
}

int create(int root, const Entry& e, int* fd, const char** call) {
  *fd = -1;
  if (e.kind == Kind::opaque) {
    // The directory itself is marked; overlayfs then hides what lower layers hold in it.
    if (e.path.empty()) {
      *call = "path";
      return EINVAL;
    }
    std::string base;
    int dir = -1;
    int err = openParent(root, e.path + "/x", &base, &dir, call);
    if (err != 0) return err;
    std::string proc = "/proc/self/fd/" + std::to_string(dir);
    err = setxattr(proc.c_str(), "trusted.overlay.opaque", "y", 1, 0) < 0 ? errno : 0;
    close(dir);
    *call = "setxattr";
    return err;
  }
  std::string base;
  int dir = -1;
  int err = openParent(root, e.path, &base, &dir, call);
  if (err != 0) return err;
  bool kept = false;
  err = clear(dir, base, e.kind == Kind::directory, &kept);
  if (err != 0) {
    close(dir);
    *call = "unlinkat";
    return err;
  }
  int r = 0;
  switch (e.kind) {
    case Kind::directory:
      *call = "mkdirat";
      r = kept ? 0 : mkdirat(dir, base.c_str(), e.mode & 07777);
      break;
    case Kind::file:
      *call = "openat";
      r = openat(dir, base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (r >= 0) *fd = r;
      break;
    case Kind::symlink:
      *call = "symlinkat";
      r = symlinkat(e.target.c_str(), dir, base.c_str());
      break;
    case Kind::hardlink: {
      // The target is resolved beneath the root like any path and never followed if it is a
      // symlink (linkat without AT_SYMLINK_FOLLOW): a link to a host file cannot be made.
      std::string tdir, tbase;
      split(e.target, &tdir, &tbase);
      int tfd = openBeneath(root, tdir, O_PATH | O_DIRECTORY);
      if (tfd < 0) {
        *call = "openat2";
        r = -1;
        break;
      }
      *call = "linkat";
      r = linkat(tfd, tbase.c_str(), dir, base.c_str(), 0);
      int saved = errno;
      close(tfd);
      errno = saved;
      break;
    }
    case Kind::fifo:
      *call = "mknodat";
      r = mknodat(dir, base.c_str(), S_IFIFO | (e.mode & 0777), 0);
      break;
    case Kind::whiteout:
      // overlayfs's whiteout: a character device 0:0 (mknod of it needs no device access).
      *call = "mknodat";
      r = mknodat(dir, base.c_str(), S_IFCHR, makedev(0, 0));
      break;
    case Kind::opaque:
      break;
  }
  err = r < 0 ? errno : 0;
  close(dir);
  return err;
}

int setMeta(int root, const Meta& m, const char** call) {
  int dir = -1;
  std::string base;
  if (m.path.empty()) {
    dir = openBeneath(root, "", O_PATH | O_DIRECTORY);
    base = ".";
  } else {
    std::string parent;
    split(m.path, &parent, &base);
    dir = openBeneath(root, parent, O_PATH | O_DIRECTORY);
  }
  *call = "openat2";
  if (dir < 0) return errno;
  int err = 0;
  const int nofollow = base == "." ? 0 : AT_SYMLINK_NOFOLLOW;
  // What is on disk decides, not what the archive said: a later member may have replaced a
  // directory with a symlink, and fchmodat would follow it.
  struct stat st;
  if (fstatat(dir, base.c_str(), &st, nofollow) < 0) {
    err = errno;
    close(dir);
    *call = "fstatat";
    return err;
  }
  const bool isLink = S_ISLNK(st.st_mode) || m.isSymlink;
  if ((m.uid >= 0 || m.gid >= 0) && fchownat(dir, base.c_str(), uid_t(m.uid), gid_t(m.gid), nofollow) < 0) {
    err = errno;
    *call = "fchownat";
  }
  // chown clears setuid/setgid bits, so the mode comes after it; a symlink has no mode.
  if (err == 0 && m.mode >= 0 && !isLink && fchmodat(dir, base.c_str(), mode_t(m.mode & 07777), 0) < 0) {
    err = errno;
    *call = "fchmodat";
  }
  if (err == 0 && !m.xattrs.empty()) {
    std::string proc = "/proc/self/fd/" + std::to_string(dir) + "/" + base;
    for (const auto& [name, value] : m.xattrs) {
      if (lsetxattr(proc.c_str(), name.c_str(), value.data(), value.size(), 0) < 0) {
        err = errno;
        *call = "lsetxattr";
        break;
      }
    }
  }
  if (err == 0 && m.mtimeSec >= 0) {
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = m.mtimeSec;
    ts[0].tv_nsec = ts[1].tv_nsec = m.mtimeNsec;
    if (utimensat(dir, base.c_str(), ts, nofollow) < 0) {
      err = errno;
      *call = "utimensat";
    }
  }
  close(dir);
  return err;
}

}  // namespace ss::unpack
