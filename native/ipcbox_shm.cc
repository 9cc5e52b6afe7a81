// ipcbox_shm: POSIX shared memory and shared futexes for Node.js (Linux).
//
// The whole native surface of ipcbox. Everything else (layouts, locks, rings)
// lives in TypeScript under src/shm/. Exports:
//   open(name, size, {create, exclusive, mode}) -> SharedArrayBuffer
//   unlink(name), stat(name) -> {size, mode, uid}
//   futexWait(sab, byteOffset, expected, timeoutMs) -> 'ok'|'timed-out'|'not-equal'
//   futexWaitAsync(sab, byteOffset, expected, timeoutMs)
//       -> {id, promise}; promise resolves to the same strings or 'cancelled'
//   futexCancel(id) -> boolean, futexWake(sab, byteOffset, count) -> number
//   getpid(), gettid(), isAlive(pid)
//
// Invariants:
// - A mapping is created by open() and unmapped only by the BackingStore
//   deleter, i.e. when V8 frees the last SharedArrayBuffer (in any isolate)
//   and every pending async waiter on it has finished. No JS-visible unmap
//   exists, so JS can never touch unmapped memory.
// - Futexes are shared (no FUTEX_PRIVATE_FLAG) so they work across
//   processes; the kernel keys them by (inode, page offset). Words must be
//   4-byte aligned and inside the buffer; checked here, else TypeError.
// - Timeouts are absolute CLOCK_MONOTONIC deadlines (FUTEX_WAIT_BITSET), so
//   EINTR restarts never extend a wait.
// - Async waits run on a pool of dedicated threads (not libuv's pool, which a
//   blocked futex would starve). A waiter job holds a shared_ptr to the
//   BackingStore, so the memory it sleeps on stays mapped. Results travel to
//   the owning environment (main thread or a worker) through a uv_async_t.
// - The uv_async_t is ref'd exactly while that environment has pending async
//   waits: a pending wait keeps the process alive, nothing else does.
// - futexCancel resolves the promise at once on the JS thread, then wakes the
//   waiter thread with a per-waiter bitset (other waiters sharing the bit see
//   a spurious 'ok', which futex semantics allow). A waiter thread sleeps at
//   most kSliceMs per futex call and rechecks its cancel flag, which bounds
//   how long a cancelled job can linger if the wake raced its sleep.
// - Environment teardown (worker exit) cancels its waiters; jobs that finish
//   afterwards drop their result instead of touching the closed handle.

#include <node.h>
#include <uv.h>
#include <v8.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

using v8::BackingStore;
using v8::Boolean;
using v8::Context;
using v8::Exception;
using v8::External;
using v8::FunctionCallbackInfo;
using v8::FunctionTemplate;
using v8::Global;
using v8::HandleScope;
using v8::Integer;
using v8::Isolate;
using v8::Local;
using v8::Number;
using v8::Object;
using v8::Promise;
using v8::SharedArrayBuffer;
using v8::String;
using v8::Value;

namespace {

constexpr long kSliceMs = 200;

enum WaitResult { kOk, kTimedOut, kNotEqual, kCancelled };

const char* WaitResultName(WaitResult r) {
  switch (r) {
    case kOk: return "ok";
    case kTimedOut: return "timed-out";
    case kNotEqual: return "not-equal";
    case kCancelled: return "cancelled";
  }
  return "ok";
}

Local<String> Str(Isolate* iso, const char* s) {
  return String::NewFromUtf8(iso, s).ToLocalChecked();
}

void ThrowType(Isolate* iso, const char* msg) {
  iso->ThrowException(Exception::TypeError(Str(iso, msg)));
}

// Throws an Error with .errno (positive), .code ('ENOENT'...), .syscall, .path.
void ThrowErrno(Isolate* iso, int err, const char* syscall, const std::string& name) {
  iso->ThrowException(node::ErrnoException(iso, err, syscall, nullptr, name.c_str()));
}

long Futex(uint32_t* addr, int op, uint32_t val, const timespec* ts, uint32_t val3) {
  return syscall(SYS_futex, addr, op, val, ts, nullptr, val3);
}

timespec Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts;
}

