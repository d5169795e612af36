// The spawner's state and the one class that owns it. Its methods are spread by concern:
// loop.cc (epoll loop, signals, reaping), clients.cc (connections, framing, request ids),
// protocol.cc (request dispatch and the verbs), launch.cc (clone and launch of inits and exec
// workloads), adopt.cc (inits of a dead spawner), restore.cc (inits restored by CRIU),
// state_files.cc (exit records).
#pragma once

#include <sys/types.h>
#include <sys/wait.h>

#include <cstdint>
#include <map>
#include <memory>
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

// A tagged request's id (the digits of its "#<id>" field) is at most this long.
constexpr size_t kMaxTagDigits = 16;

// How long a child may take to reach its next report (setup of an init, or its execve).
constexpr int kSetupTimeoutMs = 30000;

// A client that does not read its replies: once this much is queued for it, it is dropped
// (an exit event fan-out must never wait on one slow subscriber).
constexpr size_t kMaxClientQueue = 1u << 20;

// The fds of one recvmsg() and the part of the client's byte stream it returned,
// [begin, end): the kernel attaches fds to the first byte of the sendmsg() that carried
// them, so the frame they came with starts in that range.
struct FdBatch {
  std::vector<int> fds;
  uint64_t begin = 0, end = 0;
};

struct Client {
  int fd = -1;
  uint64_t serial = 0;  // fds are reused; a deferred reply checks it still has its client
  std::string in;
  uint64_t inAt = 0;  // the stream offset of in[0]
  std::vector<FdBatch> batches;  // received with SCM_RIGHTS, not yet taken by a frame
  std::vector<int> fds;  // the fds of the request being handled (closed after it)
  std::string tag;       // the id of the request being handled ("" for a plain one)
  bool subscriber = false;
  std::string subscribeTag;  // exit events carry the id of the subscribe request
  std::string out;  // replies the socket did not take yet
  size_t outOff = 0;
  // A plain (untagged) request of this client is in progress (a launch): its later requests
  // wait, so its replies keep their order. Tagged requests never wait on each other.
  bool busy = false;
  bool drop = false;  // closed at the end of this loop iteration (never inside a fan-out)
  uint32_t events = 0;
};

// Where a deferred reply goes: the client, if it is still the same connection, and the id
// of the request it answers ("" for a plain one).
struct ReplyTo {
  int fd = -1;
  uint64_t serial = 0;
  std::string tag;
};

struct Container {
  std::string id;
  std::string stateDir;
  pid_t pid = 0;
  int pidfd = -1;
  bool adopted = false;  // not our child: its exit comes as pidfd readiness, its code is lost
  int sync = -1;         // open until start() (a parked init waiting for its start image)
  bool starting = false;  // kStart sent, the execve not yet seen
  bool exited = false;
  int status = 0;
  int64_t finishedAt = 0;
};

// An exec's workload, keyed by its pidfd: the pid is kept only to answer exec-kill, which
// names the workload by the pid the runtime was told.
struct ExecProc {
  pid_t pid;
  ReplyTo to;
  std::string containerId;
};

// A create, exec or start in progress. Each waits for its child's next report on a sync
// socket the loop watches; nothing waits for a child in a blocking call.
struct Launch {
  enum class Kind { create, exec, start, restore } kind = Kind::create;
  // userns: the user-namespace helper's answer; report: the init's kReady (create) or the
  // exec helper's kPid; execve: EOF once the workload or started init has exec'd.
  enum class Phase { userns, report, execve } phase = Phase::report;
  ReplyTo to;
  std::string id;
  std::unique_ptr<Plan> plan;  // until the init is cloned
  std::string stateDir, stdoutPath, stderrPath;  // what a created container keeps of it
  std::string pidfile;  // a restore: where CRIU writes the restored tree's pid
  ChildFds fds;                // opened for the child; closed once it is cloned
  int sync = -1;               // the socket waited on now (the key in launches_)
  pid_t pid = 0;               // the init, the exec helper, or the userns helper
  int pidfd = -1;
  pid_t workload = 0;  // an exec's workload, once reported
  int workloadPidfd = -1;
  int64_t deadline = 0;
};

class Spawner {
 public:
  Spawner(std::string root, int idleMs) : root_(std::move(root)), idleMs_(idleMs) {}
  int listen(int readyFd);
  int loop();

 private:
  // clients.cc
  void accept();
  void onClient(int fd, uint32_t events);
  void readClient(Client& c);
  void processInput(Client& c);
  void closeClient(int fd);
  void dropDoomed();
  void setInterest(Client& c);
  void flush(Client& c);
  void reply(const ReplyTo& to, const wire::Fields& f);
  void reply(Client& c, const wire::Fields& f, const std::string& tag = "");
  bool takeFds(Client& c, uint64_t at, size_t want, std::string* why);
  void closeOrphanFds(Client& c, uint64_t upTo);

  // loop.cc
  void reap();
  void execExited(std::map<int, ExecProc>::iterator it, int status);
  int nextTimeoutMs(int fallback);

  // protocol.cc
  void handle(Client& c, const wire::Fields& f);
  wire::Fields create(Client& c, const wire::Fields& f, bool* deferred);
  wire::Fields start(Client& c, const wire::Fields& f, bool* deferred);
  wire::Fields kill(const wire::Fields& f);
  wire::Fields execKill(const wire::Fields& f);
  wire::Fields forget(const wire::Fields& f);
  wire::Fields exec(Client& c, const wire::Fields& f, bool* deferred);
  wire::Fields status(const wire::Fields& f);

  // adopt.cc
  wire::Fields adopt(const wire::Fields& f);
  void adoptedExit(int pidfd);

  // restore.cc
  wire::Fields restore(Client& c, const wire::Fields& f, bool* deferred);
  void finishRestore(std::unique_ptr<Launch> l);

  // state_files.cc
  void recordExit(Container& ct, int status, bool known = true);

  // launch.cc: the launch state machine
  bool watchLaunch(std::unique_ptr<Launch>& l, Error* e);  // moves l into launches_ on success
  void abandon(Launch& l);
  bool cloneInit(Launch& l, Error* e);
  void onLaunchReadable(int sync);
  void finishLaunch(std::unique_ptr<Launch> l, const wire::Fields& out);
  void failLaunch(std::unique_ptr<Launch> l, const Error& e);
  void expireLaunches();
  void killChild(int* pidfd);
  bool setHostname(const Container& ct, const std::string& name, Error* e);
  bool execLaunchPending() const;

  std::string root_;
  int idleMs_;
  int epfd_ = -1;
  int listenFd_ = -1;
  int sigFd_ = -1;
  int selfUts_ = -1;  // this process's UTS namespace, to return to after setting a container's hostname
  bool stopping_ = false;
  uint64_t nextSerial_ = 1;
  std::map<int, Client> clients_;
  std::map<std::string, Container> containers_;
  std::map<int, ExecProc> execs_;  // by pidfd
  std::map<int, std::unique_ptr<Launch>> launches_;  // by the sync socket waited on
  // Pidfds of children this process is done with (helpers, killed children of failed
  // launches): reaped through them when they exit, never left as zombies.
  std::vector<int> zombies_;
  // Containers of an earlier spawner that died: not our children, watched through pidfds.
  std::map<int, std::string> adopted_;
  LogIndexer logIndex_;
};

}  // namespace ss
