// ipcbox_unix: the classic Unix IPC objects Node lacks — pipes, FIFOs, POSIX
// message queues, named POSIX semaphores, memory-mapped files — as thin calls
// for src/unix/. Compiled into the same addon as ipcbox_shm.cc, which calls
// RegisterUnix() from its NODE_MODULE_INIT. Exports:
//   pipe() -> [readFd, writeFd]                 both close-on-exec
//   mkfifo(path, mode)
//   pollStart(fd, events, cb(status, events)) -> id; pollUpdate(id, events); pollClose(id)
//       a uv_poll_t on the environment's loop (events: 1 readable, 2 writable);
//       status 0 or a negative errno
//   waitFdSync(fd, events, timeoutMs) -> boolean   poll(2); false when the time ran out
//   mqOpen(name, {create, exclusive, mode, maxMessages, messageSize}) -> fd (O_RDWR | O_NONBLOCK)
//   mqClose(fd), mqUnlink(name), mqGetattr(fd) -> {maxMessages, messageSize, currentMessages}
//   mqSend(fd, bytes, priority) -> boolean        false: the queue is full (EAGAIN)
//   mqReceive(fd, buffer) -> {length, priority} | null   null: the queue is empty
//   semOpen(name, {create, exclusive, mode, initial}) -> id; semClose(id); semUnlink(name)
//   semPost(id), semTryWait(id) -> boolean, semValue(id) -> number
//   semWaitSync(id, timeoutMs) -> boolean         false: timed out
//   semWaitAsync(id, timeoutMs) -> {id, promise}  promise: 'ok' | 'timed-out' | 'cancelled'
//   semCancel(waitId) -> boolean
//   mapFile(path, size, {create, readOnly, mode}) -> SharedArrayBuffer; msync(sab)
// Failures of system calls throw (or reject with) an Error carrying .errno,
// .code ('EAGAIN'...), .syscall and .path, as in ipcbox_shm.cc.
//
// Invariants:
// - Nothing here blocks the event loop: FIFOs and queues are non-blocking and
//   waited for with uv_poll_t (no thread per wait); the only blocking calls
//   are waitFdSync/semWaitSync, meant for worker threads.
// - One uv_poll_t per fd: libuv forbids two active poll handles on one fd, so
//   the TypeScript side keeps one poller per descriptor and updates its mask.
//   Poll handles belong to their environment and are closed at its teardown.
// - Async semaphore waits run on a bounded pool of dedicated threads (at most
//   IPCBOX_SEM_WAITER_THREADS, default 64; never libuv's pool, which blocked
//   waits would starve). A thread waits in kSliceMs slices and rechecks the
//   job's cancel flag, so a cancelled wait frees its thread within a slice; a
//   wait that acquired the semaphore after it was cancelled posts it back, so
//   cancellation never loses a post. No thread is created beyond the cap: the
//   wait throws EAGAIN instead.
// - A semaphore handle (sem_t*) is reference counted: the JS table and every
//   pending wait hold it, and sem_close runs when the last one lets go, so a
//   close() while waits are pending never frees memory a waiter sleeps on.
// - Results of async waits reach their environment through a uv_async_t that
//   is ref'd exactly while the environment has pending waits.
// - A file mapping is unmapped only by its BackingStore deleter, as for
//   segments: JS can never touch unmapped memory.

#include <node.h>
#include <uv.h>
#include <v8.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

// As in ipcbox_shm.cc: IPCBOX_PORTABLE builds the non-Linux branches on Linux too.
#if defined(__linux__) && !defined(IPCBOX_PORTABLE)
#define IPCBOX_LINUX 1
#else
#define IPCBOX_LINUX 0
#endif

#if IPCBOX_LINUX
#include <mqueue.h>
#endif
#ifndef SEM_VALUE_MAX
#define SEM_VALUE_MAX INT_MAX
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

using v8::Array;
using v8::ArrayBufferView;
using v8::BackingStore;
using v8::Boolean;
using v8::Context;
using v8::Exception;
using v8::External;
using v8::Function;
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

