// ipcbox_shm: POSIX shared memory, shared futexes and socket peer credentials for Node.js (Linux;
// elsewhere it builds, and the futex calls fail with ENOSYS).
//
// The whole native surface of ipcbox. Everything else (layouts, locks, rings)
// lives in TypeScript under src/shm/. Exports:
//   open(name, size, {create, exclusive, mode, guard}) -> SharedArrayBuffer
//   guardIndex(sab) -> slot of a guarded mapping or -1, guardHit(slot) -> boolean (see "guarded mappings")
//   unlink(name), stat(name) -> {size, mode, uid}
//   alias(sab, byteOffset, length) -> SharedArrayBuffer over those bytes of sab's memory
//   futexWait(sab, byteOffset, expected, timeoutMs) -> 'ok'|'timed-out'|'not-equal'
//   futexWaitAsync(sab, byteOffset, expected, timeoutMs)
//       -> {id, promise}; promise resolves to the same strings or 'cancelled'
//   futexCancel(id) -> boolean, futexWake(sab, byteOffset, count) -> number
//   getpid(), gettid(), isAlive(pid)
//   peerCredentials(fd) -> {pid, uid, gid} of a connected Unix socket's peer
//   and the exports of ipcbox_unix.cc (pipes, FIFOs, message queues, named semaphores, mapped files)
// Failures of system calls throw (or reject with) an Error carrying .errno
// (positive), .code ('EAGAIN'...) and .syscall.
//
// Invariants:
// - A mapping is created by open() and unmapped only by the BackingStore
//   deleter, i.e. when V8 frees the last SharedArrayBuffer on it (in any
//   isolate), every alias() of it is freed and every pending async waiter on
//   it has finished. An alias's deleter only drops its reference to the
//   mapping's BackingStore. No JS-visible unmap exists, so JS can never touch
//   unmapped memory.
// - Futexes are shared (no FUTEX_PRIVATE_FLAG) so they work across
//   processes; the kernel keys them by (inode, page offset). Words must be
//   4-byte aligned and inside the buffer; checked here, else TypeError.
// - Timeouts are absolute CLOCK_MONOTONIC deadlines, so EINTR restarts never
//   extend a wait. A timeout that is negative, NaN, Infinity or so large that
//   its deadline does not fit in a timespec (kForeverSec) means no deadline.
// - A futex call failing with an errno a correct call never gets (EINVAL,
//   EFAULT, ENOSYS) is an error (thrown, or the wait's promise rejects); it is
//   never reported as a wake, which would make callers spin.
// - Async waits run on a bounded pool of dedicated threads (not libuv's pool,
//   which a blocked futex would starve). With futex_waitv (Linux >= 5.16) one
//   thread multiplexes up to kJobsPerThread waits plus its own control word;
//   without it (or with IPCBOX_FUTEX_WAITV=0) a thread serves one wait at a
//   time. Threads start on demand,
//   at most IPCBOX_WAITER_THREADS of them (default 64 with futex_waitv, 512
//   without), with small stacks and every signal blocked, and exit after
//   kIdleExitMs without work. A wait that finds no thread (the cap reached,
//   or pthread_create failed) throws an errno Error from futexWaitAsync
//   (EAGAIN for the cap); nothing escapes into V8 as a C++ exception.
// - A pending async wait holds a shared_ptr to the BackingStore (in its
//   environment's table, released on the JS thread, never by a waiter
//   thread), so the memory it sleeps on stays mapped until it settles.
//   Results travel to the owning environment (main thread or a worker)
//   through a uv_async_t, which is ref'd exactly while that environment has
//   pending async waits: a pending wait keeps the process alive, nothing
//   else does.
// - Wakes: a multiplexing thread re-enters its wait after every change of its
//   job list and reports a job woken when its word changed; so a wake that
//   comes without a change of the word may be missed (every ipcbox primitive
//   changes the word before waking, which futex callers must do anyway).
// - futexCancel resolves the promise at once on the JS thread, then tells the
//   job's thread (its control word, or a per-waiter bitset wake on the word
//   for a single-wait thread, which sleeps at most kSliceMs per futex call and
//   rechecks its cancel flag).
// - Environment teardown (worker exit) cancels its waiters; jobs that finish
//   afterwards drop their result instead of touching the closed handle.

