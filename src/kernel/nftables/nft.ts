/**
 * nftables in process: one libnftables context, commands in its JSON syntax, each call to
 * run() one kernel transaction (DESIGN.md decisions 1 and 3).
 *
 * Atomicity: libnftables puts all commands of one nft_run_cmd_from_buffer call into a single
 * nfnetlink batch (NFNL_MSG_BATCH_BEGIN … END, src/libnftables.c: nft_netlink), and the
 * kernel commits or aborts the batch as a whole. A command that fails to parse or evaluate
 * stops the call before anything is sent. Either way a failed run() changes nothing.
 *
 * Network namespaces — the rule (libnftables 1.0.6; details in libnftables.ts):
 *   - nft_ctx_new opens the context's NETLINK_NETFILTER socket, so the context is bound for
 *     its whole life to the namespace the calling thread is in when the Nft is constructed.
 *     Tables, chains, sets and elements are always read and written there, whatever
 *     namespace the thread is in at run() time.
 *   - Resolving an interface name to an index (`iif "x"`, `oif "x"`) happens per command, in
 *     the namespace of the thread calling run().
 * So: construct inside the target namespace; run inside it too whenever a command may name
 * an interface by iif/oif. The `enter` option does both: Nft calls nft_ctx_new and every
 * command through it, e.g. `new Nft({ enter: (fn) => netns.run(fn) })`. Without it, the
 * calling thread's current namespace is used, which is what a process already inside the
 * target namespace (a sandbox, a CNI plugin after setns) wants.
 *
 * Everything here is synchronous and runs on the calling thread, like src/kernel/sys/libc.ts.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { NsnetError } from '../../errors.js';
import { AF_NETLINK, SOCK_CLOEXEC, SOCK_RAW, close, socket, strerror } from '../sys/libc.js';
import {
  NETLINK_NETFILTER,
  NFT_CTX_DEFAULT,
  NFT_CTX_OUTPUT_ECHO,
  NFT_CTX_OUTPUT_HANDLE,
  NFT_CTX_OUTPUT_JSON,
  loadLibnftables,
  nftAvailable,
  type Libnftables,
  type NftCtxPtr,
} from './libnftables.js';
import type { NftCommand, NftFamily, NftObject, NftOutput } from './types.js';

export { nftAvailable };
export type * from './types.js';

export interface NftOptions {
  /**
   * Runs `fn` with the calling thread inside the target network namespace and returns its
   * result. Nft calls nft_ctx_new and every command through it. Default: run in place.
   */
  enter?: <T>(fn: () => T) => T;
}

export interface NftRunOptions {
  /**
   * Print back what was added, with the handles the kernel assigned (NFT_CTX_OUTPUT_ECHO):
   * how to learn a new rule's handle without listing the chain.
   */
  echo?: boolean;
}

/**
 * `nsnet.kernel.nftables`: one message per call, `{ input, durationMs, error? }`, for
 * `--debug` and tests. Nothing is built unless someone subscribes.
 */
const channel = diagnostics_channel.channel('nsnet.kernel.nftables');

const inPlace = <T>(fn: () => T): T => fn();

export class Nft {
  readonly #lib: Libnftables;
  readonly #enter: <T>(fn: () => T) => T;
  #ctx: NftCtxPtr | null;

