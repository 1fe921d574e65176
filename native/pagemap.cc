// Which pages of a range of this process's memory may hold data (src/vmm/migration/native-io.ts):
//
// touchedPages(view: Uint8Array, out: Uint8Array) -> boolean | undefined
//   sets out[i] to 1 when the i-th 4 KiB page of `view` is mapped or swapped out, to 0 when it
//   was never touched (or was dropped): such a page of a private anonymous mapping reads as
//   zeros. Returns true when `out` was filled; undefined when it cannot tell (the view is not
//   page-aligned, is not all inside private anonymous mappings, or /proc/self/pagemap cannot be
//   read): the caller then looks at every page.
//
// Why: a migration's first round sends every page of guest RAM, and a fresh guest has touched
// little of it. Comparing 256 MiB with zeros takes 40 ms here, most of it the read faults that
// map the zero page under every untouched page; the page tables already say which pages were
// never written. The facts used (Documentation/admin-guide/mm/pagemap.rst): one u64 per virtual
// page, bit 63 "page present", bit 62 "page swapped" (set for every non-present swap-type entry,
// migration entries included). A private anonymous page with neither bit has no page behind it
// and reads as zeros (mm/memory.c do_anonymous_page maps the zero page on a read fault). Shared
// and file mappings are refused: their data can live in the page cache without a mapping here.
#include <node.h>

#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

constexpr uintptr_t kPage = 4096;
constexpr uint64_t kPresent = 1ULL << 63;
constexpr uint64_t kSwapped = 1ULL << 62;

// True when [start, end) lies in private anonymous mappings (/proc/self/maps: perms "...p", no
// inode, no file name other than a bracketed one such as [heap] or [anon:...]).
bool PrivateAnonymous(uintptr_t start, uintptr_t end) {
  FILE *maps = std::fopen("/proc/self/maps", "re");
  if (maps == nullptr) return false;
  char line[512];
  uintptr_t covered = start;
  while (covered < end && std::fgets(line, sizeof line, maps) != nullptr) {
    uintptr_t lo = 0;
    uintptr_t hi = 0;
    char perms[8] = {0};
    unsigned long long offset = 0;
    unsigned long long inode = 0;
    char dev[16] = {0};
    int name_at = 0;
    if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %llx %15s %llu %n", &lo, &hi, perms,
                    &offset, dev, &inode, &name_at) < 6) {
      break;
    }
    if (hi <= covered) continue;
    if (lo > covered) break;  // a hole in the range
    const char *name = line + name_at;
    const bool anonymous = inode == 0 && (name[0] == '\n' || name[0] == '\0' || name[0] == '[');
    if (!anonymous || perms[3] != 'p') break;
    covered = hi;
  }
  std::fclose(maps);
  return covered >= end;
}

void TouchedPages(const v8::FunctionCallbackInfo<v8::Value> &args) {
  v8::Isolate *isolate = args.GetIsolate();
  if (args.Length() != 2 || !args[0]->IsUint8Array() || !args[1]->IsUint8Array()) {
    isolate->ThrowException(v8::Exception::TypeError(
        v8::String::NewFromUtf8(isolate, "touchedPages(view: Uint8Array, out: Uint8Array) expected")
            .ToLocalChecked()));
    return;
  }
  const v8::Local<v8::Uint8Array> view = args[0].As<v8::Uint8Array>();
  const v8::Local<v8::Uint8Array> out = args[1].As<v8::Uint8Array>();
  uint8_t *base = static_cast<uint8_t *>(view->Buffer()->Data());
  uint8_t *map = static_cast<uint8_t *>(out->Buffer()->Data());
  if (base == nullptr || map == nullptr) return;
  const uintptr_t start = reinterpret_cast<uintptr_t>(base + view->ByteOffset());
  const size_t bytes = view->ByteLength();
  const size_t pages = bytes / kPage;
  if (start % kPage != 0 || bytes % kPage != 0 || out->ByteLength() < pages) return;
  map += out->ByteOffset();
  if (pages == 0) {
    args.GetReturnValue().Set(true);
    return;
  }
  if (!PrivateAnonymous(start, start + bytes)) return;
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  // 512 entries (4 KiB) per read: 2 MiB of RAM.
  uint64_t entries[512];
  bool ok = true;
  for (size_t first = 0; first < pages && ok; first += 512) {
    const size_t n = pages - first < 512 ? pages - first : 512;
    const off_t at = static_cast<off_t>((start / kPage + first) * sizeof(uint64_t));
    size_t got = 0;
    while (got < n * sizeof(uint64_t)) {
      const ssize_t r = ::pread(fd, reinterpret_cast<uint8_t *>(entries) + got,
                                n * sizeof(uint64_t) - got, at + static_cast<off_t>(got));
      if (r <= 0) {
        ok = false;
        break;
      }
      got += static_cast<size_t>(r);
    }
    for (size_t i = 0; ok && i < n; i++) {
      map[first + i] = (entries[i] & (kPresent | kSwapped)) != 0 ? 1 : 0;
    }
  }
  ::close(fd);
  if (ok) args.GetReturnValue().Set(true);
}

}  // namespace

namespace regvisor {
// Called from the addon's init (kvm_ioctl.cc).
void RegisterPagemap(v8::Local<v8::Object> exports) {
  NODE_SET_METHOD(exports, "touchedPages", TouchedPages);
}
}  // namespace regvisor