#include <node.h>
#include <uv.h>
#include <v8.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

// IPCBOX_PORTABLE builds the non-Linux branches on Linux too, so CI checks that they compile.
#if defined(__linux__) && !defined(IPCBOX_PORTABLE)
#define IPCBOX_LINUX 1
#else
#define IPCBOX_LINUX 0
#endif

#if IPCBOX_LINUX
#include <linux/futex.h>
#include <sys/syscall.h>
#else
// Values of the Linux ABI, so the code below compiles; Futex()/FutexWaitv() fail with ENOSYS.
#define FUTEX_WAKE 1
#define FUTEX_WAIT_BITSET 9
#define FUTEX_WAKE_BITSET 10
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_BITSET_MATCH_ANY 0xffffffff
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
#endif

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <string>
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
constexpr long kIdleExitMs = 1000;
constexpr size_t kWaitvMax = 128;                  // FUTEX_WAITV_MAX
constexpr size_t kJobsPerThread = kWaitvMax - 1;   // entry 0 is the thread's control word
constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kDefaultThreadsWaitv = 64;
constexpr size_t kDefaultThreadsSingle = 512;
// Deadlines further away than this (about 3e10 years) are no deadline.
constexpr double kForeverSec = 1e18;

enum WaitResult { kOk, kTimedOut, kNotEqual, kCancelled, kError };

const char* WaitResultName(WaitResult r) {
  switch (r) {
    case kOk: return "ok";
    case kTimedOut: return "timed-out";
    case kNotEqual: return "not-equal";
    case kCancelled: return "cancelled";
    case kError: return "error";
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
#if IPCBOX_LINUX
  return syscall(SYS_futex, addr, op, val, ts, nullptr, val3);
#else
  errno = ENOSYS;
  return -1;
#endif
}

// struct futex_waitv of the Linux ABI (declared here: older headers lack it).
struct WaitvEntry {
  uint64_t val;
  uint64_t uaddr;
  uint32_t flags;
  uint32_t reserved;
};

long FutexWaitv(WaitvEntry* entries, unsigned n, const timespec* deadline) {
#if IPCBOX_LINUX && defined(SYS_futex_waitv)
  return syscall(SYS_futex_waitv, entries, n, 0, deadline, CLOCK_MONOTONIC);
#else
  errno = ENOSYS;
  return -1;
#endif
}

// futex_waitv exists (and is not filtered) if a call with no futexes is refused as
// invalid. IPCBOX_FUTEX_WAITV=0 uses the one-wait-per-thread fallback anyway (as on
// kernels before 5.16; the tests run both).
bool HaveWaitv() {
  const char* use = getenv("IPCBOX_FUTEX_WAITV");
  if (use != nullptr && strcmp(use, "0") == 0) return false;
  return FutexWaitv(nullptr, 0, nullptr) < 0 && errno == EINVAL;
}

timespec Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts;
}

