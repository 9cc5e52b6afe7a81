/**
 * The rules a frame breaks by its shape alone, whatever the kernel holds: one answer for the local
 * path (message-path.ts) and for a frame bound for another node (remote-routes.ts), which must
 * refuse it the same way before forwarding it (the home would end the whole route over it, not the
 * one connection).
 */
import { MAX_PRIORITY } from '../core/priority-queue.js';
import type { Frame } from '../wire/frame-codec.js';
import { Op, SendFlag } from '../wire/protocol.js';

/** Why `f` is a protocol violation by its shape, or undefined. */
export function shapeViolation(f: Frame): string | undefined {
  switch (f.op) {
    case Op.SEND:
      if (f.reqId !== 0) return undefined;
      if ((f.flags & (SendFlag.TIMED | SendFlag.SYNC | SendFlag.NONBLOCK)) !== 0)
        return 'a credited SEND (request id 0) takes no flags';
      if (f.priority > MAX_PRIORITY) return `priority ${f.priority} is out of range 0..31`;
      if (f.codec > 3) return `unknown payload codec ${f.codec}`;
      return undefined;
    case Op.RECV:
      return f.reqId === 0 ? 'RECV needs a request id' : undefined;
    case Op.DEMAND:
      return f.bodyLength < 4 ? 'DEMAND without a count' : undefined;
    default:
      return undefined;
  }
}
