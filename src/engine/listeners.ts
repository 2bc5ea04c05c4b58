/**
 * Who already holds a host port: sockets listening (TCP) or bound (UDP) in the host's
 * network namespace, read from /proc/net/{tcp,tcp6,udp,udp6} (format: Documentation/
 * networking/proc_net_tcp.rst), and the process that owns the socket (found through
 * /proc/PID/fd links to socket:[INODE]). Used to refuse a published port that would
 * shadow, or be shadowed by, a service on the host.
 */
import fs from 'node:fs';
import { bytesToIp } from '../kernel/netlink/codec/inet.js';

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
