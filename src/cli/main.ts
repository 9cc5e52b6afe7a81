#!/usr/bin/env -S node --initial-old-space-size=128
// Why the flag: under cross-node traffic the daemon turns over many short-lived ArrayBuffers (socket reads,
// frame batches, NATS payloads); on V8's small default old space that costs ~48 mark-compacts a second
// and about a quarter of the daemon's time. 128 MB only moves the first full-GC trigger (nothing is
// reserved); it doubled 64 KiB cross-node throughput in bench/. Node 20 cannot take it from NODE_OPTIONS
// or v8.setFlagsFromString once the heap exists, so the shebang is the one place; bench/compare/servers.ts
// reads it from here.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { RightKind } from '../core/rights.js';
import { CODEC_NAMES } from '../wire/protocol.js';
import type { GlobalOptions } from './commands/common.js';
import { daemon } from './commands/daemon.js';
import { createFifos, removeFifos } from './commands/fifo.js';
import { list } from './commands/ls.js';
import { changeRights, createMailbox, removeMailboxes, transferMailbox } from './commands/mailbox.js';
import { createQueue, listQueues, receiveFromQueue, removeQueues, sendToQueue } from './commands/mq.js';
import { recv } from './commands/recv.js';
import {
  createSemaphore,
  listSemaphores,
  postSemaphore,
  removeSemaphores,
  waitSemaphore,
} from './commands/sem.js';
import { send } from './commands/send.js';
import { listSegments, removeSegments } from './commands/shm.js';
import { signal } from './commands/signal.js';
import { signals } from './commands/signals.js';
import { status } from './commands/status.js';
import { type TopOptions, top } from './commands/top.js';
import { waitForProcesses } from './commands/wait.js';
import { EXIT_CODES_HELP, ExitCode } from './exit-codes.js';
import { reportFailure, UsageError } from './failure.js';
import type { MessageSource } from './message-input.js';
import { byteSize, integer, octalMode, SIZE_HELP } from './option-parsers.js';
import { StdoutClosedError } from './output.js';

/**
 * The version in ipcbox's package.json, found by walking up from this file:
 * dist/src/cli/main.js in the repository, node_modules/ipcbox/dist/src/cli/main.js
 * when installed (the package.json there is ipcbox's own).
 */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'ipcbox' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // No (readable) package.json here: keep walking up.
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

/** What the action of the command that ran asks main() to exit with (commands that report partial failure). */
let actionStatus: number = ExitCode.OK;
async function run(f: () => Promise<unknown>): Promise<void> {
  const r = await f();
  actionStatus = typeof r === 'number' ? r : ExitCode.OK;
}

const program = new Command();
program
  .name('ipcbox')
  .description(
    "Inspect and drive ipcbox IPC objects: processes, mailboxes, segments, signals; and the host's FIFOs, message queues and named semaphores.",
  )
  .version(packageVersion(), '-V, --version', 'print the version and exit')
  .option(
    '--socket <path>',
    'kernel socket (default: $IPCBOX_SOCKET, $XDG_RUNTIME_DIR/ipcbox/kernel.sock, /tmp/ipcbox-<uid>/kernel.sock)',
  )
  .option('--name <name>', 'process name this command connects as (default: assigned by the kernel)')
  .addHelpText(
    'after',
    `
TARGET names a mailbox, or a process as @name.
Sizes take K, M, G (also KiB, MiB, GiB): powers of 1024.
With --json, output is JSON (one object per line for streams) and an error is
one JSON object on stderr: {"error":{"code":...,"message":...,"exitCode":...}}.
Colour only on a terminal, never with NO_COLOR set.

${EXIT_CODES_HELP}
`,
  );

const g = (): GlobalOptions => program.opts<GlobalOptions>();
const json = () => new Option('--json', 'machine-readable output (and errors as JSON on stderr)');
const timeout = (what: string) =>
  new Option('--timeout <ms>', `give up after MS milliseconds ${what} (exit 3)`)
    .argParser(integer(0))
    .conflicts('nonblock');
const mode = () =>
  new Option(
    '--mode <mode>',
    'permission bits in octal, exactly (the umask does not apply); default 0600',
  ).argParser(octalMode);

/** Where `send` and `mq send` take their message: MESSAGE, '-' (stdin) or --file, exactly one. */
function messageSource(
  message: string | undefined,
  file: string | undefined,
  command: string,
): MessageSource {
  if (file !== undefined) {
    if (message !== undefined) throw new UsageError('give MESSAGE or --file, not both', command);
    return { kind: 'file', path: file };
  }
  if (message === '-') return { kind: 'stdin' };
  if (message !== undefined) return { kind: 'argument', text: message };
  throw new UsageError("missing MESSAGE (or '-' to read it from stdin, or --file PATH)", command);
}

