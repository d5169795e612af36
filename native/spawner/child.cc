// Runs in the child between clone() and execve(). Rules that hold for every line here: the
// parent is single-threaded and the child a copy of it, so libc state is consistent, but
// the child still allocates nothing and takes no locks: every buffer is on the stack or
// in the plan, which the parent built. Each failing step sends {step, errno, path} to the
// spawner and exits; the spawner turns that into the RuntimeError the caller sees.
#include "child.h"
#include "volume.h"

#include <sys/mman.h>
#include <sys/uio.h>

#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/mempolicy.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "start_image.h"

namespace ss {
namespace {

int gSync = -1;
char gExecPath[PATH_MAX];

// An op as the child reads it, wherever it came from: the create or exec plan (copied from
// the spawner at clone) or the start image (received at start). Pointers only: building one
// allocates nothing.
struct OpView {
  Step step = Step::none;
  const char* kind = "";
  uint32_t ns = 0;
  const char* s[kFlatMaxStrings] = {};
  uint32_t nn = 0;
  const uint64_t* n = nullptr;
  uint32_t ngids = 0;
  const gid_t* gids = nullptr;
};

// The process the ops end in.
struct Proc {
  const char* argv0 = "";
  const char* path = "";
  char* const* argvp = nullptr;
  char* const* envp = nullptr;
  const sock_filter* seccomp = nullptr;
  size_t seccompLen = 0;
  unsigned long setnsFlags = 0;
};

struct Ctx {
  const ChildFds* fds = nullptr;
  int rootfd = -1;
  Proc proc;
};

bool eq(const char* a, const char* b) { return strcmp(a, b) == 0; }

OpView viewOf(const Op& op) {
  OpView v;
  v.step = op.step;
  v.kind = op.kind.c_str();
  v.ns = uint32_t(op.s.size() < kFlatMaxStrings ? op.s.size() : kFlatMaxStrings);
  for (uint32_t i = 0; i < v.ns; ++i) v.s[i] = op.s[i].c_str();
  v.nn = uint32_t(op.n.size());
  v.n = op.n.data();
  v.ngids = uint32_t(op.gids.size());
  v.gids = op.gids.data();
  return v;
}

OpView viewOf(const char* base, const FlatOp& fo) {
  OpView v;
  v.step = fo.step < unsigned(Step::count_) ? Step(fo.step) : Step::none;
  v.kind = base + fo.kindOff;
  v.ns = fo.ns;
  for (uint32_t i = 0; i < fo.ns; ++i) v.s[i] = base + fo.sOff[i];
  v.nn = fo.nn;
  v.n = reinterpret_cast<const uint64_t*>(base + fo.nOff);
  v.ngids = fo.ngids;
  v.gids = reinterpret_cast<const gid_t*>(base + fo.gidsOff);
  return v;
}


void report(ReportType type, Step step, int err, const char* path, int value = 0) {
  ChildReport r;
  memset(&r, 0, sizeof r);
  r.type = type;
  r.step = static_cast<uint32_t>(step);
  r.err = err;
  r.value = value;
  if (path != nullptr) {
    size_t n = strnlen(path, sizeof r.path - 1);
    memcpy(r.path, path, n);
  }
  // A short write can only mean the spawner is gone; there is nobody left to tell.
  (void)send(gSync, &r, sizeof r, MSG_NOSIGNAL);
}

[[noreturn]] void fail(Step step, int err, const char* path) {
  report(kError, step, err, path);
  _exit(127);
}

// Waits for one byte from the spawner; its death (EOF) ends the child quietly.
void awaitByte(char expected, Step step) {
  char c = 0;
  ssize_t n;
  do n = recv(gSync, &c, 1, 0);
  while (n < 0 && errno == EINTR);
  if (n == 0) _exit(0);
  if (n < 0) fail(step, errno, nullptr);
  if (c != expected) fail(step, EPROTO, nullptr);
}

// "/proc/self/fd/<fd>", written without printf.
void fdPath(int fd, char (&buf)[32]) {
  const char prefix[] = "/proc/self/fd/";
  memcpy(buf, prefix, sizeof prefix - 1);
  char digits[12];
  int n = 0;
  unsigned v = unsigned(fd);
  do {
    digits[n++] = char('0' + v % 10);
    v /= 10;
  } while (v != 0);
  size_t off = sizeof prefix - 1;
  while (n > 0) buf[off++] = digits[--n];
  buf[off] = '\0';
}

int openat2Raw(int dirfd, const char* path, uint64_t flags, uint64_t resolve) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = flags;
  how.resolve = resolve;
  return int(syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

// Resolves a container path inside the root: every symlink, absolute or with "..", is
// resolved as if the root were "/" (RESOLVE_IN_ROOT), and magic links such as /proc/self/fd
// are refused, so a hostile image cannot point a mount target at a host path.
int resolveInRoot(int rootfd, const char* path) {
  while (*path == '/') ++path;
  if (*path == '\0') path = ".";
  return openat2Raw(rootfd, path, O_PATH | O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

// Like resolveInRoot, creating what is missing: directories on the way, and the last
// component as a directory or an empty file (a mount target for a file bind).
int ensureInRoot(int rootfd, const char* path, bool lastIsFile, int depth = 0) {
  int fd = resolveInRoot(rootfd, path);
  if (fd >= 0 || errno != ENOENT) return fd;
  char buf[PATH_MAX];
  while (*path == '/') ++path;
  size_t len = strnlen(path, sizeof buf);
  if (len >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, path, len + 1);
  int parent = openat2Raw(rootfd, ".", O_PATH | O_CLOEXEC | O_DIRECTORY, RESOLVE_IN_ROOT);
  if (parent < 0) return -1;
  size_t start = 0;
  while (start < len) {
    size_t end = start;
    while (end < len && buf[end] != '/') ++end;
    bool last = end >= len;
    char saved = buf[end];
    buf[end] = '\0';
    const char* comp = buf + start;
    if (comp[0] != '\0') {
      int next = resolveInRoot(rootfd, buf);
      if (next < 0 && errno == ENOENT) {
        if (last && lastIsFile) {
          int f = openat(parent, comp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
          if (f < 0 && errno != EEXIST) {
            close(parent);
            return -1;
          }
          if (f >= 0) close(f);
        } else if (mkdirat(parent, comp, 0755) < 0 && errno != EEXIST) {
          close(parent);
          return -1;
        }
        next = resolveInRoot(rootfd, buf);
        if (next < 0 && errno == ENOENT) {
          // A dangling symlink: create what it names, inside the root (an absolute target
          // from the container's "/", a relative one from the link's directory), then go on.
          char link[PATH_MAX];
          ssize_t n = readlinkat(parent, comp, link, sizeof link - 1);
          close(parent);
          if (n < 0) return -1;
          if (depth >= 40) {
            errno = ELOOP;
            return -1;
          }
          link[n] = '\0';
          char target[PATH_MAX];
          size_t off = 0;
          auto put = [&](const char* s, size_t k) {
            if (off + k >= sizeof target) return false;
            memcpy(target + off, s, k);
            off += k;
            return true;
          };
          bool ok = true;
          if (link[0] != '/') ok = put(buf, start);  // the directory holding the link, with its '/'
          ok = ok && put(link, size_t(n));
          if (!last) ok = ok && put("/", 1) && put(path + end + 1, len - end - 1);
          if (!ok) {
            errno = ENAMETOOLONG;
            return -1;
          }
          target[off] = '\0';
          return ensureInRoot(rootfd, target, lastIsFile, depth + 1);
        }
      }
      if (next < 0) {
        close(parent);
        return -1;
      }
      close(parent);
      parent = next;
    }
    buf[end] = saved;
    start = end + 1;
  }
  return parent;
}

// Clones the mount at `srcfd` (or `srcPath`) and attaches the copy on `targetfd`, read-only
// when asked. The new mount API does it on fds from start to end, so no path is looked up
// again between the check and the mount.
int bindTree(int srcDirfd, const char* srcPath, int targetfd, bool recursive, unsigned attrSet) {
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0u);
  if (srcPath[0] == '\0') flags |= AT_EMPTY_PATH;
  int tree = int(syscall(SYS_open_tree, srcDirfd, srcPath, flags));
  if (tree < 0) return -1;
  if (attrSet != 0) {
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = attrSet;
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr) < 0) {
      int e = errno;
      close(tree);
      errno = e;
      return -1;
    }
  }
  int rc = int(syscall(SYS_move_mount, tree, "", targetfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
  int e = errno;
  close(tree);
  errno = e;
  return rc;
}

unsigned mountAttrFromFlags(uint64_t msFlags) {
  unsigned a = 0;
  if (msFlags & MS_RDONLY) a |= MOUNT_ATTR_RDONLY;
  if (msFlags & MS_NOSUID) a |= MOUNT_ATTR_NOSUID;
  if (msFlags & MS_NODEV) a |= MOUNT_ATTR_NODEV;
  if (msFlags & MS_NOEXEC) a |= MOUNT_ATTR_NOEXEC;
  return a;
}

void resolveExec(const Proc& proc) {
  const char* arg0 = proc.argv0;
  struct stat st;
  if (strchr(arg0, '/') != nullptr) {
    if (stat(arg0, &st) < 0) fail(Step::resolve_exec, errno, arg0);
    if (!S_ISREG(st.st_mode)) fail(Step::resolve_exec, EACCES, arg0);
    if (access(arg0, X_OK) < 0) fail(Step::resolve_exec, errno, arg0);
    size_t n = strnlen(arg0, sizeof gExecPath - 1);
    memcpy(gExecPath, arg0, n);
    gExecPath[n] = '\0';
    return;
  }
  const char* p = proc.path;
  int lastErr = ENOENT;
  while (*p != '\0') {
    const char* colon = strchr(p, ':');
    size_t dirLen = colon != nullptr ? size_t(colon - p) : strlen(p);
    size_t argLen = strlen(arg0);
    if (dirLen > 0 && dirLen + 1 + argLen < sizeof gExecPath) {
      memcpy(gExecPath, p, dirLen);
      gExecPath[dirLen] = '/';
      memcpy(gExecPath + dirLen + 1, arg0, argLen + 1);
      if (stat(gExecPath, &st) == 0 && S_ISREG(st.st_mode)) {
        if (access(gExecPath, X_OK) == 0) return;
        lastErr = EACCES;
      }
    }
    if (colon == nullptr) break;
    p = colon + 1;
  }
  fail(Step::resolve_exec, lastErr, arg0);
}

void applyCapabilitySets(const OpView& op) {
  // n: effective, permitted, inheritable, ambient (64-bit masks).
  struct __user_cap_header_struct hdr;
  struct __user_cap_data_struct data[2];
  memset(&hdr, 0, sizeof hdr);
  memset(data, 0, sizeof data);
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  for (int i = 0; i < 2; ++i) {
    data[i].effective = uint32_t(op.n[0] >> (32 * i));
    data[i].permitted = uint32_t(op.n[1] >> (32 * i));
    data[i].inheritable = uint32_t(op.n[2] >> (32 * i));
  }
  if (syscall(SYS_capset, &hdr, data) < 0) fail(Step::capabilities, errno, "capset");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) fail(Step::capabilities, errno, "ambient");
  for (unsigned cap = 0; cap < 64; ++cap) {
    if ((op.n[3] >> cap) & 1u) {
      if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) fail(Step::capabilities, errno, "ambient");
    }
  }
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) fail(Step::capabilities, errno, "keepcaps");
}

void applyBounding(const OpView& op) {
  // n: bounding mask, last capability number the kernel knows.
  for (unsigned cap = 0; cap <= op.n[1] && cap < 64; ++cap) {
    if (((op.n[0] >> cap) & 1u) == 0 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
      fail(Step::capabilities, errno, "bounding");
    }
  }
  // Keep the permitted set across the uid change that follows; the "sets" op trims it.
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) fail(Step::capabilities, errno, "keepcaps");
}

void runOp(const OpView& op, Ctx& c);

// The command's signal mask, once it is known. The first process of a pid namespace drops
// every signal it has no handler for, so a signal sent before a handler exists is lost: a
// stop() right after start() would wait out its whole timeout. Blocked signals are queued
// instead, and the mask survives execve; so for the runtime's own init, which blocks every
// signal first thing and takes them with sigtimedwait, they stay blocked until it runs. Any
// other command starts with nothing blocked, as runc gives it.
static void settleSignalMask(const char* argv0) {
  if (strcmp(argv0, "/dev/init") == 0) return;
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// Receives the start message into the region mapped before clone() and runs its ops, which
// end in execve. The message is a StartWire header and, when small, the image itself; a
// larger image comes in a memfd, the first fd sent with it. The other fds replace the stdio
// the header's mask names.
[[noreturn]] void receiveStart(Ctx& c) {
  if (gStartRegion == nullptr) fail(Step::ready, ENOMEM, "start region");
  StartWire w;
  struct iovec iov[2] = {{&w, sizeof w}, {gStartRegion, kStartInline}};
  union {
    char buf[CMSG_SPACE(4 * sizeof(int))];
    struct cmsghdr align;
  } ctl;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  msg.msg_control = ctl.buf;
  msg.msg_controllen = sizeof ctl.buf;
  ssize_t n;
  do n = recvmsg(gSync, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n == 0) _exit(0);  // the spawner is gone
  if (n < 0) fail(Step::ready, errno, "recvmsg");
  int got[4];
  size_t nfds = 0;
  for (struct cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k && nfds < 4; ++i) memcpy(&got[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
  }
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || size_t(n) < sizeof w || w.magic != kStartMagic) {
    fail(Step::ready, EPROTO, "start message");
  }
  size_t next = 0;
  if (w.inlined) {
    if (size_t(n) != sizeof w + w.size) fail(Step::ready, EPROTO, "start message");
  } else {
    if (nfds == 0 || w.size > kStartRegion) fail(Step::ready, EPROTO, "start image");
    int memfd = got[next++];
    size_t off = 0;
    while (off < w.size) {
      ssize_t r = pread(memfd, gStartRegion + off, w.size - off, off_t(off));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) fail(Step::ready, r < 0 ? errno : EPROTO, "start image");
      off += size_t(r);
    }
    close(memfd);
  }
  if (!openStartImage(gStartRegion, w.size)) fail(Step::ready, EPROTO, "start image");
  StartHeader h;
  memcpy(&h, gStartRegion, sizeof h);
  for (int i = 0; i < 3; ++i) {
    if ((h.stdioMask & (1u << i)) == 0) continue;
    if (next >= nfds) fail(Step::stdio, EBADF, "start message");
    if (dup2(got[next], i) < 0) fail(Step::stdio, errno, nullptr);
    close(got[next++]);
  }
  c.proc.argv0 = reinterpret_cast<char* const*>(gStartRegion + h.argvOff)[0];
  settleSignalMask(c.proc.argv0);
  c.proc.path = gStartRegion + h.pathOff;
  c.proc.argvp = reinterpret_cast<char* const*>(gStartRegion + h.argvOff);
  c.proc.envp = reinterpret_cast<char* const*>(gStartRegion + h.envOff);
  c.proc.seccomp = reinterpret_cast<const sock_filter*>(gStartRegion + h.seccompOff);
  c.proc.seccompLen = h.seccompLen;
  const FlatOp* ops = reinterpret_cast<const FlatOp*>(gStartRegion + h.opsOff);
  for (uint32_t i = 0; i < h.nOps; ++i) {
    OpView v = viewOf(gStartRegion, ops[i]);
    if (v.step == Step::ready || v.step == Step::sync) fail(Step::ready, EPROTO, "start image");
    runOp(v, c);
  }
  fail(Step::execve, EINVAL, "start image has no execve step");
}

void runOp(const OpView& op, Ctx& c) {
  const char* s0 = op.ns > 0 ? op.s[0] : "";
  const char* s1 = op.ns > 1 ? op.s[1] : "";
  switch (op.step) {
    case Step::sync:
      awaitByte(kGo, Step::sync);
      break;
    case Step::setsid:
      if (setsid() < 0) fail(Step::setsid, errno, nullptr);
      break;
    case Step::stdio:
      // kind "tty": stdin is a terminal's slave; after setsid() it becomes the controlling
      // terminal, so /dev/tty, job control and ^C work in the container.
      if (eq(op.kind, "tty")) {
        if (ioctl(0, TIOCSCTTY, 0) < 0) fail(Step::stdio, errno, "TIOCSCTTY");
        break;
      }
      for (int i = 0; i < 3; ++i) {
        if (c.fds->stdio[i] >= 0 && dup2(c.fds->stdio[i], i) < 0) fail(Step::stdio, errno, nullptr);
      }
      break;
    case Step::setns: {
      if (eq(op.kind, "net")) {
        if (setns(c.fds->netns, CLONE_NEWNET) < 0) fail(Step::setns, errno, "net");
        break;
      }
      if (eq(op.kind, "mnt") || eq(op.kind, "cgroup")) {
        bool mnt = eq(op.kind, "mnt");
        if (setns(mnt ? c.fds->mntns : c.fds->cgroupns, mnt ? CLONE_NEWNS : CLONE_NEWCGROUP) < 0) fail(Step::setns, errno, op.kind);
        break;
      }
      if (eq(op.kind, "ipc") || eq(op.kind, "uts")) {
        bool ipc = eq(op.kind, "ipc");
        if (setns(ipc ? c.fds->ipcns : c.fds->utsns, ipc ? CLONE_NEWIPC : CLONE_NEWUTS) < 0) fail(Step::setns, errno, op.kind);
        break;
      }
      if (eq(op.kind, "user")) {
        // Last of the setup done as the host's root: from here on this process is root
        // only inside the container's user namespace.
        if (setns(c.fds->userns, CLONE_NEWUSER) < 0) fail(Step::setns, errno, "user");
        break;
      }
      // An exec: a pidfd names every namespace of the target at once (Linux 5.8). The user
      // namespace is joined last and on its own: its mount namespace belongs to the host's
      // user namespace, which a process already inside the container's could not enter.
      unsigned long joinFlags = c.proc.setnsFlags & ~static_cast<unsigned long>(CLONE_NEWUSER);
      if (joinFlags != 0 && setns(c.fds->targetPidfd, int(joinFlags)) < 0) fail(Step::setns, errno, nullptr);
      if (c.proc.setnsFlags & CLONE_NEWPID) {
        // setns(CLONE_NEWPID) applies to children only: fork once more, as a sibling
        // (CLONE_PARENT) so the spawner reaps the workload directly.
        long pid = syscall(SYS_clone, CLONE_PARENT, nullptr, nullptr, nullptr, 0);
        if (pid < 0) fail(Step::setns, errno, "clone");
        if (pid > 0) {
          report(kPid, Step::setns, 0, nullptr, int(pid));
          _exit(0);
        }
      }
      if ((c.proc.setnsFlags & CLONE_NEWUSER) && setns(c.fds->targetPidfd, CLONE_NEWUSER) < 0) fail(Step::setns, errno, "user");
      break;
    }
    case Step::cgroupns:
      if (unshare(CLONE_NEWCGROUP) < 0) fail(Step::cgroupns, errno, nullptr);
      break;
    case Step::mount_private: {
      // n: the propagation the tree gets (MS_REC | MS_PRIVATE unless the plan says MS_SLAVE,
      // for an OCI rootfsPropagation that lets host mounts reach the container).
      unsigned long flags = op.nn > 0 ? op.n[0] : (MS_REC | MS_PRIVATE);
      if (mount("", "/", nullptr, flags, nullptr) < 0) fail(Step::mount_private, errno, "/");
      break;
    }
    case Step::propagation: {
      // s: a mount point in the root ("/" once pivoted); n: MS_SHARED, MS_SLAVE, MS_PRIVATE
      // or MS_UNBINDABLE, with MS_REC for the whole subtree.
      if (c.rootfd < 0) {
        if (mount("", s0, nullptr, op.n[0], nullptr) < 0) fail(Step::propagation, errno, s0);
        break;
      }
      int t = resolveInRoot(c.rootfd, s0);
      if (t < 0) fail(Step::propagation, errno, s0);
      char tp[32];
      fdPath(t, tp);
      if (mount("", tp, nullptr, op.n[0], nullptr) < 0) fail(Step::propagation, errno, s0);
      close(t);
      break;
    }
    case Step::mknod: {
      // s: the node's path in root; n: file type (S_IFCHR, S_IFBLK, S_IFIFO), major, minor,
      // permission bits, uid, gid. The mode is set after mknod so the umask cannot narrow it.
      const char* rel = s0;
      while (*rel == '/') ++rel;
      const char* slash = strrchr(rel, '/');
      if (slash == nullptr || slash[1] == '\0') fail(Step::mknod, EINVAL, s0);
      char parent[PATH_MAX];
      size_t n = size_t(slash - rel);
      if (n >= sizeof parent) fail(Step::mknod, ENAMETOOLONG, s0);
      memcpy(parent, rel, n);
      parent[n] = '\0';
      int dir = ensureInRoot(c.rootfd, parent, false);
      if (dir < 0) fail(Step::mknod, errno, s0);
      const char* base = slash + 1;
      if (mknodat(dir, base, mode_t(op.n[0]) | 0600, makedev(unsigned(op.n[1]), unsigned(op.n[2]))) < 0) fail(Step::mknod, errno, s0);
      if (fchownat(dir, base, uid_t(op.n[4]), gid_t(op.n[5]), AT_SYMLINK_NOFOLLOW) < 0) fail(Step::mknod, errno, s0);
      if (fchmodat(dir, base, mode_t(op.n[3] & 07777), 0) < 0) fail(Step::mknod, errno, s0);
      close(dir);
      break;
    }
    case Step::umask:
      umask(mode_t(op.n[0] & 0777));
      break;
    case Step::overlay:
      if (eq(op.kind, "idmap")) {
        // s: image layer, staging dir. An idmapped copy of the layer shows the host's
        // root-owned files as owned by the container's root, without a chown of the
        // layer every container shares.
        int tree = int(syscall(SYS_open_tree, AT_FDCWD, s0, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
        if (tree < 0) fail(Step::overlay, errno, s0);
        struct mount_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        attr.userns_fd = uint64_t(c.fds->userns);
        if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) fail(Step::overlay, errno, s0);
        if (syscall(SYS_move_mount, tree, "", AT_FDCWD, s1, MOVE_MOUNT_F_EMPTY_PATH) < 0) fail(Step::overlay, errno, s1);
        close(tree);
        break;
      }
      if (eq(op.kind, "bind")) {
        // s: a root directory used as it is (an OCI bundle's rootfs), the mount point. A
        // recursive bind makes it a mount of its own, which pivot_root needs, and writes
        // go to the directory itself, as the engine that made it expects.
        if (mount(s0, s1, nullptr, MS_BIND | MS_REC, nullptr) < 0) fail(Step::overlay, errno, s0);
        break;
      }
      // s: target (a host path the runtime created), mount data
      if (mount("overlay", s0, "overlay", 0, s1) < 0) fail(Step::overlay, errno, s0);
      break;
    case Step::root_open:
      c.rootfd = open(s0, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (c.rootfd < 0) fail(Step::root_open, errno, s0);
      break;
    case Step::mount: {
      // s: source, target in root, fstype, data; n: MS_* flags, target is a file (0/1)
      int t = ensureInRoot(c.rootfd, s1, op.nn > 1 && op.n[1] != 0);
      if (t < 0) fail(Step::mount, errno, s1);
      char tp[32];
      fdPath(t, tp);
      const char* data = op.ns > 3 && op.s[3][0] != '\0' ? op.s[3] : nullptr;
      if (mount(s0, tp, op.s[2], op.n[0], data) < 0) fail(Step::mount, errno, s1);
      close(t);
      break;
    }
    case Step::bind:
    case Step::volume: {
      // s: host source, target in root; n: MS_* flags (MS_REC, MS_RDONLY...), target is a
      // file (0/1), must be writable (0/1)
      int src = open(s0, O_PATH | O_CLOEXEC);
      if (src < 0) fail(op.step, errno, s0);
      int t = ensureInRoot(c.rootfd, s1, op.n[1] != 0);
      if (t < 0) fail(op.step, errno, s1);
      bool rec = (op.n[0] & MS_REC) != 0;
      if (op.nn > 3 && op.n[3] == 2) {  // idmapped through a user namespace with the mount's own maps
        const char* what = "";
        int userns = usernsWithMaps(op.s[2], op.s[3], &what);
        if (userns < 0) fail(op.step, errno, what);
        if (bindIdmapped(src, t, rec, mountAttrFromFlags(op.n[0]), userns, op.nn > 4 && op.n[4] != 0) < 0) fail(op.step, errno, s0);
        close(userns);
      } else if (op.nn > 3 && op.n[3] != 0) {  // idmapped through the container's user namespace
        if (c.fds->userns < 0) fail(op.step, EINVAL, "idmap without a user namespace");
        if (bindIdmapped(src, t, rec, mountAttrFromFlags(op.n[0]), c.fds->userns, op.nn > 4 ? op.n[4] != 0 : rec) < 0) fail(op.step, errno, s0);
      } else if (bindTree(src, "", t, (op.n[0] & MS_REC) != 0, mountAttrFromFlags(op.n[0])) < 0) {
        fail(op.step, errno, s1);
      }
      close(t);
      close(src);
      if (op.nn > 2 && op.n[2] != 0) {
        // A read-write volume on a read-only filesystem would only fail at the first
        // write, inside the agent; refuse it here, where the cause is known.
        int m = resolveInRoot(c.rootfd, s1);
        if (m < 0) fail(op.step, errno, s1);
        char mp[32];
        fdPath(m, mp);
        if (access(mp, W_OK) < 0) fail(op.step, errno, s0);
        close(m);
      }
      break;
    }
    case Step::symlink: {
      // s: link target, link path in root (its parent must exist)
      const char* linkPath = s1;
      while (*linkPath == '/') ++linkPath;
      const char* slash = strrchr(linkPath, '/');
      int dir;
      const char* base;
      if (slash == nullptr) {
        dir = dup(c.rootfd);
        base = linkPath;
      } else {
        char parent[PATH_MAX];
        size_t n = size_t(slash - linkPath);
        if (n >= sizeof parent) fail(Step::symlink, ENAMETOOLONG, s1);
        memcpy(parent, linkPath, n);
        parent[n] = '\0';
        dir = resolveInRoot(c.rootfd, parent);
        base = slash + 1;
      }
      if (dir < 0) fail(Step::symlink, errno, s1);
      if (symlinkat(s0, dir, base) < 0 && errno != EEXIST) fail(Step::symlink, errno, s1);
      close(dir);
      break;
    }
    case Step::mask: {
      int t = resolveInRoot(c.rootfd, s0);
      if (t < 0) {
        if (errno == ENOENT) break;
        fail(Step::mask, errno, s0);
      }
      struct stat st;
      if (fstatat(t, "", &st, AT_EMPTY_PATH) < 0) fail(Step::mask, errno, s0);
      char tp[32];
      fdPath(t, tp);
      int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", tp, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
                                   : bindTree(AT_FDCWD, "/dev/null", t, false, 0);
      if (rc < 0) fail(Step::mask, errno, s0);
      close(t);
      break;
    }
    case Step::readonly: {
      int t = resolveInRoot(c.rootfd, s0);
      if (t < 0) {
        if (errno == ENOENT) break;
        fail(Step::readonly, errno, s0);
      }
      if (bindTree(t, "", t, true, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC) < 0) {
        fail(Step::readonly, errno, s0);
      }
      close(t);
      break;
    }
    case Step::pivot_root:
      // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves
      // no path back to the host's tree, not even through /proc/self/root of this process.
      if (fchdir(c.rootfd) < 0) fail(Step::pivot_root, errno, "fchdir");
      if (syscall(SYS_pivot_root, ".", ".") < 0) fail(Step::pivot_root, errno, nullptr);
      if (umount2(".", MNT_DETACH) < 0) fail(Step::pivot_root, errno, "umount old root");
      if (chdir("/") < 0) fail(Step::pivot_root, errno, "/");
      close(c.rootfd);
      c.rootfd = -1;
      break;
    case Step::root_readonly: {
      struct mount_attr attr;
      memset(&attr, 0, sizeof attr);
      attr.attr_set = MOUNT_ATTR_RDONLY;
      if (syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, &attr, sizeof attr) < 0) fail(Step::root_readonly, errno, "/");
      break;
    }
    case Step::loopback: {
      int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (sock < 0) fail(Step::loopback, errno, "socket");
      struct ifreq ifr;
      memset(&ifr, 0, sizeof ifr);
      memcpy(ifr.ifr_name, "lo", 3);
      if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) fail(Step::loopback, errno, "lo");
      ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
      if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) fail(Step::loopback, errno, "lo");
      close(sock);
      break;
    }
    case Step::affinity: {
      // n: CPU numbers. The cpuset cgroup enforces the set; the affinity mask applies it
      // from the first instruction even where cpuset is not delegated.
      cpu_set_t set;
      CPU_ZERO(&set);
      for (uint32_t i = 0; i < op.nn; ++i)
        if (op.n[i] < CPU_SETSIZE) CPU_SET(op.n[i], &set);
      if (sched_setaffinity(0, sizeof set, &set) < 0) fail(Step::affinity, errno, nullptr);
      break;
    }
    case Step::mempolicy: {
      // n: mode (MPOL_*), then NUMA nodes. Set before seccomp, which refuses it inside.
      unsigned long mask[16];
      memset(mask, 0, sizeof mask);
      for (size_t i = 1; i < op.nn; ++i)
        if (op.n[i] < 16 * 64) mask[op.n[i] / 64] |= 1ul << (op.n[i] % 64);
      if (syscall(SYS_set_mempolicy, int(op.n[0]), mask, 16 * 64) < 0) fail(Step::mempolicy, errno, nullptr);
      break;
    }
    case Step::hostname:
      if (sethostname(s0, strlen(s0)) < 0) fail(Step::hostname, errno, s0);
      break;
    case Step::rlimit: {
      struct rlimit rl;
      rl.rlim_cur = op.n[1];
      rl.rlim_max = op.n[2];
      if (setrlimit(__rlimit_resource(op.n[0]), &rl) < 0) fail(Step::rlimit, errno, s0);
      break;
    }
    case Step::setgroups:
      if (syscall(SYS_setgroups, op.ngids, op.gids) < 0) fail(Step::setgroups, errno, nullptr);
      break;
    case Step::setgid:
      if (syscall(SYS_setresgid, op.n[0], op.n[0], op.n[0]) < 0) fail(Step::setgid, errno, s0);
      break;
    case Step::setuid:
      // Keep-caps: the permitted set survives the change of uid, so the capset that follows
      // leaves exactly the planned sets, as an OCI config's capabilities for a non-root user
      // ask (runc does the same). Plans for the library's own containers give a non-root
      // user empty sets, which this does not change; execve clears keep-caps.
      if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) fail(Step::setuid, errno, "PR_SET_KEEPCAPS");
      if (syscall(SYS_setresuid, op.n[0], op.n[0], op.n[0]) < 0) fail(Step::setuid, errno, s0);
      break;
    case Step::capabilities:
      if (eq(op.kind, "bounding")) applyBounding(op);
      else applyCapabilitySets(op);
      break;
    case Step::no_new_privs:
      if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail(Step::no_new_privs, errno, nullptr);
      break;
    case Step::chdir:
      if (chdir(s0) < 0) fail(Step::chdir, errno, s0);
      break;
    case Step::resolve_exec:
      resolveExec(c.proc);
      break;
    case Step::ready:
      // The park point: everything the container's shape fixes is done. What the caller
      // chooses at start() comes in one message (see receiveStart), which ends in execve.
      report(kReady, Step::ready, 0, nullptr);
      receiveStart(c);
    case Step::close_fds: {
      // Every fd but stdio and the sync socket is closed, not only marked CLOEXEC, and
      // before chdir and resolve-exec (CVE-2024-21626 class: a host fd still open at the
      // chdir, such as a directory of the host, lets a cwd of /proc/self/fd/N escape the
      // root). The sync socket is CLOEXEC and stays usable until execve, so an execve
      // failure can still be reported.
      if (closeFdsExcept(&gSync, 1) < 0) fail(Step::close_fds, errno, nullptr);
      break;
    }
    case Step::seccomp: {
      struct sock_fprog prog;
      prog.len = static_cast<unsigned short>(c.proc.seccompLen);
      prog.filter = const_cast<sock_filter*>(c.proc.seccomp);
      if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) fail(Step::seccomp, errno, nullptr);
      break;
    }
    case Step::execve:
      execve(gExecPath[0] != '\0' ? gExecPath : c.proc.argv0, c.proc.argvp, c.proc.envp);
      fail(Step::execve, errno, gExecPath[0] != '\0' ? gExecPath : c.proc.argv0);
    default:
      fail(op.step, EINVAL, "step not valid in a plan");
  }
}

}  // namespace

