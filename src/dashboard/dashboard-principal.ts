import { connect, type IpcProcess } from '../client/process.js';
import { IpcError } from '../errors.js';
import { type MessagePreview, previewMessage } from './payload-preview.js';

/**
 * How the dashboard acts: as an ordinary process of the kernel, connected over
 * the kernel's own socket from inside the daemon. It has the daemon's uid (the
 * kernel reads it from the socket like anyone's) and a fixed name,
 * `ipcbox-dashboard` (`ipcbox-dashboard.<node>` in a cluster, where names are
 * cluster-wide). So every action passes the very checks an API call does: it
 * may peek where that name may receive, send where it may send, and delete what
 * the daemon's user administers (system-owned mailboxes of that uid, or with
 * force as the kernel's own user, like `ipcbox mailbox rm --force`). Holding
 * the HTTP token is what lets a browser act as this process.
 */
export class DashboardPrincipal {
  private constructor(private readonly p: IpcProcess) {}

  static async connect(socketPath: string, node: string | undefined): Promise<DashboardPrincipal> {
    const name = node === undefined ? 'ipcbox-dashboard' : `ipcbox-dashboard.${node}`;
    return new DashboardPrincipal(await connect({ socketPath, name }));
  }

  get name(): string {
    return this.p.name;
  }

  async peek(mailbox: string, count: number): Promise<{ messages: MessagePreview[]; more: boolean }> {
    const mb = await this.p.openMailbox(mailbox);
    try {
      const r = await mb.peek({ count });
      return { messages: r.messages.map(previewMessage), more: r.more };
    } finally {
      await mb.close();
    }
  }

  /** Send `value` to a mailbox, or to a process as `@name`; never waits for room (WOULD_BLOCK instead). */
  async send(target: string, value: unknown, codec: 'json' | 'string'): Promise<void> {
    if (target.startsWith('@')) {
      await this.p.send(target.slice(1), value, { codec, nonblock: true });
      return;
    }
    const mb = await this.p.openMailbox(target);
    try {
      await mb.send(value, { codec, nonblock: true });
    } finally {
      await mb.close();
    }
  }

  async deleteMailbox(name: string, force: boolean): Promise<void> {
    if (name.startsWith('@')) throw new IpcError('INVALID_ARGUMENT', 'an inbox goes with its process');
    await this.p.deleteMailbox(name, { force });
  }

  close(): Promise<void> {
    return this.p.close();
  }
}