namespace ipcbox_unix {
namespace {

constexpr long kSliceMs = 100;
constexpr long kIdleExitMs = 1000;
constexpr size_t kStackBytes = 128 * 1024;
constexpr size_t kDefaultSemThreads = 64;

Local<String> Str(Isolate* iso, const char* s) { return String::NewFromUtf8(iso, s).ToLocalChecked(); }

void ThrowType(Isolate* iso, const char* msg) { iso->ThrowException(Exception::TypeError(Str(iso, msg))); }

void ThrowErrno(Isolate* iso, int err, const char* syscall, const std::string& path) {
  iso->ThrowException(node::ErrnoException(iso, err, syscall, nullptr, path.empty() ? nullptr : path.c_str()));
}

bool IntArg(Local<Value> v, double lo, double hi, double* out) {
  if (!v->IsNumber()) return false;
  double d = v.As<Number>()->Value();
  if (!(d >= lo && d <= hi) || std::floor(d) != d) return false;
  *out = d;
  return true;
}

Local<Value> Field(Isolate* iso, Local<Object> o, const char* name) {
  return o->Get(iso->GetCurrentContext(), Str(iso, name)).ToLocalChecked();
}

timespec Now(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
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

double MsUntil(const timespec& deadline) {
  timespec now = Now(CLOCK_MONOTONIC);
  return static_cast<double>(deadline.tv_sec - now.tv_sec) * 1000.0 +
         static_cast<double>(deadline.tv_nsec - now.tv_nsec) / 1e6;
}

// A timeout in ms: negative, NaN, Infinity or beyond ~30 years is "forever" (false).
bool DeadlineAfter(double ms, timespec* deadline) {
  if (!std::isfinite(ms) || !(ms >= 0) || ms > 1e12) return false;
  *deadline = AddMs(Now(CLOCK_MONOTONIC), ms);
  return true;
}

// ---- semaphores -------------------------------------------------------------

struct SemRef {
  sem_t* sem;
  explicit SemRef(sem_t* s) : sem(s) {}
  ~SemRef() { sem_close(sem); }
};

std::mutex sems_mu;
std::unordered_map<uint32_t, std::shared_ptr<SemRef>> sems;  // guarded by sems_mu
uint32_t next_sem = 1;

std::shared_ptr<SemRef> SemOf(Isolate* iso, Local<Value> v) {
  double id;
  if (!IntArg(v, 1, UINT32_MAX, &id)) {
    ThrowType(iso, "expected a semaphore id");
    return nullptr;
  }
  std::lock_guard<std::mutex> lk(sems_mu);
  auto it = sems.find(static_cast<uint32_t>(id));
  if (it == sems.end()) {
    ThrowErrno(iso, EBADF, "sem", "");
    return nullptr;
  }
  return it->second;
}

// Waits for the semaphore: true if acquired; false on timeout, cancel or failure
// (then *err is the errno). `cancel` null: one uninterrupted wait (sync callers).
bool SemWait(sem_t* sem, bool has_deadline, timespec deadline, const std::atomic<bool>* cancel, int* err) {
  for (;;) {
    if (cancel != nullptr && cancel->load()) return false;
    double left = has_deadline ? MsUntil(deadline) : 1e18;
    if (left <= 0) {
      if (sem_trywait(sem) == 0) return true;
      if (errno != EAGAIN && errno != EINTR) *err = errno;
      return false;
    }
#if IPCBOX_LINUX
    int r;
    if (cancel != nullptr || has_deadline) {
      double slice = cancel != nullptr ? std::min<double>(left, kSliceMs) : left;
#if defined(__GLIBC__)
      timespec until = AddMs(Now(CLOCK_MONOTONIC), slice);
      r = sem_clockwait(sem, CLOCK_MONOTONIC, &until);
#else
      // No sem_clockwait (musl): a realtime deadline; the slices keep a clock step short-lived.
      timespec until = AddMs(Now(CLOCK_REALTIME), slice);
      r = sem_timedwait(sem, &until);
#endif
    } else {
      r = sem_wait(sem);
    }
    if (r == 0) return true;
    if (errno == EINTR || errno == ETIMEDOUT) continue;
    *err = errno;
    return false;
#else
    // No sem_timedwait everywhere (macOS): poll sem_trywait every millisecond.
    if (sem_trywait(sem) == 0) return true;
    if (errno != EAGAIN && errno != EINTR) {
      *err = errno;
      return false;
    }
    timespec ms{0, 1000000};
    nanosleep(&ms, nullptr);
#endif
  }
}

enum SemResult { kAcquired, kTimedOut, kCancelled, kFailed };

struct UnixEnv;

struct SemJob {
  uint32_t id;
  std::shared_ptr<SemRef> sem;
  bool has_deadline;
  timespec deadline;
  std::atomic<bool> cancelled{false};
  SemResult result = kTimedOut;
  int error = 0;
  std::shared_ptr<UnixEnv> env;
};

struct PollHandle;

// Per Node environment (main thread or a worker). `mu` guards closed/done;
// the rest is used only on the environment's JS thread.
struct UnixEnv {
  std::mutex mu;
  bool closed = false;
  std::vector<std::shared_ptr<SemJob>> done;
  uv_async_t* async = nullptr;

  Isolate* iso = nullptr;
  Global<Context> context;
  std::unordered_map<uint32_t, std::pair<std::shared_ptr<SemJob>, Global<Promise::Resolver>>> waits;
  uint32_t next_wait = 1;
  std::unordered_map<uint32_t, PollHandle*> polls;
  uint32_t next_poll = 1;

  void UpdateRef() {
    if (waits.empty()) uv_unref(reinterpret_cast<uv_handle_t*>(async));
    else uv_ref(reinterpret_cast<uv_handle_t*>(async));
  }
};

void Deliver(std::shared_ptr<SemJob> job) {
  std::shared_ptr<UnixEnv> env = job->env;
  std::lock_guard<std::mutex> lk(env->mu);
  if (env->closed) {
    // Nobody will see this result; a token taken for it goes back.
    if (job->result == kAcquired) sem_post(job->sem->sem);
    return;
  }
  try {
    env->done.push_back(std::move(job));
  } catch (...) {
    return;
  }
  uv_async_send(env->async);
}

class SemPool {
 public:
  SemPool() {
    max_threads_ = kDefaultSemThreads;
    const char* limit = getenv("IPCBOX_SEM_WAITER_THREADS");
    if (limit != nullptr && *limit != '\0') {
      char* end = nullptr;
      long n = strtol(limit, &end, 10);
      if (end != nullptr && *end == '\0' && n >= 0 && n <= 65536) max_threads_ = static_cast<size_t>(n);
    }
  }

  // 0, or EAGAIN when every allowed thread is busy, or pthread_create's errno.
  int Submit(const std::shared_ptr<SemJob>& job) {
    std::lock_guard<std::mutex> lk(mu_);
    if (idle_ == 0) {
      if (threads_ >= max_threads_) return EAGAIN;
      int err = Start();
      if (err != 0) return err;
      threads_++;
      idle_++;
    }
    queue_.push_back(job);
    idle_--;
    cv_.notify_one();
    return 0;
  }

 private:
  int Start() {
    pthread_attr_t attr;
    int err = pthread_attr_init(&attr);
    if (err != 0) return err;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, kStackBytes);
    // Signals stay with Node's threads (no handlers on a thread V8 does not know).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    err = pthread_create(&t, &attr, Main, this);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    pthread_attr_destroy(&attr);
    return err;
  }

  static void* Main(void* self) {
    static_cast<SemPool*>(self)->Run();
    return nullptr;
  }

  void Run() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      if (queue_.empty() &&
          !cv_.wait_for(lk, std::chrono::milliseconds(kIdleExitMs), [this] { return !queue_.empty(); })) {
        threads_--;
        idle_--;
        return;
      }
      std::shared_ptr<SemJob> job = std::move(queue_.front());
      queue_.pop_front();
      lk.unlock();
      int err = 0;
      bool got = SemWait(job->sem->sem, job->has_deadline, job->deadline, &job->cancelled, &err);
      if (got && job->cancelled.load()) {
        sem_post(job->sem->sem);  // cancelled while acquiring: give the token back
        got = false;
      }
      job->error = err;
      job->result = got ? kAcquired : err != 0 ? kFailed : job->cancelled.load() ? kCancelled : kTimedOut;
      Deliver(std::move(job));
      lk.lock();
      idle_++;
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<SemJob>> queue_;
  size_t threads_ = 0;
  size_t idle_ = 0;  // threads not serving a job (a queued job counts as served)
  size_t max_threads_;
};

SemPool* Pool() {
  static SemPool* pool = new SemPool();  // never destroyed: its threads outlive statics
  return pool;
}

// ---- polling ----------------------------------------------------------------

struct PollHandle {
  uv_poll_t poll;
  uint32_t id;
  UnixEnv* env;
  Global<Function> callback;
};

void OnPoll(uv_poll_t* handle, int status, int events) {
  auto* p = reinterpret_cast<PollHandle*>(handle);
  Isolate* iso = p->env->iso;
  HandleScope scope(iso);
  Local<Context> ctx = p->env->context.Get(iso);
  Context::Scope cscope(ctx);
  Local<Value> argv[] = {Integer::New(iso, status), Integer::New(iso, events)};
  node::MakeCallback(iso, ctx->Global(), p->callback.Get(iso), 2, argv, {0, 0});
}

void ClosePoll(PollHandle* p) {
  uv_poll_stop(&p->poll);
  p->callback.Reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&p->poll),
           [](uv_handle_t* h) { delete reinterpret_cast<PollHandle*>(h); });
}

