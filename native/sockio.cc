// The migration switchover's bulk socket I/O (src/vmm/migration/native-io.ts):
//
// recvPages(fd, pre: Uint8Array[], slots: Array, windowBytes, maxFrameBytes, maxPages, timeoutMs,
//           sliceMs)
//   reads PAGES frames of the migration stream (src/vmm/migration/stream.ts) from the socket fd
//   until the next frame is of another type, or (sliceMs >= 0) until sliceMs have passed or no
//   byte of a next frame came within them, at a frame boundary: each frame's entry table is read and checked
//   first, then its data pages are received with recvmsg(2) straight into the destination's RAM
//   at the pages' places (one iovec per run of adjacent pages), the frame's CRC32C is checked over
//   the bytes where they landed, and only then are its zero pages cleared. The bytes in `pre`
//   (what Node had already read) are consumed first. Returns
//   [code, consumed, frames, pages, rest | message, errorOffset]: code 0 when a frame of another
//   type came or the slice ended (`rest` holds the bytes read past the last PAGES frame, for the
//   JS decoder: the next frame's header and whatever of the stream had arrived after it, read
//   without waiting — the switchover's state frames, END —, or after a slice whatever part of a
//   frame was read), else
//   an error (codes below) with a one-line message and its offset from the first byte of `pre`.
//
// sendAll(fd, chunks: Uint8Array[], timeoutMs, appendCrc) writes every chunk with sendmsg(2)
//   (gathered, MSG_NOSIGNAL) and returns [code, written, message]; with appendCrc it checksums
//   the chunks as it sends them and sends their CRC32C after them (the frame trailer).
//
// recvSome(fd, maxBytes, timeoutMs) waits at most timeoutMs for the socket to be readable, then
//   reads what is there (up to maxBytes) without waiting more: [code, bytes | message], code 0
//   with the bytes, 3 when none came in time, 4 at end of stream (the peer closed), else 5.
//   For the few bytes of the switchover's handshake (handshake.ts: `ready`, `GO`): waking on
//   them in poll(2) instead of the event loop keeps the loop's own work (timers, V8's GC tasks,
//   which a loop that is free starts running) out of the guest's pause.
//
// All of them block the calling thread. sendAll and a recvPages without a slice are used only while
// every vCPU of the guest is paused, where the event loop has nothing else to do that could not
// wait a few tens of milliseconds; during the pre-copy the destination reads in slices, so its
// event loop turns (signals, its control socket, the round acknowledgements) between them.
// Every wait is a poll(2) bounded by `timeoutMs` (a peer that stops sending or reading ends in
// code 3, not a hang). The fd is Node's non-blocking socket; Node does not read or write it
// meanwhile (the caller stopped reading and drained its write queue first).
//
// Why: the destination's JS path (64 KiB fresh buffers per read, a copy into RAM, GC) moved the
// last 64 MiB at ~780 MB/s; here each byte is copied once, by the kernel, into its final place.
#include <node.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "sockio.h"