// t + ms for 0 <= ms and a result below kForeverSec (callers check).
timespec AddMs(timespec t, double ms) {
  double whole = std::floor(ms / 1000.0);
  double ns = (ms - whole * 1000.0) * 1e6;
  if (!(ns >= 0)) ns = 0;
  if (ns > 999999999.0) ns = 999999999.0;
  t.tv_sec += static_cast<time_t>(whole);
  t.tv_nsec += static_cast<long>(ns);
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec += 1;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

bool Before(const timespec& a, const timespec& b) {
  return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

// The deadline for a timeout of `ms` from now; false for none (see the invariants).
bool DeadlineAfter(double ms, timespec* deadline) {
  if (!std::isfinite(ms) || !(ms >= 0)) return false;
  timespec now = Now();
  double limit = std::min(kForeverSec, static_cast<double>(std::numeric_limits<time_t>::max()) / 2);
  if (std::floor(ms / 1000.0) >= limit - static_cast<double>(now.tv_sec)) return false;
  *deadline = AddMs(now, ms);
  return true;
}

// One wait until woken, value mismatch, deadline, cancel or error (errno in
// *err). `cancel` null means uncancellable (sync waits): then no slicing.
WaitResult DoWait(uint32_t* addr, uint32_t expected, bool has_deadline, timespec deadline,
                  uint32_t bitset, const std::atomic<bool>* cancel, int* err) {
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
    *err = errno;
    return kError;
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
  *has_deadline = DeadlineAfter(v.As<Number>()->Value(), deadline);
  return true;
}

uint32_t ReadExpected(Local<Value> v) {
  double ev = v.As<Number>()->Value();
  return ev < 0 ? static_cast<uint32_t>(static_cast<int32_t>(ev)) : static_cast<uint32_t>(ev);
}

// ---- async waits ----------------------------------------------------------

struct EnvState;
struct Waiter;

// A job never owns the memory it sleeps on: its BackingStore reference lives
// in the environment's Pending entry, dropped on the JS thread, so no waiter
// thread ever frees a BackingStore (which is unsafe once V8 is torn down at
// exit). The JS side drops it only after the job was delivered or cancelled
// (Cancel runs under the pool mutex); after a cancel the thread never reads
// the word again (Sweep checks the flag first), and a futex call already
// under way on it can at worst return EFAULT, which is then not an error.
struct Job {
  uint32_t* addr;
  uint32_t expected;
  bool has_deadline;
  timespec deadline;
  uint32_t id;
  std::atomic<bool> cancelled{false};
  WaitResult result = kOk;
  int error = 0;                        // errno when result == kError
  std::shared_ptr<EnvState> env;
  // Pool-mutex guarded: the thread serving the job (null once it finished),
  // and whether it has been in a futex wait yet (a word that changed before
  // that is 'not-equal', after it a wake).
  Waiter* owner = nullptr;
  bool parked = false;
};

uint32_t BitFor(uint32_t id) { return 1u << (id & 31); }

struct Pending {
  std::shared_ptr<Job> job;
  std::shared_ptr<BackingStore> store;  // keeps the job's word mapped until it settles
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

// One waiter thread: its jobs (pool-mutex guarded) and a private futex word
// bumped whenever its jobs change, which is entry 0 of its futex_waitv.
// Cancelled jobs leave `jobs` at once (their place is free for the next
// wait) and stay in `retired` until the thread is back from its futex call,
// so the jobs it sleeps on outlive the call.
struct Waiter {
  std::vector<std::shared_ptr<Job>> jobs;
  std::vector<std::shared_ptr<Job>> retired;
  uint64_t cancels = 0;  // jobs of this thread cancelled so far
  std::atomic<uint32_t> control{0};
};

// Hands a finished job's result to its environment (any thread).
void Deliver(std::shared_ptr<Job> job) {
  std::shared_ptr<EnvState> env = job->env;
  std::lock_guard<std::mutex> lk(env->mu);
  if (env->closed) return;
  try {
    env->done.push_back(std::move(job));
  } catch (...) {
    return;  // out of memory: this wait never settles (the process is failing anyway)
  }
  uv_async_send(env->async);
}

class WaiterPool {
 public:
  static WaiterPool* Pool();

  WaiterPool() : waitv_(HaveWaitv()) {
    per_thread_ = waitv_ ? kJobsPerThread : 1;
    max_threads_ = waitv_ ? kDefaultThreadsWaitv : kDefaultThreadsSingle;
    const char* limit = getenv("IPCBOX_WAITER_THREADS");
    if (limit != nullptr && *limit != '\0') {
      char* end = nullptr;
      long n = strtol(limit, &end, 10);
      if (end != nullptr && *end == '\0' && n >= 0 && n <= 65536) max_threads_ = static_cast<size_t>(n);
    }
    waiters_.reserve(max_threads_);
  }

  // Gives the job to a thread with room, starting one if needed: 0, or an
  // errno (EAGAIN once max_threads_ threads are full; else pthread_create's).
  int Submit(const std::shared_ptr<Job>& job) {
    std::lock_guard<std::mutex> lk(mu_);
    for (Waiter* w : waiters_) {
      if (w->jobs.size() < per_thread_) {
        Assign(w, job);
        return 0;
      }
    }
    if (waiters_.size() >= max_threads_) return EAGAIN;
    Waiter* w = new (std::nothrow) Waiter();
    if (w == nullptr) return ENOMEM;
    try {
      w->jobs.reserve(per_thread_);
      w->retired.reserve(per_thread_);
    } catch (...) {
      delete w;
      return ENOMEM;
    }
    int err = Start(w);
    if (err != 0) {
      delete w;
      return err;
    }
    waiters_.push_back(w);  // capacity reserved for max_threads_
    Assign(w, job);
    return 0;
  }

  void Cancel(const std::shared_ptr<Job>& job) {
    std::lock_guard<std::mutex> lk(mu_);
    job->cancelled.store(true);
    Waiter* w = job->owner;
    if (w == nullptr) return;
    w->cancels++;
    if (!waitv_) {
      Futex(job->addr, FUTEX_WAKE_BITSET, INT_MAX, nullptr, BitFor(job->id));
      return;
    }
    if (w->retired.size() < w->retired.capacity()) {  // else the thread's sweep removes it
      for (size_t i = 0; i < w->jobs.size(); i++) {
        if (w->jobs[i] == job) {
          w->retired.push_back(std::move(w->jobs[i]));  // capacity checked: no allocation
          if (i + 1 != w->jobs.size()) w->jobs[i] = std::move(w->jobs.back());
          w->jobs.pop_back();
          job->owner = nullptr;
          break;
        }
      }
    }
    Poke(w);
  }

 private:
  static void* Main(void* arg) {
    Pool()->Run(static_cast<Waiter*>(arg));
    return nullptr;
  }

  // Starts w's thread (it blocks on mu_, held by the caller, until Submit is done).
  int Start(Waiter* w) {
    pthread_attr_t attr;
    int err = pthread_attr_init(&attr);
    if (err != 0) return err;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, kStackBytes);
    // Signals go to Node's threads, never to a waiter (no EINTR storms, no
    // handlers running on a thread V8 does not know).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    err = pthread_create(&t, &attr, Main, w);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    pthread_attr_destroy(&attr);
    return err;
  }

  void Assign(Waiter* w, const std::shared_ptr<Job>& job) {
    w->jobs.push_back(job);  // capacity reserved for per_thread_
    job->owner = w;
    Poke(w);
  }

  // Tell w's thread its jobs changed (under mu_).
  static void Poke(Waiter* w) {
    w->control.fetch_add(1);
    Futex(reinterpret_cast<uint32_t*>(&w->control), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, nullptr, 0);
  }

  // Removes w's finished jobs into `out`; returns how many. `woken` is the job
  // futex_waitv reported, `failure` an errno that fails every job.
  size_t Sweep(Waiter* w, Job* woken, int failure, std::shared_ptr<Job>* out) {
    timespec now = Now();
    size_t n = 0;
    for (size_t i = 0; i < w->jobs.size();) {
      Job* j = w->jobs[i].get();
      // A cancelled job's word may be gone: never read it.
      bool changed = !j->cancelled.load() && __atomic_load_n(j->addr, __ATOMIC_SEQ_CST) != j->expected;
      if (j->cancelled.load()) j->result = kCancelled;
      else if (j == woken) j->result = kOk;
      else if (changed) j->result = j->parked ? kOk : kNotEqual;
      else if (failure != 0) {
        j->result = kError;
        j->error = failure;
      } else if (j->has_deadline && !Before(now, j->deadline)) j->result = kTimedOut;
      else {
        i++;
        continue;
      }
      j->owner = nullptr;
      out[n++] = std::move(w->jobs[i]);
      if (i + 1 != w->jobs.size()) w->jobs[i] = std::move(w->jobs.back());
      w->jobs.pop_back();
    }
    return n;
  }

  // Leaves the pool if w has been idle for kIdleExitMs (under mu_).
  bool Retire(Waiter* w, const timespec& idle_until) {
    if (!w->jobs.empty() || Before(Now(), idle_until)) return false;
    for (size_t i = 0; i < waiters_.size(); i++) {
      if (waiters_[i] == w) {
        waiters_[i] = waiters_.back();
        waiters_.pop_back();
        break;
      }
    }
    return true;
  }

  void Run(Waiter* w) {
    WaitvEntry entries[kWaitvMax];
    Job* parked[kWaitvMax];
    std::shared_ptr<Job> finished[kWaitvMax];
    Job* woken = nullptr;
    int failure = 0;
    bool idle = false;
    timespec idle_until{};
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      size_t n = Sweep(w, woken, failure, finished);
      woken = nullptr;
      failure = 0;
      if (n > 0) {
        lk.unlock();
        for (size_t i = 0; i < n; i++) Deliver(std::move(finished[i]));
        lk.lock();
        continue;  // the jobs may have changed meanwhile
      }
      if (w->jobs.empty()) {
        if (!idle) {
          idle = true;
          idle_until = AddMs(Now(), kIdleExitMs);
        }
        if (Retire(w, idle_until)) break;
      } else {
        idle = false;
      }
      uint32_t control = w->control.load();
      if (!waitv_ && !w->jobs.empty()) {
        // One wait on this thread: sleep on its word, cancellable by a bitset wake.
        std::shared_ptr<Job> job = w->jobs[0];
        lk.unlock();
        int err = 0;
        WaitResult r = DoWait(job->addr, job->expected, job->has_deadline, job->deadline,
                              BitFor(job->id), &job->cancelled, &err);
        lk.lock();
        job->result = r;
        job->error = err;
        job->owner = nullptr;
        w->jobs.clear();
        lk.unlock();
        Deliver(std::move(job));
        lk.lock();
        continue;
      }
      // Entry 0: the control word; then every job. Sleep until the nearest deadline.
      entries[0] = {control, reinterpret_cast<uintptr_t>(&w->control), FUTEX_32 | FUTEX_PRIVATE_FLAG, 0};
      bool bounded = false;
      timespec until{};
      if (w->jobs.empty()) {
        bounded = true;
        until = idle_until;
      }
      size_t count = w->jobs.size();
      for (size_t i = 0; i < count; i++) {
        Job* j = w->jobs[i].get();
        j->parked = true;
        parked[i] = j;
        entries[i + 1] = {j->expected, reinterpret_cast<uintptr_t>(j->addr), FUTEX_32, 0};
        if (j->has_deadline && (!bounded || Before(j->deadline, until))) {
          bounded = true;
          until = j->deadline;
        }
      }
      uint64_t cancels = w->cancels;
      lk.unlock();
      long r = waitv_ ? FutexWaitv(entries, static_cast<unsigned>(count + 1), bounded ? &until : nullptr)
                      : Futex(reinterpret_cast<uint32_t*>(&w->control), FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
                              control, bounded ? &until : nullptr, FUTEX_BITSET_MATCH_ANY);
      int err = errno;
      lk.lock();
      // Jobs leave w->jobs only here or into w->retired, so `parked` still
      // points at live jobs; `woken` is only compared, never followed.
      // An error while one of the jobs was cancelled may be that job's word
      // going away (EFAULT): sweep and wait again without it.
      if (r > 0 && static_cast<size_t>(r) <= count) woken = parked[r - 1];
      else if (r < 0 && err != EAGAIN && err != ETIMEDOUT && err != EINTR && cancels == w->cancels) failure = err;
      w->retired.clear();
    }
    lk.unlock();
    delete w;
  }

  std::mutex mu_;
  std::vector<Waiter*> waiters_;
  const bool waitv_;
  size_t per_thread_;
  size_t max_threads_;
};

WaiterPool* WaiterPool::Pool() {
  static WaiterPool* pool = new WaiterPool();  // never destroyed: threads outlive statics
  return pool;
}

WaiterPool* Pool() { return WaiterPool::Pool(); }

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
    if (job->result == kError) {
      resolver->Reject(ctx, node::ErrnoException(iso, job->error, "futex_waitv")).Check();
    } else {
      resolver->Resolve(ctx, Str(iso, WaitResultName(job->result))).Check();
    }
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
  for (auto& kv : st->pending) Pool()->Cancel(kv.second.job);
  st->pending.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(st->async), [](uv_handle_t* h) {
    delete static_cast<std::shared_ptr<EnvState>*>(h->data);
    delete reinterpret_cast<uv_async_t*>(h);
  });
}