UnixEnv* EnvOf(const FunctionCallbackInfo<Value>& args) {
  return static_cast<std::shared_ptr<UnixEnv>*>(args.Data().As<External>()->Value())->get();
}

void OnAsync(uv_async_t* handle) {
  auto* holder = static_cast<std::shared_ptr<UnixEnv>*>(handle->data);
  UnixEnv* env = holder->get();
  std::vector<std::shared_ptr<SemJob>> done;
  {
    std::lock_guard<std::mutex> lk(env->mu);
    done.swap(env->done);
  }
  Isolate* iso = env->iso;
  HandleScope scope(iso);
  Local<Context> ctx = env->context.Get(iso);
  Context::Scope cscope(ctx);
  // Runs promise reactions (microtasks) before returning to the loop.
  node::CallbackScope callback_scope(iso, Object::New(iso), {0, 0});
  for (auto& job : done) {
    auto it = env->waits.find(job->id);
    if (it == env->waits.end()) {
      if (job->result == kAcquired) sem_post(job->sem->sem);  // cancelled meanwhile: give it back
      continue;
    }
    Local<Promise::Resolver> resolver = it->second.second.Get(iso);
    env->waits.erase(it);
    if (job->result == kFailed) {
      resolver->Reject(ctx, node::ErrnoException(iso, job->error, "sem_clockwait")).Check();
    } else {
      const char* r = job->result == kAcquired ? "ok" : job->result == kCancelled ? "cancelled" : "timed-out";
      resolver->Resolve(ctx, Str(iso, r)).Check();
    }
  }
  env->UpdateRef();
}

