import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_CAPACITY,
  type MailboxOptions,
  resolveMailboxOptions,
  validateName,
} from '../../src/core/mailbox-options.js';

const KERNEL_MAX = 1 << 20;

/** Assert that `fn` throws `type` and that the message names `option`. */
function throwsNaming(fn: () => unknown, type: typeof TypeError | typeof RangeError, option: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
    assert.match(e.message, new RegExp(`\\b${option}\\b`));
    return true;
  });
}

/** Lets a test pass values the types forbid, as an untyped caller (CLI, wire) could. */
function untyped(o: Record<string, unknown>): MailboxOptions {
  return o as MailboxOptions;
}

describe('resolveMailboxOptions: durable', () => {
  it('a durable mailbox must be system-owned, and durable must be a boolean', () => {
    throwsNaming(() => resolveMailboxOptions({ durable: true }, KERNEL_MAX), RangeError, 'system');
    throwsNaming(
      () => resolveMailboxOptions(untyped({ durable: 'yes', owner: 'system' }), KERNEL_MAX),
      TypeError,
      'durable',
    );
  });
});

describe('resolveMailboxOptions: defaults', () => {
  it('fills every default from an empty object', () => {
    assert.deepEqual(resolveMailboxOptions({}, KERNEL_MAX), {
      capacity: DEFAULT_CAPACITY,
      delivery: 'round-robin',
      owner: 'process',
      maxMessageSize: KERNEL_MAX,
      fixedMessageSize: undefined,
      senders: 'everyone',
      receivers: 'everyone',
      durable: false,
      transport: 'auto',
    });
    assert.equal(DEFAULT_CAPACITY, 1024);
  });

  it('keeps valid values as given', () => {
    const r = resolveMailboxOptions(
      {
        capacity: 7,
        delivery: 'arbitrary',
        owner: 'system',
        maxMessageSize: 100,
        fixedMessageSize: 100,
        senders: ['a', 'b'],
        receivers: ['c'],
        durable: true,
        transport: 'kernel',
      },
      KERNEL_MAX,
    );
    assert.deepEqual(r, {
      capacity: 7,
      delivery: 'arbitrary',
      owner: 'system',
      maxMessageSize: 100,
      fixedMessageSize: 100,
      senders: ['a', 'b'],
      receivers: ['c'],
      durable: true,
      transport: 'kernel',
    });
  });

  it("maps capacity 'unbounded' to Infinity and accepts 0 and 2**31", () => {
    assert.equal(
      resolveMailboxOptions({ capacity: 'unbounded' }, KERNEL_MAX).capacity,
      Number.POSITIVE_INFINITY,
    );
    assert.equal(resolveMailboxOptions({ capacity: 0 }, KERNEL_MAX).capacity, 0);
    assert.equal(resolveMailboxOptions({ capacity: 2 ** 31 }, KERNEL_MAX).capacity, 2 ** 31);
  });

  it('accepts every delivery policy', () => {
    for (const delivery of ['exclusive', 'round-robin', 'arbitrary', 'broadcast'] as const) {
      assert.equal(resolveMailboxOptions({ delivery }, KERNEL_MAX).delivery, delivery);
    }
  });

  it('accepts maxMessageSize 0 and equal to the kernel limit, fixedMessageSize 0', () => {
    assert.equal(resolveMailboxOptions({ maxMessageSize: 0 }, KERNEL_MAX).maxMessageSize, 0);
    assert.equal(
      resolveMailboxOptions({ maxMessageSize: KERNEL_MAX }, KERNEL_MAX).maxMessageSize,
      KERNEL_MAX,
    );
    assert.equal(resolveMailboxOptions({ fixedMessageSize: 0 }, KERNEL_MAX).fixedMessageSize, 0);
  });

  it('accepts an empty list of senders or receivers (only the owner)', () => {
    const r = resolveMailboxOptions({ senders: [], receivers: [] }, KERNEL_MAX);
    assert.deepEqual(r.senders, []);
    assert.deepEqual(r.receivers, []);
  });
});

