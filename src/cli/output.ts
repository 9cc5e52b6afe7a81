/**
 * Everything the CLI writes goes through here.
 * - stdout writes resolve once the data is handed to the OS (the write
 *   callback), so a caller can acknowledge a message only after it was
 *   really printed.
 * - A closed stdout (EPIPE: `ipcbox status | head -1`) never crashes the
 *   process: the write rejects with StdoutClosedError and main() ends the
 *   command quietly with status 0, as a reader that has had enough expects.
 * - Colour only on a terminal, and never when NO_COLOR is set (no-color.org).
 */

/** Stdout was closed by its reader; nothing more can be printed. */
export class StdoutClosedError extends Error {
  constructor(options?: { cause?: unknown }) {
    super('stdout is closed', options);
    this.name = 'StdoutClosedError';
  }
}

let stdoutClosed = false;

function isClosedPipe(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
}

// Without a listener, an EPIPE on a standard stream is an uncaught 'error' event: a stack trace.
process.stdout.on('error', (e) => {
  if (isClosedPipe(e)) stdoutClosed = true;
});
process.stderr.on('error', () => {});

/** Write to stdout; resolves when the OS has the data, rejects with StdoutClosedError on EPIPE. */
export function writeOut(chunk: string | Uint8Array): Promise<void> {
  if (stdoutClosed) return Promise.reject(new StdoutClosedError());
  return new Promise((resolve, reject) => {
    process.stdout.write(chunk, (e) => {
      if (e === undefined || e === null) resolve();
      else if (isClosedPipe(e)) {
        stdoutClosed = true;
        reject(new StdoutClosedError({ cause: e }));
      } else reject(e);
    });
  });
}

/** Print one JSON value as one line on stdout. */
export function writeJsonLine(value: unknown): Promise<void> {
  return writeOut(`${JSON.stringify(value)}\n`);
}

export function writeErr(text: string): void {
  process.stderr.write(text);
}

/** May we colour what goes to `stream`? A terminal that has colours, and no NO_COLOR. */
export function colourOn(stream: NodeJS.WriteStream): boolean {
  const noColor = process.env.NO_COLOR;
  if (noColor !== undefined && noColor !== '') return false;
  return stream.isTTY === true && stream.hasColors();
}

function sgr(stream: NodeJS.WriteStream, code: string, text: string): string {
  return colourOn(stream) ? `\x1b[${code}m${text}\x1b[0m` : text;
}

export const style = {
  /** Section headers of `status` on stdout. */
  heading: (text: string) => sgr(process.stdout, '1', text),
  /** The `ipcbox:` prefix of an error on stderr. */
  errorPrefix: (text: string) => sgr(process.stderr, '1;31', text),
};