program
  .command('daemon')
  .description('run the kernel in the foreground (SIGINT/SIGTERM stop it and remove its socket)')
  .option('--max-message-size <size>', `largest message payload (${SIZE_HELP}; default 16M)`, byteSize)
  .option(
    '--memory-budget <size>',
    `bytes the kernel may hold for messages before sends fail with KERNEL_FULL (${SIZE_HELP}; default 256M)`,
    byteSize,
  )
  .option('--group <name>', 'let members of this group connect (socket 0660); rights are then held by uid')
  .option('--revoke-timeout <ms>', 'how long a credit holder may take to answer REVOKE', integer(0))
  .option(
    '--cluster <urls>',
    'join the cluster of kernels on this NATS (nats://HOST:PORT or tls://HOST:PORT, comma-separated; docs/cluster.md)',
  )
  .option('--node <name>', "this kernel's node name in the cluster (default: the host name)")
  .option('--cluster-name <name>', "kernels share one system only under one cluster name (default 'ipcbox')")
  .option('--nats-ca <file>', 'CA certificate (PEM) the NATS servers must be signed by')
  .option('--nats-cert <file>', 'client certificate (PEM) for NATS servers that verify clients')
  .option('--nats-key <file>', 'key of --nats-cert (PEM)')
  .option('--nats-token-file <file>', 'NATS token, read from this file')
  .option('--nats-user <user>', 'NATS user (the password from $IPCBOX_NATS_PASS)')
  .option('--nats-creds <file>', 'NATS credentials file (JWT + nkey seed)')
  .option(
    '--http <[addr:]port>',
    'serve the web dashboard and /metrics (default address 127.0.0.1; another needs --http-cert/--http-key and --http-token-file; docs/dashboard.md)',
  )
  .option(
    '--http-token-file <file>',
    'the dashboard token (default: generated and printed in the dashboard address)',
  )
  .option('--http-cert <file>', 'certificate (PEM): the dashboard speaks HTTPS')
  .option('--http-key <file>', 'key of --http-cert (PEM)')
  .option(
    '--listen <url>',
    'also accept processes of other hosts on tls://ADDR:PORT (needs --tls-cert, --tls-key, --token-file)',
  )
  .option('--tls-cert <file>', 'server certificate (PEM) of the --listen listener')
  .option('--tls-key <file>', 'key of --tls-cert (PEM)')
  .option('--token-file <file>', 'the token --listen clients must present (at least 16 bytes)')
  .addOption(json())
  .action((o: Parameters<typeof daemon>[0]) => {
    const opts = { ...o };
    const socket = g().socket;
    if (socket !== undefined) opts.socket = socket;
    return run(() => daemon(opts));
  });

program
  .command('status')
  .description(
    "the kernel (exit 7 if it is not running), its processes, mailboxes and segments, and the host's objects as 'ls' lists them",
  )
  .addOption(json())
  .action((o: { json?: boolean }) => run(() => status(g(), o)));

program
  .command('top')
  .description(
    'a live view of the kernel like top: mailboxes and processes by depth or rate, redrawn in place (keys d, i, o, w sort; q quits); plain periodic output when stdout is not a terminal',
  )
  .option('--interval <ms>', 'time between refreshes (default 1000)', integer(100))
  .option('--count <n>', 'stop after this many refreshes', integer(1))
  .addOption(
    new Option('--sort <by>', 'initial order (default depth)').choices(['depth', 'in', 'out', 'wait']),
  )
  .addOption(json())
  .action((o: TopOptions) => run(() => top(g(), o)));

program
  .command('ls [path...]')
  .description(
    "list every IPC object ipcbox can see, like ipcs: the kernel's processes, mailboxes and segments (if it runs; else it says so and lists the rest), POSIX shared memory, message queues, named semaphores, and the FIFOs and mapped files ipcbox knows of (created with 'fifo create', or remembered by a program) or that PATH names",
  )
  .addOption(json())
  .action((paths: string[], o: { json?: boolean }) => run(() => list(g(), paths, o)));