// ---- guarded mappings -------------------------------------------------------
//
// A mapping of a segment another process created can be cut short under us:
// its owner ftruncate()s the file, and our next access past the new end
// faults with SIGBUS, which kills the whole process (the kernel serving
// everyone, or a receiver). A guarded mapping survives that: a SIGBUS whose
// address falls in one is answered by mapping private zero pages over the
// whole mapping (MAP_FIXED), so the access that faulted is retried and reads
// zeros, and the mapping is marked hit; callers ask guardHit() and treat the
// segment as broken by its owner. (Wayland compositors protect themselves
// from clients' shm pools the same way.) Any other SIGBUS goes to the handler
// that was there before, or to the default action, which kills as before.
//
// The handler only reads this table (lock-free, fixed size, no allocation):
// a slot is claimed with a CAS on `used`, filled, then published by storing
// `start`; the mapping's deleter withdraws it (start 0, then used 0) before
// munmap, so the handler never remaps memory that is no longer ours.

constexpr int kGuardSlots = 8192;

struct GuardSlot {
  std::atomic<int> used{0};
  std::atomic<uintptr_t> start{0};
  std::atomic<size_t> len{0};
  std::atomic<int> hit{0};
};

GuardSlot g_guards[kGuardSlots];
struct sigaction g_prev_bus;
std::once_flag g_bus_once;

