// crc32c(view: ArrayBufferView, previous: uint32) -> uint32 | undefined: CRC32C (Castagnoli,
// reflected polynomial 0x82F63B78, RFC 3720 §B.4) with the SSE4.2 `crc32` instruction, the same
// function as src/vmm/snapshot/crc32c.ts (previous = a checksum to continue, 0 to start).
// Undefined when this CPU lacks SSE4.2 (CPUID.01H:ECX bit 20, Intel SDM vol. 2A "CRC32"): the
// caller then uses its table-driven JS version, as it does when the addon is not built.
//
// Why: the JS slice-by-8 loop checks 100-380 MB/s here, and every migrated or snapshotted page
// is checked twice (writer and reader); the instruction does 8 bytes per step at several GB/s.
// Three interleaved chains (Crc32cSse42 below) run ~3× one chain: the migration's switchover
// checks every final page twice (source and destination) while the guest is paused. Where the
// CPU has AVX-512 VPCLMULQDQ, inputs of 1 KiB or more are folded 64 bytes per multiplication
// instead (Crc32cFold): 64 MiB in L2-sized pieces took 1.25 ms of CPU against 2.65 ms for the
// three chains here (AMD EPYC), 3.4 against 6.2 ms read once from memory.
#include <node.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#include <nmmintrin.h>
#endif

namespace regvisor {
namespace {

#if defined(__x86_64__)
// The CRC register after `n` bytes of zeros, as a linear map of the register before: a 32×32
// GF(2) matrix, applied through four 256-entry tables (one per register byte). Lane k of the
// interleaved loop starts from 0 instead of from the true register, so its result lacks exactly
// this term: crc(A ++ B) = Shift_|B|(crc(A)) ^ crc_from_0(B) (the raw register, no inversions;
// the combination zlib's crc32_combine rests on).
struct ShiftTable {
  uint32_t t[4][256];
};

// One step of the reflected register over a zero bit.
uint32_t ZeroBit(uint32_t c) { return (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1; }

ShiftTable MakeShift(size_t bytes) {
  // Column j of the map: where register bit j goes after `bytes` zero bytes.
  uint32_t column[32];
  for (int j = 0; j < 32; j++) {
    uint32_t c = 1u << j;
    for (size_t k = 0; k < bytes * 8; k++) c = ZeroBit(c);
    column[j] = c;
  }
  ShiftTable s;
  for (int b = 0; b < 4; b++) {
    for (int v = 0; v < 256; v++) {
      uint32_t out = 0;
      for (int j = 0; j < 8; j++) {
        if ((v >> j) & 1) out ^= column[8 * b + j];
      }
      s.t[b][v] = out;
    }
  }
  return s;
}

uint32_t Shift(const ShiftTable &s, uint32_t c) {
  return s.t[0][c & 0xff] ^ s.t[1][(c >> 8) & 0xff] ^ s.t[2][(c >> 16) & 0xff] ^ s.t[3][c >> 24];
}

// Lane lengths of the interleaved loop: three lanes of kLong bytes, then of kShort bytes. The
// `crc32` instruction has a 3-cycle latency and a throughput of one per cycle (Intel SDM vol. 2A
// "CRC32"; AMD Zen the same), so one dependent chain uses a third of the unit: three
// independent chains run about 3× as fast, and two table shifts per 3 × kLong bytes cost
// nothing by comparison. kShort keeps the gain on the 4 KiB pages of snapshots and frames.
constexpr size_t kLong = 4096;
constexpr size_t kShort = 256;

__attribute__((target("sse4.2"))) uint64_t Lanes(uint64_t crc, const uint8_t *p, size_t lane,
                                                 const ShiftTable &shift) {
  uint64_t b = 0, c = 0;
  const uint8_t *end = p + lane;
  for (; p < end; p += 8) {
    uint64_t x, y, z;
    std::memcpy(&x, p, 8);
    std::memcpy(&y, p + lane, 8);
    std::memcpy(&z, p + 2 * lane, 8);
    crc = _mm_crc32_u64(crc, x);
    b = _mm_crc32_u64(b, y);
    c = _mm_crc32_u64(c, z);
  }
  uint32_t r = Shift(shift, static_cast<uint32_t>(crc)) ^ static_cast<uint32_t>(b);
  return Shift(shift, r) ^ static_cast<uint32_t>(c);
}

// Compiled for SSE4.2 only here (the rest of the addon stays baseline x86-64); called only
// after the runtime check below.
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(uint32_t previous, const uint8_t *p,
                                                         size_t n) {
  static const ShiftTable long_shift = MakeShift(kLong);
  static const ShiftTable short_shift = MakeShift(kShort);
  uint64_t crc = static_cast<uint32_t>(~previous);
  // Byte steps up to an 8-byte boundary, so the 8-byte loads are aligned.
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    crc = _mm_crc32_u8(static_cast<uint32_t>(crc), *p++);
    n--;
  }
  for (; n >= 3 * kLong; n -= 3 * kLong, p += 3 * kLong) crc = Lanes(crc, p, kLong, long_shift);
  for (; n >= 3 * kShort; n -= 3 * kShort, p += 3 * kShort) {
    crc = Lanes(crc, p, kShort, short_shift);
  }
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    crc = _mm_crc32_u64(crc, word);
  }
  uint32_t c = static_cast<uint32_t>(crc);
  while (n-- > 0) c = _mm_crc32_u8(c, *p++);
  return ~c;
}

bool HasSse42() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}

