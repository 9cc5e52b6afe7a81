import { inspect } from 'node:util';
import type { Message } from '../client/message.js';

/** Most payload bytes a preview shows; the rest is counted, not sent to the page. */
export const PREVIEW_BYTES = 4096;

export interface MessagePreview {
  sender: string;
  priority: number;
  codec: string;
  size: number;
  /** The payload as text for json/string/v8, or hex pairs for bytes (and anything that does not decode). */
  preview: string;
  /** The preview shows less than the whole payload. */
  truncated: boolean;
}

/**
 * A peeked message as the dashboard shows it, per codec: JSON and strings as
 * text, v8 structured-clone values through util.inspect, bytes as hex. A
 * payload that does not decode falls back to hex, so a preview never fails.
 */
export function previewMessage(m: Message): MessagePreview {
  const size = m.bytes.length;
  const base = { sender: m.sender, priority: m.priority, codec: m.codec, size };
  if (m.codec !== 'bytes') {
    try {
      const v = m.data;
      const text =
        m.codec === 'string'
          ? String(v)
          : m.codec === 'json'
            ? JSON.stringify(v, null, 2)
            : inspect(v, { depth: 4 });
      return { ...base, preview: text.slice(0, PREVIEW_BYTES), truncated: text.length > PREVIEW_BYTES };
    } catch {
      // Not what its codec says: shown as the bytes it is.
    }
  }
  const shown = m.bytes.subarray(0, PREVIEW_BYTES);
  const hex = shown.toString('hex').replace(/(..)(?!$)/g, '$1 ');
  return { ...base, preview: hex, truncated: size > shown.length };
}