char* gStartRegion = nullptr;

bool mapStartRegion() {
  void* p = mmap(nullptr, kStartRegion, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  gStartRegion = static_cast<char*>(p);
  return true;
}

int closeFdsExcept(const int* keep, size_t n) {
  int sorted[10];
  size_t k = 0;
  for (size_t i = 0; i < n; ++i) {
    int fd = keep[i];
    if (fd < 3) continue;
    size_t at = 0;
    while (at < k && sorted[at] < fd) ++at;
    if (at < k && sorted[at] == fd) continue;
    if (k == sizeof sorted / sizeof sorted[0]) {
      errno = E2BIG;
      return -1;
    }
    for (size_t j = k; j > at; --j) sorted[j] = sorted[j - 1];
    sorted[at] = fd;
    ++k;
  }
  unsigned next = 3;
  for (size_t i = 0; i < k; ++i) {
    unsigned fd = unsigned(sorted[i]);
    if (fd > next && syscall(SYS_close_range, next, fd - 1, 0u) < 0) return -1;
    next = fd + 1;
  }
  return int(syscall(SYS_close_range, next, ~0u, 0u));
}

namespace {
struct rlimit gWorkloadNofile = {0, 0};
bool gNofileRaised = false;
}  // namespace

void raiseFdLimit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max) return;
  gWorkloadNofile = rl;
  rl.rlim_cur = rl.rlim_max;
  gNofileRaised = setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

