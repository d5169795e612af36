// Files the spawner writes: the exit record of each container, kernel files (cgroup.procs,
// id maps), and the lock that makes it the only spawner of its state root.
#pragma once

#include <string>

#include "common.h"

namespace ss {

// One write(2) of `data` to an existing file (a kernel interface file: it takes a value in
// one write or refuses it); the error names the file and the value.
bool writeFileAll(const std::string& path, const std::string& data, Error* e, Step step);

// Writes `data` to `path` atomically: a reader sees the old file or the whole new one.
bool writeAtomic(const std::string& path, const std::string& data);

// The JSON of <stateDir>/exit.json; `known` false when the exit code was lost with an
// earlier spawner (an adopted container).
std::string exitJson(pid_t pid, int code, int sig, int64_t finishedAt, bool known);

// Takes <root>/spawner.lock; -2 when another spawner holds it. Errors go to `readyFd`,
// which the process that started this one reads.
int lockRoot(const std::string& root, int readyFd);

}  // namespace ss