// Carry-less multiplication folding (Intel, "Fast CRC Computation for Generic Polynomials
// Using PCLMULQDQ Instruction", 2009), 512 bits at a time with AVX-512 VPCLMULQDQ: four 64-byte
// accumulators fold onto the data 256 bytes on, then onto one 16-byte block at the end of what
// they covered, whose CRC (and the bytes after it) the `crc32` instruction finishes. It rests
// on the raw CRC being M(x)·x^32 mod P: a 16-byte block A followed by D bits can be replaced by
// a block congruent to A·x^D mod P at the position D bits on. Why: one `crc32` retires per
// cycle at best (8 bytes), and a 64 MiB switchover checks every byte on both sides; a 512-bit
// fold handles 64 bytes with two multiplications.

// x^n mod P (P = 0x1EDC6F41 with its x^32, RFC 3720 §B.4 in normal bit order).
uint32_t XPowMod(size_t n) {
  uint32_t r = 1;
  for (size_t i = 0; i < n; i++) r = (r & 0x80000000u) != 0 ? (r << 1) ^ 0x1EDC6F41u : r << 1;
  return r;
}

// The multiplier that moves a 64-bit half of a reflected block on by `bits`, for
// _mm_clmulepi64_si128: x^(bits - 1) mod P with its x^d coefficient at bit 63 - d. A half's
// bit i holds x^(63 - i), so the 127-bit product's bit m holds x^(126 - m): read as a block
// (bit m = x^(127 - m)) it is one x more, which the - 1 pays for.
uint64_t FoldConstant(size_t bits) {
  const uint32_t r = XPowMod(bits - 1);
  uint64_t k = 0;
  for (int d = 0; d < 32; d++) {
    if (((r >> d) & 1) != 0) k |= uint64_t{1} << (63 - d);
  }
  return k;
}

// Both halves' multipliers for moving a block on by `bits`: the first 8 bytes (the higher
// powers, in the low half) by bits + 64, the next 8 by `bits`.
struct Fold {
  uint64_t first;
  uint64_t second;
};

Fold MakeFold(size_t bits) { return {FoldConstant(bits + 64), FoldConstant(bits)}; }

// 256 bytes a step; the 16 lanes at the end then fold onto the last one.
constexpr size_t kStep = 256;

struct FoldTables {
  Fold step;       // a lane onto the same lane 256 bytes on
  Fold lane[16];   // lane k (16 bytes each) onto lane 15: by (15 - k) * 128 bits
  Fold block;      // a block onto the next one (the tail loop)
};

FoldTables MakeFoldTables() {
  FoldTables t{};
  t.step = MakeFold(kStep * 8);
  for (size_t k = 0; k < 15; k++) t.lane[k] = MakeFold((15 - k) * 128);
  t.block = MakeFold(128);
  return t;
}

__attribute__((target("pclmul,sse4.2"))) __m128i FoldBlock(__m128i x, const Fold &f) {
  const __m128i k = _mm_set_epi64x(static_cast<int64_t>(f.second), static_cast<int64_t>(f.first));
  return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2"))) __m512i Fold512(__m512i x,
                                                                           __m512i k) {
  return _mm512_xor_si512(_mm512_clmulepi64_epi128(x, k, 0x00),
                          _mm512_clmulepi64_epi128(x, k, 0x11));
}

