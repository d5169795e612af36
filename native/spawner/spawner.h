// The spawner's state and the one class that owns it. Its methods are spread by concern:
// loop.cc (epoll loop, clients, signals, reaping), protocol.cc (request dispatch and the
// verbs), launch.cc (clone and launch of inits and exec workloads), adopt.cc (inits of a
// dead spawner), state_files.cc (exit records).
#pragma once

#include <sys/types.h>
#include <sys/wait.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "child.h"
#include "common.h"
#include "log_index.h"
#include "plan.h"

namespace ss {

// waitid()'s P_PIDFD (Linux 5.4), which older C libraries do not name.
constexpr idtype_t kPidfd = idtype_t(3);

// fds a client may have sent ahead of the request that takes them (an exec takes 3).
constexpr size_t kMaxClientFds = 16;

// How long a child may take to reach its next report (setup of an init, or its execve).
constexpr int kSetupTimeoutMs = 30000;

struct Client {
  int fd = -1;
  std::string in;
  std::vector<int> fds;  // received with SCM_RIGHTS, consumed by the next request
  bool subscriber = false;
};

struct Container {
  std::string id;
  std::string stateDir;
  pid_t pid = 0;
  int pidfd = -1;
  bool adopted = false;  // not our child: its exit comes as pidfd readiness, its code is lost
  int sync = -1;  // open until start() (parked init waiting for kStart)
  bool exited = false;
  int status = 0;
  int64_t finishedAt = 0;
};

// An exec's workload, keyed by its pidfd: the pid is kept only to answer exec-kill, which
// names the workload by the pid the runtime was told.
struct ExecProc {
  pid_t pid;
  int clientFd;
  std::string containerId;
};

class Spawner {
 public:
  Spawner(std::string root, int idleMs) : root_(std::move(root)), idleMs_(idleMs) {}
  int listen(int readyFd);
  int loop();

 private:
  void accept();
  void readClient(int fd);
  void closeClient(int fd);
  void handle(Client& c, const wire::Fields& f);
  void reply(int fd, const wire::Fields& f);
  void reap();
  void recordExit(Container& ct, int status, bool known = true);
  void execExited(std::map<int, ExecProc>::iterator it, int status);

  wire::Fields create(Client& c, const wire::Fields& f);
  wire::Fields start(const wire::Fields& f);
  wire::Fields kill(const wire::Fields& f);
  wire::Fields execKill(const wire::Fields& f);
  wire::Fields forget(const wire::Fields& f);
  wire::Fields exec(Client& c, const wire::Fields& f, bool* deferred);
  wire::Fields status(const wire::Fields& f);
  wire::Fields adopt(const wire::Fields& f);
  void adoptedExit(int pidfd);

  // Clones a child that runs `plan`, joins its cgroups, writes its id maps, lets it run
  // to its first report and returns it. Cleans up the child on any failure.
  bool launch(Plan& plan, const ChildFds& childFds, unsigned long flags, pid_t* pid, int* pidfd, int* sync, Error* e,
              pid_t* workload, int* workloadPidfd);
  bool awaitReport(int sync, pid_t pid, ChildReport* r, bool* eof, Error* e);

  std::string root_;
  int idleMs_;
  int epfd_ = -1;
  int listenFd_ = -1;
  int sigFd_ = -1;
  bool stopping_ = false;
  std::map<int, Client> clients_;
  std::map<std::string, Container> containers_;
  std::map<int, ExecProc> execs_;  // by pidfd
  // Containers of an earlier spawner that died: not our children, watched through pidfds.
  std::map<int, std::string> adopted_;
  LogIndexer logIndex_;
};

}  // namespace ss