namespace {

// Result codes (native-io.ts names them).
constexpr int kOk = 0;
constexpr int kFormat = 1;    // the stream breaks its format (MigrationStreamError)
constexpr int kRejected = 2;  // well-formed, but not for this machine (a page outside it)
constexpr int kTimeout = 3;   // nothing moved for timeoutMs
constexpr int kClosed = 4;    // the peer closed the connection
constexpr int kIo = 5;        // another errno

// stream.ts: FRAME_TYPES.PAGES, PAGE_BYTES; the frame header is u32 type, u32 flags, u64 length.
constexpr uint32_t kPagesType = 17;
constexpr size_t kPage = 4096;
constexpr size_t kHeader = 16;
// Linux UIO_MAXIOV: at most this many iovecs per call.
constexpr size_t kMaxIov = 1024;
// recvPages hands back at most this much of what arrived after the PAGES frames: more than the
// switchover's state frames and END (a few KiB per vCPU and device; the console record is
// bounded by its own section limit, and what does not fit is read by Node as before).
constexpr size_t kMoreBytes = 1 << 20;

uint32_t Le32(const uint8_t *p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

uint64_t Le64(const uint8_t *p) { return Le32(p) | static_cast<uint64_t>(Le32(p + 4)) << 32; }

struct Failure {
  int code = kOk;
  std::string message;
  double offset = 0;
};

// The socket with what Node had read already in front of it.
class Input {
 public:
  Input(int fd, int timeout_ms) : fd_(fd), timeout_ms_(timeout_ms) {}

  void AddPrefix(const uint8_t *p, size_t n) {
    if (n > 0) pre_.emplace_back(p, n);
  }

  // Fills every iovec completely; false with `failure` set on EOF, a timeout or an error.
  // `landed(k, bytes, n)` sees every piece as it arrives in iovec k, in order (while it is
  // still in the cache).
  template <typename Landed>
  bool Fill(iovec *iov, size_t count, Failure *failure, Landed &&landed) {
    size_t i = 0;
    size_t done = 0;  // bytes of iov[i] already filled
    while (i < count && next_ < pre_.size()) {
      auto &piece = pre_[next_];
      const size_t take = std::min(piece.second, iov[i].iov_len - done);
      std::memcpy(static_cast<uint8_t *>(iov[i].iov_base) + done, piece.first, take);
      landed(i, static_cast<uint8_t *>(iov[i].iov_base) + done, take);
      piece.first += take;
      piece.second -= take;
      done += take;
      if (piece.second == 0) next_++;
      if (done == iov[i].iov_len) {
        i++;
        done = 0;
      }
    }
    while (i < count) {
      // The first iovec starts `done` bytes in: receive into a shifted copy of it.
      iovec shifted[kMaxIov];
      const size_t n = std::min(count - i, kMaxIov);
      std::copy(iov + i, iov + i + n, shifted);
      shifted[0].iov_base = static_cast<uint8_t *>(shifted[0].iov_base) + done;
      shifted[0].iov_len -= done;
      msghdr msg{};
      msg.msg_iov = shifted;
      msg.msg_iovlen = n;
      const ssize_t got = ::recvmsg(fd_, &msg, 0);
      if (got > 0) {
        size_t left = static_cast<size_t>(got);
        while (left > 0) {
          const size_t take = std::min(left, iov[i].iov_len - done);
          landed(i, static_cast<uint8_t *>(iov[i].iov_base) + done, take);
          left -= take;
          done += take;
          if (done == iov[i].iov_len) {
            i++;
            done = 0;
          }
        }
        continue;
      }
      if (got == 0) {
        failure->code = kClosed;
        failure->message = "the source closed the connection in the middle of the switchover";
        return false;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return Errno("receiving", failure);
      if (!Wait(POLLIN, failure)) return false;
    }
    return true;
  }

  // True when a byte can be read within `ms` (the prefix counts); false after `ms` without one
  // (or on a poll error: the read that follows reports it).
  bool Ready(int ms) {
    if (next_ < pre_.size()) return true;
    pollfd p{fd_, POLLIN, 0};
    for (;;) {
      const int r = ::poll(&p, 1, ms);
      if (r >= 0) return r > 0;
      if (errno != EINTR) return true;
    }
  }

  bool Read(uint8_t *p, size_t n, Failure *failure) {
    iovec one{p, n};
    return n == 0 || Fill(&one, 1, failure, [](size_t, const uint8_t *, size_t) {});
  }

  // Appends to `out` what the socket holds now, up to `limit` bytes, without waiting (a read
  // error or the peer's end are left for the next read to report).
  void TakeAvailable(size_t limit, std::vector<uint8_t> *out) const {
    while (out->size() < limit) {
      const size_t at = out->size();
      out->resize(std::min(limit, at + 65536));
      const ssize_t got = ::recv(fd_, out->data() + at, out->size() - at, MSG_DONTWAIT);
      out->resize(at + static_cast<size_t>(std::max<ssize_t>(got, 0)));
      if (got > 0) continue;
      if (got < 0 && errno == EINTR) continue;
      return;
    }
  }

  // The unread prefix bytes (after a frame of another type was found).
  size_t PrefixLeft() const {
    size_t n = 0;
    for (size_t k = next_; k < pre_.size(); k++) n += pre_[k].second;
    return n;
  }

  void CopyPrefix(uint8_t *out) const {
    for (size_t k = next_; k < pre_.size(); k++) {
      std::memcpy(out, pre_[k].first, pre_[k].second);
      out += pre_[k].second;
    }
  }

  bool Wait(short events, Failure *failure) {
    pollfd p{fd_, events, 0};
    for (;;) {
      const int r = ::poll(&p, 1, timeout_ms_);
      if (r > 0) return true;
      if (r == 0) {
        failure->code = kTimeout;
        failure->message = "the peer moved no bytes for " + std::to_string(timeout_ms_) + " ms";
        return false;
      }
      if (errno != EINTR) return Errno("waiting on", failure);
    }
  }

  bool Errno(const char *what, Failure *failure) const {
    const int e = errno;
    failure->code = (e == EPIPE || e == ECONNRESET) ? kClosed : kIo;
    failure->message = std::string(what) + " the migration socket failed: " + std::strerror(e);
    return false;
  }

 private:
  int fd_;
  int timeout_ms_;
  std::vector<std::pair<const uint8_t *, size_t>> pre_;
  size_t next_ = 0;
};

// One destination RAM slot: its id, pages, `written` map (destination.ts) and windows.
struct Slot {
  uint32_t id = 0;
  uint32_t pages = 0;
  uint8_t *written = nullptr;
  std::vector<uint8_t *> windows;
};

uint8_t *PageAt(const Slot &slot, uint32_t index, size_t window_bytes) {
  const size_t at = static_cast<size_t>(index) * kPage;
  return slot.windows[at / window_bytes] + at % window_bytes;
}

uint8_t *DataOf(v8::Local<v8::ArrayBufferView> view) {
  // The backing store of a typed array (SharedArrayBuffer included) never moves; the callers
  // keep the views alive for the call.
  uint8_t *base = static_cast<uint8_t *>(view->Buffer()->Data());
  return base == nullptr ? nullptr : base + view->ByteOffset();
}

// The pages of one received frame, checked, or why not.
struct Frame {
  uint32_t slot_id = 0;
  uint32_t count = 0;
  std::vector<uint8_t> table;
};

class PagesReader {
 public:
  PagesReader(Input *in, std::vector<Slot> slots, size_t window_bytes, uint64_t max_frame,
              uint32_t max_pages)
      : in_(in),
        slots_(std::move(slots)),
        window_bytes_(window_bytes),
        max_frame_(max_frame),
        max_pages_(max_pages) {}

  double consumed = 0;
  double frames = 0;
  double pages = 0;
  uint8_t header[kHeader];
  // False after a slice ended before a next frame: `header` holds nothing.
  bool has_header = false;

  // One frame: true after a PAGES frame was stored; false at a frame of another type (header
  // holds its first 16 bytes, failure->code kOk), when the slice ended before a next frame
  // (`left_ms` < 0: none; has_header false, failure->code kOk) or on a failure.
  bool Next(Failure *f, int left_ms) {
    has_header = false;
    if (left_ms == 0 || (left_ms > 0 && !in_->Ready(left_ms))) return false;
    if (!in_->Read(header, kHeader, f)) return false;
    has_header = true;
    if (Le32(header) != kPagesType) return false;
    const uint64_t length = Le64(header + 8);
    if (length > max_frame_) {
      return Fail(f, kFormat,
                  "frame length " + std::to_string(length) + " exceeds the limit of " +
                      std::to_string(max_frame_),
                  8);
    }
    const size_t n = static_cast<size_t>(length);
    Frame fr;
    std::string problem;
    int problem_code = kFormat;
    size_t read = 0;  // payload bytes read so far
    uint8_t fixed[8];
    if (n < 8) {
      problem = "the PAGES frame of " + std::to_string(n) + " bytes has no slot and page count";
    } else {
      if (!in_->Read(fixed, 8, f)) return false;
      read = 8;
      fr.slot_id = Le32(fixed);
      fr.count = Le32(fixed + 4);
      if (fr.count > max_pages_) {
        problem = std::to_string(fr.count) + " pages exceed the limit of " +
                  std::to_string(max_pages_);
      } else if (8 + 8 * static_cast<size_t>(fr.count) > n) {
        problem = "the PAGES frame is too short for its " + std::to_string(fr.count) + " entries";
      } else {
        fr.table.resize(8 * static_cast<size_t>(fr.count));
        if (!in_->Read(fr.table.data(), fr.table.size(), f)) return false;
        read += fr.table.size();
        problem = Check(fr, n, &problem_code);
      }
    }
    uint32_t crc = regvisor::Crc32cUpdate(0, header, kHeader);
    if (read >= 8) crc = regvisor::Crc32cUpdate(crc, fixed, 8);
    crc = regvisor::Crc32cUpdate(crc, fr.table.data(), fr.table.size());
    if (!problem.empty()) {
      // The frame cannot be placed: read it through to tell a corrupted frame (CRC) from a
      // well-formed bad one, the order the JS decoder reports them in.
      if (!Discard(n - read, &crc, f)) return false;
      uint8_t stored[4];
      if (!in_->Read(stored, 4, f)) return false;
      if (Le32(stored) != crc) return Fail(f, kFormat, "frame CRC32C mismatch", kHeader + n);
      return Fail(f, problem_code, problem, 0);
    }
    return Store(fr, n, crc, f);
  }

 private:
  bool Fail(Failure *f, int code, std::string message, size_t at) {
    f->code = code;
    f->message = std::move(message);
    f->offset = consumed + static_cast<double>(at);
    return false;
  }

  const Slot *Find(uint32_t id) const {
    for (const Slot &s : slots_) {
      if (s.id == id) return &s;
    }
    return nullptr;
  }

  // The entry table's checks (stream.ts #pages, then destination.ts #pages); "" when it holds.
  std::string Check(const Frame &fr, size_t n, int *code) const {
    size_t data_pages = 0;
    for (uint32_t i = 0; i < fr.count; i++) {
      const uint32_t kind = Le32(&fr.table[8 * i + 4]);
      if (kind > 1) {
        return "page kind " + std::to_string(kind) + " is not 0 (zero) or 1 (data)";
      }
      data_pages += kind;
    }
    const size_t data_bytes = n - 8 - 8 * static_cast<size_t>(fr.count);
    if (data_bytes != data_pages * kPage) {
      return "PAGES frame carries " + std::to_string(data_bytes) + " data bytes for " +
             std::to_string(data_pages) + " data pages";
    }
    *code = kRejected;
    const Slot *slot = Find(fr.slot_id);
    if (slot == nullptr) {
      return "the stream sends pages of slot " + std::to_string(fr.slot_id) +
             ", which its layout does not have";
    }
    for (uint32_t i = 0; i < fr.count; i++) {
      const uint32_t index = Le32(&fr.table[8 * i]);
      if (index >= slot->pages) {
        return "the stream sends page " + std::to_string(index) + " of slot " +
               std::to_string(fr.slot_id) + ", which has " + std::to_string(slot->pages) +
               " pages";
      }
    }
    return "";
  }

  bool Discard(size_t n, uint32_t *crc, Failure *f) {
    uint8_t scratch[65536];
    while (n > 0) {
      const size_t take = std::min(n, sizeof scratch);
      if (!in_->Read(scratch, take, f)) return false;
      *crc = regvisor::Crc32cUpdate(*crc, scratch, take);
      n -= take;
    }
    return true;
  }

  // Receives the data pages into RAM, checks the CRC over them there, then applies the zero
  // pages and the `written` map. On a CRC failure the pages stay written: the destination
  // discards the whole machine on any failure (destination.ts), so nothing of it is used.
  bool Store(const Frame &fr, size_t n, uint32_t crc, Failure *f) {
    const Slot &slot = *Find(fr.slot_id);
    std::vector<iovec> runs;
    bool zeros = false;
    for (uint32_t i = 0; i < fr.count; i++) {
      if (Le32(&fr.table[8 * i + 4]) == 0) {
        zeros = true;
        continue;
      }
      uint8_t *at = PageAt(slot, Le32(&fr.table[8 * i]), window_bytes_);
      if (!runs.empty() && static_cast<uint8_t *>(runs.back().iov_base) + runs.back().iov_len == at) {
        runs.back().iov_len += kPage;
      } else {
        runs.push_back({at, kPage});
      }
    }
    uint8_t stored[4];
    runs.push_back({stored, 4});
    // Each piece is checked as it lands: the CRC runs while the source refills the socket, and
    // on bytes still in the cache, instead of over the whole frame read back afterwards.
    const size_t last = runs.size() - 1;
    const bool received = in_->Fill(runs.data(), runs.size(), f,
                                    [&crc, last](size_t k, const uint8_t *bytes, size_t n) {
                                      if (k < last) crc = regvisor::Crc32cUpdate(crc, bytes, n);
                                    });
    if (!received) return false;
    if (Le32(stored) != crc) return Fail(f, kFormat, "frame CRC32C mismatch", kHeader + n);
    const uint32_t flags = Le32(header + 4);
    if (flags != 0) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "%x", flags);
      return Fail(f, kFormat, std::string("frame flags 0x") + hex + " are not defined", 4);
    }
    Apply(fr, slot, zeros);
    consumed += static_cast<double>(kHeader + n + 4);
    frames++;
    pages += fr.count;
    return true;
  }

  // Entries take effect in order (destination.ts): the last entry of a page wins. Data pages
  // already landed in order; a zero page is cleared unless a later entry gave the page data.
  void Apply(const Frame &fr, const Slot &slot, bool zeros) {
    if (!zeros) {
      for (uint32_t i = 0; i < fr.count; i++) slot.written[Le32(&fr.table[8 * i])] = 1;
      return;
    }
    // The usual frame names each page once, in increasing order (precopy.ts): no entry can
    // override another, so each takes effect as it is, without the sets below (which cost a
    // round 1 of 256 MiB, 16 frames of 4096 zero pages, several milliseconds).
    bool increasing = true;
    for (uint32_t i = 1; i < fr.count && increasing; i++) {
      increasing = Le32(&fr.table[8 * i]) > Le32(&fr.table[8 * (i - 1)]);
    }
    if (increasing) {
      for (uint32_t i = 0; i < fr.count; i++) {
        const uint32_t index = Le32(&fr.table[8 * i]);
        if (Le32(&fr.table[8 * i + 4]) == 1) {
          slot.written[index] = 1;
        } else {
          if (slot.written[index] == 1) std::memset(PageAt(slot, index, window_bytes_), 0, kPage);
          slot.written[index] = 0;
        }
      }
      return;
    }
    std::unordered_set<uint32_t> later;
    std::unordered_set<uint32_t> data;
    for (uint32_t i = 0; i < fr.count; i++) {
      if (Le32(&fr.table[8 * i + 4]) == 1) data.insert(Le32(&fr.table[8 * i]));
    }
    for (uint32_t i = fr.count; i-- > 0;) {
      const uint32_t index = Le32(&fr.table[8 * i]);
      if (!later.insert(index).second) continue;
      if (Le32(&fr.table[8 * i + 4]) == 1) {
        slot.written[index] = 1;
      } else {
        // A page never written here is still the backend's zero page (destination.ts).
        if (slot.written[index] == 1 || data.count(index) != 0) {
          std::memset(PageAt(slot, index, window_bytes_), 0, kPage);
        }
        slot.written[index] = 0;
      }
    }
  }

  Input *in_;
  std::vector<Slot> slots_;
  size_t window_bytes_;
  uint64_t max_frame_;
  uint32_t max_pages_;
};

void ThrowType(v8::Isolate *isolate, const char *message) {
  isolate->ThrowException(v8::Exception::TypeError(
      v8::String::NewFromUtf8(isolate, message).ToLocalChecked()));
}

v8::Local<v8::String> Str(v8::Isolate *isolate, const std::string &s) {
  return v8::String::NewFromUtf8(isolate, s.c_str()).ToLocalChecked();
}

bool IsCount(v8::Local<v8::Value> v) {
  return v->IsNumber() && v.As<v8::Number>()->Value() >= 0 &&
         v.As<v8::Number>()->Value() <= 9007199254740991.0;
}

// The non-empty Uint8Arrays of a JS array as (data, length) pieces; false when an element is
// not a Uint8Array (the caller throws).
bool BytesList(v8::Local<v8::Context> context, v8::Local<v8::Array> list,
               std::vector<iovec> *out) {
  for (uint32_t i = 0; i < list->Length(); i++) {
    v8::Local<v8::Value> v;
    if (!list->Get(context, i).ToLocal(&v) || !v->IsUint8Array()) return false;
    const v8::Local<v8::Uint8Array> chunk = v.As<v8::Uint8Array>();
    if (chunk->ByteLength() > 0) out->push_back({DataOf(chunk), chunk->ByteLength()});
  }
  return true;
}

// slots[i] = [id, pages, written: Uint8Array, ...windows: Uint8Array] (native-io.ts).
bool ParseSlots(v8::Local<v8::Context> context, v8::Local<v8::Array> list, size_t window_bytes,
                std::vector<Slot> *out) {
  for (uint32_t i = 0; i < list->Length(); i++) {
    v8::Local<v8::Value> v;
    if (!list->Get(context, i).ToLocal(&v) || !v->IsArray()) return false;
    const v8::Local<v8::Array> a = v.As<v8::Array>();
    v8::Local<v8::Value> id, pages, written;
    if (a->Length() < 4 || !a->Get(context, 0).ToLocal(&id) || !id->IsUint32() ||
        !a->Get(context, 1).ToLocal(&pages) || !pages->IsUint32() ||
        !a->Get(context, 2).ToLocal(&written) || !written->IsUint8Array()) {
      return false;
    }
    Slot s;
    s.id = id.As<v8::Uint32>()->Value();
    s.pages = pages.As<v8::Uint32>()->Value();
    if (written.As<v8::Uint8Array>()->ByteLength() < s.pages) return false;
    s.written = DataOf(written.As<v8::Uint8Array>());
    size_t covered = 0;
    for (uint32_t w = 3; w < a->Length(); w++) {
      v8::Local<v8::Value> win;
      if (!a->Get(context, w).ToLocal(&win) || !win->IsUint8Array()) return false;
      const size_t len = win.As<v8::Uint8Array>()->ByteLength();
      // Every window but the last is exactly window_bytes long (destination.ts slotSink).
      if (w + 1 < a->Length() && len != window_bytes) return false;
      uint8_t *data = DataOf(win.As<v8::Uint8Array>());
      if (data == nullptr) return false;
      s.windows.push_back(data);
      covered += len;
    }
    if ((s.written == nullptr && s.pages > 0) || covered < static_cast<size_t>(s.pages) * kPage) {
      return false;
    }
    out->push_back(std::move(s));
  }
  return true;
}

void RecvPages(const v8::FunctionCallbackInfo<v8::Value> &args) {
  v8::Isolate *isolate = args.GetIsolate();
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  if (args.Length() != 8 || !args[0]->IsInt32() || !args[1]->IsArray() || !args[2]->IsArray() ||
      !args[3]->IsUint32() || !IsCount(args[4]) || !args[5]->IsUint32() || !args[6]->IsInt32() ||
      !args[7]->IsInt32()) {
    ThrowType(isolate,
              "recvPages(fd, pre[], slots[], windowBytes, maxFrameBytes, maxPages, timeoutMs, "
              "sliceMs) expected");
    return;
  }
  if (!regvisor::Crc32cHardware()) return;  // undefined: the caller reads in JS
  const size_t window_bytes = args[3].As<v8::Uint32>()->Value();
  std::vector<Slot> slots;
  if (window_bytes == 0 || window_bytes % kPage != 0 ||
      !ParseSlots(context, args[2].As<v8::Array>(), window_bytes, &slots)) {
    ThrowType(isolate, "recvPages: slots must be [id, pages, written, ...windows] covering RAM");
    return;
  }
  Input in(args[0].As<v8::Int32>()->Value(), args[6].As<v8::Int32>()->Value());
  std::vector<iovec> pre;
  if (!BytesList(context, args[1].As<v8::Array>(), &pre)) {
    ThrowType(isolate, "recvPages: pre must be Uint8Arrays");
    return;
  }
  for (const iovec &piece : pre) {
    in.AddPrefix(static_cast<const uint8_t *>(piece.iov_base), piece.iov_len);
  }
  PagesReader reader(&in, std::move(slots), window_bytes,
                     static_cast<uint64_t>(args[4].As<v8::Number>()->Value()),
                     args[5].As<v8::Uint32>()->Value());
  const int slice_ms = args[7].As<v8::Int32>()->Value();
  using Clock = std::chrono::steady_clock;
  const Clock::time_point until = Clock::now() + std::chrono::milliseconds(std::max(slice_ms, 0));
  const auto left_ms = [&]() -> int {
    if (slice_ms < 0) return -1;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    return static_cast<int>(std::max<int64_t>(left.count(), 0));
  };
  Failure failure;
  while (reader.Next(&failure, left_ms())) {
  }
  v8::Local<v8::Value> last;
  if (failure.code == kOk) {
    // The header of the first frame of another type (none when the slice ended), whatever Node
    // had read past it, and what has arrived since (not waited for): the JS decoder then has
    // that frame, and the ones after it, without a turn of the event loop to read them.
    const size_t head = reader.has_header ? kHeader : 0;
    const size_t left = in.PrefixLeft();
    std::vector<uint8_t> more;
    if (reader.has_header) in.TakeAvailable(kMoreBytes, &more);
    v8::Local<v8::ArrayBuffer> rest = v8::ArrayBuffer::New(isolate, head + left + more.size());
    uint8_t *out = static_cast<uint8_t *>(rest->Data());
    std::memcpy(out, reader.header, head);
    in.CopyPrefix(out + head);
    if (!more.empty()) std::memcpy(out + head + left, more.data(), more.size());
    last = v8::Uint8Array::New(rest, 0, head + left + more.size());
  } else {
    last = Str(isolate, failure.message);
  }
  v8::Local<v8::Value> result[] = {
      v8::Integer::New(isolate, failure.code), v8::Number::New(isolate, reader.consumed),
      v8::Number::New(isolate, reader.frames), v8::Number::New(isolate, reader.pages), last,
      v8::Number::New(isolate, failure.offset)};
  args.GetReturnValue().Set(v8::Array::New(isolate, result, 6));
}

// The gathered chunks of sendAll, and where checksumming and sending are in them.
class Outgoing {
 public:
  std::vector<iovec> iov;
  size_t total = 0;

