/**
 * Timers for timed operations. `setTimeout` takes at most 2^31-1 ms and
 * fires after 1 ms for anything longer; the wire allows timeouts up to
 * 2^32-2 ms (~49.7 days), so a long one is a chain of shorter ones.
 */

const MAX_DELAY = 0x7fffffff;

export interface Timer {
  /** Cancel; a no-op once fired. */
  clear(): void;
}

export function startTimer(ms: number, fire: () => void): Timer {
  let handle: NodeJS.Timeout | undefined;
  let cleared = false;
  const due = Date.now() + ms;
  const arm = (left: number) => {
    handle = setTimeout(
      () => {
        const rest = due - Date.now();
        if (rest > 0) arm(rest);
        else if (!cleared) fire();
      },
      Math.min(Math.max(left, 0), MAX_DELAY),
    );
  };
  arm(ms);
  return {
    clear() {
      cleared = true;
      if (handle !== undefined) clearTimeout(handle);
    },
  };
}
