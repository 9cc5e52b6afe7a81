import { Counter, Gauge, Histogram, type MetricType, Registry } from 'prom-client';
import type { Kernel } from '../kernel/kernel.js';
import { WAIT_BUCKETS, waitBucketBound } from '../kernel/mailbox-stats.js';

/**
 * `GET /metrics`: the kernel's counters in the Prometheus text format, through
 * prom-client. Nothing is counted twice: every metric reads the kernel's own
 * counters when scraped (collect), so a scrape costs O(mailboxes + processes)
 * and the message path pays nothing for it. Names (docs/dashboard.md):
 *
 * - ipcbox_mailbox_depth{mailbox}                      gauge
 * - ipcbox_mailbox_capacity{mailbox}                   gauge (absent when unbounded)
 * - ipcbox_mailbox_bytes{mailbox}                      gauge
 * - ipcbox_mailbox_{sent,received,acked,redelivered}_total{mailbox}   counters
 * - ipcbox_mailbox_waiting_senders / _waiting_receivers{mailbox}    gauges
 * - ipcbox_mailbox_wait_seconds{mailbox}               histogram (enqueue to delivery; log2 buckets)
 * - ipcbox_process_{sent,received}_total{process}      counters
 * - ipcbox_process_inbox_depth{process}                gauge
 * - ipcbox_kernel_memory_budget_bytes, _memory_used_bytes, _connections, _uptime_seconds   gauges
 *
 * Inboxes are not listed as mailboxes (they come and go with processes; their
 * depth is the process's inbox depth).
 */

const WAIT_NAME = 'ipcbox_mailbox_wait_seconds';
const WAIT_HELP = 'Time messages waited in the mailbox queue, from enqueue to delivery';

/**
 * A histogram whose buckets are the kernel's (mailbox-stats.ts), not observations
 * of prom-client's own: recording stays O(1) in the kernel and a scrape reads it.
 */
class KernelWaitHistogram extends Histogram<'mailbox'> {
  constructor(
    registry: Registry,
    private readonly kernel: Kernel,
  ) {
    super({
      name: WAIT_NAME,
      help: WAIT_HELP,
      labelNames: ['mailbox'],
      buckets: Array.from({ length: WAIT_BUCKETS - 1 }, (_, i) => waitBucketBound(i)),
      registers: [registry],
    });
  }

  /** The registry renders a histogram from this when present (prom-client 15), so it is the kernel's too. */
  getForPromString() {
    return this.get();
  }

  override async get() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const rec of this.kernel.mailboxes.values()) {
      if (rec.kind !== 'mailbox') continue;
      const w = rec.stats.wait;
      // As prom-client's own histograms do, a label set appears once it has an observation: 1,000
      // idle mailboxes would otherwise cost 28,000 zero lines a scrape.
      if (w.count === 0) continue;
      let cumulative = 0;
      for (let i = 0; i < WAIT_BUCKETS; i++) {
        cumulative += w.buckets[i]!;
        const le = i === WAIT_BUCKETS - 1 ? '+Inf' : waitBucketBound(i);
        values.push({
          labels: { mailbox: rec.name, le },
          value: cumulative,
          metricName: `${WAIT_NAME}_bucket`,
        });
      }
      values.push({ labels: { mailbox: rec.name }, value: w.sumMs / 1000, metricName: `${WAIT_NAME}_sum` });
      values.push({ labels: { mailbox: rec.name }, value: w.count, metricName: `${WAIT_NAME}_count` });
    }
    return {
      name: WAIT_NAME,
      help: WAIT_HELP,
      // prom-client's typings declare a numeric enum; its registry writes this string as the TYPE line.
      type: 'histogram' as unknown as MetricType,
      values,
      aggregator: 'sum' as const,
      collect: () => undefined,
    };
  }
}

export function kernelMetrics(k: Kernel): Registry {
  const registry = new Registry();
  const registers = [registry];
  const mailboxes = () => [...k.mailboxes.values()].filter((r) => r.kind === 'mailbox');
  const sessions = () => [...k.sessions.values()].filter((s) => s.ready);

  const perMailbox = (
    name: string,
    help: string,
    read: (r: ReturnType<typeof mailboxes>[number]) => number | undefined,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ['mailbox'],
      registers,
      collect() {
        this.reset();
        for (const r of mailboxes()) {
          const v = read(r);
          if (v !== undefined) this.set({ mailbox: r.name }, v);
        }
      },
    });
  // A counter read from the kernel's own count: reset and set to it on each scrape.
  const mailboxCounter = (
    name: string,
    help: string,
    read: (r: ReturnType<typeof mailboxes>[number]) => number,
  ) =>
    new Counter({
      name,
      help,
      labelNames: ['mailbox'],
      registers,
      collect() {
        this.reset();
        for (const r of mailboxes()) this.inc({ mailbox: r.name }, read(r));
      },
    });
  const processCounter = (
    name: string,
    help: string,
    read: (s: ReturnType<typeof sessions>[number]) => number,
  ) =>
    new Counter({
      name,
      help,
      labelNames: ['process'],
      registers,
      collect() {
        this.reset();
        for (const s of sessions()) this.inc({ process: s.name }, read(s));
      },
    });
  const kernelGauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });

  perMailbox('ipcbox_mailbox_depth', 'Messages queued in the mailbox', (r) => r.core.depth());
  perMailbox('ipcbox_mailbox_capacity', 'Capacity of the mailbox (absent when unbounded)', (r) =>
    r.options.capacity === Number.POSITIVE_INFINITY ? undefined : r.options.capacity,
  );
  perMailbox('ipcbox_mailbox_bytes', 'Payload bytes queued in the mailbox', (r) => r.core.bytes);
  perMailbox(
    'ipcbox_mailbox_waiting_senders',
    'Senders blocked on the full mailbox',
    (r) => r.core.waitingSenders,
  );
  perMailbox(
    'ipcbox_mailbox_waiting_receivers',
    'Receivers waiting on the empty mailbox',
    (r) => r.core.waitingReceivers,
  );
  mailboxCounter('ipcbox_mailbox_sent_total', 'Messages accepted into the mailbox', (r) => r.counters.sent);
  mailboxCounter('ipcbox_mailbox_received_total', 'Deliveries from the mailbox', (r) => r.counters.received);
  mailboxCounter('ipcbox_mailbox_acked_total', 'Deliveries acknowledged', (r) => r.counters.acked);
  mailboxCounter(
    'ipcbox_mailbox_redelivered_total',
    'Messages put back for redelivery',
    (r) => r.counters.redelivered,
  );
  new KernelWaitHistogram(registry, k);
  processCounter('ipcbox_process_sent_total', 'Messages the process sent', (s) => s.sent);
  processCounter('ipcbox_process_received_total', 'Messages delivered to the process', (s) => s.received);
  new Gauge({
    name: 'ipcbox_process_inbox_depth',
    help: "Messages queued in the process's inbox",
    labelNames: ['process'],
    registers,
    collect() {
      this.reset();
      for (const s of sessions()) this.set({ process: s.name }, s.inbox?.core.depth() ?? 0);
    },
  });
  kernelGauge('ipcbox_kernel_memory_budget_bytes', 'Bytes the kernel may hold', () => k.options.memoryBudget);
  kernelGauge('ipcbox_kernel_memory_used_bytes', 'Bytes of the budget in use', () => k.budget.used);
  kernelGauge('ipcbox_kernel_connections', 'Processes connected', () => k.sessions.size);
  kernelGauge(
    'ipcbox_kernel_uptime_seconds',
    'Seconds since the kernel started',
    () => (Date.now() - k.startedAt) / 1000,
  );
  return registry;
}