// CRC32C of n >= kStep bytes continuing from `previous`, by folding.
__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2"))) uint32_t Crc32cFold(
    uint32_t previous, const uint8_t *p, size_t n) {
  static const FoldTables t = MakeFoldTables();
  const __m512i step = _mm512_broadcast_i32x4(_mm_set_epi64x(
      static_cast<int64_t>(t.step.second), static_cast<int64_t>(t.step.first)));
  // The register's start value enters as the first 32 bits of the message (reflected CRC).
  __m512i x0 = _mm512_xor_si512(_mm512_loadu_si512(p),
                                _mm512_castsi128_si512(_mm_cvtsi32_si128(static_cast<int>(~previous))));
  __m512i x1 = _mm512_loadu_si512(p + 64);
  __m512i x2 = _mm512_loadu_si512(p + 128);
  __m512i x3 = _mm512_loadu_si512(p + 192);
  p += kStep;
  n -= kStep;
  for (; n >= kStep; n -= kStep, p += kStep) {
    x0 = _mm512_xor_si512(Fold512(x0, step), _mm512_loadu_si512(p));
    x1 = _mm512_xor_si512(Fold512(x1, step), _mm512_loadu_si512(p + 64));
    x2 = _mm512_xor_si512(Fold512(x2, step), _mm512_loadu_si512(p + 128));
    x3 = _mm512_xor_si512(Fold512(x3, step), _mm512_loadu_si512(p + 192));
  }
  alignas(64) __m128i lanes[16];
  _mm512_store_si512(&lanes[0], x0);
  _mm512_store_si512(&lanes[4], x1);
  _mm512_store_si512(&lanes[8], x2);
  _mm512_store_si512(&lanes[12], x3);
  __m128i x = lanes[15];
  for (size_t k = 0; k < 15; k++) x = _mm_xor_si128(x, FoldBlock(lanes[k], t.lane[k]));
  for (; n >= 16; n -= 16, p += 16) {
    x = _mm_xor_si128(FoldBlock(x, t.block), _mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
  }
  uint64_t c = _mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(x)));
  c = _mm_crc32_u64(c, static_cast<uint64_t>(_mm_extract_epi64(x, 1)));
  uint32_t r = static_cast<uint32_t>(c);
  while (n-- > 0) r = _mm_crc32_u8(r, *p++);
  return ~r;
}

bool HasFold() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq") &&
         __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.2");
}

// From this many bytes the fold path (where the CPU has it) beats three `crc32` chains.
constexpr size_t kFoldMin = 1024;

uint32_t Crc32cBest(uint32_t previous, const uint8_t *p, size_t n) {
  static const bool fold = HasFold();
  return fold && n >= kFoldMin ? Crc32cFold(previous, p, n) : Crc32cSse42(previous, p, n);
}
#endif

void ThrowType(v8::Isolate *isolate, const char *message) {
  isolate->ThrowException(v8::Exception::TypeError(
      v8::String::NewFromUtf8(isolate, message).ToLocalChecked()));
}

void Crc32c(const v8::FunctionCallbackInfo<v8::Value> &args) {
  v8::Isolate *isolate = args.GetIsolate();
  if (args.Length() != 2 || !args[0]->IsArrayBufferView() || !args[1]->IsUint32()) {
    ThrowType(isolate, "crc32c(view: ArrayBufferView, previous: uint32) expected");
    return;
  }
#if defined(__x86_64__)
  static const bool sse42 = HasSse42();
  if (!sse42) return;
  const v8::Local<v8::ArrayBufferView> view = args[0].As<v8::ArrayBufferView>();
  const uint32_t previous = args[1].As<v8::Uint32>()->Value();
  const size_t length = view->ByteLength();
  if (length == 0) {
    args.GetReturnValue().Set(previous);
    return;
  }
  // Data() of the view's buffer: a SharedArrayBuffer's too (a soft guest's RAM); the bytes are
  // only read, and callers check shared RAM only while its vCPUs are paused.
  const v8::Local<v8::ArrayBuffer> buffer = view->Buffer();
  const uint8_t *data = static_cast<const uint8_t *>(buffer->Data());
  if (data == nullptr) {
    ThrowType(isolate, "crc32c: the view's buffer is detached");
    return;
  }
  args.GetReturnValue().Set(Crc32cBest(previous, data + view->ByteOffset(), length));
#endif
}

}  // namespace

// For native/sockio.cc: whether the CPU has SSE4.2, and the checksum itself (only then).
bool Crc32cHardware() {
#if defined(__x86_64__)
  static const bool sse42 = HasSse42();
  return sse42;
#else
  return false;
#endif
}

uint32_t Crc32cUpdate(uint32_t previous, const uint8_t *data, size_t n) {
#if defined(__x86_64__)
  return n == 0 ? previous : Crc32cBest(previous, data, n);
#else
  (void)data;
  (void)n;
  return previous;
#endif
}

namespace {
// crc32cFold(): whether crc32c() folds inputs of kFoldMin bytes or more with VPCLMULQDQ here
// (so src/vmm/snapshot/crc32c.ts can say which path a figure was measured on).
void Crc32cFoldPath(const v8::FunctionCallbackInfo<v8::Value> &args) {
#if defined(__x86_64__)
  static const bool fold = HasFold();
  args.GetReturnValue().Set(fold);
#else
  args.GetReturnValue().Set(false);
#endif
}
}  // namespace

// Called from the addon's init (kvm_ioctl.cc): one module, one build.
void RegisterCrc32c(v8::Local<v8::Object> exports) {
  NODE_SET_METHOD(exports, "crc32c", Crc32c);
  NODE_SET_METHOD(exports, "crc32cFold", Crc32cFoldPath);
}

}  // namespace regvisor