void OnEnvCleanup(void* arg) {
  auto* holder = static_cast<std::shared_ptr<UnixEnv>*>(arg);
  UnixEnv* env = holder->get();
  {
    std::lock_guard<std::mutex> lk(env->mu);
    env->closed = true;
    for (auto& job : env->done) {
      if (job->result == kAcquired) sem_post(job->sem->sem);
    }
    env->done.clear();
  }
  for (auto& kv : env->waits) kv.second.first->cancelled.store(true);
  env->waits.clear();
  for (auto& kv : env->polls) ClosePoll(kv.second);
  env->polls.clear();
  env->context.Reset();
  uv_close(reinterpret_cast<uv_handle_t*>(env->async), [](uv_handle_t* h) {
    delete static_cast<std::shared_ptr<UnixEnv>*>(h->data);
    delete reinterpret_cast<uv_async_t*>(h);
  });
}

// ---- exported functions -----------------------------------------------------

void Pipe(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  int fds[2];
#if IPCBOX_LINUX
  if (pipe2(fds, O_CLOEXEC) != 0) return ThrowErrno(iso, errno, "pipe2", "");
#else
  // No pipe2: a fork+exec in another thread between these calls could leak the
  // pair into a child; Node spawns from the JS thread, which is here.
  if (pipe(fds) != 0) return ThrowErrno(iso, errno, "pipe", "");
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
#endif
  Local<Context> ctx = iso->GetCurrentContext();
  Local<Array> out = Array::New(iso, 2);
  out->Set(ctx, 0, Integer::New(iso, fds[0])).Check();
  out->Set(ctx, 1, Integer::New(iso, fds[1])).Check();
  args.GetReturnValue().Set(out);
}

void Mkfifo(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  double mode;
  if (!args[0]->IsString() || !IntArg(args[1], 0, 07777, &mode)) return ThrowType(iso, "mkfifo(path, mode)");
  std::string path = *String::Utf8Value(iso, args[0]);
  if (mkfifo(path.c_str(), static_cast<mode_t>(mode)) != 0) ThrowErrno(iso, errno, "mkfifo", path);
}

void PollStart(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  UnixEnv* env = EnvOf(args);
  double fd, events;
  if (!IntArg(args[0], 0, INT_MAX, &fd) || !IntArg(args[1], 0, 3, &events) || !args[2]->IsFunction()) {
    return ThrowType(iso, "pollStart(fd, events, callback)");
  }
  auto* p = new PollHandle();
  int err = uv_poll_init(node::GetCurrentEventLoop(iso), &p->poll, static_cast<int>(fd));
  if (err != 0) {
    delete p;
    return ThrowErrno(iso, -err, "uv_poll_init", "");
  }
  p->env = env;
  p->id = env->next_poll++;
  p->callback.Reset(iso, args[2].As<Function>());
  if (events != 0 && (err = uv_poll_start(&p->poll, static_cast<int>(events), OnPoll)) != 0) {
    ClosePoll(p);
    return ThrowErrno(iso, -err, "uv_poll_start", "");
  }
  env->polls.emplace(p->id, p);
  args.GetReturnValue().Set(Integer::NewFromUnsigned(iso, p->id));
}

PollHandle* PollOf(const FunctionCallbackInfo<Value>& args) {
  double id;
  if (!IntArg(args[0], 1, UINT32_MAX, &id)) return nullptr;
  UnixEnv* env = EnvOf(args);
  auto it = env->polls.find(static_cast<uint32_t>(id));
  return it == env->polls.end() ? nullptr : it->second;
}

