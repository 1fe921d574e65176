// sendPages(fd, slot, pages, windows: Uint8Array[], windowBytes, bitmap: Uint8Array, timeoutMs)
//   -> [code, written, message, entries, zeroPages], or undefined without the SSE4.2 CRC32C
//
// The migration switchover's last pages of one RAM slot (src/vmm/migration/precopy.ts
// `finish`), straight from guest RAM: walks the dirty bitmap (bit i of byte i/8 = page i of the
// slot, whose RAM is `windows`, each `windowBytes` long but the last), builds the PAGES frames
// precopy.ts's JS loop builds, byte for byte (stream.ts: at most 4096 entries and 1 MiB of data
// pages per frame, an all-zero page as a zero entry, a dirty all-zero MiB at a 256-page boundary
// found with one scan), and sends each as soon as it is built with SendGathered (sockio.cc:
// gathered from RAM, its CRC32C computed as it goes). `code` is native-io.ts's IO_CODES,
// `written` the bytes sent, `entries` the pages sent and `zeroPages` those sent as zero pages.
// Blocks the calling thread (every wait at most timeoutMs); only while every vCPU is paused, so
// that no page changes between its checksum and its send.
//
// Why: at the switchover the JS loop ran in V8's baseline tier (it runs once per migration, too
// rarely to have been optimized) and made V8 compile it on background threads meanwhile: 25 ms
// of main-thread and 25 ms of compiler-thread CPU for 64 MiB here, on 2 cores that the
// destination, receiving the same bytes, needs too.
#include <node.h>

#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "sockio.h"

