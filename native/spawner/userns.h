// The user namespace of a container, made before its init exists.
#pragma once

#include "child.h"
#include "common.h"
#include "plan.h"

namespace ss {

// Makes the container's user namespace before its init exists: a helper process creates it
// (and, when asked, a network namespace it owns, with loopback up), the spawner writes the id
// maps, keeps fds of both namespaces, and lets the helper go. The init then mounts as the
// host's root and joins these namespaces last.
bool prepareUserns(const Plan& plan, ChildFds* fds, Error* e);

}  // namespace ss