void PollUpdate(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  PollHandle* p = PollOf(args);
  double events;
  if (p == nullptr || !IntArg(args[1], 0, 3, &events)) return ThrowType(iso, "pollUpdate(id, events)");
  int err = events == 0 ? uv_poll_stop(&p->poll) : uv_poll_start(&p->poll, static_cast<int>(events), OnPoll);
  if (err != 0) ThrowErrno(iso, -err, "uv_poll_start", "");
}

void PollClose(const FunctionCallbackInfo<Value>& args) {
  PollHandle* p = PollOf(args);
  if (p == nullptr) return;
  EnvOf(args)->polls.erase(p->id);
  ClosePoll(p);
}

void WaitFdSync(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  double fd, events;
  if (!IntArg(args[0], 0, INT_MAX, &fd) || !IntArg(args[1], 1, 3, &events) || !args[2]->IsNumber()) {
    return ThrowType(iso, "waitFdSync(fd, events, timeoutMs)");
  }
  timespec deadline{};
  bool has_deadline = DeadlineAfter(args[2].As<Number>()->Value(), &deadline);
  pollfd p{static_cast<int>(fd), static_cast<short>(((int)events & 1 ? POLLIN : 0) | ((int)events & 2 ? POLLOUT : 0)), 0};
  for (;;) {
    int ms = -1;
    if (has_deadline) {
      double left = std::ceil(MsUntil(deadline));
      ms = left <= 0 ? 0 : left > INT_MAX ? INT_MAX : static_cast<int>(left);
    }
    int r = poll(&p, 1, ms);
    if (r > 0) return args.GetReturnValue().Set(Boolean::New(iso, true));
    if (r == 0 && (!has_deadline || MsUntil(deadline) <= 0)) return args.GetReturnValue().Set(Boolean::New(iso, false));
    if (r < 0 && errno != EINTR) return ThrowErrno(iso, errno, "poll", "");
  }
}

// mq_* where they exist; ENOSYS elsewhere (macOS has no POSIX message queues).
#if IPCBOX_LINUX
#define IPCBOX_NO_MQ(iso) ((void)0)
#else
#define IPCBOX_NO_MQ(iso) return ThrowErrno(iso, ENOSYS, "mq_open", "")
#endif

void MqOpen(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  if (!args[0]->IsString() || !args[1]->IsObject()) return ThrowType(iso, "mqOpen(name, flags)");
  IPCBOX_NO_MQ(iso);
#if IPCBOX_LINUX
  std::string name = *String::Utf8Value(iso, args[0]);
  Local<Object> flags = args[1].As<Object>();
  bool create = Field(iso, flags, "create")->BooleanValue(iso);
  bool exclusive = Field(iso, flags, "exclusive")->BooleanValue(iso);
  double mode = 0600, max_msgs = 0, msg_size = 0;
  IntArg(Field(iso, flags, "mode"), 0, 0777, &mode);
  IntArg(Field(iso, flags, "maxMessages"), 0, LONG_MAX, &max_msgs);
  IntArg(Field(iso, flags, "messageSize"), 0, LONG_MAX, &msg_size);
  int oflag = O_RDWR | O_NONBLOCK | (create ? O_CREAT : 0) | (create && exclusive ? O_EXCL : 0);
  struct mq_attr attr{};
  attr.mq_maxmsg = static_cast<long>(max_msgs);
  attr.mq_msgsize = static_cast<long>(msg_size);
  // Both or neither: the kernel needs both, and uses its defaults for a NULL attr.
  bool with_attr = create && max_msgs > 0 && msg_size > 0;
  mqd_t q = mq_open(name.c_str(), oflag, static_cast<mode_t>(mode), with_attr ? &attr : nullptr);
  if (q == static_cast<mqd_t>(-1)) return ThrowErrno(iso, errno, "mq_open", name);
  // mq_open applies the umask; an exclusive creator owns the queue and sets its mode.
  if (create && exclusive && fchmod(q, static_cast<mode_t>(mode)) != 0) {
    int err = errno;
    mq_close(q);
    mq_unlink(name.c_str());
    return ThrowErrno(iso, err, "fchmod", name);
  }
  args.GetReturnValue().Set(Integer::New(iso, q));
#endif
}

bool MqdArg(const FunctionCallbackInfo<Value>& args, int* fd) {
  double d;
  if (!IntArg(args[0], 0, INT_MAX, &d)) {
    ThrowType(args.GetIsolate(), "expected a queue descriptor");
    return false;
  }
  *fd = static_cast<int>(d);
  return true;
}

void MqClose(const FunctionCallbackInfo<Value>& args) {
  int fd;
  if (!MqdArg(args, &fd)) return;
  IPCBOX_NO_MQ(args.GetIsolate());
#if IPCBOX_LINUX
  if (mq_close(fd) != 0) ThrowErrno(args.GetIsolate(), errno, "mq_close", "");
#endif
}

