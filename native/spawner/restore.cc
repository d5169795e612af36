// The restore verb: runs CRIU's restore as a child of this process, inside the new
// container's cgroups, and takes the process tree it restores as the container's init.
//
// CRIU restores with --restore-detached: once the tree runs, CRIU exits and its root task is
// reparented to the nearest subreaper, which is this process. So a restored init is a child
// here like any other: its exit status is known, it is reaped through its pidfd, and it is
// signalled, frozen and adopted exactly as a created one.
//
//   restore <id> <state-dir> <stdout> <stderr> <pidfile> <ncgroups> <cgroup.procs>...
//           <argc> <argv>... <envc> <env>...
//
// The container's stdout and stderr logs are opened here and given to CRIU as fds 3 and 4
// (its argv names them with --inherit-fd); CRIU's own stdio is /dev/null (it logs to a file).
// A request that comes with three fds (an OCI engine's stdin, stdout and stderr) gives CRIU
// those as fds 3, 4 and 5 instead, and no log is opened.
#include "spawner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "launch.h"
#include "state_files.h"

namespace ss {

namespace {

constexpr int kRestoreTimeoutMs = 300000;  // a large memory image takes a while to map back
constexpr int64_t kMaxRestoreArgs = 512;

bool takeList(const wire::Fields& f, size_t* at, std::vector<std::string>* out, const char* what, std::string* err) {
  int64_t n = 0;
  if (*at >= f.size() || !parseInt(f[*at], 0, kMaxRestoreArgs, &n)) {
    *err = std::string("restore: bad ") + what + " count";
    return false;
  }
  ++*at;
  if (f.size() - *at < size_t(n)) {
    *err = std::string("restore: ") + what + " has fewer fields than its count";
    return false;
  }
  for (int64_t i = 0; i < n; ++i, ++*at) {
    if (f[*at].find('\0') != std::string::npos) {
      *err = std::string("restore: a ") + what + " field contains a NUL byte";
      return false;
    }
    out->push_back(f[*at]);
  }
  return true;
}

[[noreturn]] void runRestoreHelper(int sync, const std::vector<int>& give, const std::vector<std::string>& argv,
                                   const std::vector<std::string>& env) {
  char go;
  if (recv(sync, &go, 1, 0) != 1) _exit(127);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) _exit(127);
  // Out of the way first, so that no dup2 onto 3.. overwrites a later source (or keeps CLOEXEC).
  std::vector<int> high;
  for (int x : give) {
    int h = fcntl(x, F_DUPFD_CLOEXEC, 64);
    if (h < 0) _exit(127);
    high.push_back(h);
  }
  for (size_t i = 0; i < high.size(); ++i)
    if (dup2(high[i], int(3 + i)) < 0) _exit(127);
  for (int fd = 0; fd < 3; ++fd)
    if (dup2(null, fd) < 0) _exit(127);
  int keep[] = {0, 1, 2, 3, 4, 5};
  if (closeFdsExcept(keep, 3 + high.size()) < 0) _exit(127);
  // CRIU's children are the restored tasks: nothing of the spawner's signal state may leak.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int s = 1; s < NSIG; ++s) signal(s, SIG_DFL);
  std::vector<char*> av, ev;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  for (const auto& e : env) ev.push_back(const_cast<char*>(e.c_str()));
  ev.push_back(nullptr);
  execve(av[0], av.data(), ev.data());
  _exit(127);
}

}  // namespace

