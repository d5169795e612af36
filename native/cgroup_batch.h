// Counter files kept open and read in batches. The evolution sampler reads the counters of
// every container due in a tick (CPU time, memory in use, OOM kills, throttling) in one call:
// one pread(2) per file on a descriptor opened once, instead of an open, read and close per
// file per tick, which for a hundred containers every second is most of the sampler's cost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ss::cgroup {

class CounterTable {
 public:
  CounterTable() = default;
  CounterTable(const CounterTable&) = delete;
  CounterTable& operator=(const CounterTable&) = delete;
  ~CounterTable();

  // Opens `path` to read the values of `keys` from it: a key names a line "key value" of a
  // flat-keyed file (cpu.stat, memory.events); an empty key is the whole file as one number
  // (cpuacct.usage, memory.current). Returns a handle >= 0, or -errno (`*syscall` names the call).
  int open(const std::string& path, std::vector<std::string> keys, const char** syscall);

  // Closes the handle's file; an unknown handle is ignored.
  void close(int handle);

  // How many values the handle yields (its number of keys); 0 for an unknown handle.
  std::size_t width(int handle) const;

  // For each of `n` handles, reads its file once (pread at offset 0: cgroup files regenerate
  // their content on every read from the start) and stores its keys' values one after the
  // other in `out`. A key the file lacks yields NaN. `errors[i]` gets 0 or the errno of
  // handle i (EBADF for an unknown handle, ENODEV once the cgroup is gone, EOVERFLOW for a
  // file over 4 KiB); its values are then NaN. Returns how many values were stored, at most
  // `outLen` (the rest of the handles get EOVERFLOW).
  std::size_t read(const int32_t* handles, std::size_t n, double* out, std::size_t outLen, int32_t* errors) const;

 private:
  struct Entry {
    int fd = -1;
    std::vector<std::string> keys;
  };
  std::vector<Entry> entries_;
  std::vector<int> free_;
};

}  // namespace ss::cgroup
