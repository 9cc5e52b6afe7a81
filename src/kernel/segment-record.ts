import type { Grantees, GranteesInfo } from '../core/rights.js';
import { MailboxRights } from '../core/rights.js';
import type { Session } from './session.js';

/**
 * A shared-memory segment as the kernel tracks it. The kernel never touches
 * the data: it keeps the name, size, owner, rights and who is attached, and
 * cleans up (unlinks, tells the attached processes) when the segment is
 * removed or its owning process exits.
 */
export type SegmentRole = 'send' | 'receive' | 'both' | 'attach';

export interface SegmentInfo {
  name: string;
  size: number;
  kind: 'segment' | 'mailbox';
  ownership: 'process' | 'system';
  owner: string;
  meta: unknown;
  senders: GranteesInfo;
  receivers: GranteesInfo;
  attached: { process: string; pid: number; osPid: number; role: SegmentRole }[];
  createdAt: number;
}

export class SegmentRecord {
  readonly rights: MailboxRights;
  readonly attached = new Map<Session, SegmentRole>();
  readonly createdAt = Date.now();

  constructor(
    readonly name: string,
    readonly size: number,
    readonly kind: 'segment' | 'mailbox',
    readonly ownership: 'process' | 'system',
    owner: string,
    public ownerSession: Session | undefined,
    readonly meta: unknown,
    senders: Grantees,
    receivers: Grantees,
  ) {
    this.rights = new MailboxRights(owner, senders, receivers);
  }

  receivers(): number {
    let n = 0;
    for (const role of this.attached.values()) if (role === 'receive' || role === 'both') n++;
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
      attached: [...this.attached].map(([s, role]) => ({
        process: s.name,
        pid: s.pid,
        osPid: s.osPid,
        role,
      })),
      createdAt: this.createdAt,
    };
  }
}
