/**
 * MessageQueue: a POSIX message queue (mq_open & co., Linux), shared by name
 * with any process — C's mq_open("/jobs"), Python through ctypes, another
 * ipcbox process.
 *
 * Contract:
 * - Names are "/name" (or "name"), at most 255 bytes. `open` attaches to an
 *   existing queue; `create: true` creates it if missing (`exclusive: true`
 *   fails with NAME_TAKEN if it exists), with `maxMessages` / `messageSize`
 *   (defaults: the kernel's fs.mqueue.msg_default / msgsize_default) and
 *   exactly `mode` (default 0o600; the umask does not apply).
 * - Messages are byte strings of at most `messageSize` bytes, each with a
 *   priority 0..32767. The OS delivers the highest priority first, FIFO among
 *   equal priorities; a received message reports its priority.
 * - Blocking trios (the descriptor is non-blocking; nothing here blocks the
 *   event loop):
 *   `trySend` / `tryReceive` never wait: a full / empty queue throws
 *   WouldBlockError (WOULD_BLOCK);
 *   `send` / `receive` ({ timeout, signal }) and `timedSend` / `timedReceive`
 *   (a timeout in ms) wait asynchronously: libuv polls the queue descriptor
 *   (no thread per wait), then the non-blocking call is retried — another
 *   process may win the message, so the wait loops. TimeoutError (TIMEOUT),
 *   AbortError (ABORTED) otherwise;
 *   `sendSync` / `receiveSync` ({ timeout }) block the thread in poll(2), for
 *   worker threads and tools.
 *   Any number of async sends and receives may be pending on one handle; which
 *   pending receive gets the next message is unspecified.
 * - Limits surface as typed errors naming the knob: a message over
 *   `messageSize` → MESSAGE_TOO_LARGE; `maxMessages` / `messageSize` over
 *   fs.mqueue.msg_max / msgsize_max → OS_LIMIT naming
 *   /proc/sys/fs/mqueue/msg_max (or msgsize_max) and the sysctl that raises
 *   it; too many queues (fs.mqueue.queues_max, ENOSPC) or too many queue bytes
 *   for this user (RLIMIT_MSGQUEUE, EMFILE) → OS_LIMIT likewise.
 * - `close()` releases the descriptor and rejects pending waits with
 *   MAILBOX_CLOSED (later calls throw MAILBOX_CLOSED too); the queue and its
 *   messages live on until `MessageQueue.unlink(name)` and the last close.
 * - A process that dies while waiting takes nothing with it: messages are
 *   only removed by a completed receive, so other processes go on as before.
 * - Where the OS has no POSIX message queues (macOS) every call throws
 *   NOT_SUPPORTED.
 */
import { fstatSync, readFileSync } from 'node:fs';
import { IpcError, TimeoutError, WouldBlockError } from '../errors.js';
import { deadlineAfter, remaining, throwIfAborted } from '../shm/futex.js';
import { FdReadiness } from './fd-readiness.js';
import { type NativeMqAttributes, nativeUnix, READABLE, WRITABLE } from './native-unix.js';
import { checkMode, errnoCode, fromErrno } from './os-errors.js';
import { posixIpcName } from './posix-name.js';

export interface MessageQueueOpenOptions {
  /** Create the queue if it does not exist (default false). */
  create?: boolean;
  /** With `create`: fail with NAME_TAKEN if it exists (default false). */
  exclusive?: boolean;
  /** With `create`: queue capacity in messages; default fs.mqueue.msg_default. */
  maxMessages?: number;
  /** With `create`: the largest message in bytes; default fs.mqueue.msgsize_default. */
  messageSize?: number;
  /** With `create`: permission bits, default 0o600. */
  mode?: number;
}

export interface QueueSendOptions {
  /** 0 (default) .. 32767; higher is delivered first. */
  priority?: number;
  /** Milliseconds; default forever. */
  timeout?: number;
  signal?: AbortSignal;
}

export interface QueueReceiveOptions {
  /** Milliseconds; default forever. */
  timeout?: number;
  signal?: AbortSignal;
}

export interface QueueMessage {
  /** A copy of the message's bytes. */
  bytes: Buffer;
  priority: number;
}

export type MessageQueueAttributes = NativeMqAttributes;

const NAME_MAX = 255;
/** MQ_PRIO_MAX on Linux (sysconf(_SC_MQ_PRIO_MAX)); priorities are below it. */
export const MQ_PRIO_MAX = 32768;
const MQUEUE_SYSCTL = '/proc/sys/fs/mqueue';

