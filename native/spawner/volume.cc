#include "volume.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace ss {

int bindIdmapped(int srcfd, int targetfd, bool recursive, unsigned attrSet, int usernsFd) {
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0u);
  int tree = int(syscall(SYS_open_tree, srcfd, "", flags));
  if (tree < 0) return -1;
  struct mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_set = attrSet | MOUNT_ATTR_IDMAP;
  attr.userns_fd = uint64_t(usernsFd);
  int rc = int(syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr));
  if (rc == 0) rc = int(syscall(SYS_move_mount, tree, "", targetfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
  int e = errno;
  close(tree);
  errno = e;
  return rc;
}

}  // namespace ss