  /** Opens a libnftables context in the namespace `options.enter` puts the thread in. */
  constructor(options: NftOptions = {}) {
    const lib = loadLibnftables();
    this.#lib = lib;
    this.#enter = options.enter ?? inPlace;
    this.#ctx = this.#enter(() => {
      probeNetfilterSocket();
      return lib.nft_ctx_new(NFT_CTX_DEFAULT);
    });
    if (!this.#ctx) throw new NsnetError('NFT_ERROR', 'nft_ctx_new failed');
    // Without these, libnftables writes to the process's stdout and stderr.
    if (lib.nft_ctx_buffer_output(this.#ctx) !== 0 || lib.nft_ctx_buffer_error(this.#ctx) !== 0) {
      this.close();
      throw new NsnetError('NFT_ERROR', 'libnftables could not buffer its output');
    }
  }

  /**
   * Runs `cmds` as one transaction (e.g. `nft -j -f`). Returns the parsed output of a list
   * command (or of `echo`), undefined when there is none. A list command must be the only
   * command of its call (1.0.6 fails a second one; rejected up front).
   * Throws NFT_ERROR with libnftables' own message, on one line; `errno` is set when the
   * message is an errno text (ENOENT for a missing table, EEXIST for `create` of an existing one).
   */
  run(cmds: NftCommand[] | { nftables: NftCommand[] }, options: NftRunOptions = {}): NftOutput | undefined {
    const list = Array.isArray(cmds) ? cmds : cmds.nftables;
    if (list.length === 0) return undefined;
    checkCommands(list);
    let flags = NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE;
    if (options.echo) flags |= NFT_CTX_OUTPUT_ECHO;
    const out = this.#call(JSON.stringify({ nftables: list }), flags, (index) => describe(list[index] ?? list[0]));
    return parseOutput(out);
  }

  /**
   * Runs a script in the nft text syntax (`add table inet nsnet; add chain …`) as one
   * transaction, e.g. for maps with concatenated data types, which 1.0.6's JSON cannot
   * declare. Returns what libnftables printed (list commands), as text.
   */
  runText(script: string): string {
    return this.#call(script, 0, () => undefined);
  }

  /**
   * The objects of one table (`nft -j list table FAMILY NAME`), with handles: the table
   * itself, then its chains, sets, maps and rules. null when the table does not exist.
   * Kinds this module has no type for (counters, flowtables…) come through as they are.
   */
  listTable(family: NftFamily, name: string): NftObject[] | null {
    let out: NftOutput | undefined;
    try {
      out = this.run([{ list: { table: { family, name } } }]);
    } catch (e) {
      if (e instanceof NsnetError && e.code === 'NFT_ERROR' && e.errno === ENOENT) return null;
      throw e;
    }
    return objectsOf(out);
  }

  /** Every table in the namespace, nsnet's or not (`nft -j list tables`). */
  listTables(): Array<{ family: NftFamily; name: string }> {
    const tables: Array<{ family: NftFamily; name: string }> = [];
    for (const o of objectsOf(this.run([{ list: { tables: null } }]))) {
      if ('table' in o) tables.push({ family: o.table.family, name: o.table.name });
    }
    return tables;
  }

  /** Frees the context and closes its socket. Idempotent. */
  close(): void {
    if (this.#ctx) this.#lib.nft_ctx_free(this.#ctx);
    this.#ctx = null;
  }

  #call(input: string, flags: number, objectAt: (index: number) => string | undefined): string {
    const ctx = this.#ctx;
    if (!ctx) throw new Error('Nft: used after close()');
    const lib = this.#lib;
    const start = channel.hasSubscribers ? performance.now() : 0;
    const once = (): { rc: number; out: string; err: string } => this.#enter(() => {
      lib.nft_ctx_output_set_flags(ctx, flags);
      const rc = lib.nft_run_cmd_from_buffer(ctx, input);
      // Always drain both buffers: reading rewinds them for the next call.
      return { rc, out: lib.nft_ctx_get_output_buffer(ctx) ?? '', err: lib.nft_ctx_get_error_buffer(ctx) ?? '' };
    });
    let { rc, out, err } = once();
    // A signal (a profiler's SIGPROF, a child's SIGCHLD) can interrupt libnftables' netlink
    // receive; the transaction was not committed (a batch is all or nothing), so run it again.
    for (let retry = 0; rc !== 0 && /Interrupted system call/.test(err) && retry < 3; retry++) ({ rc, out, err } = once());
    const error = rc === 0 ? undefined : nftError(err, objectAt);
    if (channel.hasSubscribers) channel.publish({ input, durationMs: performance.now() - start, error });
    if (error) throw error;
    return out;
  }
}

// include/uapi/asm-generic/errno-base.h
const ENOENT = 2;

/**
 * libnftables prints one record per problem: `<location>: Error: <message>` for JSON input
 * ("internal:0:0-0: Error: …", "netlink: Error: …") and `Error: <message>` followed by the
 * offending line and a caret line for text input. Keep the messages, joined on one line.
 */
