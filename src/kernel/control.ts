import { type MailboxOptions, validateName } from '../core/mailbox-options.js';
import type { Grantees, MailboxRights, RightKind } from '../core/rights.js';
import { IpcError } from '../errors.js';
import { Segment } from '../shm/segment.js';
import type { KernelStatus, MailboxInfo, ProcessInfo, SegmentRole } from '../wire/info-types.js';
import { ASSIGNED_NAME, MAX_TIMEOUT, peekCount } from '../wire/protocol.js';
import type { Kernel } from './kernel.js';
import { listenAt, offerLink } from './link-broker.js';
import type { MailboxRecord } from './mailbox-record.js';
import { answerPeek } from './peek.js';
import { SegmentRecord } from './segment-record.js';
import type { Session } from './session.js';
import {
  changeShmRights,
  claimShmMailboxName,
  describeShmMailbox,
  requireOnThisHost,
  transferShmMailbox,
} from './shm-mailboxes.js';

/**
 * Control calls: the slow path (create, open, delete, rights, lookups,
 * signals, monitors, status). Each arrives as a CALL frame with a JSON body
 * {"m": method, "a": args} and is answered with RESULT (JSON) or ERROR.
 */

/**
 * What a call returns when it writes its own answer, now (`mailbox.peek`:
 * frames before the RESULT) or later (`process.wait`: when the name is bound).
 */
export const ANSWERED_SEPARATELY: unique symbol = Symbol('answered separately');

function optionalTimeout(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > MAX_TIMEOUT) {
    throw new RangeError(`timeout must be a number of milliseconds from 0 to ${MAX_TIMEOUT}`);
  }
  return Math.ceil(v);
}

function str(a: Record<string, unknown>, key: string): string {
  const v = a[key];
  if (typeof v !== 'string' || v.length === 0) throw new TypeError(`${key} must be a non-empty string`);
  return v;
}

function grantees(v: unknown, key: string): Grantees {
  if (v === 'everyone') return 'everyone';
  if (typeof v === 'string' && v.length > 0) return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string' && x.length > 0)) return v as string[];
  throw new TypeError(`${key} must be 'everyone', a process name, or an array of names`);
}

function right(v: unknown): RightKind {
  if (v === 'send' || v === 'receive') return v;
  throw new TypeError("right must be 'send' or 'receive'");
}

function mailboxNamed(k: Kernel, name: string): MailboxRecord {
  const rec = k.mailboxByName.get(name);
  if (rec === undefined) {
    const missing = new IpcError('NO_SUCH_MAILBOX', `no such mailbox: ${name}`);
    throw k.cluster?.notHere('mailbox', name, missing) ?? missing;
  }
  return rec;
}

function mailboxById(k: Kernel, id: unknown): MailboxRecord {
  const rec = typeof id === 'number' ? k.mailboxes.get(id) : undefined;
  if (rec === undefined) throw new IpcError('NO_SUCH_MAILBOX', `no such mailbox (id ${String(id)})`);
  return rec;
}

function sessionNamed(k: Kernel, name: string): Session {
  const s = k.byName.get(name);
  if (s === undefined || !s.ready) {
    const missing = new IpcError('NO_SUCH_PROCESS', `no such process: ${name}`);
    throw k.cluster?.notHere('process', name, missing) ?? missing;
  }
  return s;
}

/**
 * Who may force a removal like ipcrm: root, or the user the kernel runs as (in a single-user
 * daemon that is everyone who can connect; in a group daemon, not the group's other users).
 */
function isAdministrator(s: Session): boolean {
  return s.uid === undefined || s.uid === 0 || s.uid === process.getuid?.();
}

