/**
 * Which processes use a file-backed IPC object, from /proc (Linux): the
 * processes that map it (/proc/<pid>/maps: POSIX shared memory and named
 * semaphores live in /dev/shm, mapped files anywhere) and the processes that
 * hold it open (/proc/<pid>/fd: FIFO readers and writers). This is the
 * "attached" count `ipcs` shows for System V segments, which POSIX objects
 * have nowhere else.
 *
 * Only processes this user may inspect are seen (all of them for root);
 * elsewhere than Linux nothing is seen. Counts are a snapshot.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface ProcessUsage {
  /** Path → pids mapping it. */
  mapped: Map<string, Set<number>>;
  /** Path → pids holding an open descriptor on it (only for the paths asked about). */
  open: Map<string, Set<number>>;
}

/** "addr perms offset dev inode path": the path is the rest of the line after the inode. */
const MAPS_LINE = /^\S+\s+\S+\s+\S+\s+\S+\s+\d+\s+(\/.*)$/;
const DELETED = ' (deleted)';

function add(map: Map<string, Set<number>>, path: string, pid: number): void {
  const pids = map.get(path);
  if (pids === undefined) map.set(path, new Set([pid]));
  else pids.add(pid);
}

/** Scan /proc once. `openPaths`: the paths whose open descriptors to count (readlink per fd, so only when asked). */
export function processUsage(openPaths: ReadonlySet<string> = new Set()): ProcessUsage {
  const usage: ProcessUsage = { mapped: new Map(), open: new Map() };
  let pids: number[];
  try {
    pids = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(Number);
  } catch {
    return usage;
  }
  for (const pid of pids) {
    if (pid === process.pid) continue;
    try {
      for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
        const m = MAPS_LINE.exec(line);
        if (m === null) continue;
        const path = m[1]!.endsWith(DELETED) ? undefined : m[1]!;
        if (path !== undefined) add(usage.mapped, path, pid);
      }
    } catch {
      // Gone meanwhile, or another user's process: not seen.
    }
    if (openPaths.size === 0) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (openPaths.has(target)) add(usage.open, target, pid);
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return usage;
}
