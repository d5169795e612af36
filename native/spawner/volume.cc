#include "volume.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace ss {

int bindIdmapped(int srcfd, int targetfd, bool recursive, unsigned attrSet, int usernsFd, bool recursiveIdmap) {
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0u);
  int tree = int(syscall(SYS_open_tree, srcfd, "", flags));
  if (tree < 0) return -1;
  struct mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_set = attrSet | MOUNT_ATTR_IDMAP;
  attr.userns_fd = uint64_t(usernsFd);
  int rc = int(syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (recursive && recursiveIdmap ? AT_RECURSIVE : 0), &attr, sizeof attr));
  if (rc == 0) rc = int(syscall(SYS_move_mount, tree, "", targetfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
  int e = errno;
  close(tree);
  errno = e;
  return rc;
}

namespace {

bool writeAll(const std::string& path, const char* text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  // A map goes in with one write(2), as the kernel requires.
  size_t n = strlen(text);
  ssize_t w = write(fd, text, n);
  int e = errno;
  close(fd);
  errno = w == ssize_t(n) ? 0 : (w < 0 ? e : EIO);
  return w == ssize_t(n);
}

}  // namespace

int usernsWithMaps(const char* uidMap, const char* gidMap, const char** what) {
  int toChild[2], toParent[2];
  *what = "pipe2";
  if (pipe2(toChild, O_CLOEXEC) < 0) return -1;
  if (pipe2(toParent, O_CLOEXEC) < 0) {
    int e = errno;
    close(toChild[0]);
    close(toChild[1]);
    errno = e;
    return -1;
  }
  *what = "fork";
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {toChild[0], toChild[1], toParent[0], toParent[1]}) close(fd);
    errno = e;
    return -1;
  }
  if (pid == 0) {
    close(toChild[1]);
    close(toParent[0]);
    // Its pid as the host's procfs numbers it (the caller may be pid 1 of a namespace of
    // its own, where fork's answer is another number): the caller writes the maps there.
    char self[24];
    ssize_t n = readlink("/proc/self", self, sizeof self - 1);
    int e = n > 0 && unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
    if (e != 0) n = 0;
    if (write(toParent[1], self, size_t(n > 0 ? n : 0)) < 0 || e != 0) _exit(1);
    close(toParent[1]);
    char c;
    (void)!read(toChild[0], &c, 1);  // EOF: the caller holds the namespace
    _exit(0);
  }
  close(toChild[0]);
  close(toParent[1]);
  char self[24] = {0};
  ssize_t n = read(toParent[0], self, sizeof self - 1);
  close(toParent[0]);
  int fd = -1, e = 0;
  if (n <= 0) {
    *what = "unshare(CLONE_NEWUSER)";
    e = EPERM;
  } else {
    std::string base = std::string("/proc/") + std::string(self, size_t(n));
    *what = "uid_map";
    if (!writeAll(base + "/uid_map", uidMap)) e = errno;
    if (e == 0) {
      *what = "gid_map";
      if (!writeAll(base + "/gid_map", gidMap)) e = errno;
    }
    if (e == 0) {
      *what = "ns/user";
      fd = open((base + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) e = errno;
    }
  }
  close(toChild[1]);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  errno = e;
  return fd;
}

}  // namespace ss
