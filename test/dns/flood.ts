/**
 * Malformed traffic for the DNS service, sent from inside a namespace:
 *
 *   ip netns exec NS node dist/test/dns/flood.js SERVER COUNT
 *
 * COUNT UDP datagrams cycling through: random bytes of random length (0–600), headers
 * cut short, a question whose name points at itself (a compression loop), qdcount 65535
 * with one question, a "response" (QR set), a label running past the end, an opcode that
 * is not QUERY. Then TCP abuse: a frame length below a header, a frame announced but
 * never completed, a frame dribbled one byte at a time, pure garbage, connections opened
 * and left idle. Prints {"udp":N,"tcp":M} when done. Built by hand, not with the codec
 * under test.
 */
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const server = process.argv[2]!;
const count = Number(process.argv[3] ?? 1000);

function header(id: number, flags: number, qd: number, an = 0, ns = 0, ar = 0): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(id, 0); b.writeUInt16BE(flags, 2); b.writeUInt16BE(qd, 4);
  b.writeUInt16BE(an, 6); b.writeUInt16BE(ns, 8); b.writeUInt16BE(ar, 10);
  return b;
}
const qname = Buffer.from([3, 0x77, 0x77, 0x77, 4, 0x74, 0x65, 0x73, 0x74, 0]); // www.test
const tail = Buffer.from([0, 1, 0, 1]); // A IN

const kinds: Array<() => Buffer> = [
  () => crypto.randomBytes(crypto.randomInt(0, 600)),
  () => header(1, 0x0100, 1).subarray(0, crypto.randomInt(0, 12)),
  () => Buffer.concat([header(2, 0x0100, 1), Buffer.from([0xc0, 12]), tail]), // pointer to itself
  () => Buffer.concat([header(3, 0x0100, 65535), qname, tail]),
  () => Buffer.concat([header(4, 0x8180, 1), qname, tail]), // a response
  () => Buffer.concat([header(5, 0x0100, 1), Buffer.from([60, 0x61, 0x62]), tail]), // label past the end
  () => Buffer.concat([header(6, 0x2900, 1), qname, tail]), // opcode 5 (UPDATE)
  () => Buffer.concat([header(7, 0x0100, 1, 3), qname, tail, Buffer.from([0xc0, 0xff, 0, 1])]), // answers past the end
];

const fam = server.includes(':') ? 'udp6' : 'udp4';
const sock = dgram.createSocket(fam);
await new Promise<void>((r) => sock.connect(53, server, () => r()));
sock.on('error', () => undefined);
let sent = 0;
for (let i = 0; i < count; i++) {
  const msg = kinds[i % kinds.length]!();
  sock.send(msg);
  sent++;
  if (i % 20 === 19) await sleep(1);
}
sock.close();

function tcp(write: (s: net.Socket) => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: server, port: 53 });
    const t = setTimeout(() => { s.destroy(); resolve(); }, 3000);
    s.on('error', () => { clearTimeout(t); resolve(); });
    s.on('close', () => { clearTimeout(t); resolve(); });
    s.on('connect', () => { void write(s).then(() => { setTimeout(() => s.destroy(), 200); }); });
  });
}
const tcpCases: Array<(s: net.Socket) => Promise<void>> = [
  async (s) => { s.write(Buffer.from([0, 5, 1, 2, 3, 4, 5])); },
  async (s) => { s.write(Buffer.concat([Buffer.from([0x40, 0x00]), header(8, 0x0100, 1)])); },
  async (s) => {
    const q = Buffer.concat([header(9, 0x0100, 1), Buffer.from([0xc0, 12]), tail]);
    const f = Buffer.concat([Buffer.from([0, q.length]), q]);
    for (const byte of f) { s.write(Buffer.from([byte])); await sleep(2); }
  },
  async (s) => { s.write(crypto.randomBytes(3000)); },
  async () => { /* idle */ },
];
await Promise.all(Array.from({ length: 20 }, (_, i) => tcp(tcpCases[i % tcpCases.length]!)));
process.stdout.write(`${JSON.stringify({ udp: sent, tcp: 20 })}\n`);
