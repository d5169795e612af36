// Cloning a container's init or an exec's helper, and the fds it starts with.
#pragma once

#include "child.h"
#include "common.h"
#include "plan.h"

#include <string>
#include <vector>

namespace ss {

// socketpair + a raw clone(): the child keeps sv[1], the parent sv[0]. A raw clone() behaves
// like fork() here (no CLONE_VM, no new stack): the child gets a copy of this single-threaded
// process. Returns the pid (0 in the child), or -1 with *e set.
long cloneWithSync(unsigned long flags, int sv[2], Step step, Error* e);

// Opens the plan's stdio paths for the init (the spawner opens them: the init's mount
// namespace will not see them).
bool openStdio(const Plan& plan, ChildFds* fds, Error* e);

// Opens the existing namespaces the plan joins (net, ipc, uts) into `fds`, each checked to
// be a namespace of its type; closed with the stdio (closeStdio).
bool openJoinedNamespaces(const Plan& plan, ChildFds* fds, Error* e);
void closeStdio(ChildFds* fds);

// Sends a parked init its start image on its sync socket, with `stdio` (fds to replace its
// stdin, stdout, stderr, in that order). Small images travel in the message; larger ones in
// a sealed memfd sent with it. Never waits: the init reads nothing else on that socket.
bool sendStart(int sync, const std::string& image, const std::vector<int>& stdio, Error* e);

}  // namespace ss
