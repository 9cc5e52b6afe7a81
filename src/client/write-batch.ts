import type { IpcError } from '../errors.js';

/**
 * Credited sends written into one batch: they resolve together once the
 * batch is in the OS socket buffer (the kernel reads it even if this process
 * dies right after), or reject if the connection fails first.
 */
export interface Batch {
  promise: Promise<void>;
  resolve(): void;
  reject(e: IpcError): void;
}

export function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (e: IpcError) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A send whose caller never awaits must not become an unhandled rejection when the kernel goes.
  promise.catch(() => {});
  return { promise, resolve, reject };
}
