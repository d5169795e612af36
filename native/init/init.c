// stratoswarm-init: a minimal pid 1 for containers run with `init(true)` / `--init`.
//
// As the first process of a pid namespace, a program gets no default signal actions (the
// kernel drops SIGTERM and SIGINT it has no handler for) and inherits every orphan of the
// container, which it must reap. Most commands do neither. This init runs the command as
// its only child, forwards every signal it can catch to it, reaps every process that ends,
// and exits with the command's status (128 + N when signal N ended it) once the command has
// ended; the kernel then ends whatever else is left in the namespace.
//
// It is bound read-only into the container at /dev/init and runs under the container's own
// user, capabilities, no_new_privs and seccomp filter, so it can do nothing the command
// could not. Built static: images need not have a C library.
//
//   /dev/init [--] COMMAND [ARG...]
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static void say(const char *what, int err) {
  dprintf(2, "stratoswarm-init: %s: %s\n", what, strerror(err));
}

// The child: its own process group, which takes the terminal's foreground when stdin is
// one (so ^C and window changes reach the command, not the init), then the command.
static void run_child(char **argv) {
  if (setpgid(0, 0) < 0) say("setpgid", errno);
  // SIGTTOU is still blocked here, so a background group may take the foreground.
  if (isatty(STDIN_FILENO) && tcsetpgrp(STDIN_FILENO, getpgrp()) < 0 && errno != ENOTTY) say("tcsetpgrp", errno);
  // The command starts with nothing blocked, whatever this process was started with (the
  // runtime starts it with every signal blocked, so that none sent before it ran is lost).
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execvp(argv[0], argv);
  int e = errno;
  say(argv[0], e);
  _exit(e == ENOENT ? 127 : 126);
}

static int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

int main(int argc, char **argv) {
  int first = 1;
  if (argc > 1 && strcmp(argv[1], "--") == 0) first = 2;
  if (first >= argc) {
    dprintf(2, "usage: stratoswarm-init [--] COMMAND [ARG...]\n");
    return 2;
  }
  // Every signal is blocked and taken with sigtimedwait: none arrives in the middle of a
  // fork, and nothing runs in a handler. SIGKILL and SIGSTOP cannot be blocked (nor caught).
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  // Not pid 1 (a test, or a shell): still adopt the command's orphans.
  if (getpid() != 1) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

  pid_t child = fork();
  if (child < 0) {
    say("fork", errno);
    return 125;
  }
  if (child == 0) run_child(argv + first);

  int code = -1;
  for (;;) {
    // Reap everything that ended: the command, and orphans the container left to pid 1.
    for (;;) {
      int status;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid == child) code = status_code(status);
    }
    if (code >= 0) return code;
    // A timeout keeps reaping going even if a SIGCHLD was merged with another.
    struct timespec tick = {1, 0};
    siginfo_t info;
    int sig = sigtimedwait(&all, &info, &tick);
    if (sig < 0) {
      if (errno != EAGAIN && errno != EINTR) say("sigtimedwait", errno);
      continue;
    }
    if (sig == SIGCHLD) continue;
    // Stops from the terminal are for the command's group, never for pid 1.
    if (sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) continue;
    if (kill(child, sig) < 0 && errno != ESRCH) say("kill", errno);
  }
}