namespace {

// stream.ts FRAME_TYPES.PAGES, PAGE_BYTES, MAX_PAGES_PER_FRAME; precopy.ts FRAME_DATA_BYTES /
// PAGE_BYTES and GROUP_PAGES.
constexpr uint32_t kPagesType = 17;
constexpr size_t kPage = 4096;
constexpr uint32_t kMaxEntries = 4096;
constexpr uint32_t kMaxDataPages = 256;
constexpr uint32_t kGroupPages = 256;
// The frame header (u32 type, u32 flags, u64 length) and the PAGES payload's u32 slot, u32 count.
constexpr size_t kFixed = 16 + 8;

void Put32(uint8_t *p, uint32_t v) {
  for (int k = 0; k < 4; k++) p[k] = static_cast<uint8_t>(v >> (8 * k));
}

// True when the n bytes at p (a multiple of 64, 8-aligned) are all zero. The last word first:
// a page holding data nearly always fails there, after one cache line.
bool IsZero(const uint8_t *p, size_t n) {
  uint64_t last;
  std::memcpy(&last, p + n - 8, 8);
  if (last != 0) return false;
  for (size_t at = 0; at < n; at += 64) {
    uint64_t w[8];
    std::memcpy(w, p + at, 64);
    if ((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0) return false;
  }
  return true;
}

// One PAGES frame being built: the header and entry table in `head`, the data pages as views of
// RAM in `data` (adjacent pages in one iovec).
class Frame {
 public:
  explicit Frame(uint32_t slot) : slot_(slot) {
    head_.reserve(kFixed + 8 * kMaxEntries);
    head_.resize(kFixed);
  }

  uint32_t count() const { return count_; }
  uint32_t data_pages() const { return data_pages_; }

  void Zero(uint32_t index) { Entry(index, 0); }

  void Data(uint32_t index, uint8_t *page) {
    Entry(index, 1);
    data_pages_++;
    if (!data_.empty() && static_cast<uint8_t *>(data_.back().iov_base) + data_.back().iov_len ==
                              page) {
      data_.back().iov_len += kPage;
    } else {
      data_.push_back({page, kPage});
    }
  }

  // Sends the frame (if it has pages) and starts the next; false with `*code` set on a failure.
  bool Flush(int fd, int timeout_ms, double *written, int *code, std::string *message) {
    if (count_ == 0) return true;
    const uint64_t length = 8 + 8 * static_cast<uint64_t>(count_) +
                            static_cast<uint64_t>(data_pages_) * kPage;
    Put32(&head_[0], kPagesType);
    Put32(&head_[4], 0);
    Put32(&head_[8], static_cast<uint32_t>(length));
    Put32(&head_[12], static_cast<uint32_t>(length >> 32));
    Put32(&head_[16], slot_);
    Put32(&head_[20], count_);
    std::vector<iovec> chunks;
    chunks.reserve(1 + data_.size());
    chunks.push_back({head_.data(), head_.size()});
    chunks.insert(chunks.end(), data_.begin(), data_.end());
    *code = regvisor::SendGathered(fd, chunks, true, timeout_ms, written, message);
    head_.resize(kFixed);
    data_.clear();
    count_ = 0;
    data_pages_ = 0;
    return *code == 0;
  }

 private:
  void Entry(uint32_t index, uint32_t kind) {
    const size_t at = head_.size();
    head_.resize(at + 8);
    Put32(&head_[at], index);
    Put32(&head_[at + 4], kind);
    count_++;
  }

  uint32_t slot_;
  std::vector<uint8_t> head_;
  std::vector<iovec> data_;
  uint32_t count_ = 0;
  uint32_t data_pages_ = 0;
};

// A slot's RAM as windows of `window_bytes` (the last one shorter).
struct Ram {
  std::vector<uint8_t *> windows;
  size_t window_bytes = 0;
  uint8_t *Page(uint32_t index) const {
    const size_t at = static_cast<size_t>(index) * kPage;
    return windows[at / window_bytes] + at % window_bytes;
  }
};

struct Sent {
  int code = 0;
  std::string message;
  double written = 0;
  double entries = 0;
  double zeros = 0;
};

// precopy.ts #sendRegion for `finish` (byReference, no `touched` map), entry for entry.
Sent SendDirty(int fd, uint32_t slot, uint32_t pages, const Ram &ram, const uint8_t *bitmap,
               int timeout_ms) {
  Sent out;
  Frame frame(slot);
  const auto flush = [&]() {
    return frame.Flush(fd, timeout_ms, &out.written, &out.code, &out.message);
  };
  for (uint32_t page = 0; page < pages; page++) {
    const uint8_t byte = bitmap[page >> 3];
    if (byte == 0) {
      page |= 7;
      continue;
    }
    if (page % kGroupPages == 0 && page + kGroupPages <= pages) {
      bool all = true;
      for (uint32_t b = page >> 3; b < (page + kGroupPages) >> 3 && all; b++) all = bitmap[b] == 0xff;
      if (all && IsZero(ram.Page(page), kGroupPages * kPage)) {
        for (uint32_t g = 0; g < kGroupPages; g++) {
          if (frame.count() == kMaxEntries && !flush()) return out;
          frame.Zero(page + g);
        }
        out.entries += kGroupPages;
        out.zeros += kGroupPages;
        page += kGroupPages - 1;
        continue;
      }
    }
    if (((byte >> (page & 7)) & 1) == 0) continue;
    if ((frame.count() >= kMaxEntries || frame.data_pages() >= kMaxDataPages) && !flush()) {
      return out;
    }
    uint8_t *at = ram.Page(page);
    if (IsZero(at, kPage)) {
      frame.Zero(page);
      out.zeros++;
    } else {
      frame.Data(page, at);
    }
    out.entries++;
  }
  flush();
  return out;
}

void ThrowType(v8::Isolate *isolate, const char *message) {
  isolate->ThrowException(v8::Exception::TypeError(
      v8::String::NewFromUtf8(isolate, message).ToLocalChecked()));
}

uint8_t *DataOf(v8::Local<v8::ArrayBufferView> view) {
  // The backing store of a typed array (SharedArrayBuffer included) never moves; the caller
  // keeps the views alive for the call.
  uint8_t *base = static_cast<uint8_t *>(view->Buffer()->Data());
  return base == nullptr ? nullptr : base + view->ByteOffset();
}

// `list` as the windows of a RAM of `pages` pages: every one but the last exactly
// `window_bytes`, together at least the RAM; false otherwise.
bool ParseWindows(v8::Local<v8::Context> context, v8::Local<v8::Array> list, uint32_t pages,
                  Ram *ram) {
  size_t covered = 0;
  for (uint32_t w = 0; w < list->Length(); w++) {
    v8::Local<v8::Value> v;
    if (!list->Get(context, w).ToLocal(&v) || !v->IsUint8Array()) return false;
    const size_t len = v.As<v8::Uint8Array>()->ByteLength();
    uint8_t *data = DataOf(v.As<v8::Uint8Array>());
    if (data == nullptr || (w + 1 < list->Length() && len != ram->window_bytes)) return false;
    ram->windows.push_back(data);
    covered += len;
  }
  return covered >= static_cast<size_t>(pages) * kPage;
}

void SendPages(const v8::FunctionCallbackInfo<v8::Value> &args) {
  v8::Isolate *isolate = args.GetIsolate();
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  if (args.Length() != 7 || !args[0]->IsInt32() || !args[1]->IsUint32() || !args[2]->IsUint32() ||
      !args[3]->IsArray() || !args[4]->IsUint32() || !args[5]->IsUint8Array() ||
      !args[6]->IsInt32()) {
    ThrowType(isolate,
              "sendPages(fd, slot, pages, windows[], windowBytes, bitmap, timeoutMs) expected");
    return;
  }
  if (!regvisor::Crc32cHardware()) return;  // undefined: the caller sends from JS
  const uint32_t pages = args[2].As<v8::Uint32>()->Value();
  Ram ram;
  ram.window_bytes = args[4].As<v8::Uint32>()->Value();
  // Whole groups of kGroupPages per window, as in precopy.ts (its windows are 256 MiB).
  if (ram.window_bytes == 0 || ram.window_bytes % (kGroupPages * kPage) != 0 ||
      !ParseWindows(context, args[3].As<v8::Array>(), pages, &ram)) {
    ThrowType(isolate, "sendPages: windows must cover the slot's pages, windowBytes apart");
    return;
  }
  const v8::Local<v8::Uint8Array> bitmap = args[5].As<v8::Uint8Array>();
  if (bitmap->ByteLength() < (static_cast<size_t>(pages) + 7) / 8 ||
      (pages > 0 && DataOf(bitmap) == nullptr)) {
    ThrowType(isolate, "sendPages: the bitmap must have a bit for every page");
    return;
  }
  const Sent sent = SendDirty(args[0].As<v8::Int32>()->Value(), args[1].As<v8::Uint32>()->Value(),
                              pages, ram, DataOf(bitmap), args[6].As<v8::Int32>()->Value());
  v8::Local<v8::Value> result[] = {
      v8::Integer::New(isolate, sent.code), v8::Number::New(isolate, sent.written),
      v8::String::NewFromUtf8(isolate, sent.message.c_str()).ToLocalChecked(),
      v8::Number::New(isolate, sent.entries), v8::Number::New(isolate, sent.zeros)};
  args.GetReturnValue().Set(v8::Array::New(isolate, result, 5));
}

}  // namespace

namespace regvisor {
// Called from the addon's init (kvm_ioctl.cc).
void RegisterPagesend(v8::Local<v8::Object> exports) {
  NODE_SET_METHOD(exports, "sendPages", SendPages);
}
}  // namespace regvisor