wire::Fields Spawner::restore(Client& c, const wire::Fields& f, bool* deferred) {
  const std::string& id = f[1];
  if (stopping_) return errorReply({"EBUSY", Step::spawner, ESHUTDOWN, "", "", "spawner is shutting down"});
  bool taken = containers_.count(id) > 0;
  for (const auto& [fd, l] : launches_) taken = taken || (l->kind != Launch::Kind::exec && l->id == id);
  if (taken) return errorReply({"EEXIST", Step::spawner, EEXIST, "", "", "container " + id + " exists"});
  for (size_t i = 2; i <= 5; ++i)
    if (f[i].empty() || f[i][0] != '/' || f[i].find('\0') != std::string::npos) {
      return errorReply({"EPROTO", Step::config, EINVAL, "", "", "restore: field " + std::to_string(i) + " must be an absolute path"});
    }
  std::vector<std::string> cgroups, argv, env;
  std::string bad;
  size_t at = 6;
  if (!takeList(f, &at, &cgroups, "cgroup", &bad) || !takeList(f, &at, &argv, "argv", &bad) ||
      !takeList(f, &at, &env, "env", &bad)) {
    return errorReply({"EPROTO", Step::config, EINVAL, "", "", bad});
  }
  if (at != f.size()) return errorReply({"EPROTO", Step::config, EINVAL, "", "", "restore: fields after the environment"});
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/') {
    return errorReply({"EPROTO", Step::config, EINVAL, "", "", "restore: argv[0] must be an absolute path"});
  }
  auto l = std::make_unique<Launch>();
  l->kind = Launch::Kind::restore;
  l->id = id;
  l->to = {c.fd, c.serial, c.tag};
  l->deadline = nowMs() + kRestoreTimeoutMs;
  l->stateDir = f[2];
  l->stdoutPath = f[3];
  l->stderrPath = f[4];
  l->pidfile = f[5];
  Error e;
  std::vector<int> give;
  if (!c.fds.empty()) {
    // An OCI engine's stdio (the protocol closes c.fds after the verb).
    if (c.fds.size() != 3) return errorReply({"EPROTO", Step::config, EINVAL, "", "", "restore: takes no fds or three (stdin, stdout, stderr)"});
    give = c.fds;
  } else {
    int out = open(f[3].c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    int err = out < 0 ? -1 : open(f[4].c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (out < 0 || err < 0) {
      e = {"ESYSCALL", Step::stdio, errno, "open", out < 0 ? f[3] : f[4], ""};
      if (out >= 0) close(out);
      return errorReply(e);
    }
    give = {out, err};
  }
  int sv[2];
  long pid = cloneWithSync(0, sv, Step::restore, &e);
  if (pid == 0) runRestoreHelper(sv[1], give, argv, env);
  if (c.fds.empty())
    for (int x : give) close(x);
  if (pid < 0) return errorReply(e);
  l->pid = pid_t(pid);
  l->pidfd = int(syscall(SYS_pidfd_open, pid_t(pid), 0));
  bool ok = l->pidfd >= 0;
  if (!ok) {
    e = {"ESYSCALL", Step::restore, errno, "pidfd_open", "", "criu"};
    ::kill(pid_t(pid), SIGKILL);  // reaped as an orphan
  }
  std::string spid = std::to_string(pid);
  for (size_t i = 0; ok && i < cgroups.size(); ++i) ok = writeFileAll(cgroups[i], spid, &e, Step::cgroup);
  char go = kGo;
  if (ok && send(sv[0], &go, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
    e = {"ESYSCALL", Step::sync, errno, "send", "", "criu"};
    ok = false;
  }
  close(sv[0]);
  // The helper's exit is what is waited for: the launch is watched on (a copy of) its pidfd.
  l->sync = ok ? fcntl(l->pidfd, F_DUPFD_CLOEXEC, 0) : -1;
  if (ok && l->sync < 0) e = {"ESYSCALL", Step::restore, errno, "fcntl", "", "criu pidfd"};
  if (!ok || l->sync < 0 || !watchLaunch(l, &e)) {
    abandon(*l);
    return errorReply(e);
  }
  *deferred = true;
  return {};
}

// CRIU has exited (its pidfd is readable): the restored tree runs, reparented here, or the
// restore failed and CRIU took down what it had made.
void Spawner::finishRestore(std::unique_ptr<Launch> l) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid(kPidfd, id_t(l->pidfd), &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0) {
    Error e;
    if (!watchLaunch(l, &e)) failLaunch(std::move(l), e);
    return;
  }
  close(l->sync);
  l->sync = -1;
  close(l->pidfd);
  l->pidfd = -1;
  if (si.si_code != CLD_EXITED || si.si_status != 0) {
    std::string how = si.si_code == CLD_EXITED ? "exited with status " + std::to_string(si.si_status)
                                               : "was killed by signal " + std::to_string(si.si_status);
    return failLaunch(std::move(l), {"ESPAWN", Step::restore, 0, "", "", "criu restore " + how});
  }
  int64_t pid64 = 0;
  std::string text;
  if (FILE* fp = fopen(l->pidfile.c_str(), "re")) {
    char buf[32] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    text.assign(buf, n);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  }
  if (!parseInt(text, 2, INT32_MAX, &pid64)) {
    return failLaunch(std::move(l), {"ESPAWN", Step::restore, 0, "", l->pidfile, "criu restore wrote no pid of the restored tree"});
  }
  pid_t pid = pid_t(pid64);
  int pidfd = int(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return failLaunch(std::move(l), {"ESPAWN", Step::restore, errno, "pidfd_open", "", "the restored tree is gone"});
  // Nothing is reaped blind while a restore is pending, so the pid names the restored root
  // task: it must be this process's child by now (reparented when CRIU exited).
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  int64_t ppid = -1;
  if (!parseInt(procStatField(pid, 4), 0, INT32_MAX, &ppid)) ppid = -1;
  if (ppid != int64_t(getpid())) {
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    close(pidfd);
    return failLaunch(std::move(l), {"ESPAWN", Step::restore, ECHILD, "", path, "the restored tree is not this spawner's child"});
  }
  Container ct;
  ct.id = l->id;
  ct.stateDir = l->stateDir;
  ct.pid = pid;
  ct.pidfd = pidfd;
  containers_[ct.id] = ct;
  logIndex_.watch(ct.id, l->stdoutPath);
  logIndex_.watch(ct.id, l->stderrPath);
  logf("restored container %s (pid %d)", ct.id.c_str(), pid);
  finishLaunch(std::move(l), {"ok", std::to_string(pid)});
  reap();  // it may have exited already; blind reaping may go on again
}

}  // namespace ss
