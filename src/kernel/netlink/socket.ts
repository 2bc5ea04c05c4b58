/**
 * A NETLINK_ROUTE socket with synchronous request/ACK and dump semantics.
 *
 * Synchronous on purpose: a request costs ~0.3 ms end to end, a CLI does a few dozen, and
 * blocking I/O keeps "enter namespace → open socket → return" free of interleaving with
 * other JavaScript. SO_RCVTIMEO bounds every wait so a lost reply is an error, not a hang.
 *
 * The socket belongs to the network namespace of the thread that created it (see
 * src/kernel/netns/README.md); callers open it through a namespace handle.
 */
import { NsnetError, type ErrorCode } from '../../errors.js';
import * as libc from '../sys/libc.js';
import { ByteWriter } from './codec/bytes.js';
import { encodeMessageInto, decodeMessages, extackMessage, type NetlinkMessage } from './codec/message.js';
import { NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST } from './codec/constants.js';
import { publish } from '../../diagnostics.js';

/** One receive buffer for the whole process: all netlink I/O is synchronous on one thread. */
const RECV_BUFFER = Buffer.alloc(1 << 20);
const DUMP_RETRIES = 10;

const ERRNO_CODES: Record<number, ErrorCode> = {
  [libc.EEXIST]: 'NETLINK_EEXIST',
  [libc.ENOENT]: 'NETLINK_ENOENT',
  [libc.ENODEV]: 'NETLINK_ENODEV',
  [libc.EBUSY]: 'NETLINK_EBUSY',
  [libc.EINVAL]: 'NETLINK_EINVAL',
  [libc.EPERM]: 'NETLINK_EPERM',
  [libc.EOPNOTSUPP]: 'NETLINK_EOPNOTSUPP',
};

export class NetlinkError extends NsnetError {
  constructor(errno: number, what: string, extack: string | undefined, object: string | undefined) {
    const detail = extack ? `${libc.strerror(errno)} (${extack})` : libc.strerror(errno);
    super(ERRNO_CODES[errno] ?? 'NETLINK_ERROR', `${what}: ${detail}`, { errno, extack, object });
  }
}

export interface RequestOptions {
  /** Human description of the operation for error messages: "add link veth0". */
  what: string;
  object?: string;
}

/** One request of a batch (NetlinkSocket.requestAll). */
export interface BatchRequest extends RequestOptions {
  msg: NetlinkMessage;
  /** Errnos that count as success (EEXIST for an idempotent add). */
  tolerate?: readonly number[];
}

export class NetlinkSocket {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private closed = false;

  private constructor(private readonly fd: number) {}

  /**
   * Opens a netlink socket (NETLINK_ROUTE unless told otherwise, e.g. NETLINK_NETFILTER for
   * conntrack) in the calling thread's current network namespace.
   */
  static open(protocol: number = libc.NETLINK_ROUTE): NetlinkSocket {
    const fd = libc.socket(libc.AF_NETLINK, libc.SOCK_RAW | libc.SOCK_CLOEXEC, protocol);
    try {
      // Ask for the kernel's extended-ack text, and only the request header echoed back.
      libc.setsockoptInt(fd, libc.SOL_NETLINK, libc.NETLINK_EXT_ACK, 1);
      libc.setsockoptInt(fd, libc.SOL_NETLINK, libc.NETLINK_CAP_ACK, 1);
      libc.setsockoptInt(fd, libc.SOL_SOCKET, libc.SO_RCVBUF, 1 << 20);
      const tv = Buffer.alloc(16); // struct timeval { time_t tv_sec; suseconds_t tv_usec; }
      tv.writeBigInt64LE(10n, 0);
      libc.setsockoptBuf(fd, libc.SOL_SOCKET, libc.SO_RCVTIMEO, tv);
      libc.bind(fd, sockaddrNl(0));
    } catch (e) {
      libc.close(fd);
      throw e;
    }
    return new NetlinkSocket(fd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.fd);
  }

  /**
   * Sends one request with NLM_F_ACK and waits for its ACK. Returns the messages the
   * kernel sent before the ACK (with NLM_F_ECHO, the created object).
   */
  request(msg: NetlinkMessage, opts: RequestOptions): NetlinkMessage[] {
    const seq = this.send(msg, NLM_F_REQUEST | NLM_F_ACK);
    const replies: NetlinkMessage[] = [];
    for (;;) {
      for (const m of this.receive()) {
        if (m.header.seq !== seq) continue; // a stale reply to an earlier, abandoned request
        if (m.kind === 'error') {
          if (m.error === 0) return replies;
          throw new NetlinkError(-m.error, opts.what, extackMessage(m), opts.object);
        }
        replies.push(m);
      }
    }
  }