/** PERMISSION_DENIED unless `s` may administer `rec` (a mailbox on either path, or a segment), shown as `name`. */
function requireOwner(
  rec: { readonly rights: MailboxRights; readonly systemOwned: boolean },
  name: string,
  s: Session,
  what: string,
): void {
  if (!rec.rights.mayAdminister(s, rec.systemOwned)) {
    throw new IpcError('PERMISSION_DENIED', `only the owner (${rec.rights.owner}) may ${what} ${name}`);
  }
}

/**
 * Messages the kernel holds for a process: queued in its inbox, and pushed to
 * it but not yet taken by its application (an inbox served in the process,
 * client/local-inbox.ts, has its kernel messages pushed ahead). Messages that
 * came over one-hop links never pass the kernel and are not counted.
 */
function inboxDepth(s: Session): number {
  const inbox = s.inbox;
  if (inbox === undefined) return 0;
  let pushed = 0;
  for (const e of s.inflight.values()) if (e.record === inbox && !e.consumed) pushed++;
  return inbox.core.depth() + pushed;
}

export function describeProcess(k: Kernel, s: Session): ProcessInfo {
  const owns: string[] = [];
  for (const rec of k.mailboxes.values())
    if (rec.kind === 'mailbox' && rec.rights.isOwner(s)) owns.push(rec.name);
  return {
    pid: s.pid,
    name: s.name,
    osPid: s.osPid,
    uid: s.uid ?? null,
    gid: s.gid ?? null,
    inbox: s.inbox?.id ?? 0,
    inboxDepth: inboxDepth(s),
    sent: s.sent,
    received: s.received,
    connectedAt: s.connectedAt,
    rates: k.sampler.processRates(s),
    owns,
    attached: [...s.attached.keys()].filter((r) => r.kind === 'mailbox').map((r) => r.name),
    links: [...s.linksTo].map((t) => t.name),
    ...(s.linkCounts === undefined
      ? {}
      : {
          linkSent: s.linkCounts.sent,
          linkReceived: s.linkCounts.received,
          linkWaiting: s.linkCounts.waiting,
        }),
    ...(k.cluster === undefined ? {} : { node: s.remoteNode ?? k.cluster.node }),
  };
}

export function kernelStatus(k: Kernel): KernelStatus {
  return {
    kernel: {
      pid: process.pid,
      socket: k.socketPath,
      startedAt: k.startedAt,
      memoryBudget: k.options.memoryBudget,
      memoryUsed: k.budget.used,
      memory: {
        queued: k.ledger.used,
        held: k.budget.held,
        reserved: k.budget.reserved,
        backlog: k.budget.backlog,
        incoming: k.budget.incoming,
      },
      connections: k.sessions.size,
      maxMessageSize: k.options.maxMessageSize,
      processWaits: k.waits.size,
    },
    processes: [...k.sessions.values()].map((s) => describeProcess(k, s)),
    mailboxes: allMailboxes(k),
    segments: [...k.segments.values()].map((r) => r.describe()),
    mapRegions: k.maps.describe(),
    ...(k.cluster === undefined ? {} : { cluster: k.cluster.status() }),
  };
}

/** Every mailbox in the namespace: the kernel's own, then those on the shared-memory path. */
function allMailboxes(k: Kernel): MailboxInfo[] {
  const out = [...k.mailboxes.values()].filter((r) => r.kind === 'mailbox').map((r) => r.describe());
  for (const rec of k.shmMailboxes.values()) out.push(describeShmMailbox(rec));
  return out;
}

/** Segments are registered under their POSIX name without the leading '/' ("foo" and "/foo" are one). */
function segmentKey(name: string): string {
  return name.startsWith('/') ? name.slice(1) : name;
}

function segmentNamed(k: Kernel, name: string): SegmentRecord {
  const rec = k.segments.get(segmentKey(name));
  if (rec === undefined) throw new IpcError('NO_SUCH_SEGMENT', `no such segment: ${name}`);
  return rec;
}

function segmentRole(v: unknown): SegmentRole {
  if (v === undefined) return 'attach';
  if (v === 'send' || v === 'receive' || v === 'both' || v === 'attach') return v;
  throw new TypeError("role must be 'send', 'receive', 'both' or 'attach'");
}

