import assert from 'node:assert/strict';
import type { Daemon } from './kernel-harness.js';

/** The dashboard address a daemon started with --http printed (with `#token=` when it generated the token). */
export function dashboardUrl(d: Daemon): { base: string; token: string } {
  const m = /dashboard: (https?:\/\/\S+?\/)(?:#token=(\S+))?\n/.exec(d.output());
  assert.ok(m, `no dashboard address in: ${d.output()}`);
  return { base: m[1]!, token: m[2] ?? '' };
}