  // Checksums the next `piece` bytes; returns how many it did.
  size_t CrcStep(size_t piece) {
    size_t done = 0;
    while (done < piece && crc_index_ < iov.size()) {
      const iovec &v = iov[crc_index_];
      const size_t take = std::min(piece - done, v.iov_len - crc_offset_);
      crc_ = regvisor::Crc32cUpdate(crc_, static_cast<const uint8_t *>(v.iov_base) + crc_offset_,
                                    take);
      crc_offset_ += take;
      done += take;
      if (crc_offset_ == v.iov_len) {
        crc_index_++;
        crc_offset_ = 0;
      }
    }
    return done;
  }
  uint32_t crc() const { return crc_; }

 private:
  uint32_t crc_ = 0;
  size_t crc_index_ = 0;
  size_t crc_offset_ = 0;
};

// With appendCrc, a frame without its trailer (PagesFrame.unchecked()) is checksummed as it
// goes: at most kAhead bytes ahead of what was sent, in pieces of kPiece, and while the socket
// is full the next piece is checksummed instead of sleeping, so the CRC costs the switchover
// little more than the last piece's; the trailer (CRC32C, little-endian) follows the last byte.
constexpr size_t kPiece = 128 * 1024;
constexpr size_t kAhead = 512 * 1024;

}  // namespace

