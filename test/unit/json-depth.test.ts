/**
 * nestsDeeperThan (src/kernel/json-depth.ts), the kernel's guard on how deeply a CALL's JSON nests:
 * it counts arrays and objects inside one another and nothing inside strings, escapes included.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_CALL_NESTING, nestsDeeperThan } from '../../src/kernel/json-depth.js';

test('depth at the limit passes, one more is refused', () => {
  const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  assert.equal(nestsDeeperThan(nested(MAX_CALL_NESTING), MAX_CALL_NESTING), false);
  assert.equal(nestsDeeperThan(nested(MAX_CALL_NESTING + 1), MAX_CALL_NESTING), true);
  assert.equal(nestsDeeperThan(`{"a":{"b":[{"c":1}]}}`, 4), false);
  assert.equal(nestsDeeperThan(`{"a":{"b":[{"c":1}]}}`, 3), true);
});

test('brackets inside strings do not count, escaped quotes do not end a string', () => {
  assert.equal(nestsDeeperThan(`{"s":"${'['.repeat(500)}"}`, 1), false);
  assert.equal(nestsDeeperThan(`{"s":"a\\"${'{'.repeat(500)}"}`, 1), false);
  assert.equal(nestsDeeperThan(`{"s":"a\\\\"${'['.repeat(3)}`, 2), true);
});

test('siblings do not add up: depth is nesting, not count', () => {
  assert.equal(nestsDeeperThan(`[${'[],'.repeat(10_000)}[]]`, 2), false);
});