/** Segment `meta` is free-form JSON others read on attach; it stays small and shallow so status stays cheap. */
const MAX_META_BYTES = 64 * 1024;
const MAX_META_DEPTH = 32;

/** The meta to keep, and its size as JSON (what the kernel's bound on all meta counts). */
function checkMeta(meta: unknown): { meta: unknown; bytes: number } {
  if (meta === undefined) return { meta: null, bytes: 0 };
  // Depth first and without recursion: a hostile 6,000-deep value must not overflow the stack
  // here, in JSON.stringify below, or later in every status call.
  const stack: Array<[unknown, number]> = [[meta, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > MAX_META_DEPTH)
      throw new RangeError(`meta must be nested at most ${MAX_META_DEPTH} levels deep`);
    for (const child of Object.values(v as Record<string, unknown>)) stack.push([child, depth + 1]);
  }
  const bytes = JSON.stringify(meta).length;
  if (bytes > MAX_META_BYTES) {
    throw new RangeError(`meta must be at most ${MAX_META_BYTES} bytes of JSON`);
  }
  return { meta, bytes };
}

/**
 * Whether the kernel may unlink this segment's POSIX name when the record
 * goes: only if the registrant says it created the segment and the segment
 * belongs to the registrant's uid. A registration of someone else's existing
 * segment (a C program's, another user's) only names it; it is never deleted.
 */
function mayUnlink(name: string, s: Session, created: unknown): boolean {
  if (created !== true) return false;
  try {
    const st = Segment.stat(name);
    return s.uid === undefined || st.uid === s.uid;
  } catch {
    return false;
  }
}