  /**
   * Sends several requests in one datagram and waits for every ACK. The kernel handles the
   * messages of one datagram in order, each under its own rtnl lock and with its own ACK
   * (net/netlink/af_netlink.c: netlink_rcv_skb), so a later request sees the earlier ones
   * done — one system call instead of one round trip each. Throws the first failure in
   * request order, after all ACKs have been read (a later request may have run after an
   * earlier one failed: callers undo the whole batch, as they would a single failure).
   */
  requestAll(reqs: readonly BatchRequest[]): void {
    if (this.closed) throw new Error('netlink socket used after close');
    if (reqs.length === 0) return;
    const w = new ByteWriter(256 * reqs.length);
    const indexBySeq = new Map<number, number>();
    reqs.forEach((r, i) => {
      const seq = this.nextSeq();
      indexBySeq.set(seq, i);
      encodeMessageInto(w, { ...r.msg, header: { ...r.msg.header, flags: r.msg.header.flags | NLM_F_REQUEST | NLM_F_ACK, seq, pid: 0 } } as NetlinkMessage);
      w.pad4();
    });
    libc.sendto(this.fd, w.finish(), sockaddrNl(0));
    const errors = new Map<number, NetlinkError>();
    while (indexBySeq.size > 0) {
      for (const m of this.receive()) {
        if (m.kind !== 'error') continue;
        const i = indexBySeq.get(m.header.seq);
        if (i === undefined) continue; // a stale reply to an earlier, abandoned request
        indexBySeq.delete(m.header.seq);
        const r = reqs[i]!;
        if (m.error !== 0 && !r.tolerate?.includes(-m.error)) errors.set(i, new NetlinkError(-m.error, r.what, extackMessage(m), r.object));
      }
    }
    if (errors.size > 0) throw errors.get(Math.min(...errors.keys()))!;
  }

  /**
   * Dumps a table (NLM_F_DUMP) until NLMSG_DONE. A dump that the kernel marks
   * NLM_F_DUMP_INTR (the table changed while it was read, include/uapi/linux/netlink.h)
   * is thrown away and repeated.
   */
  dump(msg: NetlinkMessage, opts: RequestOptions): NetlinkMessage[] {
    for (let attempt = 0; attempt < DUMP_RETRIES; attempt++) {
      const seq = this.send(msg, NLM_F_REQUEST | NLM_F_DUMP);
      const out: NetlinkMessage[] = [];
      let interrupted = false;
      let done = false;
      while (!done) {
        for (const m of this.receive()) {
          if (m.header.seq !== seq) continue;
          if (m.header.flags & NLM_F_DUMP_INTR) interrupted = true;
          if (m.kind === 'done') {
            if (m.error < 0) throw new NetlinkError(-m.error, opts.what, extackMessage(m), opts.object);
            done = true;
            break;
          }
          if (m.kind === 'error') {
            if (m.error === 0) { done = true; break; }
            throw new NetlinkError(-m.error, opts.what, extackMessage(m), opts.object);
          }
          out.push(m);
        }
      }
      if (!interrupted) return out;
      publish('netlink:dump-interrupted', { what: opts.what, attempt });
    }
    throw new NsnetError('NETLINK_DUMP_INTERRUPTED', `${opts.what}: dump interrupted ${DUMP_RETRIES} times in a row`, { object: opts.object });
  }

  /** The next sequence number: 32 bits, never 0 (the kernel's own notifications use 0). */
  private nextSeq(): number {
    return (this.seq = (this.seq + 1) >>> 0 || 1);
  }

  private send(msg: NetlinkMessage, flags: number): number {
    if (this.closed) throw new Error('netlink socket used after close');
    const seq = this.nextSeq();
    const w = new ByteWriter(256);
    encodeMessageInto(w, { ...msg, header: { ...msg.header, flags: msg.header.flags | flags, seq, pid: 0 } } as NetlinkMessage);
    libc.sendto(this.fd, w.finish(), sockaddrNl(0));
    return seq;
  }

  private receive(): NetlinkMessage[] {
    let n: number;
    try {
      n = libc.recv(this.fd, RECV_BUFFER, libc.MSG_TRUNC);
    } catch (e) {
      if (e instanceof NsnetError && e.errno === libc.EAGAIN) {
        throw new NsnetError('NETLINK_ERROR', 'netlink: no reply from the kernel within 10 s', { cause: e });
      }
      throw e;
    }
    if (n > RECV_BUFFER.length) throw new NsnetError('NETLINK_ERROR', `netlink: datagram of ${n} bytes truncated`);
    // Decoded attributes are views into the buffer: copy so the next recv cannot alias them.
    return decodeMessages(Buffer.from(RECV_BUFFER.subarray(0, n)));
  }
}

/** struct sockaddr_nl { sa_family_t nl_family; u16 pad; u32 nl_pid; u32 nl_groups; } */
function sockaddrNl(pid: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16LE(libc.AF_NETLINK, 0);
  b.writeUInt32LE(pid, 4);
  return b;
}


