import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IpcErrorCode } from '../../src/errors.js';
import { errorCodeFromWire, errorCodeToWire } from '../../src/wire/error-codes.js';

/**
 * The wire number of every code. The table is append-only (wire/error-codes.ts), so a
 * renumbering is a protocol break this test must catch. `satisfies` makes the compiler
 * reject this file when a code is added to IpcErrorCode but not listed here.
 */
const WIRE = {
  PROTOCOL: 0,
  TIMEOUT: 1,
  ABORTED: 2,
  WOULD_BLOCK: 3,
  NO_SUCH_MAILBOX: 4,
  NO_SUCH_PROCESS: 5,
  NO_SUCH_SEGMENT: 6,
  PERMISSION_DENIED: 7,
  MAILBOX_CLOSED: 8,
  MAILBOX_EXISTS: 9,
  MESSAGE_TOO_LARGE: 10,
  WRONG_MESSAGE_SIZE: 11,
  NAME_TAKEN: 12,
  RECEIVER_BUSY: 13,
  KERNEL_FULL: 14,
  KERNEL_UNAVAILABLE: 15,
  KERNEL_RUNNING: 16,
  DISCONNECTED: 17,
  NOT_SUPPORTED: 18,
  NATIVE_UNAVAILABLE: 19,
  OWNER_DEAD: 20,
  INVALID_ARGUMENT: 21,
  SEGMENT_EXISTS: 22,
  CLUSTER_UNAVAILABLE: 23,
  BROKEN_PIPE: 24,
  OS_LIMIT: 25,
  NO_SUCH_OBJECT: 26,
} as const satisfies Record<IpcErrorCode, number>;

const CODES = Object.keys(WIRE) as IpcErrorCode[];

describe('error codes on the wire', () => {
  it('every code round trips through its wire number', () => {
    for (const code of CODES) assert.equal(errorCodeFromWire(errorCodeToWire(code)), code);
  });

  it('every code keeps its published wire number', () => {
    for (const code of CODES) assert.equal(errorCodeToWire(code), WIRE[code], code);
  });

  it('wire numbers are distinct', () => {
    const numbers = CODES.map(errorCodeToWire);
    assert.equal(new Set(numbers).size, CODES.length);
  });

  it('an unknown wire number decodes as PROTOCOL', () => {
    for (const n of [CODES.length, 255, 0xffffffff, -1, 1.5]) assert.equal(errorCodeFromWire(n), 'PROTOCOL');
  });

  it('an unknown code string encodes as 0 (PROTOCOL)', () => {
    assert.equal(errorCodeToWire('NOT_A_CODE' as IpcErrorCode), 0);
  });
});
