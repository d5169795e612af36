// Writing an image layer's entries beneath the layer's directory, whatever the archive says.
// Every operation names its entry relative to the layer root and resolves the parent
// directory with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
// RESOLVE_NO_XDEV), then acts on the last component with a *at() call that does not follow
// it: a symlink the archive planted (`lib -> /etc`) can never carry a later write out of the
// layer, and `..` cannot climb above the root. Functions return 0 or an errno value.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ss::unpack {

enum class Kind { directory, file, symlink, hardlink, fifo, whiteout, opaque };

struct Entry {
  Kind kind;
  std::string path;    // relative to the root, already normalised (no "..", no leading "/")
  unsigned mode = 0;   // permission bits
  std::string target;  // symlink: its text; hardlink: the linked entry's path in the layer
};

struct Meta {
  std::string path;
  int64_t uid = -1, gid = -1;
  int64_t mode = -1;  // -1: leave as created
  int64_t mtimeSec = -1, mtimeNsec = 0;
  bool isSymlink = false;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

// The root directory as an O_PATH fd.
int openRoot(const std::string& path, int* fd);

// Creates the entry (its missing parent directories with mode 0755). A file is returned
// open for writing in *fd (O_EXCL|O_NOFOLLOW), every other kind leaves *fd = -1. An entry
// that already exists is replaced, as a later tar member replaces an earlier one; a
// directory over a directory is kept. *failedCall names the call that failed.
int create(int root, const Entry& e, int* fd, const char** failedCall);

// Ownership, mode, extended attributes and mtime, without following a symlink.
int setMeta(int root, const Meta& m, const char** failedCall);

}  // namespace ss::unpack