void runChild(const Plan& plan, const ChildFds& fds) {
  // First, before anything the container could observe: until execve() this process is the
  // spawner's binary with the spawner's memory, and non-dumpable keeps /proc/<pid>/exe,
  // /proc/<pid>/mem and ptrace closed to the container's processes, even its root in a user
  // namespace (CVE-2019-5736 class). What is relied on: dumpable stays 0 through every step
  // here (setres[ug]id would only lower it further), and execve() resets it (begin_new_exec:
  // back to 1 only when the new image's credentials are not raised by setuid/setgid bits
  // and the binary is readable; otherwise it stays at suid_dumpable, 0 by default). Either
  // way the workload's dumpability is its own image's, not the spawner's.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  gSync = fds.sync;
  // Second: none of the spawner's own fds may reach a single step of the plan.
  const int keep[] = {fds.sync, fds.stdio[0], fds.stdio[1], fds.stdio[2], fds.targetPidfd, fds.userns, fds.netns, fds.ipcns, fds.utsns, fds.mntns, fds.cgroupns};
  if (closeFdsExcept(keep, sizeof keep / sizeof keep[0]) < 0) fail(Step::close_fds, errno, "close_range");
  // The fd limit the spawner was started with, not the one it raised for itself.
  if (gNofileRaised && setrlimit(RLIMIT_NOFILE, &gWorkloadNofile) < 0) fail(Step::rlimit, errno, "RLIMIT_NOFILE");
  // Signal state is inherited across execve: undo the spawner's (SIGCHLD blocked for its
  // signalfd, SIGPIPE ignored) so the workload starts with the defaults. Until the command
  // is known every signal stays blocked (see settleSignalMask).
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  signal(SIGPIPE, SIG_DFL);

  Ctx c;
  c.fds = &fds;
  c.proc.argv0 = plan.argv.empty() ? "" : plan.argv[0].c_str();
  if (!plan.argv.empty()) settleSignalMask(c.proc.argv0);
  c.proc.path = plan.searchPath.c_str();
  c.proc.argvp = plan.argvp.data();
  c.proc.envp = plan.envp.data();
  c.proc.seccomp = plan.seccomp.data();
  c.proc.seccompLen = plan.seccomp.size();
  c.proc.setnsFlags = plan.setnsFlags;
  for (const Op& op : plan.ops) runOp(viewOf(op), c);
  fail(Step::execve, EINVAL, "plan has no execve step");
}

}  // namespace ss
