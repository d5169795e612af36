// Client connections: accepting, reading frames (with their fds and request ids), and
// queueing replies. Sockets are non-blocking; a client that does not read is dropped once
// its queue passes kMaxClientQueue, one that stops mid-frame holds nothing up.
#include "spawner.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace ss {

void Spawner::accept() {
  while (true) {
    // Non-blocking: a client that stops reading or stops mid-frame can never hold up the
    // loop; what it does not take waits in its queue.
    int fd = accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    Client& c = clients_[fd];
    c = Client();
    c.fd = fd;
    c.serial = nextSerial_++;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = c.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
      logf("epoll_ctl add client: %s", strerror(errno));
      clients_.erase(fd);
      close(fd);
    }
  }
}

void Spawner::closeClient(int fd) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  for (int x : it->second.fds) close(x);
  for (const FdBatch& b : it->second.batches)
    for (int x : b.fds) close(x);
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  clients_.erase(it);
}

void Spawner::dropDoomed() {
  for (auto it = clients_.begin(); it != clients_.end();) {
    int fd = it->first;
    bool drop = it->second.drop;
    ++it;
    if (drop) closeClient(fd);
  }
}

// Reads while this client is not busy with a plain request's launch; writes while it has queued output.
// EPOLLHUP and EPOLLERR come regardless, so a client that goes away is always seen.
void Spawner::setInterest(Client& c) {
  uint32_t want = (c.busy ? 0u : uint32_t(EPOLLIN)) | (c.outOff < c.out.size() ? uint32_t(EPOLLOUT) : 0u);
  if (want == c.events) return;
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = want;
  ev.data.fd = c.fd;
  if (epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev) < 0) {
    logf("epoll_ctl client %d: %s", c.fd, strerror(errno));
    c.drop = true;
    return;
  }
  c.events = want;
}

void Spawner::onClient(int fd, uint32_t events) {
  Client& c = clients_[fd];
  if (events & EPOLLOUT) flush(c);
  if (!c.drop && !c.busy && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) readClient(c);
  // Gone for good: a reply still owed (a launch in progress) has nobody to go to.
  if (events & (EPOLLHUP | EPOLLERR)) c.drop = true;
}

void Spawner::flush(Client& c) {
  while (c.outOff < c.out.size()) {
    ssize_t n = send(c.fd, c.out.data() + c.outOff, c.out.size() - c.outOff, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      c.drop = true;  // EPIPE, ECONNRESET: the peer is gone
      return;
    }
    c.outOff += size_t(n);
  }
  if (c.outOff == c.out.size()) {
    c.out.clear();
    c.outOff = 0;
  } else if (c.outOff > (64u << 10)) {
    c.out.erase(0, c.outOff);
    c.outOff = 0;
  }
  setInterest(c);
}

// A reply to a tagged request starts with the request's "#<id>" field.
void Spawner::reply(Client& c, const wire::Fields& f, const std::string& tag) {
  if (c.drop) return;
  if (tag.empty()) {
    c.out += wire::encode(f);
  } else {
    wire::Fields tagged;
    tagged.reserve(f.size() + 1);
    tagged.push_back(tag);
    tagged.insert(tagged.end(), f.begin(), f.end());
    c.out += wire::encode(tagged);
  }
  if (c.out.size() - c.outOff > kMaxClientQueue) {
    logf("client %d has %zu bytes of replies it does not read; dropping it", c.fd, c.out.size() - c.outOff);
    c.drop = true;
    return;
  }
  flush(c);
}

void Spawner::reply(const ReplyTo& to, const wire::Fields& f) {
  auto it = clients_.find(to.fd);
  if (it == clients_.end() || it->second.serial != to.serial) return;
  reply(it->second, f, to.tag);
}

void Spawner::readClient(Client& c) {
  // Bounded per readiness, so one client sending without pause cannot starve the others;
  // level-triggered epoll comes back for the rest.
  for (int round = 0; round < 16 && !c.busy && !c.drop; ++round) {
    char buf[65536];
    union {
      char b[CMSG_SPACE(sizeof(int) * 16)];
      struct cmsghdr align;
    } control;
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.b;
    msg.msg_controllen = sizeof control.b;
    ssize_t n = recvmsg(c.fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      c.drop = true;  // EOF (a frame cut short dies with it) or a socket error
      return;
    }
    bool badFds = (msg.msg_flags & MSG_CTRUNC) != 0;
    FdBatch batch;
    batch.begin = c.inAt + c.in.size();
    batch.end = batch.begin + size_t(n);
    for (struct cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
      if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len >= CMSG_LEN(0)) {
        size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int* p = reinterpret_cast<int*>(CMSG_DATA(cm));
        for (size_t k = 0; k < count; ++k) {
          int x;
          memcpy(&x, p + k, sizeof x);
          batch.fds.push_back(x);
        }
      }
    }
    size_t held = batch.fds.size();
    for (const FdBatch& b : c.batches) held += b.fds.size();
    if (!batch.fds.empty()) c.batches.push_back(std::move(batch));
    // More fds than any request takes, or fds the kernel had to drop (MSG_CTRUNC): this peer
    // does not speak the protocol; its fds are closed with it.
    if (badFds || held > kMaxClientFds) {
      logf("client sent %zu fds%s; closing it", held, badFds ? " (truncated)" : "");
      c.drop = true;
      return;
    }
    c.in.append(buf, size_t(n));
    processInput(c);
  }
}