const mailbox = program.command('mailbox').description('create, remove and administer mailboxes');
mailbox
  .command('create <name>')
  .description(
    'create a system-owned mailbox (it lives until removed); --owner process is refused, see docs/cli.md',
  )
  .option('--capacity <n>', "0 (rendezvous), N (bounded) or 'unbounded'", (v) => {
    if (v !== 'unbounded' && !/^\d+$/.test(v))
      throw new InvalidArgumentError("expected a number or 'unbounded'");
    return v;
  })
  .addOption(
    new Option('--delivery <policy>', 'which receiver gets a message').choices([
      'exclusive',
      'round-robin',
      'arbitrary',
      'broadcast',
    ]),
  )
  .addOption(
    new Option(
      '--owner <owner>',
      "system (default). 'process' is refused: this command would own it, and it would vanish as the command exits",
    ).choices(['system', 'process']),
  )
  .option('--max-size <size>', `largest message (${SIZE_HELP})`, byteSize)
  .option('--fixed-size <size>', `every message exactly this size (${SIZE_HELP})`, byteSize)
  .option(
    '--durable',
    'keep its messages on disk (JetStream) until taken: needs a clustered kernel (docs/cluster.md)',
  )
  .addOption(
    new Option(
      '--transport <path>',
      "the path messages take: auto (default: shm for a fixed size of 16 KiB or more on a host-local kernel), kernel, or shm (README 'Which path')",
    ).choices(['auto', 'kernel', 'shm']),
  )
  .addOption(json())
  .action((name: string, o) => run(() => createMailbox(g(), name, o)));
mailbox
  .command('rm <name...>')
  .description(
    'remove mailboxes (like ipcrm); pending operations on them fail with MAILBOX_CLOSED. Every name is tried; the exit status is that of the first failure',
  )
  .addOption(json())
  .action((names: string[], o: { json?: boolean }) => run(() => removeMailboxes(g(), names, o)));
for (const change of ['grant', 'revoke'] as const) {
  mailbox
    .command(change)
    .argument('<name>')
    .addArgument(new Argument('<right>').choices(['send', 'receive']))
    .argument('<who...>')
    .description(
      change === 'grant'
        ? "let WHO (process names, or 'everyone') send or receive (RIGHT: send|receive); owner or, for a system mailbox, its user only"
        : "take RIGHT (send|receive) from WHO (process names, or 'everyone': all but the owner); receivers that lose it are detached",
    )
    .addOption(json())
    .action((name: string, r: RightKind, who: string[], o: { json?: boolean }) =>
      run(() => changeRights(g(), change, name, r, who, o)),
    );
}
mailbox
  .command('transfer <name> <to>')
  .description('pass ownership (deletion, rights management) to connected process TO')
  .addOption(json())
  .action((name: string, to: string, o: { json?: boolean }) => run(() => transferMailbox(g(), name, to, o)));

const shm = program.command('shm').description('list or remove shared-memory segments');
shm
  .command('ls')
  .description('list segments registered with the kernel')
  .addOption(json())
  .action((o: { json?: boolean }) => run(() => listSegments(g(), o)));
shm
  .command('rm <name...>')
  .description(
    'remove segments (like ipcrm -m): registered ones through the kernel, others by unlinking the name. Every name is tried; the exit status is that of the first failure',
  )
  .addOption(json())
  .action((names: string[], o: { json?: boolean }) => run(() => removeSegments(g(), names, o)));

const fifo = program.command('fifo').description('create and remove named FIFOs (no kernel needed)');
fifo
  .command('create <path...>')
  .description(
    "make FIFOs (like mkfifo -m) and record them so 'ipcbox ls' lists them. Every path is tried; the exit status is that of the first failure",
  )
  .addOption(mode())
  .addOption(json())
  .action((paths: string[], o: { mode?: number; json?: boolean }) => run(() => createFifos(g(), paths, o)));
fifo
  .command('rm <path...>')
  .description(
    'remove FIFOs (open ends keep working) and forget them. Every path is tried; the exit status is that of the first failure',
  )
  .addOption(json())
  .action((paths: string[], o: { json?: boolean }) => run(() => removeFifos(g(), paths, o)));

const mq = program
  .command('mq')
  .description('POSIX message queues: list, create, send, receive, remove (no kernel needed)');
mq.command('ls')
  .description('list the message queues ipcbox can see (all of them only where /dev/mqueue is mounted)')
  .addOption(json())
  .action((o: { json?: boolean }) => run(() => listQueues(g(), o)));
