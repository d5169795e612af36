// Volumes whose ownership the container sees as the host has it, shifted into its user
// namespace (child side: allocates nothing).
#pragma once

namespace ss {

// Clones the mount at `srcfd` (recursively when asked) as an idmapped mount through the user
// namespace `usernsFd`, applies `attrSet` (MOUNT_ATTR_*), and attaches it on `targetfd`. A
// host file owned by uid N then shows as owned by container uid N, and what container uid N
// creates is owned by host uid N: container root writes a root-owned host directory as root.
// 0, or -1 with errno (EINVAL where the filesystem cannot be idmapped).
// `recursiveIdmap`: the mounts below the source (cloned with it when `recursive`) are
// idmapped too; else only the top one is.
int bindIdmapped(int srcfd, int targetfd, bool recursive, unsigned attrSet, int usernsFd, bool recursiveIdmap);

// A user namespace whose uid_map and gid_map are `uidMap` and `gidMap` ("inside outside
// count" lines), for an idmapped mount: a short-lived child makes it, the caller (root in
// the parent user namespace) writes its maps and opens it. The fd, or -1 with errno; `*what`
// names the file or call that failed.
int usernsWithMaps(const char* uidMap, const char* gidMap, const char** what);

}  // namespace ss