void MqUnlink(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  if (!args[0]->IsString()) return ThrowType(iso, "mqUnlink(name)");
  IPCBOX_NO_MQ(iso);
#if IPCBOX_LINUX
  std::string name = *String::Utf8Value(iso, args[0]);
  if (mq_unlink(name.c_str()) != 0) ThrowErrno(iso, errno, "mq_unlink", name);
#endif
}

void MqGetattr(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  int fd;
  if (!MqdArg(args, &fd)) return;
  IPCBOX_NO_MQ(iso);
#if IPCBOX_LINUX
  struct mq_attr attr;
  if (mq_getattr(fd, &attr) != 0) return ThrowErrno(iso, errno, "mq_getattr", "");
  Local<Context> ctx = iso->GetCurrentContext();
  Local<Object> out = Object::New(iso);
  out->Set(ctx, Str(iso, "maxMessages"), Number::New(iso, static_cast<double>(attr.mq_maxmsg))).Check();
  out->Set(ctx, Str(iso, "messageSize"), Number::New(iso, static_cast<double>(attr.mq_msgsize))).Check();
  out->Set(ctx, Str(iso, "currentMessages"), Number::New(iso, static_cast<double>(attr.mq_curmsgs))).Check();
  args.GetReturnValue().Set(out);
#endif
}