namespace regvisor {
// Declared in native/sockio.h.
int SendGathered(int fd, const std::vector<iovec> &chunks, bool append_crc, int timeout_ms,
                 double *written, std::string *message) {
  Input waiter(fd, timeout_ms);
  Outgoing out;
  out.iov = chunks;
  for (const iovec &piece : out.iov) out.total += piece.iov_len;
  const size_t payload = out.total;
  uint8_t trailer[4];
  size_t checked = append_crc ? 0 : payload;  // bytes that may be sent
  std::vector<iovec> pending = out.iov;       // what is left to send, advanced in place
  if (append_crc) {
    pending.push_back({trailer, 4});
    out.total += 4;
  }
  Failure failure;
  size_t sent = 0;
  size_t i = 0;
  const auto check_more = [&]() {
    checked += out.CrcStep(kPiece);
    if (checked == payload) {
      const uint32_t c = out.crc();
      for (int k = 0; k < 4; k++) trailer[k] = static_cast<uint8_t>(c >> (8 * k));
      checked = out.total;
    }
  };
  if (append_crc && payload == 0) check_more();
  while (sent < out.total) {
    if (checked < out.total && checked - sent < kAhead) {
      check_more();
      continue;
    }
    // Gather what may go: up to `checked`.
    iovec batch[kMaxIov];
    size_t n = 0;
    size_t room = checked - sent;
    for (size_t k = i; k < pending.size() && n < kMaxIov && room > 0; k++) {
      batch[n] = pending[k];
      batch[n].iov_len = std::min(batch[n].iov_len, room);
      room -= batch[n].iov_len;
      n++;
    }
    msghdr msg{};
    msg.msg_iov = batch;
    msg.msg_iovlen = n;
    // MSG_NOSIGNAL: a peer that hung up is an EPIPE result, not a SIGPIPE.
    const ssize_t put = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (put >= 0) {
      *written += static_cast<double>(put);
      sent += static_cast<size_t>(put);
      size_t left = static_cast<size_t>(put);
      while (left > 0 && i < pending.size()) {
        const size_t take = std::min(left, pending[i].iov_len);
        pending[i].iov_base = static_cast<uint8_t *>(pending[i].iov_base) + take;
        pending[i].iov_len -= take;
        left -= take;
        if (pending[i].iov_len == 0) i++;
      }
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      waiter.Errno("sending on", &failure);
      break;
    }
    // The socket is full: checksum ahead while the peer reads, sleep only when nothing is left.
    if (checked < out.total) {
      check_more();
      continue;
    }
    if (!waiter.Wait(POLLOUT, &failure)) break;
  }
  *message = failure.message;
  return failure.code;
}
}  // namespace regvisor

