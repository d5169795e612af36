// The user namespace of a container, made before its init exists.
#pragma once

#include "child.h"
#include "common.h"
#include "plan.h"

namespace ss {

// Makes the container's user namespace before its init exists: a helper process creates it
// (and, when asked, a network namespace it owns, with loopback up), the spawner writes the id
// maps, keeps fds of both namespaces, and lets the helper go. The init then mounts as the
// host's root and joins these namespaces last. In two halves, so the loop never waits for
// the helper: start clones it, writes the maps and lets it go; once its socket is readable
// the helper's answer (an errno, 0 when all went well) goes to finish, which opens the
// namespaces. The caller closes the socket and kills the helper after either half.
struct UsernsHelper {
  pid_t pid = 0;
  int pidfd = -1;
  int sync = -1;
};
// `joined`: a user namespace the container joins (an fd), which the helper enters in place
// of making one, to make the network namespace inside it; no maps are written then.
bool startUsernsHelper(const Plan& plan, int joined, UsernsHelper* h, Error* e);
bool finishUsernsHelper(const Plan& plan, const UsernsHelper& h, int err, ChildFds* fds, Error* e);

}  // namespace ss