mq.command('create <name>')
  .description('create queue NAME ("jobs" is "/jobs"); an existing one is NAME_TAKEN (exit 1)')
  .option(
    '--max-messages <n>',
    'capacity (default fs.mqueue.msg_default; above fs.mqueue.msg_max: OS_LIMIT, exit 9)',
    integer(1),
  )
  .option(
    '--message-size <size>',
    `largest message (${SIZE_HELP}; default fs.mqueue.msgsize_default; above msgsize_max: exit 9)`,
    byteSize,
  )
  .addOption(mode())
  .addOption(json())
  .action((name: string, o) => run(() => createQueue(g(), name, o)));
mq.command('send <name> [message]')
  .description(
    "send MESSAGE's bytes to queue NAME; MESSAGE '-' reads them from stdin (or use --file), up to the queue's message size (more: exit 8). Silent on success",
  )
  .option('--file <path>', 'read the message from a file')
  .option('--priority <p>', 'priority 0..32767 (higher first)', integer(0, 32767))
  .addOption(timeout('waiting for room'))
  .option('--nonblock', 'fail at once if the queue is full (exit 4)')
  .addOption(json())
  .action((name: string, message: string | undefined, o) =>
    run(() => sendToQueue(name, messageSource(message, o.file, 'mq send'), o)),
  );
mq.command('recv <name>')
  .description(
    'receive messages from queue NAME, highest priority first, and print each followed by a newline',
  )
  .addOption(timeout('waiting for a message'))
  .option('--nonblock', 'fail at once if the queue is empty (exit 4)')
  .option('--count <n>', 'receive N messages (default 1)', integer(1))
  .option('--raw', 'print the bytes only, no newline (byte-exact)')
  .option('--json', 'one JSON object per message: queue, priority, size, text (null if not UTF-8), base64')
  .action((name: string, o) => run(() => receiveFromQueue(name, o)));
mq.command('rm <name...>')
  .description(
    'remove queues (like ipcrm -Q); open handles keep working. Every name is tried; the exit status is that of the first failure',
  )
  .addOption(json())
  .action((names: string[], o: { json?: boolean }) => run(() => removeQueues(g(), names, o)));

const sem = program
  .command('sem')
  .description('named POSIX semaphores: list, create, post, wait, remove (no kernel needed)');
sem
  .command('ls')
  .description('list named semaphores (glibc keeps them in /dev/shm)')
  .addOption(json())
  .action((o: { json?: boolean }) => run(() => listSemaphores(g(), o)));
sem
  .command('create <name>')
  .description('create semaphore NAME; an existing one is NAME_TAKEN (exit 1)')
  .option('--value <n>', 'initial value (default 0)', integer(0, 0x7fffffff))
  .addOption(mode())
  .addOption(json())
  .action((name: string, o) => run(() => createSemaphore(g(), name, o)));
sem
  .command('post <name>')
  .addArgument(new Argument('[n]', 'permits to post').argParser(integer(1)).default(1))
  .description('post N permits to semaphore NAME. Silent on success')
  .addOption(json())
  .action((name: string, n: number, o: { json?: boolean }) => run(() => postSemaphore(name, n, o)));
sem
  .command('wait <name>')
  .description('take one permit from semaphore NAME, waiting for one. Silent on success')
  .addOption(timeout('waiting for a permit'))
  .option('--nonblock', 'fail at once if the value is 0 (exit 4)')
  .addOption(json())
  .action((name: string, o) => run(() => waitSemaphore(name, o)));
sem
  .command('rm <name...>')
  .description(
    'remove semaphores; open handles keep working. Every name is tried; the exit status is that of the first failure',
  )
  .addOption(json())
  .action((names: string[], o: { json?: boolean }) => run(() => removeSemaphores(g(), names, o)));

program
  .command('send <target> [message]')
  .description(
    "send MESSAGE to TARGET; MESSAGE '-' reads it from stdin (or use --file), up to the kernel's limit. Silent on success",
  )
  .option('--file <path>', 'read the message from a file')
  .addOption(
    new Option(
      '--codec <codec>',
      'string (default: UTF-8 text), bytes (byte-exact), json (MESSAGE parsed as JSON), v8 (JSON in the tagged form of docs/cli.md, sent as a structured clone)',
    ).choices(CODEC_NAMES),
  )
  .option('--priority <p>', 'priority 0..31 (higher first)', integer(0, 31))
  .addOption(timeout('waiting for room'))
  .option('--nonblock', 'fail at once if the message cannot be taken now (exit 4)')
  .option('--sync', 'return only when a receiver has taken the message')
  .addOption(json())
  .action((target: string, message: string | undefined, o) =>
    run(() => send(g(), target, messageSource(message, o.file, 'send'), o)),
  );