namespace {

// "#<id>" or "#<id>/<fds>": 1 to kMaxTagDigits digits, and the number of fds the request
// takes (0 when not given). *tag is what its replies start with: "#<id>".
bool parseTag(const std::string& field, std::string* tag, size_t* fds) {
  size_t slash = field.find('/');
  std::string id = field.substr(1, slash == std::string::npos ? std::string::npos : slash - 1);
  if (id.empty() || id.size() > kMaxTagDigits) return false;
  for (char ch : id)
    if (ch < '0' || ch > '9') return false;
  int64_t n = 0;
  if (slash != std::string::npos && !parseInt(field.substr(slash + 1), 0, int64_t(kMaxClientFds), &n)) return false;
  *tag = "#" + id;
  *fds = size_t(n);
  return true;
}

constexpr size_t kAllFds = SIZE_MAX;

std::string printableTag(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 32; ++i) out += s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
  return s.size() > 32 ? out + "..." : out;
}

}  // namespace

// Gives the frame that starts at stream offset `at` its fds in c.fds. The batch whose bytes
// include `at` came with that frame's first byte or with an earlier frame's bytes glued to it
// by the kernel (earlier batches were closed as orphans). A tagged frame names its count and
// must get exactly that many; a plain one takes whatever came (the protocol before request
// ids). false: the frame is refused, and the batch it would have taken is closed.
bool Spawner::takeFds(Client& c, uint64_t at, size_t want, std::string* why) {
  bool have = !c.batches.empty() && c.batches.front().begin <= at;
  if (want == 0) return true;  // a batch here may be a later frame's, sent in the same range
  if (!have) {
    if (want == kAllFds) return true;
    *why = "request takes " + std::to_string(want) + " fds, none came with it";
    return false;
  }
  std::vector<int> fds = std::move(c.batches.front().fds);
  c.batches.erase(c.batches.begin());
  if (want != kAllFds && fds.size() != want) {
    for (int x : fds) close(x);
    *why = "request takes " + std::to_string(want) + " fds, " + std::to_string(fds.size()) + " came with it";
    return false;
  }
  c.fds = std::move(fds);
  return true;
}

// Closes the batches no frame can take any more: each one's frame starts before its end, and
// every frame that starts before `upTo` has been handled.
void Spawner::closeOrphanFds(Client& c, uint64_t upTo) {
  while (!c.batches.empty() && c.batches.front().end <= upTo) {
    for (int x : c.batches.front().fds) close(x);
    c.batches.erase(c.batches.begin());
  }
}

// Handles the whole frames in c.in, in order, until a plain one is deferred (a launch). A
// frame whose first field is "#<id>[/<fds>]" is tagged: every reply to it starts with
// "#<id>", and it never waits for another request of the same client.
void Spawner::processInput(Client& c) {
  size_t off = 0;
  while (!c.busy && !c.drop && c.in.size() - off >= 4) {
    uint32_t len = wire::getU32(c.in.data() + off);
    if (len > wire::kMaxFrame) {
      // The framing itself is broken: nothing after this length can be trusted.
      logf("client sent a %u-byte frame (at most %u); closing it", len, wire::kMaxFrame);
      c.drop = true;
      return;
    }
    if (c.in.size() - off - 4 < size_t(len)) break;
    uint64_t at = c.inAt + off;
    wire::Fields f;
    bool ok = wire::decodeBody(c.in.data() + off + 4, len, &f);
    off += 4 + size_t(len);
    // The frame's own length was sound, so the stream stays in step whatever its body holds;
    // a refused frame gets one error reply and any fds that came with it are closed.
    std::string bad, tag;
    size_t want = kAllFds;
    if (!ok) {
      bad = f.size() >= wire::kMaxFields ? "more than " + std::to_string(wire::kMaxFields) + " fields"
                                         : "field " + std::to_string(f.size()) + " runs past the end of the frame";
    } else if (!f.empty() && !f[0].empty() && f[0][0] == '#') {
      if (parseTag(f[0], &tag, &want)) f.erase(f.begin());
      else bad = "bad request id \"" + printableTag(f[0]) + "\"";
    }
    if (bad.empty() && f.empty()) bad = "an empty frame (no verb)";
    if (bad.empty()) takeFds(c, at, want, &bad);
    else takeFds(c, at, kAllFds, &bad);  // the fds that came with a refused frame, to close
    if (!bad.empty()) {
      for (int x : c.fds) close(x);
      c.fds.clear();
      reply(c, errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "malformed request: " + bad}), tag);
    } else {
      c.tag = tag;
      handle(c, f);
      c.tag.clear();
    }
    closeOrphanFds(c, c.inAt + off);
  }
  c.in.erase(0, off);
  c.inAt += off;
  setInterest(c);
}

}  // namespace ss