timespec AddMs(timespec t, double ms) {
  double whole = std::floor(ms / 1000.0);
  t.tv_sec += static_cast<time_t>(whole);
  t.tv_nsec += static_cast<long>((ms - whole * 1000.0) * 1e6);
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec += 1;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

bool Before(const timespec& a, const timespec& b) {
  return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

// One wait until woken, value mismatch, deadline or cancel. `cancel` null
// means uncancellable (sync waits): then no slicing is needed.
WaitResult DoWait(uint32_t* addr, uint32_t expected, bool has_deadline, timespec deadline,
                  uint32_t bitset, const std::atomic<bool>* cancel) {
  for (;;) {
    if (cancel != nullptr && cancel->load()) return kCancelled;
    timespec until = deadline;
    bool bounded = has_deadline;
    if (cancel != nullptr) {
      timespec slice = AddMs(Now(), kSliceMs);
      if (!has_deadline || Before(slice, deadline)) until = slice;
      bounded = true;
    }
    long r = Futex(addr, FUTEX_WAIT_BITSET, expected, bounded ? &until : nullptr, bitset);
    if (r == 0) return (cancel != nullptr && cancel->load()) ? kCancelled : kOk;
    if (errno == EAGAIN) return kNotEqual;
    if (errno == ETIMEDOUT) {
      if (has_deadline && !Before(Now(), deadline)) return kTimedOut;
      continue;
    }
    if (errno == EINTR) continue;
    return kOk;  // unexpected errno: report a wake; callers recheck the word
  }
}

// Resolves (sab, byteOffset) to a word address, or throws and returns null.
uint32_t* WordAt(Isolate* iso, Local<Value> sab_v, Local<Value> off_v,
                 std::shared_ptr<BackingStore>* store_out) {
  if (!sab_v->IsSharedArrayBuffer() || !off_v->IsNumber()) {
    ThrowType(iso, "expected (SharedArrayBuffer, byteOffset)");
    return nullptr;
  }
  std::shared_ptr<BackingStore> store = sab_v.As<SharedArrayBuffer>()->GetBackingStore();
  double off = off_v.As<Number>()->Value();
  if (!(off >= 0) || std::floor(off) != off || static_cast<uint64_t>(off) % 4 != 0 ||
      off + 4 > static_cast<double>(store->ByteLength())) {
    ThrowType(iso, "byteOffset must be a 4-byte aligned offset inside the buffer");
    return nullptr;
  }
  uint32_t* addr = reinterpret_cast<uint32_t*>(static_cast<char*>(store->Data()) +
                                               static_cast<size_t>(off));
  if (store_out != nullptr) *store_out = std::move(store);
  return addr;
}

bool ReadTimeout(Local<Value> v, bool* has_deadline, timespec* deadline) {
  if (!v->IsNumber()) return false;
  double ms = v.As<Number>()->Value();
  *has_deadline = std::isfinite(ms) && ms >= 0;
  if (*has_deadline) *deadline = AddMs(Now(), ms);
  return true;
}

// ---- async waits ----------------------------------------------------------

struct EnvState;

struct Job {
  std::shared_ptr<BackingStore> store;  // keeps the mapping alive while sleeping
  uint32_t* addr;
  uint32_t expected;
  bool has_deadline;
  timespec deadline;
  uint32_t id;
  std::atomic<bool> cancelled{false};
  WaitResult result = kOk;
  std::shared_ptr<EnvState> env;
};

uint32_t BitFor(uint32_t id) { return 1u << (id & 31); }

struct Pending {
  std::shared_ptr<Job> job;
  Global<Promise::Resolver> resolver;
};

// Per Node environment (main thread or worker). `mu` guards closed/done/async;
// the rest is touched only on the environment's JS thread.
struct EnvState {
  std::mutex mu;
  bool closed = false;
  std::vector<std::shared_ptr<Job>> done;
  uv_async_t* async = nullptr;

  Isolate* iso = nullptr;
  std::unordered_map<uint32_t, Pending> pending;
  uint32_t next_id = 1;

  void UpdateRef() {
    if (pending.empty()) uv_unref(reinterpret_cast<uv_handle_t*>(async));
    else uv_ref(reinterpret_cast<uv_handle_t*>(async));
  }
};

// Dedicated waiter threads; an idle one is reused, otherwise a new one starts.
class WaiterPool {
 public:
  void Submit(std::shared_ptr<Job> job) {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.push_back(std::move(job));
    if (queue_.size() > idle_) {
      std::thread([this] { Run(); }).detach();
    } else {
      cv_.notify_one();
    }
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      while (queue_.empty()) {
        idle_++;
        cv_.wait(lk);
        idle_--;
      }
      std::shared_ptr<Job> job = std::move(queue_.front());
      queue_.pop_front();
      lk.unlock();
      job->result = DoWait(job->addr, job->expected, job->has_deadline, job->deadline,
                           BitFor(job->id), &job->cancelled);
      std::shared_ptr<EnvState> env = job->env;
      {
        std::lock_guard<std::mutex> elk(env->mu);
        if (!env->closed) {
          env->done.push_back(std::move(job));
          uv_async_send(env->async);
        }
      }
      job.reset();
      env.reset();
      lk.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  size_t idle_ = 0;
};

WaiterPool* Pool() {
  static WaiterPool* pool = new WaiterPool();  // never destroyed: threads outlive statics
  return pool;
}

EnvState* StateOf(const FunctionCallbackInfo<Value>& args) {
  return static_cast<std::shared_ptr<EnvState>*>(args.Data().As<External>()->Value())->get();
}

void OnAsync(uv_async_t* handle) {
  auto* holder = static_cast<std::shared_ptr<EnvState>*>(handle->data);
  EnvState* st = holder->get();
  std::vector<std::shared_ptr<Job>> done;
  {
    std::lock_guard<std::mutex> lk(st->mu);
    done.swap(st->done);
  }
  Isolate* iso = st->iso;
  HandleScope scope(iso);
  for (auto& job : done) {
    auto it = st->pending.find(job->id);
    if (it == st->pending.end()) continue;  // already cancelled and resolved
    Local<Promise::Resolver> resolver = it->second.resolver.Get(iso);
    st->pending.erase(it);
    Local<Context> ctx = resolver->GetCreationContext().ToLocalChecked();
    v8::Context::Scope cscope(ctx);
    resolver->Resolve(ctx, Str(iso, WaitResultName(job->result))).Check();
  }
  st->UpdateRef();
}

void OnEnvCleanup(void* arg) {
  auto* holder = static_cast<std::shared_ptr<EnvState>*>(arg);
  EnvState* st = holder->get();
  {
    std::lock_guard<std::mutex> lk(st->mu);
    st->closed = true;
    st->done.clear();
  }
  for (auto& kv : st->pending) {
    kv.second.job->cancelled.store(true);
    Futex(kv.second.job->addr, FUTEX_WAKE_BITSET, INT_MAX, nullptr, BitFor(kv.first));
  }
  st->pending.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(st->async), [](uv_handle_t* h) {
    delete static_cast<std::shared_ptr<EnvState>*>(h->data);
    delete reinterpret_cast<uv_async_t*>(h);
  });
}

// ---- exported functions ---------------------------------------------------

void Open(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  Local<Context> ctx = iso->GetCurrentContext();
  if (!args[0]->IsString() || !args[1]->IsNumber() || !args[2]->IsObject()) {
    return ThrowType(iso, "open(name: string, size: number, flags: object)");
  }
  std::string name = *String::Utf8Value(iso, args[0]);
  double size = args[1].As<Number>()->Value();
  Local<Object> flags = args[2].As<Object>();
  bool create = flags->Get(ctx, Str(iso, "create")).ToLocalChecked()->BooleanValue(iso);
  bool exclusive = flags->Get(ctx, Str(iso, "exclusive")).ToLocalChecked()->BooleanValue(iso);
  Local<Value> mode_v = flags->Get(ctx, Str(iso, "mode")).ToLocalChecked();
  mode_t mode = mode_v->IsNumber() ? static_cast<mode_t>(mode_v.As<Number>()->Value()) : 0600;
  if (!(size >= 0) || std::floor(size) != size || size > 0x7fffffffffff) {
    return ThrowType(iso, "size must be a non-negative integer");
  }

  int oflag = O_RDWR | (create ? O_CREAT : 0) | (create && exclusive ? O_EXCL : 0);
  int fd = shm_open(name.c_str(), oflag, mode);
  if (fd < 0) return ThrowErrno(iso, errno, "shm_open", name);
  // shm_open applies the umask; an exclusive creator is the owner and sets
  // the mode it asked for.
  if (create && exclusive && fchmod(fd, mode) != 0) {
    int err = errno;
    close(fd);
    shm_unlink(name.c_str());
    return ThrowErrno(iso, err, "fchmod", name);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(iso, err, "fstat", name);
  }
  // Creating grows a smaller segment to `size`; opening maps `size` bytes
  // (0 = the whole segment) and refuses to map past the end (EINVAL).
  size_t len = static_cast<size_t>(size);
  size_t have = static_cast<size_t>(st.st_size);
  if (create && len > have && ftruncate(fd, static_cast<off_t>(len)) != 0) {
    int err = errno;
    close(fd);
    if (exclusive) shm_unlink(name.c_str());
    return ThrowErrno(iso, err, "ftruncate", name);
  }
  if (!create && len == 0) len = have;
  if (len == 0 || (!create && len > have)) {
    close(fd);
    return ThrowErrno(iso, EINVAL, "mmap", name);
  }
  void* addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (addr == MAP_FAILED) return ThrowErrno(iso, err, "mmap", name);

  std::unique_ptr<BackingStore> store = SharedArrayBuffer::NewBackingStore(
      addr, len, [](void* data, size_t length, void*) { munmap(data, length); }, nullptr);
  args.GetReturnValue().Set(SharedArrayBuffer::New(iso, std::move(store)));
}

void Unlink(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  if (!args[0]->IsString()) return ThrowType(iso, "unlink(name: string)");
  std::string name = *String::Utf8Value(iso, args[0]);
  if (shm_unlink(name.c_str()) != 0) ThrowErrno(iso, errno, "shm_unlink", name);
}

void Stat(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  Local<Context> ctx = iso->GetCurrentContext();
  if (!args[0]->IsString()) return ThrowType(iso, "stat(name: string)");
  std::string name = *String::Utf8Value(iso, args[0]);
  int fd = shm_open(name.c_str(), O_RDONLY, 0);
  if (fd < 0) return ThrowErrno(iso, errno, "shm_open", name);
  struct stat st;
  int r = fstat(fd, &st);
  int err = errno;
  close(fd);
  if (r != 0) return ThrowErrno(iso, err, "fstat", name);
  Local<Object> out = Object::New(iso);
  out->Set(ctx, Str(iso, "size"), Number::New(iso, static_cast<double>(st.st_size))).Check();
  out->Set(ctx, Str(iso, "mode"), Integer::NewFromUnsigned(iso, st.st_mode & 07777)).Check();
  out->Set(ctx, Str(iso, "uid"), Integer::NewFromUnsigned(iso, st.st_uid)).Check();
  args.GetReturnValue().Set(out);
}

void FutexWait(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  uint32_t* addr = WordAt(iso, args[0], args[1], nullptr);
  if (addr == nullptr) return;
  bool has_deadline = false;
  timespec deadline{};
  if (!args[2]->IsNumber() || !ReadTimeout(args[3], &has_deadline, &deadline)) {
    return ThrowType(iso, "futexWait(sab, byteOffset, expected: number, timeoutMs: number)");
  }
  uint32_t expected = static_cast<uint32_t>(args[2].As<Number>()->Value() < 0
      ? static_cast<int32_t>(args[2].As<Number>()->Value())
      : static_cast<uint32_t>(args[2].As<Number>()->Value()));
  WaitResult r = DoWait(addr, expected, has_deadline, deadline, FUTEX_BITSET_MATCH_ANY, nullptr);
  args.GetReturnValue().Set(Str(iso, WaitResultName(r)));
}

void FutexWaitAsync(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  Local<Context> ctx = iso->GetCurrentContext();
  EnvState* st = StateOf(args);
  auto job = std::make_shared<Job>();
  job->addr = WordAt(iso, args[0], args[1], &job->store);
  if (job->addr == nullptr) return;
  if (!args[2]->IsNumber() || !ReadTimeout(args[3], &job->has_deadline, &job->deadline)) {
    return ThrowType(iso, "futexWaitAsync(sab, byteOffset, expected: number, timeoutMs: number)");
  }
  double ev = args[2].As<Number>()->Value();
  job->expected = ev < 0 ? static_cast<uint32_t>(static_cast<int32_t>(ev)) : static_cast<uint32_t>(ev);
  job->id = st->next_id++;
  if (st->next_id == 0) st->next_id = 1;
  job->env = *static_cast<std::shared_ptr<EnvState>*>(args.Data().As<External>()->Value());

  Local<Promise::Resolver> resolver = Promise::Resolver::New(ctx).ToLocalChecked();
  Pending p;
  p.job = job;
  p.resolver.Reset(iso, resolver);
  st->pending.emplace(job->id, std::move(p));
  st->UpdateRef();
  Pool()->Submit(job);

  Local<Object> out = Object::New(iso);
  out->Set(ctx, Str(iso, "id"), Integer::NewFromUnsigned(iso, job->id)).Check();
  out->Set(ctx, Str(iso, "promise"), resolver->GetPromise()).Check();
  args.GetReturnValue().Set(out);
}

void FutexCancel(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  EnvState* st = StateOf(args);
  if (!args[0]->IsNumber()) return ThrowType(iso, "futexCancel(id: number)");
  uint32_t id = static_cast<uint32_t>(args[0].As<Number>()->Value());
  auto it = st->pending.find(id);
  if (it == st->pending.end()) {
    args.GetReturnValue().Set(Boolean::New(iso, false));
    return;
  }
  std::shared_ptr<Job> job = it->second.job;
  Local<Promise::Resolver> resolver = it->second.resolver.Get(iso);
  st->pending.erase(it);
  job->cancelled.store(true);
  Futex(job->addr, FUTEX_WAKE_BITSET, INT_MAX, nullptr, BitFor(id));
  resolver->Resolve(iso->GetCurrentContext(), Str(iso, "cancelled")).Check();
  st->UpdateRef();
  args.GetReturnValue().Set(Boolean::New(iso, true));
}

void FutexWake(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  uint32_t* addr = WordAt(iso, args[0], args[1], nullptr);
  if (addr == nullptr) return;
  if (!args[2]->IsNumber()) return ThrowType(iso, "futexWake(sab, byteOffset, count: number)");
  double c = args[2].As<Number>()->Value();
  int count = !(c >= 1) ? 0 : (c >= INT_MAX ? INT_MAX : static_cast<int>(c));
  long r = count == 0 ? 0 : Futex(addr, FUTEX_WAKE, static_cast<uint32_t>(count), nullptr, 0);
  args.GetReturnValue().Set(Number::New(iso, r < 0 ? 0 : static_cast<double>(r)));
}

void GetPid(const FunctionCallbackInfo<Value>& args) {
  args.GetReturnValue().Set(Integer::New(args.GetIsolate(), getpid()));
}

void GetTid(const FunctionCallbackInfo<Value>& args) {
  args.GetReturnValue().Set(
      Integer::New(args.GetIsolate(), static_cast<int32_t>(syscall(SYS_gettid))));
}

// kill(pid, 0): ESRCH means no such process or thread; EPERM means it exists.
void IsAlive(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  if (!args[0]->IsNumber()) return ThrowType(iso, "isAlive(pid: number)");
  double pid = args[0].As<Number>()->Value();
  bool alive = pid >= 1 && pid <= INT_MAX &&
               (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
  args.GetReturnValue().Set(Boolean::New(iso, alive));
}

}  // namespace

NODE_MODULE_INIT(/* exports, module, context */) {
  Isolate* iso = context->GetIsolate();
  auto* holder = new std::shared_ptr<EnvState>(std::make_shared<EnvState>());
  EnvState* st = holder->get();
  st->iso = iso;
  st->async = new uv_async_t();
  uv_async_init(node::GetCurrentEventLoop(iso), st->async, OnAsync);
  st->async->data = holder;
  uv_unref(reinterpret_cast<uv_handle_t*>(st->async));
  node::AddEnvironmentCleanupHook(iso, OnEnvCleanup, holder);

  Local<External> data = External::New(iso, holder);
  auto set = [&](const char* name, v8::FunctionCallback cb) {
    Local<FunctionTemplate> t = FunctionTemplate::New(iso, cb, data);
    exports->Set(context, Str(iso, name), t->GetFunction(context).ToLocalChecked()).Check();
  };
  set("open", Open);
  set("unlink", Unlink);
  set("stat", Stat);
  set("futexWait", FutexWait);
  set("futexWaitAsync", FutexWaitAsync);
  set("futexCancel", FutexCancel);
  set("futexWake", FutexWake);
  set("getpid", GetPid);
  set("gettid", GetTid);
  set("isAlive", IsAlive);
}
