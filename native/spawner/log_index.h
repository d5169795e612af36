// The log time index (see LogIndexer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace ss {

// A time index beside each container log, so a reader can tell when every line was written
// (`docker logs --since`). The container's init writes its log directly, so only the file's
// growth is visible here: on each IN_MODIFY the log's size is checked, and growth appends a
// record { time_ms, size_after } (two little-endian u64, CLOCK_REALTIME) to "<log>.idx".
// A record means "the first size_after bytes were in the file by time_ms". The index is a
// convenience: no failure here may stop a container or this process, so every error is
// logged once per file and otherwise ignored.
class LogIndexer {
 public:
  static constexpr size_t kRecord = 16;

  void attach(int epfd);
  int fd() const { return fd_; }
  bool hasPending() const { return pending_ > 0; }

  void watch(const std::string& owner, const std::string& log);

  // Records the logs of `owner` as they are now, for growth no event has reported yet
  // (the container has exited, so no later millisecond is worth waiting for).
  void settle(const std::string& owner);

  void settleAll();

  void unwatch(const std::string& owner);

  void onReadable();

  void flushPending();

 private:
  struct Entry {
    std::string owner;  // container id
    std::string log;
    int logFd = -1;  // O_PATH: fstat sees the file the watch is on even if the path changes
    int idx = -1;
    int wd = -1;
    uint64_t lastSize = 0;
    int64_t lastMs = -1;
    bool pending = false;  // grew within the millisecond of the last record
    bool failing = false;  // an error was logged; the next ones are not
  };

  bool ensureFd();

  // Continues an index an earlier spawner left, so a re-watched file gets no duplicate records.
  void resume(Entry& e);

  uint64_t currentSize(const Entry& e) const;

  void settle(Entry& e);

  void update(Entry& e);

  void append(Entry& e, int64_t ms, uint64_t size);

  void setPending(Entry& e, bool on);

  void dropWd(Entry& e, uint64_t key);

  static void release(Entry& e);

  static void putLE(unsigned char* p, uint64_t v);
  static uint64_t getLE(const unsigned char* p);

  int fd_ = -1;
  int epfd_ = -1;
  bool initFailed_ = false;
  std::map<uint64_t, Entry> entries_;
  std::multimap<int, uint64_t> byWd_;
  uint64_t next_ = 0;
  size_t pending_ = 0;
};

}  // namespace ss
