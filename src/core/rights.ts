/**
 * Who may do what with a mailbox or segment. Pure data with no I/O.
 * - The owner (a process name, held by a user id) may always send and
 *   receive, grant and revoke rights, pass ownership on, and delete the mailbox.
 * - Send and receive rights are each either a set of process names, or
 *   everyone except a set of names (revoking one name from `everyone`).
 * - Identity is the name *and* the OS user behind it (the kernel reads the
 *   uid from the socket's peer credentials, never from the client): the
 *   owner's name is bound to the owner's uid, and a name granted while a
 *   process of some uid held it is bound to that uid. A process of another
 *   uid that later takes the name (its holder died) inherits nothing.
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

/** Who is asking: a process name and, where the OS tells, its user id. */
export interface Principal {
  readonly name: string;
  readonly uid?: number | undefined;
}

export class MailboxRights {
  private ownerName: string;
  private ownerUid: number | undefined;
  private readonly rights: Record<RightKind, Right>;
  /** Names bound to the uid that held them when they were given a right. */
  private readonly bound = new Map<string, number>();

  constructor(owner: Principal | string, send: Grantees = 'everyone', receive: Grantees = 'everyone') {
    const o = typeof owner === 'string' ? { name: owner } : owner;
    this.ownerName = o.name;
    this.ownerUid = o.uid;
    this.rights = { send: makeRight(send), receive: makeRight(receive) };
  }

  get owner(): string {
    return this.ownerName;
  }

  get uid(): number | undefined {
    return this.ownerUid;
  }

  setOwner(owner: Principal): void {
    this.ownerName = owner.name;
    this.ownerUid = owner.uid;
  }

  isOwner(who: Principal): boolean {
    return who.name === this.ownerName && (this.ownerUid === undefined || who.uid === this.ownerUid);
  }

  /**
   * May `who` administer the object (grant, revoke, transfer, delete)? The
   * owner may; for a system-owned object, which outlives the process that
   * made it, so may any process of the owner's uid (System V's ipc_perm: the
   * owning user may IPC_SET and IPC_RMID). Sending and receiving still follow
   * the rights by name.
   */
  mayAdminister(who: Principal, systemOwned: boolean): boolean {
    if (this.isOwner(who)) return true;
    return systemOwned && this.ownerUid !== undefined && who.uid === this.ownerUid;
  }

  /** Bind `name` to `uid`: from now on only a process of that uid holding the name has its rights. */
  bind(name: string, uid: number | undefined): void {
    if (uid !== undefined && name !== this.ownerName) this.bound.set(name, uid);
  }

  may(kind: RightKind, who: Principal | string): boolean {
    const p = typeof who === 'string' ? { name: who } : who;
    if (this.isOwner(p)) return true;
    if (p.name === this.ownerName) return false;
    const r = this.rights[kind];
    const named = r.everyone ? !r.names.has(p.name) : r.names.has(p.name);
    if (!named) return false;
    const uid = this.bound.get(p.name);
    return uid === undefined || uid === p.uid;
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