export function nftError(text: string, objectAt: (index: number) => string | undefined = () => undefined): NsnetError {
  const messages: string[] = [];
  for (const line of text.split('\n')) {
    const m = /(?:^|: )Error: (.*)$/.exec(line);
    if (m?.[1]) messages.push(m[1].trim());
  }
  if (messages.length === 0) {
    const first = text.split('\n').map((l) => l.trim()).find((l) => l !== '');
    messages.push(first ?? 'libnftables failed without a message');
  }
  let index = 0;
  for (const m of messages) {
    const at = /^Parsing command array at index (\d+) failed\.$/.exec(m);
    if (at) index = Number(at[1]);
  }
  return new NsnetError('NFT_ERROR', messages.join('; '), { object: objectAt(index), errno: errnoOf(messages) });
}

let errnoByText: Map<string, number> | undefined;

/**
 * libnftables reports a kernel or lookup failure only as strerror() text ("Could not process
 * rule: No such file or directory", or just "No such file or directory" when its cache
 * lookup fails first); its API has no errno. Map the text back here, once, so callers
 * branch on `errno`, never on the message.
 */
function errnoOf(messages: string[]): number | undefined {
  if (!errnoByText) {
    errnoByText = new Map();
    for (let e = 1; e < 134; e++) errnoByText.set(strerror(e), e);
  }
  for (const m of messages) {
    const e = errnoByText.get(m.replace(/^Could not process rule: /, ''));
    if (e !== undefined) return e;
  }
  return undefined;
}

/**
 * Opening the socket nft_ctx_new will open, first: on failure libnftables calls exit(),
 * which would end the whole process (libnftables.ts). Costs one socket()/close().
 */
function probeNetfilterSocket(): void {
  let fd: number;
  try {
    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  } catch (e) {
    const why = e instanceof NsnetError ? e.message : String(e);
    throw new NsnetError('NFT_UNAVAILABLE', `cannot open a netfilter netlink socket (${why}): is nfnetlink available in this kernel?`, {
      errno: e instanceof NsnetError ? e.errno : undefined,
      cause: e,
    });
  }
  close(fd);
}

/** Rejects, before libnftables misreads them, inputs 1.0.6 gets wrong. */
function checkCommands(list: NftCommand[]): void {
  // 1.0.6 narrows its cache to what the first list command needs, so a second list in the
  // same call fails with ENOENT ("No such file or directory") for an object that exists.
  if (list.length > 1 && list.some((cmd) => 'list' in cmd)) {
    throw new NsnetError('NFT_ERROR', 'a list command must be alone in its run(): libnftables 1.0.6 cannot list twice in one call', {
      object: describe(list.find((cmd) => 'list' in cmd)),
    });
  }
  list.forEach((cmd, i) => {
    const obj = 'add' in cmd ? cmd.add : 'create' in cmd ? cmd.create : undefined;
    if (obj && 'map' in obj && typeof obj.map.map !== 'string') {
      throw new NsnetError(
        'NFT_ERROR',
        `command ${i}: map ${obj.map.name}: the data type must be one type name; libnftables 1.0.6 ` +
          'JSON ignores a concatenated one (and creates a set): declare such a map with runText()',
        { object: describe(cmd) },
      );
    }
  });
}

/** "inet nsnet" or "inet nsnet ports": the object a command is about, for error details. */
function describe(cmd: NftCommand | undefined): string | undefined {
  if (!cmd) return undefined;
  const target = Object.values(cmd)[0] as Record<string, unknown> | undefined;
  const o = target && (Object.values(target)[0] as Record<string, unknown> | null | undefined);
  if (!o || typeof o !== 'object') return undefined;
  const parts = [o['family'], o['table'], o['name'] ?? o['chain']].filter((p) => typeof p === 'string');
  return parts.length > 0 ? parts.join(' ') : undefined;
}

/**
 * libnftables prints one JSON document per list command (or echo), on one line. run() allows
 * one list per call; merging keeps the parse total if a script still yields several.
 */
function parseOutput(text: string): NftOutput | undefined {
  const docs = text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as NftOutput);
  if (docs.length === 0) return undefined;
  if (docs.length === 1) return docs[0];
  return { nftables: docs.flatMap((d) => d.nftables) };
}

function objectsOf(out: NftOutput | undefined): NftObject[] {
  return (out?.nftables ?? []).filter((o): o is NftObject => !('metainfo' in o));
}
