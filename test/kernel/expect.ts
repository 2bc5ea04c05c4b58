/**
 * Assertions on nsnet's typed errors: tests branch on the stable `code` (and check the
 * object, errno and extended-ack text), never on the message alone.
 */
import assert from 'node:assert/strict';
import { NsnetError, type ErrorCode } from '../../src/errors.js';

export interface Expected {
  object?: string;
  errno?: number;
  /** A pattern the kernel's extended-ack text must match (implies it is present). */
  extack?: RegExp;
  message?: RegExp;
}

/** Runs `fn`, asserts it throws an NsnetError with `code` (and the details given); returns it. */
export function throwsCode(fn: () => unknown, code: ErrorCode, x: Expected = {}): NsnetError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `expected ${code}, but nothing was thrown`);
  assert.ok(caught instanceof NsnetError, `expected NsnetError ${code}, got ${String(caught)}`);
  const e = caught;
  assert.equal(e.code, code, `code (message: ${e.message})`);
  if (x.object !== undefined) assert.equal(e.object, x.object, `object (message: ${e.message})`);
  if (x.errno !== undefined) assert.equal(e.errno, x.errno, `errno (message: ${e.message})`);
  if (x.extack !== undefined) {
    assert.ok(e.extack !== undefined, `expected an extended-ack message (message: ${e.message})`);
    assert.match(e.extack, x.extack);
  }
  if (x.message !== undefined) assert.match(e.message, x.message);
  return e;
}
