/**
 * Import this module FIRST in every test file that touches the kernel:
 *
 *   import '../harness/sandbox.js';
 *
 * The file then runs in its own private sandbox (src/sandbox/sandbox.ts): `node --test`
 * sees the sandboxed child's report as the file's own, files run in parallel without
 * sharing anything, and nothing reaches the host.
 */
import { enterSandbox } from '../../src/sandbox/sandbox.js';

enterSandbox();