namespace {

void RecvSome(const v8::FunctionCallbackInfo<v8::Value> &args) {
  v8::Isolate *isolate = args.GetIsolate();
  if (args.Length() != 3 || !args[0]->IsInt32() || !args[1]->IsUint32() || !args[2]->IsInt32() ||
      args[1].As<v8::Uint32>()->Value() == 0) {
    ThrowType(isolate, "recvSome(fd, maxBytes > 0, timeoutMs) expected");
    return;
  }
  const int fd = args[0].As<v8::Int32>()->Value();
  const size_t max_bytes = args[1].As<v8::Uint32>()->Value();
  Input in(fd, args[2].As<v8::Int32>()->Value());
  Failure failure;
  std::vector<uint8_t> got;
  if (in.Wait(POLLIN, &failure)) {
    std::vector<uint8_t> buffer(max_bytes);
    for (;;) {
      const ssize_t n = ::recv(fd, buffer.data(), max_bytes, MSG_DONTWAIT);
      if (n > 0) {
        got.assign(buffer.data(), buffer.data() + n);
      } else if (n == 0) {
        failure.code = kClosed;
        failure.message = "the peer closed the connection";
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // Readable a moment ago, nothing now: as if nothing had come.
        failure.code = kTimeout;
      } else {
        in.Errno("receiving on", &failure);
      }
      break;
    }
  }
  v8::Local<v8::Value> result[2];
  result[0] = v8::Integer::New(isolate, failure.code);
  if (failure.code == kOk) {
    v8::Local<v8::ArrayBuffer> bytes = v8::ArrayBuffer::New(isolate, got.size());
    std::memcpy(bytes->Data(), got.data(), got.size());
    result[1] = v8::Uint8Array::New(bytes, 0, got.size());
  } else {
    result[1] = Str(isolate, failure.message);
  }
  args.GetReturnValue().Set(v8::Array::New(isolate, result, 2));
}

void SendAll(const v8::FunctionCallbackInfo<v8::Value> &args) {
  v8::Isolate *isolate = args.GetIsolate();
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  if (args.Length() != 4 || !args[0]->IsInt32() || !args[1]->IsArray() || !args[2]->IsInt32() ||
      !args[3]->IsBoolean()) {
    ThrowType(isolate, "sendAll(fd, chunks: Uint8Array[], timeoutMs, appendCrc) expected");
    return;
  }
  const bool append_crc = args[3].As<v8::Boolean>()->Value();
  if (append_crc && !regvisor::Crc32cHardware()) {
    ThrowType(isolate, "sendAll: appendCrc needs the SSE4.2 CRC32C");
    return;
  }
  std::vector<iovec> chunks;
  if (!BytesList(context, args[1].As<v8::Array>(), &chunks)) {
    ThrowType(isolate, "sendAll: chunks must be Uint8Arrays");
    return;
  }
  double written = 0;
  std::string message;
  const int code = regvisor::SendGathered(args[0].As<v8::Int32>()->Value(), chunks, append_crc,
                                          args[2].As<v8::Int32>()->Value(), &written, &message);
  v8::Local<v8::Value> result[] = {v8::Integer::New(isolate, code),
                                   v8::Number::New(isolate, written), Str(isolate, message)};
  args.GetReturnValue().Set(v8::Array::New(isolate, result, 3));
}

}  // namespace

namespace regvisor {
// Called from the addon's init (kvm_ioctl.cc).
void RegisterSockio(v8::Local<v8::Object> exports) {
  NODE_SET_METHOD(exports, "recvPages", RecvPages);
  NODE_SET_METHOD(exports, "sendAll", SendAll);
  NODE_SET_METHOD(exports, "recvSome", RecvSome);
}
}  // namespace regvisor