function handleSegmentCall(k: Kernel, s: Session, method: string, a: Record<string, unknown>): unknown {
  switch (method) {
    case 'segment.register': {
      const name = segmentKey(str(a, 'name'));
      if (k.segments.has(name)) throw new IpcError('SEGMENT_EXISTS', `segment already registered: ${name}`);
      const size = a.size;
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0)
        throw new RangeError('size must be a positive integer');
      const kind = a.kind ?? 'segment';
      if (kind !== 'segment' && kind !== 'mailbox')
        throw new TypeError("kind must be 'segment' or 'mailbox'");
      const ownership = a.ownership ?? 'process';
      if (ownership !== 'process' && ownership !== 'system')
        throw new TypeError("ownership must be 'process' or 'system'");
      // Every argument is checked before anything is recorded: a refused call leaves no record.
      const role = segmentRole(a.role ?? 'both');
      let mailbox: string | undefined;
      if (a.mailbox !== undefined) {
        if (kind !== 'mailbox')
          throw new TypeError("a segment that names a mailbox must be of kind 'mailbox'");
        mailbox = claimShmMailboxName(k, s, a.mailbox);
      }
      // Records and their meta are kernel memory the message budget does not see: bounded here.
      if (k.segments.size >= k.options.maxSegments)
        throw new IpcError(
          'KERNEL_FULL',
          `this kernel holds its most segments (${k.options.maxSegments}): remove some first`,
        );
      const { meta, bytes: metaBytes } = checkMeta(a.meta);
      if (k.segmentMetaBytes + metaBytes > k.options.memoryBudget / 16)
        throw new IpcError(
          'KERNEL_FULL',
          `the segments' meta would pass ${k.options.memoryBudget / 16} bytes (a 16th of the memory budget)`,
        );
      const rec = new SegmentRecord(
        name,
        size,
        kind,
        ownership,
        s,
        ownership === 'process' ? s : undefined,
        meta,
        a.senders === undefined ? 'everyone' : grantees(a.senders, 'senders'),
        a.receivers === undefined ? 'everyone' : grantees(a.receivers, 'receivers'),
      );
      rec.unlinkOnRemove = mayUnlink(name, s, a.created);
      rec.metaBytes = metaBytes;
      k.segments.set(name, rec);
      k.segmentMetaBytes += metaBytes;
      if (mailbox !== undefined) {
        rec.mailbox = mailbox;
        rec.openers.add(s);
        k.shmMailboxes.set(mailbox, rec);
        if (a.senders !== undefined) k.bindConnected(rec.rights, grantees(a.senders, 'senders'));
        if (a.receivers !== undefined) k.bindConnected(rec.rights, grantees(a.receivers, 'receivers'));
      }
      rec.attach(s, role);
      return rec.describe();
    }
    case 'segment.attach': {
      const rec = segmentNamed(k, str(a, 'name'));
      const role = segmentRole(a.role);
      if ((role === 'send' || role === 'both') && !rec.rights.may('send', s)) {
        throw new IpcError('PERMISSION_DENIED', `${s.name} may not send to ${rec.name}`);
      }
      if ((role === 'receive' || role === 'both') && !rec.rights.may('receive', s)) {
        throw new IpcError('PERMISSION_DENIED', `${s.name} may not receive from ${rec.name}`);
      }
      const meta = rec.meta as { delivery?: unknown } | null;
      if ((role === 'receive' || role === 'both') && meta?.delivery === 'exclusive' && rec.receivers() > 0) {
        const mine = rec.roleOf(s);
        if (mine !== 'receive' && mine !== 'both') {
          throw new IpcError('RECEIVER_BUSY', `${rec.name} is exclusive and already has a receiver`);
        }
      }
      rec.attach(s, role);
      return rec.describe();
    }
    case 'segment.detach': {
      const rec = segmentNamed(k, str(a, 'name'));
      rec.detach(s, a.role === undefined ? undefined : segmentRole(a.role));
      return null;
    }
    case 'segment.remove': {
      const rec = segmentNamed(k, str(a, 'name'));
      if (!(a.force === true && isAdministrator(s))) requireOwner(rec, rec.name, s, 'remove');
      k.removeSegment(rec, `removed by ${s.name}`);
      return null;
    }
    case 'segment.info':
      return segmentNamed(k, str(a, 'name')).describe();
    case 'segment.list':
      return [...k.segments.values()].map((r) => r.describe());
    default:
      throw new IpcError('INVALID_ARGUMENT', `unknown call: ${method}`);
  }
}

