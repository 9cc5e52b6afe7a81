/**
 * Who may do what with a mailbox or segment. Pure data with no I/O.
 * - The owner (a process name) may always send and receive, grant and revoke
 *   rights, pass ownership on, and delete the mailbox.
 * - Send and receive rights are each either a set of process names, or
 *   everyone except a set of names (revoking one name from `everyone`).
 */
export type RightKind = 'send' | 'receive';
export type Grantees = 'everyone' | readonly string[];
/** How a right is reported: 'everyone', a list of names, or everyone but some. */
export type GranteesInfo = Grantees | { readonly except: readonly string[] };

interface Right {
  everyone: boolean;
  /** Names granted when `everyone` is false; names excluded when it is true. */
  names: Set<string>;
}

function makeRight(g: Grantees): Right {
  return g === 'everyone' ? { everyone: true, names: new Set() } : { everyone: false, names: new Set(g) };
}

export class MailboxRights {
  owner: string;
  private readonly rights: Record<RightKind, Right>;

  constructor(owner: string, send: Grantees = 'everyone', receive: Grantees = 'everyone') {
    this.owner = owner;
    this.rights = { send: makeRight(send), receive: makeRight(receive) };
  }

  may(kind: RightKind, name: string): boolean {
    if (name === this.owner) return true;
    const r = this.rights[kind];
    return r.everyone ? !r.names.has(name) : r.names.has(name);
  }

  /** Grant `kind` to the named processes, or to everyone. */
  grant(kind: RightKind, to: Grantees): void {
    const r = this.rights[kind];
    if (to === 'everyone') {
      r.everyone = true;
      r.names.clear();
      return;
    }
    for (const n of to) {
      if (r.everyone) r.names.delete(n);
      else r.names.add(n);
    }
  }

  /** Revoke `kind` from the named processes, or from everyone but the owner. */
  revoke(kind: RightKind, from: Grantees): void {
    const r = this.rights[kind];
    if (from === 'everyone') {
      r.everyone = false;
      r.names.clear();
      return;
    }
    for (const n of from) {
      if (r.everyone) r.names.add(n);
      else r.names.delete(n);
    }
  }

  describe(kind: RightKind): GranteesInfo {
    const r = this.rights[kind];
    const names = [...r.names].sort();
    if (r.everyone) return names.length === 0 ? 'everyone' : { except: names };
    return names;
  }
}
