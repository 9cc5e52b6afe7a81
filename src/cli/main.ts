#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { IpcError } from '../errors.js';
import { type GlobalOptions, parseIntOption } from './commands/common.js';
import { daemon } from './commands/daemon.js';
import { createMailbox, removeMailbox } from './commands/mailbox.js';
import { recv } from './commands/recv.js';
import { send } from './commands/send.js';
import { listSegments, removeSegment } from './commands/shm.js';
import { signal } from './commands/signal.js';
import { status } from './commands/status.js';
import { EXIT_CODES_HELP, ExitCode, exitCodeFor } from './exit-codes.js';

function intArg(label: string, max?: number) {
  const parse = parseIntOption(label, max);
  return (v: string) => {
    try {
      return parse(v);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };
}

const program = new Command();
program
  .name('ipcbox')
  .description('Inspect and drive ipcbox IPC objects: processes, mailboxes, segments, signals.')
  .option(
    '--socket <path>',
    'kernel socket (default: $IPCBOX_SOCKET, $XDG_RUNTIME_DIR/ipcbox/kernel.sock, /tmp/ipcbox-<uid>/kernel.sock)',
  )
  .option('--name <name>', 'process name this command connects as (default: assigned by the kernel)')
  .addHelpText('after', `\nTARGET names a mailbox, or a process as @name.\n\n${EXIT_CODES_HELP}\n`)
  .showHelpAfterError()
  .exitOverride();

const g = (): GlobalOptions => program.opts<GlobalOptions>();

program
  .command('daemon')
  .description('run the kernel in the foreground (SIGINT/SIGTERM stop it and remove its socket)')
  .option('--max-message-size <bytes>', 'largest message payload', intArg('--max-message-size'))
  .option(
    '--memory-budget <bytes>',
    'bytes the kernel may hold for messages before sends fail with KERNEL_FULL',
    intArg('--memory-budget'),
  )
  .option('--group <name>', 'let members of this group connect (socket 0660); rights are then held by uid')
  .option(
    '--revoke-timeout <ms>',
    'how long a credit holder may take to answer REVOKE',
    intArg('--revoke-timeout'),
  )
  .action(
    async (o: { maxMessageSize?: number; memoryBudget?: number; group?: string; revokeTimeout?: number }) => {
      const opts: Parameters<typeof daemon>[0] = { ...o };
      const socket = g().socket;
      if (socket !== undefined) opts.socket = socket;
      await daemon(opts);
    },
  );

program
  .command('status')
  .description('list processes and mailboxes (like ipcs)')
  .option('--json', 'machine-readable output')
  .action((o: { json?: boolean }) => status(g(), o));

const mailbox = program.command('mailbox').description('create or remove mailboxes');
mailbox
  .command('create <name>')
  .description('create a mailbox (owned by the system unless --owner process)')
  .option('--capacity <n>', "0 (rendezvous), N (bounded) or 'unbounded'", (v) => {
    if (v !== 'unbounded' && !/^\d+$/.test(v))
      throw new InvalidArgumentError("capacity must be a number or 'unbounded'");
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
      'system: lives until removed; process: removed when its creator exits',
    ).choices(['system', 'process']),
  )
  .option('--max-size <bytes>', 'largest message', intArg('--max-size'))
  .option('--fixed-size <bytes>', 'every message exactly this size', intArg('--fixed-size'))
  .action((name: string, o) => createMailbox(g(), name, o));
mailbox
  .command('rm <name>')
  .description('remove a mailbox (like ipcrm); pending operations on it fail with MAILBOX_CLOSED')
  .action((name: string) => removeMailbox(g(), name));

const shm = program.command('shm').description('list or remove shared-memory segments');
shm
  .command('ls')
  .description('list segments registered with the kernel')
  .option('--json', 'machine-readable output')
  .action((o: { json?: boolean }) => listSegments(g(), o));
shm
  .command('rm <name>')
  .description(
    'remove a segment (like ipcrm -m): registered ones through the kernel, others by unlinking the name',
  )
  .action((name: string) => removeSegment(g(), name));

program
  .command('send <target> <message>')
  .description('send MESSAGE (a string, or JSON with --json) to TARGET')
  .option('--priority <p>', 'priority 0..31 (higher first)', intArg('--priority', 31))
  .option('--timeout <ms>', 'give up after MS milliseconds (exit 3)', intArg('--timeout'))
  .option('--nonblock', 'fail at once if the mailbox is full (exit 4)')
  .option('--sync', 'return only when a receiver has taken the message')
  .option('--json', 'send MESSAGE parsed as JSON')
  .action((target: string, message: string, o) => {
    if (o.timeout !== undefined && o.nonblock)
      throw new InvalidArgumentError('--timeout and --nonblock cannot be combined');
    return send(g(), target, message, o);
  });

program
  .command('recv <target>')
  .description('receive from a mailbox, or as process @name receive its direct messages')
  .option('--timeout <ms>', 'give up after MS milliseconds (exit 3)', intArg('--timeout'))
  .option('--nonblock', 'fail at once if no message is there (exit 4)')
  .option('--count <n>', 'receive N messages (default 1)', intArg('--count'))
  .option('--json', 'print one JSON object per message: sender, priority, codec, data')
  .action((target: string, o) => {
    if (o.timeout !== undefined && o.nonblock)
      throw new InvalidArgumentError('--timeout and --nonblock cannot be combined');
    return recv(g(), target, o);
  });

program
  .command('signal <name> <type> [payload]')
  .description('send an asynchronous notice to process NAME (payload is JSON if it parses)')
  .action((name: string, type: string, payload: string | undefined) => signal(g(), name, type, payload));

async function main(): Promise<number> {
  try {
    await program.parseAsync(process.argv);
    return ExitCode.OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      )
        return ExitCode.OK;
      return ExitCode.USAGE;
    }
    if (e instanceof InvalidArgumentError) {
      process.stderr.write(`ipcbox: ${e.message}\n`);
      return ExitCode.USAGE;
    }
    if (e instanceof IpcError) {
      process.stderr.write(`ipcbox: ${e.message} [${e.code}]\n`);
      return exitCodeFor(e.code);
    }
    if (e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError) {
      process.stderr.write(`ipcbox: ${e.message}\n`);
      return ExitCode.USAGE;
    }
    process.stderr.write(`ipcbox: ${(e as Error).stack ?? String(e)}\n`);
    return ExitCode.ERROR;
  }
}

process.exitCode = await main();