export function handleCall(
  k: Kernel,
  s: Session,
  reqId: number,
  method: string,
  a: Record<string, unknown>,
): unknown {
  switch (method) {
    case 'mailbox.create': {
      const name = str(a, 'name');
      const options = (a.options ?? {}) as MailboxOptions;
      const cluster = k.cluster;
      const durables = k.durables;
      if (options.durable === true && (cluster === undefined || durables === undefined))
        throw new IpcError(
          'NOT_SUPPORTED',
          'durable mailboxes keep their messages on NATS JetStream: start the kernel with a cluster (--cluster)',
        );
      if (cluster === undefined) return k.createMailbox(s, name, options).describe();
      // In a cluster the name is claimed across every kernel first; the answer comes after.
      k.checkNewMailbox(name, options);
      cluster
        .claim('mailbox', name, { owner: s.name }, () => !s.closed)
        .then(
          (bound) => {
            if (!bound) return;
            const made =
              options.durable === true && durables !== undefined
                ? durables.create(s, name, options)
                : Promise.resolve().then(() => k.createMailbox(s, name, options));
            made.then(
              (rec) => {
                s.sendResult(reqId, rec.describe());
                k.flushLater();
              },
              (e: unknown) => {
                cluster.release('mailbox', name);
                s.sendError(reqId, e instanceof IpcError ? e.code : 'INVALID_ARGUMENT', (e as Error).message);
                k.flushLater();
              },
            );
          },
          (e: unknown) =>
            s.sendError(reqId, e instanceof IpcError ? e.code : 'CLUSTER_UNAVAILABLE', (e as Error).message),
        );
      return ANSWERED_SEPARATELY;
    }
    case 'mailbox.open': {
      const shm = k.shmMailboxes.get(str(a, 'name'));
      if (shm !== undefined) {
        requireOnThisHost(s, shm.mailbox ?? shm.name, 'opened');
        shm.openers.add(s);
        return describeShmMailbox(shm);
      }
      const rec = mailboxNamed(k, str(a, 'name'));
      rec.openers.add(s);
      return rec.describe();
    }
    case 'mailbox.info': {
      const shm = k.shmMailboxes.get(str(a, 'name'));
      if (shm !== undefined) return describeShmMailbox(shm);
      return mailboxNamed(k, str(a, 'name')).describe();
    }
    case 'mailbox.peek': {
      const rec = mailboxById(k, a.id);
      answerPeek(s, reqId, rec, peekCount(a.count), k.options.maxMessageSize);
      return ANSWERED_SEPARATELY;
    }
    case 'mailbox.close': {
      const rec = mailboxById(k, a.id);
      rec.openers.delete(s);
      if (s.attached.has(rec)) k.detach(s, rec);
      k.dropCredits(rec, s);
      return null;
    }
    case 'mailbox.delete': {
      const shm = k.shmMailboxes.get(str(a, 'name'));
      if (shm !== undefined) {
        if (!(a.force === true && isAdministrator(s)))
          requireOwner(shm, shm.mailbox ?? shm.name, s, 'delete');
        k.removeSegment(shm, `deleted by ${s.name}`);
        return null;
      }
      const rec = mailboxNamed(k, str(a, 'name'));
      if (!(a.force === true && isAdministrator(s))) requireOwner(rec, rec.name, s, 'delete');
      k.deleteMailbox(rec, `deleted by ${s.name}`);
      // A durable one is deleted once its definition and stream are gone too: no restart revives it.
      const removal = k.durables?.removal(rec.name);
      if (removal === undefined) return null;
      removal
        .then(
          () => s.sendResult(reqId, null),
          (e: unknown) =>
            s.sendError(reqId, 'CLUSTER_UNAVAILABLE', `deleted here, but its store: ${String(e)}`),
        )
        .finally(() => k.flushLater());
      return ANSWERED_SEPARATELY;
    }
    case 'mailbox.list':
      return allMailboxes(k);
    case 'mailbox.grant':
    case 'mailbox.revoke': {
      const shm = k.shmMailboxes.get(str(a, 'name'));
      if (shm !== undefined) {
        requireOwner(shm, shm.mailbox ?? shm.name, s, 'change the rights of');
        return changeShmRights(k, shm, method === 'mailbox.grant', right(a.right), grantees(a.who, 'who'));
      }
      const rec = mailboxNamed(k, str(a, 'name'));
      requireOwner(rec, rec.name, s, 'change the rights of');
      const kind = right(a.right);
      const who = grantees(a.who, 'who');
      if (method === 'mailbox.grant') {
        rec.rights.grant(kind, who);
        k.bindConnected(rec.rights, who);
      } else {
        rec.rights.revoke(kind, who);
        enforceRights(k, rec, kind);
      }
      return rec.describe();
    }
    case 'mailbox.transfer': {
      const shm = k.shmMailboxes.get(str(a, 'name'));
      if (shm !== undefined) {
        requireOwner(shm, shm.mailbox ?? shm.name, s, 'transfer');
        return transferShmMailbox(shm, s, sessionNamed(k, str(a, 'to')));
      }
      const rec = mailboxNamed(k, str(a, 'name'));
      requireOwner(rec, rec.name, s, 'transfer');
      const to = sessionNamed(k, str(a, 'to'));
      rec.rights.setOwner(to);
      if (rec.ownerSession !== undefined) rec.ownerSession = to;
      to.sendNotice({ kind: 'ownership', mailbox: rec.name, from: s.name });
      return rec.describe();
    }
    case 'process.lookup': {
      const t = sessionNamed(k, str(a, 'name'));
      const inbox = t.inbox!;
      return {
        pid: t.pid,
        name: t.name,
        inbox: inbox.id,
        capacity: inbox.options.capacity === Number.POSITIVE_INFINITY ? 'unbounded' : inbox.options.capacity,
        maxMessageSize: inbox.options.maxMessageSize,
        ...(a.link === true ? { link: offerLink(s, t) ?? null } : {}),
      };
    }
    case 'link.listen':
      listenAt(s, a.address);
      return null;
    case 'link.counts': {
      // The process's own word about messages the kernel never saw: shown as such, never trusted for anything else.
      const n = (v: unknown, what: string): number => {
        if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
          throw new RangeError(`${what} must be a non-negative integer`);
        return v;
      };
      s.linkCounts = {
        sent: n(a.sent, 'sent'),
        received: n(a.received, 'received'),
        waiting: n(a.waiting, 'waiting'),
      };
      return null;
    }
    case 'process.wait': {
      const name = validateName('process', a.name);
      const timeout = optionalTimeout(a.timeout);
      const t = k.byName.get(name);
      if (t !== undefined) return describeProcess(k, t);
      // Kernel-assigned names are never claimed and never reused: one not connected now cannot be promised.
      if (ASSIGNED_NAME.test(name)) throw new IpcError('NO_SUCH_PROCESS', `no such process: ${name}`);
      k.waits.park(s, reqId, name, timeout);
      return ANSWERED_SEPARATELY;
    }
    case 'process.list':
      return [...k.sessions.values()].map((t) => describeProcess(k, t));
    case 'status':
      return kernelStatus(k);
    case 'signal': {
      const t = sessionNamed(k, str(a, 'to'));
      const type = str(a, 'type');
      // A process that does not read its socket must not make the kernel buffer others' signals for it.
      if (t.choked) throw new IpcError('KERNEL_FULL', `${t.name} is not reading: signal not queued`);
      t.sendNotice({ kind: 'signal', from: s.name, type, payload: a.payload ?? null });
      return null;
    }
    case 'monitor': {
      const t = sessionNamed(k, str(a, 'name'));
      t.watchers.add(s);
      s.watching.add(t);
      return { pid: t.pid, name: t.name };
    }
    case 'demonitor': {
      const t = k.byName.get(str(a, 'name'));
      if (t !== undefined) {
        t.watchers.delete(s);
        s.watching.delete(t);
      }
      return null;
    }
    case 'map.register': {
      const r = k.maps.register(s, str(a, 'name'));
      return { id: r.id };
    }
    default:
      if (method.startsWith('segment.')) return handleSegmentCall(k, s, method, a);
      throw new IpcError('INVALID_ARGUMENT', `unknown call: ${method}`);
  }
}

/** After a revoke: credits of processes that lost the send right are recalled; lost receivers are detached. */
function enforceRights(k: Kernel, rec: MailboxRecord, kind: RightKind): void {
  if (kind === 'send') {
    for (const holder of [...rec.credits.holders.keys()]) {
      if (!rec.rights.may('send', holder)) {
        // Credits are capabilities already granted: sends in flight under them stand; the rest come
        // back, and no new credit is granted to it here.
        rec.credits.revoke(holder);
        holder.sendNotice({ kind: 'rights', mailbox: rec.name, id: rec.id, right: 'send', granted: false });
      }
    }
    return;
  }
  for (const s of [...k.sessions.values()]) {
    if (s.attached.has(rec) && !rec.rights.may('receive', s)) {
      k.detach(s, rec, 'PERMISSION_DENIED');
      s.sendNotice({ kind: 'rights', mailbox: rec.name, id: rec.id, right: 'receive', granted: false });
    }
  }
}
