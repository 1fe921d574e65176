// regvisor's native ioctl path: ioctl(fd, request, arg) -> result or -errno, and
// address(view) -> the user address of a typed array's first byte, so that a struct the kernel
// reads or writes can live in a JS buffer instead of being copied through native scratch, and
// detach(buffer) -> whether an ArrayBuffer over native memory could be detached, so that the
// memory can be unmapped at once on close() without leaving a view that would fault.
//
// Why it exists: koffi (the FFI every other native call goes through) costs ~40 ns more per
// call than a plain V8 function callback, and KVM_GET_ONE_REG / KVM_RUN are called in tight
// loops where that is 2-3 % of the whole call. It is optional: src/backends/kvm/ffi.ts loads it
// when `npm install` could build it and falls back to koffi otherwise (or with REGVISOR_NATIVE=0).
//
// It uses V8's own callback API rather than Node-API because Node-API's per-call bookkeeping
// costs about as much again as the call itself here; the module is built on the user's machine
// against the Node that runs it, so ABI stability across Node versions is not needed (a
// mismatched build fails to load and ffi.ts falls back to koffi).
#include <node.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <sys/ioctl.h>

namespace {

// Largest integer a double holds exactly: addresses and integer arguments stay below it.
constexpr double kMaxExactInteger = 9007199254740991.0;

void ThrowType(v8::Isolate *isolate, const char *message) {
  isolate->ThrowException(v8::Exception::TypeError(
      v8::String::NewFromUtf8(isolate, message).ToLocalChecked()));
}

// ioctl(fd: int32, request: uint32, arg: non-negative integer Number) -> int32.
// Returns the kernel's result, or -errno when the call failed. The argument is either an
// integer (e.g. KVM_CREATE_VCPU's index) or an address that ffi.ts owns for the call's length.
void Ioctl(const v8::FunctionCallbackInfo<v8::Value> &args) {
  v8::Isolate *isolate = args.GetIsolate();
  if (args.Length() != 3 || !args[0]->IsInt32() || !args[1]->IsUint32() ||
      !args[2]->IsNumber()) {
    ThrowType(isolate, "ioctl(fd: int32, request: uint32, arg: number) expected");
    return;
  }
  const int fd = args[0].As<v8::Int32>()->Value();
  const uint32_t request = args[1].As<v8::Uint32>()->Value();
  const double arg = args[2].As<v8::Number>()->Value();
  if (!(arg >= 0 && arg <= kMaxExactInteger) || std::trunc(arg) != arg) {
    ThrowType(isolate, "ioctl arg must be a non-negative integer below 2^53");
    return;
  }
  const int r = ::ioctl(fd, static_cast<unsigned long>(request),
                        static_cast<unsigned long>(static_cast<uint64_t>(arg)));
  args.GetReturnValue().Set(r < 0 ? -errno : r);
}

// address(view: ArrayBufferView) -> Number | undefined: the address of the view's first byte,
// undefined for a view of a SharedArrayBuffer (another thread could change the bytes between
// the caller's checks and the kernel's read, so those are copied). Buffer() moves an on-heap
// typed array's bytes off the heap once, for good, and V8 never moves an off-heap backing
// store, so the address stays valid while the buffer is alive and attached; ffi.ts hands it
// only to synchronous ioctls on buffers it holds for the call.
void Address(const v8::FunctionCallbackInfo<v8::Value> &args) {
  v8::Isolate *isolate = args.GetIsolate();
  if (args.Length() != 1 || !args[0]->IsArrayBufferView()) {
    ThrowType(isolate, "address(view: ArrayBufferView) expected");
    return;
  }
  const v8::Local<v8::ArrayBufferView> view = args[0].As<v8::ArrayBufferView>();
  const v8::Local<v8::ArrayBuffer> buffer = view->Buffer();
  if (buffer->IsSharedArrayBuffer()) return;
  void *data = buffer->Data();
  if (data == nullptr) {
    ThrowType(isolate, "address: the view's buffer is detached or empty");
    return;
  }
  const uintptr_t at = reinterpret_cast<uintptr_t>(data) + view->ByteOffset();
  args.GetReturnValue().Set(static_cast<double>(at));
}

// detach(buffer: ArrayBuffer) -> boolean: detaches the buffer (every typed array and DataView
// over it then has length 0), or returns false when V8 marks it non-detachable. ffi.ts detaches
// the ArrayBuffers it made over an mmap'd range before munmap(2), so no JS view can reach the
// unmapped pages: JavaScript has no way to detach them itself, since Node marks external
// buffers untransferable (structuredClone copies them instead).
void Detach(const v8::FunctionCallbackInfo<v8::Value> &args) {
  v8::Isolate *isolate = args.GetIsolate();
  if (args.Length() != 1 || !args[0]->IsArrayBuffer()) {
    ThrowType(isolate, "detach(buffer: ArrayBuffer) expected");
    return;
  }
  const v8::Local<v8::ArrayBuffer> buffer = args[0].As<v8::ArrayBuffer>();
  if (!buffer->IsDetachable()) {
    args.GetReturnValue().Set(false);
    return;
  }
  // An empty key passes: these buffers never had a detach key set.
  const v8::Maybe<bool> done = buffer->Detach(v8::Local<v8::Value>());
  args.GetReturnValue().Set(done.FromMaybe(false) && buffer->WasDetached());
}

}  // namespace

namespace regvisor {
// native/crc32c.cc: the SSE4.2 CRC32C of src/vmm/snapshot/crc32c.ts.
void RegisterCrc32c(v8::Local<v8::Object> exports);
// native/sockio.cc: the migration switchover's socket reads and writes.
void RegisterSockio(v8::Local<v8::Object> exports);
// native/pagesend.cc: the switchover's last pages, framed and sent straight from guest RAM.
void RegisterPagesend(v8::Local<v8::Object> exports);
// native/pagemap.cc: which pages of guest RAM were ever touched (a migration's first round).
void RegisterPagemap(v8::Local<v8::Object> exports);
}  // namespace regvisor

// Context-aware, so worker threads (the soft backend's threaded mode, user Workers) can load it.
NODE_MODULE_INIT(/* exports, module, context */) {
  NODE_SET_METHOD(exports, "ioctl", Ioctl);
  NODE_SET_METHOD(exports, "address", Address);
  NODE_SET_METHOD(exports, "detach", Detach);
  regvisor::RegisterCrc32c(exports);
  regvisor::RegisterSockio(exports);
  regvisor::RegisterPagesend(exports);
  regvisor::RegisterPagemap(exports);
}
