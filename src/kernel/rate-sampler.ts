import type { RateInfo } from '../wire/info-types.js';
import type { MailboxRecord } from './mailbox-record.js';
import { now, processRates, RateMeter } from './mailbox-stats.js';
import type { Session } from './session.js';

/** How often the kernel samples its counters into rates (ms). */
export const SAMPLE_INTERVAL = 1000;

/**
 * Once a second, the rates of every mailbox and process: the change of their
 * counters since the previous sample. The kernel keeps them itself (not the
 * dashboard) so `status`, `ipcbox top` and the dashboard all show the same
 * figures, and a one-shot client like `status` needs no second look.
 *
 * Cost: O(mailboxes + processes) once a second, nothing per message. The timer
 * is unref'd: it never keeps a process alive.
 */
export class RateSampler {
  private timer: NodeJS.Timeout | undefined;
  /** Per session: its meter. Weak, so a session gone needs no cleanup here. */
  private readonly meters = new WeakMap<Session, RateMeter<'sent' | 'received'>>();

  constructor(
    private readonly mailboxes: ReadonlyMap<number, MailboxRecord>,
    private readonly sessions: ReadonlyMap<number, Session>,
  ) {}

  start(): void {
    if (this.timer !== undefined) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), SAMPLE_INTERVAL);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  sample(): void {
    const at = now();
    for (const rec of this.mailboxes.values()) rec.stats.sample(rec.counters, at);
    for (const s of this.sessions.values()) {
      let m = this.meters.get(s);
      if (m === undefined) {
        m = new RateMeter(['sent', 'received']);
        this.meters.set(s, m);
      }
      m.sample(s, at);
    }
  }

  /** A process's rates as of the last sample (zero before its second). */
  processRates(s: Session): RateInfo {
    const m = this.meters.get(s);
    return m === undefined ? { sent: 0, received: 0 } : processRates(m);
  }
}
