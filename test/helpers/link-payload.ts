/**
 * Self-checking payloads for the one-hop link tests: each message carries a
 * magic word, its sender's id, its sequence number and a fill pattern derived
 * from both, so a receiver can tell a gap, a duplicate, a reordering and a
 * corrupt (or phantom) message apart.
 */

const MAGIC = 0x4c4e4b31;
export const HEADER = 12;

export function encodeSeq(senderId: number, seq: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(Math.max(HEADER, size));
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(senderId, 4);
  b.writeUInt32LE(seq, 8);
  const base = (seq * 7 + senderId * 13) & 0xff;
  for (let i = HEADER; i < b.length; i++) b[i] = (base + i) & 0xff;
  return b;
}

/** The sender id and sequence number, or undefined if the bytes are not an intact payload. */
export function decodeSeq(data: unknown): { senderId: number; seq: number; size: number } | undefined {
  if (!(data instanceof Uint8Array) || data.length < HEADER) return undefined;
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.readUInt32LE(0) !== MAGIC) return undefined;
  const senderId = b.readUInt32LE(4);
  const seq = b.readUInt32LE(8);
  const base = (seq * 7 + senderId * 13) & 0xff;
  for (let i = HEADER; i < b.length; i++) if (b[i] !== ((base + i) & 0xff)) return undefined;
  return { senderId, seq, size: b.length };
}

/** Size of message `seq` in a mixed stream: `small`, and every `bigEvery`-th one `big`. */
export function mixedSize(seq: number, small: number, bigEvery: number, big: number): number {
  return bigEvery > 0 && seq % bigEvery === bigEvery - 1 ? big : small;
}
