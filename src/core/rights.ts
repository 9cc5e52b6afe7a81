/**
 * Who may do what with a mailbox. Pure data with no I/O.
 * - The owner (a process name) may always send and receive, grant and revoke
 *   rights, pass ownership on, and delete the mailbox.
 * - Send and receive rights are each either `everyone` or a set of process names.
 */
export type RightKind = 'send' | 'receive';
export type Grantees = 'everyone' | readonly string[];

export class MailboxRights {
  owner: string;
  private send: 'everyone' | Set<string>;
  private receive: 'everyone' | Set<string>;

  constructor(owner: string, send: Grantees = 'everyone', receive: Grantees = 'everyone') {
    this.owner = owner;
    this.send = send === 'everyone' ? 'everyone' : new Set(send);
    this.receive = receive === 'everyone' ? 'everyone' : new Set(receive);
  }

  may(kind: RightKind, name: string): boolean {
    if (name === this.owner) return true;
    const set = kind === 'send' ? this.send : this.receive;
    return set === 'everyone' || set.has(name);
  }

  /** Grant `kind` to the named processes, or to everyone. */
  grant(kind: RightKind, to: Grantees): void {
    if (to === 'everyone') {
      this.set(kind, 'everyone');
      return;
    }
    const current = this.get(kind);
    if (current === 'everyone') return;
    for (const n of to) current.add(n);
  }

  /** Revoke `kind` from the named processes, or from everyone but the owner. */
  revoke(kind: RightKind, from: Grantees): void {
    if (from === 'everyone') {
      this.set(kind, new Set());
      return;
    }
    const current = this.get(kind);
    if (current === 'everyone') return;
    for (const n of from) current.delete(n);
  }

  describe(kind: RightKind): Grantees {
    const set = this.get(kind);
    return set === 'everyone' ? 'everyone' : [...set].sort();
  }

  private get(kind: RightKind): 'everyone' | Set<string> {
    return kind === 'send' ? this.send : this.receive;
  }

  private set(kind: RightKind, value: 'everyone' | Set<string>): void {
    if (kind === 'send') this.send = value;
    else this.receive = value;
  }
}
