/**
 * Who already holds a host port: sockets listening (TCP) or bound (UDP) in the host's
 * network namespace, read from /proc/net/{tcp,tcp6,udp,udp6} (format: Documentation/
 * networking/proc_net_tcp.rst), and the process that owns the socket (found through
 * /proc/PID/fd links to socket:[INODE]). Used to refuse a published port that would
 * shadow, or be shadowed by, a service on the host.
 */
import fs from 'node:fs';
import { bytesToIp, ipToBytes } from '../kernel/netlink/codec/inet.js';
import * as libc from '../kernel/sys/libc.js';

const TCP_LISTEN = '0A';

/** /proc/net addresses are 32-bit words in host (little-endian) byte order. */
function decodeAddress(hex: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < hex.length; i += 8) {
    const word = hex.slice(i, i + 8);
    for (let j = 6; j >= 0; j -= 2) bytes.push(parseInt(word.slice(j, j + 2), 16));
  }
  return bytesToIp(Buffer.from(bytes));
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

interface Sock { address: string; port: number; inode: string }

function sockets(file: string, listenOnly: boolean): Sock[] {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch { return []; }
  const out: Sock[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    if (listenOnly && f[3] !== TCP_LISTEN) continue;
    const [addr, port] = f[1]!.split(':') as [string, string];
    out.push({ address: decodeAddress(addr), port: parseInt(port, 16), inode: f[9]! });
  }
  return out;
}

function ownerOf(inode: string): string {
  const link = `socket:[${inode}]`;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let fds: string[];
    try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === link) {
          const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
          return `${comm} (pid ${pid})`;
        }
      } catch { /* raced with the process */ }
    }
  }
  return `a socket (inode ${inode}) of a process nsnet cannot see`;
}

/** The host's TCP listeners and UDP sockets, read on first use and then reused. */
export class HostSockets {
  private readonly byProto = new Map<'tcp' | 'udp', Map<number, Sock[]>>();

  onPort(proto: 'tcp' | 'udp', port: number): Sock[] {
    let index = this.byProto.get(proto);
    if (!index) {
      index = new Map();
      const files = proto === 'tcp' ? ['/proc/net/tcp', '/proc/net/tcp6'] : ['/proc/net/udp', '/proc/net/udp6'];
      for (const file of files) {
        for (const s of sockets(file, proto === 'tcp')) (index.get(s.port) ?? index.set(s.port, []).get(s.port)!).push(s);
      }
      this.byProto.set(proto, index);
    }
    return index.get(port) ?? [];
  }
}

// include/linux/socket.h, include/uapi/linux/in.h, in6.h, asm-generic/socket.h, errno.h
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SO_REUSEADDR = 2;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
const EADDRINUSE = 98;

function sockaddr(ip: string, port: number): Buffer {
  const bytes = ipToBytes(ip);
  const v6 = bytes.length === 16;
  const b = Buffer.alloc(v6 ? 28 : 16);
  b.writeUInt16LE(v6 ? AF_INET6 : AF_INET, 0);
  b.writeUInt16BE(port, 2);
  bytes.copy(b, v6 ? 8 : 4);
  return b;
}

/**
 * Whether `proto`/`port` can be bound on `ip` in the calling thread's namespace: the fast
 * test (a bind costs microseconds; reading /proc/net/tcp walks every socket on the host,
 * ~1–2 ms). SO_REUSEADDR keeps connections in TIME_WAIT from counting as holders.
 */
function canBind(proto: 'tcp' | 'udp', ip: string, port: number): boolean {
  const v6 = ip.includes(':');
  const fd = libc.socket(v6 ? AF_INET6 : AF_INET, (proto === 'tcp' ? SOCK_STREAM : SOCK_DGRAM) | libc.SOCK_CLOEXEC, 0);
  try {
    libc.setsockoptInt(fd, libc.SOL_SOCKET, SO_REUSEADDR, 1);
    if (v6) libc.setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    libc.bind(fd, sockaddr(ip, port));
    return true;
  } catch (e) {
    if ((e as { errno?: number }).errno === EADDRINUSE) return false;
    throw e;
  } finally {
    libc.close(fd);
  }
}

/** True when nothing on the host holds `proto`/`port` on `hostIp` (null: any address). */
export function portIsFree(proto: 'tcp' | 'udp' | 'sctp', port: number, hostIp: string | null): boolean {
  if (proto === 'sctp') return true;
  const ips = hostIp === null ? ['0.0.0.0', '::'] : [hostIp];
  return ips.every((ip) => canBind(proto, ip, port));
}

/**
 * Describes the holder of `proto`/`port` on the host that overlaps `hostIp` (null: every
 * address), or undefined when the port is free. SCTP is not checked.
 */
export function findPortHolder(proto: 'tcp' | 'udp' | 'sctp', port: number, hostIp: string | null, cache = new HostSockets()): string | undefined {
  if (proto === 'sctp') return undefined;
  for (const s of cache.onPort(proto, port)) {
    const address = s.address.replace(/^::ffff:/, '');
    if (hostIp === null || WILDCARDS.has(address) || address === hostIp) {
      return `${ownerOf(s.inode)} on ${address.includes(':') ? `[${address}]` : address}:${port}`;
    }
  }
  return undefined;
}