/** A fs.mqueue knob (msg_max, msgsize_max, queues_max, msg_default, msgsize_default), or undefined. */
function sysctl(knob: string): number | undefined {
  try {
    const n = Number(readFileSync(`${MQUEUE_SYSCTL}/${knob}`, 'utf8').trim());
    return Number.isSafeInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** This process's RLIMIT_MSGQUEUE soft limit in bytes, as /proc/self/limits shows it. */
function msgqueueRlimit(): string {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max msgqueue size'));
    return line?.split(/\s{2,}/)[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function positive(v: unknown, option: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
    throw new IpcError('INVALID_ARGUMENT', `${option} must be a positive integer, got ${String(v)}`);
  return v;
}

function checkPriority(p: unknown): number {
  const v = p ?? 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= MQ_PRIO_MAX)
    throw new IpcError(
      'INVALID_ARGUMENT',
      `priority must be an integer 0..${MQ_PRIO_MAX - 1}, got ${String(v)}`,
    );
  return v;
}

/** mq_open's errno as the error that names the limit involved. */
function openFailure(
  err: unknown,
  name: string,
  maxMessages: number,
  messageSize: number,
  create: boolean,
): unknown {
  const cause = { cause: err };
  const what = `message queue ${name}`;
  switch (errnoCode(err)) {
    case 'EINVAL': {
      const msgMax = sysctl('msg_max');
      const sizeMax = sysctl('msgsize_max');
      if (create && msgMax !== undefined && maxMessages > msgMax)
        return new IpcError(
          'OS_LIMIT',
          `${what}: maxMessages ${maxMessages} exceeds the system limit ${MQUEUE_SYSCTL}/msg_max = ${msgMax}; ` +
            `ask for fewer, or raise it (as root): sysctl fs.mqueue.msg_max=${maxMessages}`,
          cause,
        );
      if (create && sizeMax !== undefined && messageSize > sizeMax)
        return new IpcError(
          'OS_LIMIT',
          `${what}: messageSize ${messageSize} exceeds the system limit ${MQUEUE_SYSCTL}/msgsize_max = ${sizeMax}; ` +
            `ask for less, or raise it (as root): sysctl fs.mqueue.msgsize_max=${messageSize}`,
          cause,
        );
      return new IpcError('INVALID_ARGUMENT', `invalid name or attributes for ${what}`, cause);
    }
    case 'ENOSPC':
      return new IpcError(
        'OS_LIMIT',
        `${what}: the system's queue count limit ${MQUEUE_SYSCTL}/queues_max = ${sysctl('queues_max') ?? '?'} ` +
          `is reached; unlink unused queues or raise it (as root): sysctl fs.mqueue.queues_max=N`,
        cause,
      );
    case 'EMFILE':
      return new IpcError(
        'OS_LIMIT',
        `${what}: either this user's message queue memory limit (RLIMIT_MSGQUEUE, now ${msgqueueRlimit()} bytes; ` +
          `a queue takes about maxMessages × messageSize = ${maxMessages * messageSize} bytes; raise it with ` +
          `"ulimit -q") or this process's open file limit (RLIMIT_NOFILE, "ulimit -n") is reached`,
        cause,
      );
    default:
      return fromErrno(err, what);
  }
}

export class MessageQueue {
  /** The POSIX name, with its leading slash. */
  readonly name: string;
  /** The largest message the queue takes, in bytes (mq_msgsize). */
  readonly messageSize: number;
  /** The queue's capacity in messages (mq_maxmsg). */
  readonly maxMessages: number;
  #fd: number;
  readonly #readiness: FdReadiness;
  readonly #buffer: Buffer;

  private constructor(name: string, fd: number, attributes: NativeMqAttributes) {
    this.name = name;
    this.#fd = fd;
    this.messageSize = attributes.messageSize;
    this.maxMessages = attributes.maxMessages;
    this.#readiness = new FdReadiness(fd);
    this.#buffer = Buffer.allocUnsafe(attributes.messageSize);
  }

  /** Open (and with `create`, create) the queue `name`. */
  static open(name: string, options: MessageQueueOpenOptions = {}): MessageQueue {
    const posix = posixIpcName(name, 'message queue', NAME_MAX);
    const create = options.create ?? false;
    const mode = checkMode(options.mode, 0o600);
    const maxMessages = positive(options.maxMessages, 'maxMessages') ?? sysctl('msg_default') ?? 10;
    const messageSize = positive(options.messageSize, 'messageSize') ?? sysctl('msgsize_default') ?? 8192;
    const unix = nativeUnix();
    let fd: number;
    try {
      fd = unix.mqOpen(posix, {
        create,
        exclusive: options.exclusive ?? false,
        mode,
        maxMessages,
        messageSize,
      });
    } catch (err) {
      throw openFailure(err, posix, maxMessages, messageSize, create);
    }
    try {
      return new MessageQueue(posix, fd, unix.mqGetattr(fd));
    } catch (err) {
      unix.mqClose(fd);
      throw fromErrno(err, `message queue ${posix}`);
    }
  }

  /** Remove the name; handles open elsewhere keep working until closed. */
  static unlink(name: string): void {
    const posix = posixIpcName(name, 'message queue', NAME_MAX);
    try {
      nativeUnix().mqUnlink(posix);
    } catch (err) {
      throw fromErrno(err, `message queue ${posix}`);
    }
  }

  /** mq_getattr: capacity, message size and how many messages wait now. */
  attributes(): MessageQueueAttributes {
    try {
      return nativeUnix().mqGetattr(this.#open());
    } catch (err) {
      throw fromErrno(err, `message queue ${this.name}`);
    }
  }

  /**
   * Owner and permission bits (fstat of the queue descriptor, Linux): the only
   * way to learn them where /dev/mqueue is not mounted.
   */
  stat(): { uid: number; gid: number; mode: number } {
    const st = fstatSync(this.#open());
    return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Send now or throw WouldBlockError when the queue is full. */
  trySend(bytes: Uint8Array, options: Pick<QueueSendOptions, 'priority'> = {}): void {
    if (!this.#send(bytes, checkPriority(options.priority)))
      throw new WouldBlockError(`message queue ${this.name} is full (${this.maxMessages} messages)`);
  }

  async send(bytes: Uint8Array, options: QueueSendOptions = {}): Promise<void> {
    const priority = checkPriority(options.priority);
    const deadline = deadlineAfter(options.timeout);
    for (;;) {
      throwIfAborted(options.signal);
      if (this.#send(bytes, priority)) return;
      await this.#readiness.wait(WRITABLE, deadline, options.signal, this.#what('send'));
    }
  }

  /** `send` with a timeout in milliseconds. */
  timedSend(
    bytes: Uint8Array,
    timeoutMs: number,
    options: Omit<QueueSendOptions, 'timeout'> = {},
  ): Promise<void> {
    return this.send(bytes, { ...options, timeout: timeoutMs });
  }

  /** Block the thread (poll(2)) until sent; TimeoutError after `timeout` ms. */
  sendSync(bytes: Uint8Array, options: Omit<QueueSendOptions, 'signal'> = {}): void {
    const priority = checkPriority(options.priority);
    const deadline = deadlineAfter(options.timeout);
    while (!this.#send(bytes, priority)) this.#waitSync(WRITABLE, deadline, 'send');
  }

  /** Receive now or throw WouldBlockError when the queue is empty. */
  tryReceive(): QueueMessage {
    const m = this.#receive();
    if (m === null) throw new WouldBlockError(`message queue ${this.name} is empty`);
    return m;
  }

  async receive(options: QueueReceiveOptions = {}): Promise<QueueMessage> {
    const deadline = deadlineAfter(options.timeout);
    for (;;) {
      throwIfAborted(options.signal);
      const m = this.#receive();
      if (m !== null) return m;
      await this.#readiness.wait(READABLE, deadline, options.signal, this.#what('receive'));
    }
  }

  /** `receive` with a timeout in milliseconds. */
  timedReceive(timeoutMs: number, options: Omit<QueueReceiveOptions, 'timeout'> = {}): Promise<QueueMessage> {
    return this.receive({ ...options, timeout: timeoutMs });
  }

  /** Block the thread (poll(2)) until a message arrives; TimeoutError after `timeout` ms. */
  receiveSync(options: Omit<QueueReceiveOptions, 'signal'> = {}): QueueMessage {
    const deadline = deadlineAfter(options.timeout);
    for (;;) {
      const m = this.#receive();
      if (m !== null) return m;
      this.#waitSync(READABLE, deadline, 'receive');
    }
  }

  /** Release the descriptor; pending waits reject with MAILBOX_CLOSED. Idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    this.#readiness.close(new IpcError('MAILBOX_CLOSED', `message queue ${this.name} was closed`));
    nativeUnix().mqClose(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #what(op: string): string {
    return `${op} on message queue ${this.name}`;
  }

  #open(): number {
    if (this.#fd < 0) throw new IpcError('MAILBOX_CLOSED', `message queue ${this.name} is closed`);
    return this.#fd;
  }

  /** One non-blocking mq_send: false when the queue is full. */
  #send(bytes: Uint8Array, priority: number): boolean {
    if (!(bytes instanceof Uint8Array))
      throw new IpcError('INVALID_ARGUMENT', 'a message must be a Uint8Array');
    if (bytes.byteLength > this.messageSize) throw this.#tooLarge(bytes.byteLength);
    const fd = this.#open();
    try {
      return nativeUnix().mqSend(fd, bytes, priority);
    } catch (err) {
      if (errnoCode(err) === 'EMSGSIZE') throw this.#tooLarge(bytes.byteLength, err);
      throw fromErrno(err, `message queue ${this.name}`);
    }
  }

  #tooLarge(size: number, cause?: unknown): IpcError {
    return new IpcError(
      'MESSAGE_TOO_LARGE',
      `message of ${size} bytes exceeds messageSize ${this.messageSize} of message queue ${this.name}`,
      { cause },
    );
  }

  /** One non-blocking mq_receive: null when the queue is empty. */
  #receive(): QueueMessage | null {
    const fd = this.#open();
    let got: { length: number; priority: number } | null;
    try {
      got = nativeUnix().mqReceive(fd, this.#buffer);
    } catch (err) {
      throw fromErrno(err, `message queue ${this.name}`);
    }
    if (got === null) return null;
    return { bytes: Buffer.from(this.#buffer.subarray(0, got.length)), priority: got.priority };
  }

  #waitSync(events: typeof READABLE | typeof WRITABLE, deadline: number, op: string): void {
    const left = remaining(deadline);
    if (left <= 0 || !nativeUnix().waitFdSync(this.#open(), events, left))
      throw new TimeoutError(`${this.#what(op)} timed out`);
  }
}
