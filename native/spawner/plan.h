// A container's setup plan as the spawner holds it: parsed and checked in the spawner
// (which may allocate), then read, never changed in size, by the child between clone() and
// execve() (which may not).
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../steps.h"
#include "../wire.h"

namespace ss {

// The first field of each op names its step (src/spawner/plan.ts writes them); `n` holds
// the numeric arguments parsed in the parent, `s` the string arguments.
struct Op {
  Step step = Step::none;
  std::string kind;  // the op's variant within its step, e.g. "bounding" or "sets"
  std::vector<std::string> s;
  std::vector<uint64_t> n;
  std::vector<gid_t> gids;
};

struct Plan {
  std::string id;
  std::string stateDir;                  // where the spawner writes exit.json
  unsigned long cloneFlags = 0;          // CLONE_NEW* for a new container
  unsigned long setnsFlags = 0;          // namespaces an exec joins
  std::vector<std::string> cgroupProcs;  // cgroup.procs files the child joins before it runs
  std::string uidMap, gidMap;            // written by the spawner for a user namespace
  bool usernsOwnsNet = false;            // the prepared user namespace gets its own netns
  // Existing namespaces the init joins (an OCI bundle's linux.namespaces[].path), opened by
  // the spawner before the clone: net, ipc, uts; empty where it gets a new one.
  std::string joinNet, joinIpc, joinUts, joinPid, joinUser, joinMnt, joinCgroup;
  std::string stdinPath = "/dev/null", stdoutPath, stderrPath;
  std::vector<Op> ops;
  std::vector<std::string> argv, env;
  std::string searchPath;  // PATH used to resolve argv[0]
  std::vector<sock_filter> seccomp;
  uint32_t stdioMask = 0;  // start: the stdio fds that come with the request (bit i: fd i)
  // Filled in by the parent after parsing so the child never builds them.
  std::vector<char*> argvp, envp;
};

// create: the init's setup up to its park point; exec: a process joining a container;
// start: what a parked init does from the park point to execve.
enum class PlanKind { create, exec, start };

// Parses a "create", "exec" or "start" message (fields after the verb and id). On failure
// returns false and names the field.
bool parsePlan(const wire::Fields& f, size_t start, Plan* plan, std::string* err, PlanKind kind);

}  // namespace ss
