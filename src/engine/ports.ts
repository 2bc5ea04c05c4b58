/**
 * Published-port specs, in Docker's `-p` syntax:
 *
 *   [HOSTIP:]HOSTPORT[-END]:PORT[-END][/tcp|udp|sctp]
 *
 *   8080:80            host port 8080 (every host address) → port 80, TCP
 *   127.0.0.1:8443:443 only on 127.0.0.1
 *   [::1]:8080:80      IPv6 host addresses in brackets (note: the kernel cannot DNAT ::1)
 *   5000-5002:6000-6002/udp   ranges of equal length map one to one
 *
 * Pure: parsing and validation only; the engine checks conflicts and host addresses.
 */
import { NsnetError } from '../errors.js';
import { IpAddress } from '../ipam/address.js';

export type Proto = 'tcp' | 'udp' | 'sctp';
export const PROTOS: readonly Proto[] = ['tcp', 'udp', 'sctp'];

export interface PortSpec {
  /** The text as given (normalised), used to name the mapping for `unpublish`. */
  spec: string;
  hostIp: string | null;
  hostPort: number;
  hostPortEnd: number;
  containerPort: number;
  containerPortEnd: number;
  proto: Proto;
}

function bad(spec: string, why: string): NsnetError {
  return new NsnetError('USAGE', `invalid port spec "${spec}": ${why}`, { object: spec });
}

function parsePort(text: string, spec: string, what: string): number {
  if (!/^\d{1,5}$/.test(text)) throw bad(spec, `${what} "${text}" is not a port number`);
  const n = Number(text);
  if (n < 1 || n > 65535) throw bad(spec, `${what} ${n} is outside 1–65535`);
  return n;
}

function parseRange(text: string, spec: string, what: string): [number, number] {
  const [a, b, extra] = text.split('-');
  if (extra !== undefined || a === undefined || a === '') throw bad(spec, `${what} "${text}" is not a port or a range`);
  const start = parsePort(a, spec, what);
  const end = b === undefined ? start : parsePort(b, spec, what);
  if (end < start) throw bad(spec, `${what} range ${start}-${end} is reversed`);
  return [start, end];
}

export function parsePortSpec(input: string): PortSpec {
  const spec = input.trim();
  let rest = spec;
  let proto: Proto = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1).toLowerCase();
    if (!(PROTOS as readonly string[]).includes(p)) throw bad(spec, `unknown protocol "${p}" (use tcp, udp or sctp)`);
    proto = p as Proto;
    rest = rest.slice(0, slash);
  }
  let hostIp: string | null = null;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0 || rest[close + 1] !== ':') throw bad(spec, 'an IPv6 host address must be written [ADDR]:PORT:PORT');
    hostIp = rest.slice(1, close);
    rest = rest.slice(close + 2);
  } else {
    const parts = rest.split(':');
    if (parts.length === 3) {
      hostIp = parts[0]!;
      rest = `${parts[1]}:${parts[2]}`;
    } else if (parts.length !== 2) {
      throw bad(spec, 'expected [HOSTIP:]HOSTPORT:PORT[/PROTO]');
    }
  }
  if (hostIp !== null) {
    try {
      hostIp = IpAddress.parse(hostIp).toString();
    } catch {
      throw bad(spec, `"${hostIp}" is not an IP address`);
    }
    if (hostIp === '0.0.0.0' || hostIp === '::') hostIp = null;
  }
  const [h, c] = rest.split(':') as [string, string | undefined];
  if (c === undefined) throw bad(spec, 'expected HOSTPORT:PORT');
  const [hostPort, hostPortEnd] = parseRange(h, spec, 'host port');
  const [containerPort, containerPortEnd] = parseRange(c, spec, 'container port');
  if (hostPortEnd - hostPort !== containerPortEnd - containerPort) {
    throw bad(spec, `the host range has ${hostPortEnd - hostPort + 1} ports but the container range has ${containerPortEnd - containerPort + 1}`);
  }
  const host = hostIp === null ? '' : hostIp.includes(':') ? `[${hostIp}]:` : `${hostIp}:`;
  const range = (a: number, b: number): string => (a === b ? `${a}` : `${a}-${b}`);
  return {
    spec: `${host}${range(hostPort, hostPortEnd)}:${range(containerPort, containerPortEnd)}/${proto}`,
    hostIp, hostPort, hostPortEnd, containerPort, containerPortEnd, proto,
  };
}

/** One row per host port: what the firewall maps and the store keys on. */
export interface PortMapping {
  spec: string;
  hostIp: string | null;
  proto: Proto;
  hostPort: number;
  containerPort: number;
}

export function expandPortSpec(p: PortSpec): PortMapping[] {
  const out: PortMapping[] = [];
  for (let i = 0; i <= p.hostPortEnd - p.hostPort; i++) {
    out.push({ spec: p.spec, hostIp: p.hostIp, proto: p.proto, hostPort: p.hostPort + i, containerPort: p.containerPort + i });
  }
  return out;
}

/** A policy's port filter: `3306/tcp`, `8000-8100/udp`, `53` (TCP and UDP). */
export interface PortFilter {
  protos: Proto[];
  start: number;
  end: number;
}

export function parsePortFilter(input: string): PortFilter {
  const text = input.trim();
  const [range, proto, extra] = text.split('/');
  if (extra !== undefined || range === undefined) throw new NsnetError('USAGE', `invalid port "${text}": use PORT[-END][/tcp|udp|sctp]`, { object: text });
  let protos: Proto[] = ['tcp', 'udp'];
  if (proto !== undefined) {
    if (!(PROTOS as readonly string[]).includes(proto.toLowerCase())) {
      throw new NsnetError('USAGE', `invalid port "${text}": unknown protocol "${proto}" (use tcp, udp or sctp)`, { object: text });
    }
    protos = [proto.toLowerCase() as Proto];
  }
  const [start, end] = (() => {
    try { return parseRange(range, text, 'port'); } catch (e) { throw new NsnetError('USAGE', (e as Error).message.replace('port spec', 'port'), { object: text }); }
  })();
  return { protos, start, end };
}
