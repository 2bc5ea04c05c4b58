/**
 * Identifies the code a process runs, so a client never hands a command to a server that
 * still runs an older build: the modification time of the compiled CLI program module.
 */
import fs from 'node:fs';

export function buildId(): string {
  try {
    return String(fs.statSync(new URL('./program.js', import.meta.url)).mtimeMs);
  } catch {
    return 'unknown';
  }
}
