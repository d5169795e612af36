#include "state_files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "spawner.h"

namespace ss {

bool writeFileAll(const std::string& path, const std::string& data, Error* e, Step step) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    *e = {"ESYSCALL", step, errno, "open", path, ""};
    return false;
  }
  ssize_t n = write(fd, data.data(), data.size());
  int err = errno;
  close(fd);
  if (n != ssize_t(data.size())) {
    *e = {"ESYSCALL", step, n < 0 ? err : EIO, "write", path, "value \"" + data + "\""};
    return false;
  }
  return true;
}

// Writes `data` to `path` atomically: a reader sees the old file or the whole new one.
bool writeAtomic(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  // No fsync: the state root is per boot (tmpfs); rename alone keeps readers consistent.
  bool ok = write(fd, data.data(), data.size()) == ssize_t(data.size());
  close(fd);
  return ok && rename(tmp.c_str(), path.c_str()) == 0;
}

std::string exitJson(pid_t pid, int code, int sig, int64_t finishedAt, bool known) {
  char json[256];
  snprintf(json, sizeof json, "{\"pid\":%d,\"exitCode\":%d,\"signal\":%d,\"finishedAt\":%lld%s}\n", pid, code, sig,
           static_cast<long long>(finishedAt), known ? "" : ",\"unknown\":true");
  return json;
}

int lockRoot(const std::string& root, int readyFd) {
  std::string lock = root + "/spawner.lock";
  int fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    dprintf(readyFd, "open %s: %s", lock.c_str(), strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    dprintf(readyFd, "busy");
    return -2;
  }
  return fd;
}

void Spawner::recordExit(Container& ct, int status, bool known) {
  // The last output may not have raised its event yet; the index is complete before anyone
  // hears of the exit, so a reader that stops at the exit finds every byte indexed.
  logIndex_.settle(ct.id);
  ct.exited = true;
  ct.status = status;
  ct.finishedAt = nowMs();
  if (ct.sync >= 0) {
    close(ct.sync);
    ct.sync = -1;
  }
  if (ct.pidfd >= 0) {
    close(ct.pidfd);
    ct.pidfd = -1;
  }
  int code = known && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  int sig = known && WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  std::string json = exitJson(ct.pid, code, sig, ct.finishedAt, known);
  if (!ct.stateDir.empty() && !writeAtomic(ct.stateDir + "/exit.json", json)) {
    logf("write %s/exit.json: %s", ct.stateDir.c_str(), strerror(errno));
  }
  wire::Fields ev = {"exit", ct.id, std::to_string(ct.pid), std::to_string(code), std::to_string(sig),
                     std::to_string(ct.finishedAt)};
  for (auto& [fd, cl] : clients_)
    if (cl.subscriber) reply(cl, ev, cl.subscribeTag);
}

}  // namespace ss
