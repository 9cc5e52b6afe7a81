/**
 * ipcbox public API: everything a user imports comes from here.
 */

export type {
  SegmentRegistry,
  ShmDelivery,
  ShmMailboxOptions,
  ShmMailboxStat,
  ShmQueueKind,
  ShmReceiveOptions,
  ShmSendOptions,
} from './backends/shm/shm-mailbox.js';
// Shared-memory mailboxes: set up through the kernel, data never through it (docs/shm-mailbox.md).
export { DEFAULT_MAP_THRESHOLD, ShmMailbox, ShmMessage } from './backends/shm/shm-mailbox.js';
export type {
  PeekOptions,
  PeekResult,
  ReceiveOptions,
  SendOptions,
  WaitOptions,
} from './client/connection.js';
export { Mailbox } from './client/mailbox.js';
export { Message } from './client/message.js';
export type { IterateOptions } from './client/message-stream.js';
export type {
  ConnectOptions,
  ExitEvent,
  MailboxClosedEvent,
  ReceiveFromOptions,
  RegisterSegmentOptions,
  SegmentPeerExitEvent,
  SegmentRemovedEvent,
  SignalEvent,
  WaitForProcessOptions,
} from './client/process.js';
export { connect, IpcProcess } from './client/process.js';
export type { DeliveryPolicy } from './core/mailbox-core.js';
export type { MailboxOptions } from './core/mailbox-options.js';
export type { Grantees, GranteesInfo, RightKind } from './core/rights.js';
export type { IpcErrorCode } from './errors.js';
export {
  AbortError,
  IpcError,
  KernelFullError,
  KernelUnavailableError,
  MailboxClosedError,
  MessageTooLargeError,
  NameTakenError,
  NoSuchMailboxError,
  NoSuchProcessError,
  PermissionDeniedError,
  ProtocolError,
  TimeoutError,
  WouldBlockError,
} from './errors.js';
export type { KernelOptions } from './kernel/kernel.js';
export { Kernel, startKernel } from './kernel/kernel.js';
export type { MapOptions } from './map/map-region.js';
export { Barrier } from './shm/barrier.js';
export { Condvar } from './shm/condvar.js';
export { futexWaitAsync, futexWaitSync, futexWake } from './shm/futex.js';
export type { MpmcRingOptions, RecordFiller } from './shm/mpmc-ring.js';
export { MpmcRing } from './shm/mpmc-ring.js';
export type { LockResult } from './shm/mutex.js';
export { Mutex } from './shm/mutex.js';
export { Ring, RingConsumer, RingProducer } from './shm/ring.js';
export type { RwLockOptions } from './shm/rwlock.js';
export { RwLock } from './shm/rwlock.js';
export type { SegmentStat } from './shm/segment.js';
// Shared memory (native addon; fails with NATIVE_UNAVAILABLE where it cannot load).
export { Segment } from './shm/segment.js';
export { Semaphore } from './shm/semaphore.js';
// Unix IPC objects shared with any program: pipes, FIFOs, POSIX message queues, named semaphores, mapped files (docs/unix.md).
export type { OpenFifoOptions } from './unix/fifo.js';
export { mkfifo, openFifo, removeFifo, unlinkFifo } from './unix/fifo.js';
export type {
  HostListing,
  HostListingNote,
  HostObject,
  HostObjectKind,
  ListHostObjectsOptions,
} from './unix/host-objects.js';
// What `ipcbox ls` lists of the host: /dev/shm, queues, semaphores, and the FIFOs and files ipcbox knows of.
export { listHostObjects } from './unix/host-objects.js';
export type { KnownKind, KnownObject, KnownObjectsOptions } from './unix/known-objects.js';
export { forgetObject, knownObjects, knownObjectsDirectory, rememberObject } from './unix/known-objects.js';
export { listMessageQueues, listNamedSemaphores } from './unix/listing.js';
export type { MappedFileOptions } from './unix/mapped-file.js';
export { MappedFile } from './unix/mapped-file.js';
export type {
  MessageQueueAttributes,
  MessageQueueOpenOptions,
  QueueMessage,
  QueueReceiveOptions,
  QueueSendOptions,
} from './unix/message-queue.js';
export { MessageQueue, MQ_PRIO_MAX } from './unix/message-queue.js';
export type { NamedSemaphoreOpenOptions } from './unix/named-semaphore.js';
export { NamedSemaphore, SEM_VALUE_MAX } from './unix/named-semaphore.js';
export type { PipeEnd } from './unix/pipe.js';
export { createPipe, openPipeFd, Pipe } from './unix/pipe.js';
export { PipeSocket } from './unix/pipe-socket.js';
export type {
  KernelStatus,
  MailboxCounters,
  MailboxInfo,
  MapRegionInfo,
  ProcessInfo,
  SegmentInfo,
  SegmentRole,
} from './wire/info-types.js';
export type { CodecName } from './wire/protocol.js';
export { MAX_PEEK_COUNT } from './wire/protocol.js';
export { defaultSocketPath } from './wire/socket-path.js';