void OnSigbus(int sig, siginfo_t* info, void* uctx) {
  uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
  for (int i = 0; i < kGuardSlots; i++) {
    uintptr_t s = g_guards[i].start.load(std::memory_order_acquire);
    if (s == 0 || a < s) continue;
    size_t l = g_guards[i].len.load(std::memory_order_acquire);
    if (a - s >= l) continue;
    void* r = mmap(reinterpret_cast<void*>(s), l, PROT_READ | PROT_WRITE,
                   MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r != MAP_FAILED) {
      g_guards[i].hit.store(1, std::memory_order_release);
      return;
    }
    break;
  }
  // Not a guarded mapping (or the remap failed): what would have happened without us.
  if ((g_prev_bus.sa_flags & SA_SIGINFO) != 0 && g_prev_bus.sa_sigaction != nullptr) {
    g_prev_bus.sa_sigaction(sig, info, uctx);
    return;
  }
  if (g_prev_bus.sa_handler != SIG_DFL && g_prev_bus.sa_handler != SIG_IGN) {
    g_prev_bus.sa_handler(sig);
    return;
  }
  // Returning retries the access, which faults again, into the default action.
  signal(SIGBUS, SIG_DFL);
}

void InstallSigbus() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &g_prev_bus);
}

// The slot now guarding [addr, addr+len), or -1 when every slot is taken.
int GuardAdd(void* addr, size_t len) {
  std::call_once(g_bus_once, InstallSigbus);
  for (int i = 0; i < kGuardSlots; i++) {
    int expected = 0;
    if (!g_guards[i].used.compare_exchange_strong(expected, 1)) continue;
    g_guards[i].hit.store(0);
    g_guards[i].len.store(len, std::memory_order_release);
    g_guards[i].start.store(reinterpret_cast<uintptr_t>(addr), std::memory_order_release);
    return i;
  }
  return -1;
}