program
  .command('recv <target>')
  .description(
    'receive from a mailbox, or as process @name receive its direct messages. Each message is acknowledged only once printed: one that cannot be printed (stdout closed, undecodable) stays in the mailbox (not with @name: that inbox ends with the command)',
  )
  .addOption(timeout('waiting for a message'))
  .option('--nonblock', 'fail at once if no message is there (exit 4)')
  .addOption(
    new Option('--count <n>', 'receive N messages (default 1; with --peek at most 100)')
      .argParser(integer(1))
      .conflicts('follow'),
  )
  .addOption(
    new Option(
      '--peek',
      'print copies of the first queued messages (--count) and leave them queued; nothing queued: exit 4',
    ).conflicts(['follow', 'ack', 'timeout', 'nonblock']),
  )
  .option(
    '--follow',
    'receive until SIGINT/SIGTERM (exit 0); with --timeout or --nonblock, also until none comes in time (exit 0)',
  )
  .option('--ack', 'acknowledge each message after it has been printed (the default)')
  .option(
    '--no-ack',
    'take each message on delivery, before printing (a message that fails to print is lost)',
  )
  .option('--json', 'one JSON object per message: mailbox, sender, priority, codec, data (see docs/cli.md)')
  .action((target: string, o) => run(() => recv(g(), target, o)));

program
  .command('wait <name...>')
  .description(
    'wait until a process of each NAME is connected (exit 0); a kernel-assigned name (proc-N) not connected fails at once (exit 5). Silent, or with --json one line per process',
  )
  .option('--timeout <ms>', 'give up after MS milliseconds (exit 3)', integer(0))
  .addOption(json())
  .action((names: string[], o: { timeout?: number; json?: boolean }) =>
    run(() => waitForProcesses(g(), names, o)),
  );

program
  .command('signal <name> <type> [payload]')
  .description(
    'send an asynchronous notice to process NAME (payload is JSON if it parses). Silent on success',
  )
  .addOption(json())
  .action((name: string, type: string, payload: string | undefined, o: { json?: boolean }) =>
    run(() => signal(g(), name, type, payload, o)),
  );

program
  .command('signals')
  .description(
    'connect (as --name) and print signals sent to this process: TYPE from SENDER PAYLOAD. One by default',
  )
  .addOption(new Option('--count <n>', 'print N signals').argParser(integer(1)).conflicts('follow'))
  .option(
    '--follow',
    'print signals until SIGINT/SIGTERM (exit 0); with --timeout, also until none comes in time',
  )
  .option('--timeout <ms>', 'give up waiting for a signal after MS milliseconds (exit 3)', integer(0))
  .addOption(json())
  .action((o) => run(() => signals(g(), o)));

/** `ipcbox mailbox create` for the hint of a usage error in that command. */
function commandPath(cmd: Command): string | undefined {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.length === 0 ? undefined : names.join(' ');
}

/** The command whose action runs (for the hint of a usage error found while it runs). */
let running: string | undefined;
program.hook('preAction', (_root, action) => {
  running = commandPath(action);
});

/**
 * Every command: no excess arguments; parse errors become one-line
 * UsageErrors naming the command (commander's own output, and the help it
 * would print with the error, are suppressed).
 */
function configure(cmd: Command): void {
  cmd
    .allowExcessArguments(false)
    .showHelpAfterError(false)
    .configureOutput({ outputError: () => {}, writeErr: () => {} })
    .exitOverride((e) => {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') throw e;
      if (e.code === 'commander.help') {
        const sub = cmd.commands.map((c) => c.name()).join(', ');
        throw new UsageError(`missing command (one of: ${sub})`, commandPath(cmd));
      }
      throw new UsageError(e.message.replace(/^error: /, ''), commandPath(cmd));
    });
  for (const c of cmd.commands) configure(c);
}
configure(program);

/** Does the command line ask for JSON? A `--json` before any `--` is the option (commander reads it so too). */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

async function main(): Promise<number> {
  try {
    await program.parseAsync(process.argv);
    return actionStatus;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(e.code))
        return ExitCode.OK;
      // A parser error that reached here unconverted (thrown by an action) is still a usage error.
      return reportFailure(
        new UsageError(e.message.replace(/^error: /, '')),
        wantsJson(process.argv.slice(2)),
        running,
      );
    }
    // The reader of stdout has had enough: end quietly, as Unix filters do.
    if (e instanceof StdoutClosedError) return ExitCode.OK;
    return reportFailure(e, wantsJson(process.argv.slice(2)), running);
  }
}

process.exitCode = await main();
