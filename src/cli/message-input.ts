import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { IpcError } from '../errors.js';
import type { CodecName } from '../wire/protocol.js';
import { UsageError } from './failure.js';
import { formatBytes } from './option-parsers.js';
import { fromTaggedJson } from './tagged-json.js';

/**
 * Where `send` takes its message from and how the text or bytes become the
 * value it sends.
 * - MESSAGE on the command line (limited by the OS to about 128 KiB),
 *   `-` for stdin, or `--file F`; stdin and files are read up to the
 *   kernel's message limit and no further (more is MESSAGE_TOO_LARGE), so
 *   `ipcbox send box - < /dev/zero` fails instead of filling memory.
 * - Codecs: string (UTF-8 text; bytes that are not UTF-8 are refused rather
 *   than mangled), bytes (sent byte-exact), json (the text parsed as JSON),
 *   v8 (the text parsed as JSON in the tagged form of tagged-json.ts, sent
 *   as a structured clone, so BigInt, Map, Set, Date... can be sent).
 */

export type MessageSource =
  | { kind: 'argument'; text: string }
  | { kind: 'stdin' }
  | { kind: 'file'; path: string };

function describe(src: MessageSource): string {
  return src.kind === 'file' ? src.path : src.kind === 'stdin' ? 'stdin' : 'MESSAGE';
}

/** The limit a message is read up to, and what to call it in the error ("the kernel's limit"). */
interface MessageLimit {
  bytes: number;
  what: string;
}

function tooLarge(src: MessageSource, limit: MessageLimit): IpcError {
  return new IpcError(
    'MESSAGE_TOO_LARGE',
    `the message from ${describe(src)} is larger than ${limit.what} of ${limit.bytes} bytes (${formatBytes(limit.bytes)})`,
  );
}

async function readCapped(stream: Readable, src: MessageSource, limit: MessageLimit): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const b = chunk as Buffer;
      size += b.length;
      if (size > limit.bytes) throw tooLarge(src, limit);
      chunks.push(b);
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks, size);
}

/** The message's bytes (or, from the command line, its text), read up to `limitBytes` (default wording: the kernel's limit). */
export async function readMessage(
  src: MessageSource,
  limitBytes: number,
  limitName = "the kernel's limit",
): Promise<string | Buffer> {
  const limit: MessageLimit = { bytes: limitBytes, what: limitName };
  switch (src.kind) {
    case 'argument':
      return src.text;
    case 'stdin':
      return readCapped(process.stdin, src, limit);
    case 'file': {
      try {
        const st = await stat(src.path);
        // A regular file's size is known: refuse before reading. FIFOs and devices are read up to the cap.
        if (st.isFile() && st.size > limit.bytes) throw tooLarge(src, limit);
        if (st.isDirectory()) throw new UsageError(`--file ${src.path} is a directory`);
        return await readCapped(createReadStream(src.path), src, limit);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') throw new UsageError(`--file ${src.path}: no such file`);
        if (code === 'EACCES') throw new UsageError(`--file ${src.path}: permission denied`);
        throw e;
      }
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function text(input: string | Buffer, src: MessageSource, codec: CodecName): string {
  if (typeof input === 'string') return input;
  try {
    return utf8.decode(input);
  } catch {
    throw new UsageError(
      `the message from ${describe(src)} is not valid UTF-8, which the ${codec} codec needs; send it with --codec bytes`,
    );
  }
}

function parseJson(t: string, src: MessageSource): unknown {
  try {
    return JSON.parse(t);
  } catch (e) {
    throw new UsageError(`the message from ${describe(src)} is not valid JSON: ${(e as Error).message}`);
  }
}

/** The value to send with `codec`. Malformed input is a UsageError saying what is wrong. */
export function messageValue(input: string | Buffer, src: MessageSource, codec: CodecName): unknown {
  switch (codec) {
    case 'bytes':
      return typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
    case 'string':
      return text(input, src, codec);
    case 'json':
      return parseJson(text(input, src, codec), src);
    case 'v8':
      try {
        return fromTaggedJson(parseJson(text(input, src, codec), src));
      } catch (e) {
        if (e instanceof TypeError) throw new UsageError(`the message from ${describe(src)}: ${e.message}`);
        throw e;
      }
  }
}