void GuardRemove(int i) {
  g_guards[i].start.store(0, std::memory_order_release);
  g_guards[i].len.store(0, std::memory_order_release);
  g_guards[i].used.store(0, std::memory_order_release);
}

// The slot guarding the memory `sab` starts in, or -1.
int GuardOf(Local<Value> v) {
  if (!v->IsSharedArrayBuffer()) return -1;
  std::shared_ptr<BackingStore> store = v.As<SharedArrayBuffer>()->GetBackingStore();
  uintptr_t a = reinterpret_cast<uintptr_t>(store->Data());
  for (int i = 0; i < kGuardSlots; i++) {
    uintptr_t s = g_guards[i].start.load(std::memory_order_acquire);
    if (s != 0 && a >= s && a - s < g_guards[i].len.load(std::memory_order_acquire)) return i;
  }
  return -1;
}

// guardIndex(sab) -> the slot of a guarded mapping (open(..., {guard: true})), or -1.
void GuardIndex(const FunctionCallbackInfo<Value>& args) {
  args.GetReturnValue().Set(Integer::New(args.GetIsolate(), GuardOf(args[0])));
}

// guardHit(slot) -> whether that guarded mapping faulted (its segment was cut short).
void GuardHit(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  double i = args[0]->IsNumber() ? args[0].As<Number>()->Value() : -1;
  bool hit = i >= 0 && i < kGuardSlots && g_guards[static_cast<int>(i)].hit.load(std::memory_order_acquire) != 0;
  args.GetReturnValue().Set(Boolean::New(iso, hit));
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
  bool guard = flags->Get(ctx, Str(iso, "guard")).ToLocalChecked()->BooleanValue(iso);
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
  // A guarded mapping's slot rides in the deleter's data, as slot + 1 (0: not guarded).
  intptr_t slot = 0;
  if (guard) {
    int g = GuardAdd(addr, len);
    if (g < 0) {
      munmap(addr, len);
      return ThrowErrno(iso, ENOMEM, "guard", name);
    }
    slot = g + 1;
  }

  std::unique_ptr<BackingStore> store = SharedArrayBuffer::NewBackingStore(
      addr, len,
      [](void* data, size_t length, void* g) {
        intptr_t slot = reinterpret_cast<intptr_t>(g);
        if (slot > 0) GuardRemove(static_cast<int>(slot - 1));
        munmap(data, length);
      },
      reinterpret_cast<void*>(slot));
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

// A new SharedArrayBuffer over `length` bytes at `byteOffset` of `sab`'s
// memory. It holds the mapping: its deleter drops a reference to sab's
// BackingStore, so the bytes stay mapped while either buffer lives.
void Alias(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  if (!args[0]->IsSharedArrayBuffer() || !args[1]->IsNumber() || !args[2]->IsNumber()) {
    return ThrowType(iso, "alias(sab: SharedArrayBuffer, byteOffset: number, length: number)");
  }
  std::shared_ptr<BackingStore> parent = args[0].As<SharedArrayBuffer>()->GetBackingStore();
  double off = args[1].As<Number>()->Value();
  double len = args[2].As<Number>()->Value();
  double have = static_cast<double>(parent->ByteLength());
  if (!(off >= 0) || std::floor(off) != off || !(len >= 1) || std::floor(len) != len || off + len > have) {
    return ThrowType(iso, "alias: byteOffset and length (>= 1) must be integers inside the buffer");
  }
  auto* keep = new std::shared_ptr<BackingStore>(std::move(parent));
  char* data = static_cast<char*>((*keep)->Data()) + static_cast<size_t>(off);
  std::unique_ptr<BackingStore> store = SharedArrayBuffer::NewBackingStore(
      data, static_cast<size_t>(len),
      [](void*, size_t, void* keep) { delete static_cast<std::shared_ptr<BackingStore>*>(keep); }, keep);
  args.GetReturnValue().Set(SharedArrayBuffer::New(iso, std::move(store)));
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
  int err = 0;
  WaitResult r = DoWait(addr, ReadExpected(args[2]), has_deadline, deadline, FUTEX_BITSET_MATCH_ANY,
                        nullptr, &err);
  if (r == kError) return ThrowErrno(iso, err, "futex", "");
  args.GetReturnValue().Set(Str(iso, WaitResultName(r)));
}

void FutexWaitAsync(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  Local<Context> ctx = iso->GetCurrentContext();
  EnvState* st = StateOf(args);
  auto job = std::make_shared<Job>();
  std::shared_ptr<BackingStore> store;
  job->addr = WordAt(iso, args[0], args[1], &store);
  if (job->addr == nullptr) return;
  if (!args[2]->IsNumber() || !ReadTimeout(args[3], &job->has_deadline, &job->deadline)) {
    return ThrowType(iso, "futexWaitAsync(sab, byteOffset, expected: number, timeoutMs: number)");
  }
  job->expected = ReadExpected(args[2]);
  job->id = st->next_id++;
  if (st->next_id == 0) st->next_id = 1;
  job->env = *static_cast<std::shared_ptr<EnvState>*>(args.Data().As<External>()->Value());

  Local<Promise::Resolver> resolver = Promise::Resolver::New(ctx).ToLocalChecked();
  int err = Pool()->Submit(job);
  if (err != 0) {
    std::string why = std::string(strerror(err)) +
                      (err == EAGAIN ? ": every futex waiter thread is full (IPCBOX_WAITER_THREADS)"
                                     : ": cannot start a futex waiter thread");
    iso->ThrowException(node::ErrnoException(iso, err, "futexWaitAsync", why.c_str()));
    return;
  }
  // The job cannot be delivered before this returns: OnAsync runs on this thread.
  Pending p;
  p.job = job;
  p.store = std::move(store);
  p.resolver.Reset(iso, resolver);
  st->pending.emplace(job->id, std::move(p));
  st->UpdateRef();

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
  Pool()->Cancel(job);   // first: the job's word must stay mapped until it is cancelled
  st->pending.erase(it);
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
#if IPCBOX_LINUX
  int32_t tid = static_cast<int32_t>(syscall(SYS_gettid));
#else
  int32_t tid = static_cast<int32_t>(getpid());
#endif
  args.GetReturnValue().Set(Integer::New(args.GetIsolate(), tid));
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

// The credentials of the process at the other end of a connected Unix socket,
// as the OS recorded them at connect() (Linux SO_PEERCRED; macOS getpeereid,
// which has no pid: 0).
void PeerCredentials(const FunctionCallbackInfo<Value>& args) {
  Isolate* iso = args.GetIsolate();
  Local<Context> ctx = iso->GetCurrentContext();
  double fd_v = args[0]->IsNumber() ? args[0].As<Number>()->Value() : -1;
  if (!(fd_v >= 0) || fd_v > INT_MAX || std::floor(fd_v) != fd_v) {
    return ThrowType(iso, "peerCredentials(fd: number): fd must be a non-negative integer");
  }
  int fd = static_cast<int>(fd_v);
  double pid = 0, uid = 0, gid = 0;
#if IPCBOX_LINUX
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ThrowErrno(iso, errno, "getsockopt", "");
  }
  pid = cred.pid;
  uid = cred.uid;
  gid = cred.gid;
#elif defined(__APPLE__)
  uid_t u;
  gid_t g;
  if (getpeereid(fd, &u, &g) != 0) return ThrowErrno(iso, errno, "getpeereid", "");
  uid = u;
  gid = g;
#else
  (void)fd;
  return ThrowErrno(iso, ENOSYS, "peerCredentials", "");
#endif
  Local<Object> out = Object::New(iso);
  out->Set(ctx, Str(iso, "pid"), Number::New(iso, pid)).Check();
  out->Set(ctx, Str(iso, "uid"), Number::New(iso, uid)).Check();
  out->Set(ctx, Str(iso, "gid"), Number::New(iso, gid)).Check();
  args.GetReturnValue().Set(out);
}

}  // namespace

// Pipes, FIFOs, message queues, named semaphores, file mappings: native/ipcbox_unix.cc.
namespace ipcbox_unix {
void RegisterUnix(Local<Object> exports, Local<Context> context);
}

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
  set("alias", Alias);
  set("guardIndex", GuardIndex);
  set("guardHit", GuardHit);
  set("futexWait", FutexWait);
  set("futexWaitAsync", FutexWaitAsync);
  set("futexCancel", FutexCancel);
  set("futexWake", FutexWake);
  set("getpid", GetPid);
  set("gettid", GetTid);
  set("isAlive", IsAlive);
  set("peerCredentials", PeerCredentials);
  ipcbox_unix::RegisterUnix(exports, context);
}