describe('resolveMailboxOptions: validation names the option', () => {
  for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31 + 1, '5', 'infinite', true]) {
    it(`capacity ${String(bad)} → RangeError naming capacity`, () => {
      throwsNaming(
        () => resolveMailboxOptions(untyped({ capacity: bad }), KERNEL_MAX),
        RangeError,
        'capacity',
      );
    });
  }

  for (const bad of ['fifo', 'Broadcast', '', 3]) {
    it(`delivery ${JSON.stringify(bad)} → RangeError naming delivery`, () => {
      throwsNaming(
        () => resolveMailboxOptions(untyped({ delivery: bad }), KERNEL_MAX),
        RangeError,
        'delivery',
      );
    });
  }

  it('broadcast with capacity 0 → RangeError naming capacity and broadcast', () => {
    throwsNaming(
      () => resolveMailboxOptions({ capacity: 0, delivery: 'broadcast' }, KERNEL_MAX),
      RangeError,
      'capacity',
    );
    throwsNaming(
      () => resolveMailboxOptions({ capacity: 0, delivery: 'broadcast' }, KERNEL_MAX),
      RangeError,
      'broadcast',
    );
  });

  for (const bad of ['thread', 'System', '']) {
    it(`owner ${JSON.stringify(bad)} → RangeError naming owner`, () => {
      throwsNaming(() => resolveMailboxOptions(untyped({ owner: bad }), KERNEL_MAX), RangeError, 'owner');
    });
  }

  for (const bad of [-1, 1.5, Number.NaN, KERNEL_MAX + 1, '10']) {
    it(`maxMessageSize ${String(bad)} → RangeError naming maxMessageSize`, () => {
      throwsNaming(
        () => resolveMailboxOptions(untyped({ maxMessageSize: bad }), KERNEL_MAX),
        RangeError,
        'maxMessageSize',
      );
    });
  }

  for (const bad of [-1, 2.5, Number.NaN, 101, '10']) {
    it(`fixedMessageSize ${String(bad)} with maxMessageSize 100 → RangeError naming fixedMessageSize`, () => {
      throwsNaming(
        () => resolveMailboxOptions(untyped({ maxMessageSize: 100, fixedMessageSize: bad }), KERNEL_MAX),
        RangeError,
        'fixedMessageSize',
      );
    });
  }

  it('fixedMessageSize above the kernel limit (no maxMessageSize given) → RangeError', () => {
    throwsNaming(
      () => resolveMailboxOptions({ fixedMessageSize: KERNEL_MAX + 1 }, KERNEL_MAX),
      RangeError,
      'fixedMessageSize',
    );
  });

  for (const key of ['senders', 'receivers'] as const) {
    for (const bad of ['anyone', ['ok', ''], ['ok', 3], 'a', {}]) {
      it(`${key} ${JSON.stringify(bad)} → TypeError naming ${key}`, () => {
        throwsNaming(() => resolveMailboxOptions(untyped({ [key]: bad }), KERNEL_MAX), TypeError, key);
      });
    }
  }
});

describe('validateName', () => {
  it('returns a valid name unchanged, up to 255 UTF-8 bytes', () => {
    for (const name of [
      'worker',
      'a',
      'svc.logs/v1',
      'mail@box',
      'ñandú',
      'x'.repeat(255),
      'é'.repeat(127),
    ]) {
      assert.equal(validateName('mailbox', name), name);
    }
  });

  for (const [label, bad] of [
    ['an empty string', ''],
    ['256 ASCII bytes', 'x'.repeat(256)],
    ['256 UTF-8 bytes in 128 characters', 'é'.repeat(128)],
    ['a number', 42],
    ['undefined', undefined],
    ['a space', 'a b'],
    ['a tab', 'a\tb'],
    ['a newline', 'a\n'],
    ['a no-break space', 'a\u00a0b'],
    ['a NUL', 'a\u0000b'],
    ['DEL', 'a\u007fb'],
    ['a leading @', '@kernel'],
  ] as const) {
    it(`rejects ${label} with a TypeError naming the kind`, () => {
      throwsNaming(() => validateName('process', bad), TypeError, 'process');
    });
  }
});
