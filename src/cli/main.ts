#!/usr/bin/env node
/**
 * The `nsnet` entry point. Node's start-up (~60 ms here) is unavoidable; loading the engine
 * (koffi, better-sqlite3, libnftables, commander, ~50 modules: ~100 ms) is not. When a
 * resident `nsnet serve` runs for this state directory in this network namespace, the hot
 * commands (connect, disconnect and the read-only ones) are handed to it over its socket and
 * this process loads nothing else; otherwise, and for everything else, the command runs here.
 */
import { forward } from './client.cjs';

const code = (await forward(process.argv.slice(2))) ?? (await (await import('./program.js')).runCli(process.argv.slice(2)));
process.exitCode = code;
