import type { Grantees } from '../core/rights.js';
import { MailboxRights, type Principal } from '../core/rights.js';
import type { SegmentInfo, SegmentRole } from '../wire/info-types.js';
import type { Session } from './session.js';

/**
 * A shared-memory segment as the kernel tracks it. The kernel never touches
 * the data: it keeps the name, size, owner, rights and who is attached, and
 * cleans up (unlinks, tells the attached processes) when the segment is
 * removed or its owning process exits.
 */
/** The role a set of attachments amounts to: send and/or receive rights in use. */
function combine(roles: readonly SegmentRole[]): SegmentRole {
  let send = false;
  let receive = false;
  for (const r of roles) {
    if (r === 'send' || r === 'both') send = true;
    if (r === 'receive' || r === 'both') receive = true;
  }
  return send && receive ? 'both' : send ? 'send' : receive ? 'receive' : 'attach';
}

export class SegmentRecord {
  readonly rights: MailboxRights;
  /**
   * Each process's attachments, one role per handle it holds: a process may
   * open a segment several times, and detaching one handle must not drop the
   * roles its other handles still use.
   */
  readonly attached = new Map<Session, SegmentRole[]>();
  readonly createdAt = Date.now();
  /** The kernel unlinks the POSIX name on removal only if it knows the registrant created it (control.ts mayUnlink). */
  unlinkOnRemove = false;
  /** Bytes of its meta as JSON, counted in the kernel's segmentMetaBytes while it is registered. */
  metaBytes = 0;
  /** The mailbox name it carries in the mailbox namespace, for a shared-memory mailbox (shm-mailboxes.ts). */
  mailbox: string | undefined = undefined;
  /** For a mailbox: processes that opened it (told when it goes, attached or not, as on the kernel path). */
  readonly openers = new Set<Session>();

  constructor(
    readonly name: string,
    readonly size: number,
    readonly kind: 'segment' | 'mailbox',
    readonly ownership: 'process' | 'system',
    owner: Principal,
    public ownerSession: Session | undefined,
    readonly meta: unknown,
    senders: Grantees,
    receivers: Grantees,
  ) {
    this.rights = new MailboxRights(owner, senders, receivers);
  }

  /** Lives until removed (its owner exiting does not remove it). */
  get systemOwned(): boolean {
    return this.ownership === 'system';
  }

  /** What `s` uses the segment for, over all its handles (undefined if not attached). */
  roleOf(s: Session): SegmentRole | undefined {
    const roles = this.attached.get(s);
    return roles === undefined ? undefined : combine(roles);
  }

  attach(s: Session, role: SegmentRole): void {
    const roles = this.attached.get(s);
    if (roles === undefined) this.attached.set(s, [role]);
    else roles.push(role);
  }

  /** Drop one handle of `s` (the one with `role` if given); the process is detached when none is left. */
  detach(s: Session, role?: SegmentRole): void {
    const roles = this.attached.get(s);
    if (roles === undefined) return;
    const i = role === undefined ? roles.length - 1 : roles.lastIndexOf(role);
    roles.splice(i < 0 ? roles.length - 1 : i, 1);
    if (roles.length === 0) this.attached.delete(s);
  }

  /** Processes that receive from the segment (for an exclusive mailbox: at most one). */
  receivers(): number {
    let n = 0;
    for (const roles of this.attached.values()) {
      const r = combine(roles);
      if (r === 'receive' || r === 'both') n++;
    }
    return n;
  }

  describe(): SegmentInfo {
    return {
      name: this.name,
      size: this.size,
      kind: this.kind,
      ownership: this.ownership,
      owner: this.rights.owner,
      meta: this.meta,
      senders: this.rights.describe('send'),
      receivers: this.rights.describe('receive'),
      attached: [...this.attached].map(([s, roles]) => ({
        process: s.name,
        pid: s.pid,
        osPid: s.osPid,
        role: combine(roles),
      })),
      createdAt: this.createdAt,
    };
  }
}
