/**
 * koffi bindings for libnftables (Debian 12: libnftables1 1.0.6, `libnftables.so.1`).
 *
 * Declarations follow include/nftables/libnftables.h of nftables 1.0.6; the library is
 * loaded lazily, at first use, so that importing nsnet never fails on a host without
 * nftables: `loadLibnftables()` throws NFT_UNAVAILABLE then, and `nftAvailable()` says
 * whether it would.
 *
 * Which network namespace libnftables talks to (nftables 1.0.6, src/libnftables.c):
 *
 *     struct nft_ctx *nft_ctx_new(uint32_t flags) { ...
 *         if (flags == NFT_CTX_DEFAULT)
 *             nft_ctx_netlink_init(ctx);      // -> ctx->nf_sock = nft_mnl_socket_open();
 *
 * and every command goes out on that socket (`nft_netlink(nft, &cmds, &msgs, nft->nf_sock)`
 * in nft_run_cmd_from_buffer; the reopen-per-command path, nft_mnl_socket_reopen, was
 * removed in 0.9.9). A socket belongs to the namespace of the thread that created it, so
 * the nfnetlink socket — and with it every table, chain, set and element a context
 * touches — is pinned to the network namespace the calling thread was in at nft_ctx_new.
 *
 * One exception is per command: resolving an interface *name* to an index (`iif "veth0"`,
 * `oif`, …) opens a fresh NETLINK_ROUTE socket in src/iface.c (iface_cache_update, released
 * after every command), i.e. in the namespace of the thread calling nft_run_cmd_from_buffer.
 * Name matches (`iifname`, `oifname`) need no lookup. See nft.ts for the rule this gives.
 *
 * Caveat: if nft_ctx_new cannot open its socket, libnftables calls exit() (netlink.c,
 * __netlink_init_error → exit(NFT_EXIT_NONL)). nft.ts probes the socket first so that this
 * becomes a thrown error instead of the whole process ending.
 */
import koffi from 'koffi';
import { NsnetError } from '../../errors.js';

export const LIBNFTABLES_SONAME = 'libnftables.so.1';

// include/nftables/libnftables.h (nftables 1.0.6)
export const NFT_CTX_DEFAULT = 0;
export const NFT_CTX_OUTPUT_REVERSEDNS = 1 << 0;
export const NFT_CTX_OUTPUT_SERVICE = 1 << 1;
export const NFT_CTX_OUTPUT_STATELESS = 1 << 2;
export const NFT_CTX_OUTPUT_HANDLE = 1 << 3;
export const NFT_CTX_OUTPUT_JSON = 1 << 4;
export const NFT_CTX_OUTPUT_ECHO = 1 << 5;
export const NFT_CTX_OUTPUT_GUID = 1 << 6;
export const NFT_CTX_OUTPUT_NUMERIC_PROTO = 1 << 7;
export const NFT_CTX_OUTPUT_NUMERIC_PRIO = 1 << 8;
export const NFT_CTX_OUTPUT_NUMERIC_SYMBOL = 1 << 9;
export const NFT_CTX_OUTPUT_NUMERIC_TIME = 1 << 10;
export const NFT_CTX_OUTPUT_NUMERIC_ALL =
  NFT_CTX_OUTPUT_NUMERIC_PROTO | NFT_CTX_OUTPUT_NUMERIC_PRIO | NFT_CTX_OUTPUT_NUMERIC_SYMBOL;
export const NFT_CTX_OUTPUT_TERSE = 1 << 11;

// include/uapi/linux/netlink.h: the protocol libnftables opens (mnl.c, nft_mnl_socket_open).
export const NETLINK_NETFILTER = 12;

/** An opaque `struct nft_ctx *` as koffi hands it back. */
export type NftCtxPtr = { readonly __brand: 'nft_ctx' };

export interface Libnftables {
  nft_ctx_new(flags: number): NftCtxPtr | null;
  nft_ctx_free(ctx: NftCtxPtr): void;
  nft_ctx_output_get_flags(ctx: NftCtxPtr): number;
  nft_ctx_output_set_flags(ctx: NftCtxPtr, flags: number): void;
  /** Both return 0 on success: output/errors then go to an in-memory buffer, not stdout/stderr. */
  nft_ctx_buffer_output(ctx: NftCtxPtr): number;
  nft_ctx_buffer_error(ctx: NftCtxPtr): number;
  /** Returns the buffered text and rewinds the buffer (src/libnftables.c: get_cookie_buffer). */
  nft_ctx_get_output_buffer(ctx: NftCtxPtr): string;
  nft_ctx_get_error_buffer(ctx: NftCtxPtr): string;
  /** 0 on success; non-zero when parsing, evaluation or the kernel transaction failed. */
  nft_run_cmd_from_buffer(ctx: NftCtxPtr, buf: string): number;
}

let loaded: Libnftables | undefined;
let loadError: unknown;

function bind(): Libnftables {
  const lib = koffi.load(LIBNFTABLES_SONAME);
  // A named opaque type, so koffi checks that only nft_ctx pointers come back in.
  koffi.opaque('nft_ctx');
  return {
    nft_ctx_new: lib.func('nft_ctx *nft_ctx_new(uint32_t flags)'),
    nft_ctx_free: lib.func('void nft_ctx_free(nft_ctx *ctx)'),
    nft_ctx_output_get_flags: lib.func('unsigned int nft_ctx_output_get_flags(nft_ctx *ctx)'),
    nft_ctx_output_set_flags: lib.func('void nft_ctx_output_set_flags(nft_ctx *ctx, unsigned int flags)'),
    nft_ctx_buffer_output: lib.func('int nft_ctx_buffer_output(nft_ctx *ctx)'),
    nft_ctx_buffer_error: lib.func('int nft_ctx_buffer_error(nft_ctx *ctx)'),
    nft_ctx_get_output_buffer: lib.func('const char *nft_ctx_get_output_buffer(nft_ctx *ctx)'),
    nft_ctx_get_error_buffer: lib.func('const char *nft_ctx_get_error_buffer(nft_ctx *ctx)'),
    nft_run_cmd_from_buffer: lib.func('int nft_run_cmd_from_buffer(nft_ctx *ctx, const char *buf)'),
  };
}

/** The bindings; loads the library on first call. Throws NFT_UNAVAILABLE when it is missing. */
export function loadLibnftables(): Libnftables {
  if (loaded) return loaded;
  if (loadError === undefined) {
    try {
      loaded = bind();
      return loaded;
    } catch (e) {
      loadError = e;
    }
  }
  throw new NsnetError(
    'NFT_UNAVAILABLE',
    `${LIBNFTABLES_SONAME} not found: install the Debian package nftables`,
    { object: LIBNFTABLES_SONAME, cause: loadError },
  );
}

/** Whether libnftables can be loaded (loads it if it was not yet). */
export function nftAvailable(): boolean {
  try {
    loadLibnftables();
    return true;
  } catch {
    return false;
  }
}