void MqSend(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  int fd;
  if (!MqdArg(args, &fd)) return;
  double prio;
  if (!args[1]->IsArrayBufferView() || !IntArg(args[2], 0, UINT32_MAX, &prio)) {
    return ThrowType(iso, "mqSend(fd, bytes: Uint8Array, priority)");
  }
  IPCBOX_NO_MQ(iso);
#if IPCBOX_LINUX
  Local<ArrayBufferView> view = args[1].As<ArrayBufferView>();
  std::shared_ptr<BackingStore> store = view->Buffer()->GetBackingStore();
  const char* data = static_cast<const char*>(store->Data()) + view->ByteOffset();
  for (;;) {
    if (mq_send(fd, data, view->ByteLength(), static_cast<unsigned>(prio)) == 0) {
      return args.GetReturnValue().Set(Boolean::New(iso, true));
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return args.GetReturnValue().Set(Boolean::New(iso, false));
    return ThrowErrno(iso, errno, "mq_send", "");
  }
#endif
}

void MqReceive(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  int fd;
  if (!MqdArg(args, &fd)) return;
  if (!args[1]->IsArrayBufferView()) return ThrowType(iso, "mqReceive(fd, buffer: Uint8Array)");
  IPCBOX_NO_MQ(iso);
#if IPCBOX_LINUX
  Local<ArrayBufferView> view = args[1].As<ArrayBufferView>();
  std::shared_ptr<BackingStore> store = view->Buffer()->GetBackingStore();
  char* data = static_cast<char*>(store->Data()) + view->ByteOffset();
  unsigned prio = 0;
  for (;;) {
    ssize_t n = mq_receive(fd, data, view->ByteLength(), &prio);
    if (n >= 0) {
      Local<Context> ctx = iso->GetCurrentContext();
      Local<Object> out = Object::New(iso);
      out->Set(ctx, Str(iso, "length"), Number::New(iso, static_cast<double>(n))).Check();
      out->Set(ctx, Str(iso, "priority"), Integer::NewFromUnsigned(iso, prio)).Check();
      return args.GetReturnValue().Set(out);
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return args.GetReturnValue().SetNull();
    return ThrowErrno(iso, errno, "mq_receive", "");
  }
#endif
}

void SemOpen(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  if (!args[0]->IsString() || !args[1]->IsObject()) return ThrowType(iso, "semOpen(name, flags)");
  std::string name = *String::Utf8Value(iso, args[0]);
  Local<Object> flags = args[1].As<Object>();
  bool create = Field(iso, flags, "create")->BooleanValue(iso);
  bool exclusive = Field(iso, flags, "exclusive")->BooleanValue(iso);
  double mode = 0600, initial = 0;
  IntArg(Field(iso, flags, "mode"), 0, 0777, &mode);
  if (!IntArg(Field(iso, flags, "initial"), 0, SEM_VALUE_MAX, &initial)) initial = 0;
  int oflag = (create ? O_CREAT : 0) | (create && exclusive ? O_EXCL : 0);
  sem_t* sem = sem_open(name.c_str(), oflag, static_cast<mode_t>(mode), static_cast<unsigned>(initial));
  if (sem == SEM_FAILED) return ThrowErrno(iso, errno, "sem_open", name);
  std::shared_ptr<SemRef> ref;
  try {
    ref = std::make_shared<SemRef>(sem);
  } catch (...) {
    sem_close(sem);
    return ThrowErrno(iso, ENOMEM, "sem_open", name);
  }
  std::lock_guard<std::mutex> lk(sems_mu);
  uint32_t id = next_sem++;
  if (next_sem == 0) next_sem = 1;
  sems.emplace(id, std::move(ref));
  args.GetReturnValue().Set(Integer::NewFromUnsigned(iso, id));
}

void SemClose(const FunctionCallbackInfo<Value>& args) {
  double id;
  if (!IntArg(args[0], 1, UINT32_MAX, &id)) return ThrowType(args.GetIsolate(), "semClose(id)");
  std::shared_ptr<SemRef> last;  // sem_close (maybe) after the lock is released
  std::lock_guard<std::mutex> lk(sems_mu);
  auto it = sems.find(static_cast<uint32_t>(id));
  if (it == sems.end()) return;
  last = std::move(it->second);
  sems.erase(it);
}

void SemUnlink(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  if (!args[0]->IsString()) return ThrowType(iso, "semUnlink(name)");
  std::string name = *String::Utf8Value(iso, args[0]);
  if (sem_unlink(name.c_str()) != 0) ThrowErrno(iso, errno, "sem_unlink", name);
}

void SemPost(const FunctionCallbackInfo<Value>& args) {
  std::shared_ptr<SemRef> s = SemOf(args.GetIsolate(), args[0]);
  if (s != nullptr && sem_post(s->sem) != 0) ThrowErrno(args.GetIsolate(), errno, "sem_post", "");
}

void SemTryWait(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  std::shared_ptr<SemRef> s = SemOf(iso, args[0]);
  if (s == nullptr) return;
  for (;;) {
    if (sem_trywait(s->sem) == 0) return args.GetReturnValue().Set(Boolean::New(iso, true));
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return args.GetReturnValue().Set(Boolean::New(iso, false));
    return ThrowErrno(iso, errno, "sem_trywait", "");
  }
}

void SemValue(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  std::shared_ptr<SemRef> s = SemOf(iso, args[0]);
  if (s == nullptr) return;
  int v = 0;
  if (sem_getvalue(s->sem, &v) != 0) return ThrowErrno(iso, errno, "sem_getvalue", "");
  args.GetReturnValue().Set(Integer::New(iso, v));
}

void SemWaitSync(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  std::shared_ptr<SemRef> s = SemOf(iso, args[0]);
  if (s == nullptr) return;
  if (!args[1]->IsNumber()) return ThrowType(iso, "semWaitSync(id, timeoutMs)");
  timespec deadline{};
  bool has_deadline = DeadlineAfter(args[1].As<Number>()->Value(), &deadline);
  int err = 0;
  bool got = SemWait(s->sem, has_deadline, deadline, nullptr, &err);
  if (err != 0) return ThrowErrno(iso, err, "sem_clockwait", "");
  args.GetReturnValue().Set(Boolean::New(iso, got));
}

void SemWaitAsync(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  Local<Context> ctx = iso->GetCurrentContext();
  UnixEnv* env = EnvOf(args);
  std::shared_ptr<SemRef> s = SemOf(iso, args[0]);
  if (s == nullptr) return;
  if (!args[1]->IsNumber()) return ThrowType(iso, "semWaitAsync(id, timeoutMs)");
  auto job = std::make_shared<SemJob>();
  job->sem = std::move(s);
  job->has_deadline = DeadlineAfter(args[1].As<Number>()->Value(), &job->deadline);
  job->id = env->next_wait++;
  if (env->next_wait == 0) env->next_wait = 1;
  job->env = *static_cast<std::shared_ptr<UnixEnv>*>(args.Data().As<External>()->Value());
  Local<Promise::Resolver> resolver = Promise::Resolver::New(ctx).ToLocalChecked();
  int err = Pool()->Submit(job);
  if (err != 0) {
    std::string why = std::string(strerror(err)) +
                      (err == EAGAIN ? ": every semaphore waiter thread is busy (IPCBOX_SEM_WAITER_THREADS)"
                                     : ": cannot start a semaphore waiter thread");
    iso->ThrowException(node::ErrnoException(iso, err, "semWaitAsync", why.c_str()));
    return;
  }
  env->waits.emplace(job->id, std::make_pair(job, Global<Promise::Resolver>(iso, resolver)));
  env->UpdateRef();
  Local<Object> out = Object::New(iso);
  out->Set(ctx, Str(iso, "id"), Integer::NewFromUnsigned(iso, job->id)).Check();
  out->Set(ctx, Str(iso, "promise"), resolver->GetPromise()).Check();
  args.GetReturnValue().Set(out);
}

void SemCancel(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  UnixEnv* env = EnvOf(args);
  double id;
  if (!IntArg(args[0], 1, UINT32_MAX, &id)) return ThrowType(iso, "semCancel(id)");
  auto it = env->waits.find(static_cast<uint32_t>(id));
  if (it == env->waits.end()) return args.GetReturnValue().Set(Boolean::New(iso, false));
  it->second.first->cancelled.store(true);
  Local<Promise::Resolver> resolver = it->second.second.Get(iso);
  env->waits.erase(it);
  resolver->Resolve(iso->GetCurrentContext(), Str(iso, "cancelled")).Check();
  env->UpdateRef();
  args.GetReturnValue().Set(Boolean::New(iso, true));
}

void MapFile(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  double size;
  if (!args[0]->IsString() || !IntArg(args[1], 0, 0x7fffffffffff, &size) || !args[2]->IsObject()) {
    return ThrowType(iso, "mapFile(path, size, flags)");
  }
  std::string path = *String::Utf8Value(iso, args[0]);
  Local<Object> flags = args[2].As<Object>();
  bool create = Field(iso, flags, "create")->BooleanValue(iso);
  bool read_only = Field(iso, flags, "readOnly")->BooleanValue(iso);
  double mode = 0600;
  IntArg(Field(iso, flags, "mode"), 0, 07777, &mode);
  int oflag = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | (create && !read_only ? O_CREAT : 0);
  int fd = open(path.c_str(), oflag, static_cast<mode_t>(mode));
  if (fd < 0) return ThrowErrno(iso, errno, "open", path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(iso, err, "fstat", path);
  }
  // Creating grows a shorter file to `size`; otherwise `size` bytes (0 = the
  // whole file) must exist: a mapping past the end faults (SIGBUS) on access.
  size_t len = static_cast<size_t>(size);
  size_t have = static_cast<size_t>(st.st_size);
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return ThrowErrno(iso, EINVAL, "mmap", path);
  }
  if (create && !read_only && len > have && ftruncate(fd, static_cast<off_t>(len)) != 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(iso, err, "ftruncate", path);
  }
  if (len == 0) len = have;
  if (len == 0 || (!(create && !read_only) && len > have)) {
    close(fd);
    return ThrowErrno(iso, EINVAL, "mmap", path);
  }
  void* addr = mmap(nullptr, len, read_only ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (addr == MAP_FAILED) return ThrowErrno(iso, err, "mmap", path);
  std::unique_ptr<BackingStore> store = SharedArrayBuffer::NewBackingStore(
      addr, len, [](void* data, size_t length, void*) { munmap(data, length); }, nullptr);
  args.GetReturnValue().Set(SharedArrayBuffer::New(iso, std::move(store)));
}

void Msync(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  if (!args[0]->IsSharedArrayBuffer()) return ThrowType(iso, "msync(sab)");
  std::shared_ptr<BackingStore> store = args[0].As<SharedArrayBuffer>()->GetBackingStore();
  if (msync(store->Data(), store->ByteLength(), MS_SYNC) != 0) ThrowErrno(iso, errno, "msync", "");
}

}  // namespace

// Adds the exports above to `exports`; called once per environment from ipcbox_shm.cc.
void RegisterUnix(Local<Object> exports, Local<Context> context) {
  Isolate* iso = context->GetIsolate();
  auto* holder = new std::shared_ptr<UnixEnv>(std::make_shared<UnixEnv>());
  UnixEnv* env = holder->get();
  env->iso = iso;
  env->context.Reset(iso, context);
  env->async = new uv_async_t();
  uv_async_init(node::GetCurrentEventLoop(iso), env->async, OnAsync);
  env->async->data = holder;
  uv_unref(reinterpret_cast<uv_handle_t*>(env->async));
  node::AddEnvironmentCleanupHook(iso, OnEnvCleanup, holder);

  Local<External> data = External::New(iso, holder);
  auto set = [&](const char* name, v8::FunctionCallback cb) {
    Local<FunctionTemplate> t = FunctionTemplate::New(iso, cb, data);
    exports->Set(context, Str(iso, name), t->GetFunction(context).ToLocalChecked()).Check();
  };
  set("pipe", Pipe);
  set("mkfifo", Mkfifo);
  set("pollStart", PollStart);
  set("pollUpdate", PollUpdate);
  set("pollClose", PollClose);
  set("waitFdSync", WaitFdSync);
  set("mqOpen", MqOpen);
  set("mqClose", MqClose);
  set("mqUnlink", MqUnlink);
  set("mqGetattr", MqGetattr);
  set("mqSend", MqSend);
  set("mqReceive", MqReceive);
  set("semOpen", SemOpen);
  set("semClose", SemClose);
  set("semUnlink", SemUnlink);
  set("semPost", SemPost);
  set("semTryWait", SemTryWait);
  set("semValue", SemValue);
  set("semWaitSync", SemWaitSync);
  set("semWaitAsync", SemWaitAsync);
  set("semCancel", SemCancel);
  set("mapFile", MapFile);
  set("msync", Msync);
}

}  // namespace ipcbox_unix
