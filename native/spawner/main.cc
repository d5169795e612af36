// stratoswarm-spawner: parent and reaper of every container under one state root.
//
// One single-threaded process per state root, started on demand by the runtime. It
// outlives the host agent that started it, so containers keep running and their exit codes
// are kept when that agent dies; a later agent reconnects to the same socket. Requests and
// replies use the framing of wire.h on a SOCK_STREAM unix socket (plain Node sockets can
// speak it; the addon adds fds with SCM_RIGHTS where a request carries stdio).
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "child.h"
#include "spawner.h"
#include "state_files.h"


int main(int argc, char** argv) {
  std::string root;
  int idleMs = 60000;
  bool foreground = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--root" && i + 1 < argc) root = argv[++i];
    else if (a == "--idle-ms" && i + 1 < argc) idleMs = atoi(argv[++i]);
    else if (a == "--foreground") foreground = true;
    else {
      fprintf(stderr, "usage: stratoswarm-spawner --root DIR [--idle-ms N] [--foreground]\n");
      return 2;
    }
  }
  if (root.empty() || root[0] != '/') {
    fprintf(stderr, "stratoswarm-spawner: --root must be an absolute path\n");
    return 2;
  }
  if (mkdir(root.c_str(), 0700) < 0 && errno != EEXIST) {
    fprintf(stderr, "stratoswarm-spawner: mkdir %s: %s\n", root.c_str(), strerror(errno));
    return 1;
  }
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) < 0) return 1;
  if (!foreground) {
    // Daemonize: the process the runtime started waits for the daemon's first word, then
    // exits, so the runtime never has a child to reap and the daemon holds no stdio of it.
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid > 0) {
      close(ready[1]);
      char msg[512] = {0};
      ssize_t n = read(ready[0], msg, sizeof msg - 1);
      if (n == 2 && memcmp(msg, "ok", 2) == 0) return 0;
      if (n == 4 && memcmp(msg, "busy", 4) == 0) return 3;
      fprintf(stderr, "stratoswarm-spawner: %s\n", n > 0 ? msg : "exited before it was ready");
      return 1;
    }
    close(ready[0]);
    setsid();
    if (chdir("/") < 0) _exit(1);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    std::string logPath = root + "/spawner.log";
    int log = open(logPath.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    dup2(null, 0);
    dup2(null, 1);
    dup2(log >= 0 ? log : null, 2);
    if (null > 2) close(null);
    if (log > 2) close(log);
  }
  umask(022);
  ss::raiseFdLimit();
  signal(SIGPIPE, SIG_IGN);
  // Orphans of exec helpers come back here instead of to the host's init.
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  int lock = ss::lockRoot(root, ready[1]);
  if (lock < 0) return lock == -2 ? 3 : 1;
  ss::Spawner sp(root, idleMs);
  if (sp.listen(ready[1]) < 0) return 1;
  if (write(ready[1], "ok", 2) != 2) return 1;
  close(ready[1]);
  ss::logf("listening under %s", root.c_str());
  int rc = sp.loop();
  unlink((root + "/spawner.sock").c_str());
  return rc;
}
