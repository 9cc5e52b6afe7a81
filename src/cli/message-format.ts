import { inspect } from 'node:util';
import type { Message } from '../client/message.js';
import { colourOn } from './output.js';
import { toTaggedJson } from './tagged-json.js';

/**
 * How `recv` prints a message.
 * Text: a string message as its text and a newline; a bytes message as its
 * raw bytes, nothing added (so `recv > file` gives back a file sent with
 * `--codec bytes`); a JSON message as compact JSON and a newline; a
 * structured-clone (v8) message as `util.inspect` shows it, on one line
 * (Map, Set, BigInt, Date... as Node prints them).
 * JSON (--json): one object per line, {mailbox, sender, priority, codec,
 * data}, where data is the string, the JSON value, base64 of the bytes, or
 * a v8 value in the tagged form of tagged-json.ts.
 * Decoding a payload may throw (a corrupt JSON or v8 payload): the caller
 * must then leave the message unacknowledged.
 */
export function formatMessage(m: Message, json: boolean): string | Buffer {
  if (json) {
    let data: unknown;
    if (m.codec === 'bytes') data = m.bytes.toString('base64');
    else if (m.codec === 'v8') data = toTaggedJson(m.data);
    else data = m.data;
    return `${JSON.stringify({ mailbox: m.mailbox, sender: m.sender, priority: m.priority, codec: m.codec, data })}\n`;
  }
  switch (m.codec) {
    case 'bytes':
      return m.bytes;
    case 'string':
      return `${m.data as string}\n`;
    case 'json':
      return `${JSON.stringify(m.data)}\n`;
    case 'v8':
      return `${inspect(m.data, {
        depth: null,
        breakLength: Number.POSITIVE_INFINITY,
        maxArrayLength: null,
        maxStringLength: null,
        colors: colourOn(process.stdout),
      })}\n`;
  }
}
