/**
 * The tests' own upstream DNS server, run inside the "outside" namespace:
 *
 *   ip netns exec outside node dist/test/dns/upstream-server.js --answer 203.0.113.2 --blackhole 203.0.113.3
 *
 * On every `--answer` address (UDP and TCP port 53) it answers, for any name under
 * example.test: A 198.51.100.7 and AAAA 2001:db8:7::7 (TTL 60); `nx.example.test` →
 * NXDOMAIN; `big.example.test TXT` → 40 strings of 60 bytes (~2.6 KB: over UDP, more
 * than the asker accepts gets TC and no records). On every `--blackhole` address it reads
 * queries and never answers (TCP: accepts and holds the connection). Each query received
 * is printed as one JSON line {name, type, transport, from, server}; "ready" once bound.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket } from 'dns-packet';

const answerOn: string[] = [];
const holeOn: string[] = [];
for (let i = 2; i < process.argv.length; i += 2) {
  const v = process.argv[i + 1]!;
  if (process.argv[i] === '--answer') answerOn.push(v);
  else if (process.argv[i] === '--blackhole') holeOn.push(v);
}

function respond(q: DecodedPacket, limit: number): Buffer {
  const qu = q.questions![0]!;
  const name = qu.name.toLowerCase();
  const answers: Answer[] = [];
  let rcode = 0;
  if (name === 'nx.example.test' || !name.endsWith('example.test')) rcode = 3;
  else if (qu.type === 'A') answers.push({ type: 'A', name: qu.name, ttl: 60, data: '198.51.100.7' });
  else if (qu.type === 'AAAA') answers.push({ type: 'AAAA', name: qu.name, ttl: 60, data: '2001:db8:7::7' });
  else if (qu.type === 'TXT' && name === 'big.example.test') {
    for (let i = 0; i < 40; i++) answers.push({ type: 'TXT', name: qu.name, ttl: 60, data: `${String(i).padStart(2, '0')}${'x'.repeat(58)}` });
  }
  const base = { type: 'response' as const, id: q.id, questions: q.questions };
  const full = dnsPacket.encode({ ...base, flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE | rcode, answers });
  if (full.length <= limit) return full;
  return dnsPacket.encode({ ...base, flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.TRUNCATED_RESPONSE | rcode, answers: [] });
}

function udpLimit(q: DecodedPacket): number {
  const opt = q.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  return opt ? Math.max(512, opt.udpPayloadSize ?? 512) : 512;
}

function log(q: DecodedPacket, transport: string, from: string, server: string): void {
  const qu = q.questions?.[0];
  process.stdout.write(`${JSON.stringify({ name: qu?.name, type: qu?.type, transport, from, server })}\n`);
}

async function serve(address: string, answer: boolean): Promise<void> {
  const udp = dgram.createSocket({ type: address.includes(':') ? 'udp6' : 'udp4' });
  udp.on('message', (msg, rinfo) => {
    let q: DecodedPacket;
    try { q = dnsPacket.decode(msg); } catch { return; }
    log(q, 'udp', rinfo.address, address);
    if (answer) udp.send(respond(q, udpLimit(q)), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => udp.bind(53, address, () => r()));
  const tcp = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        let q: DecodedPacket;
        try { q = dnsPacket.decode(msg); } catch { s.destroy(); return; }
        log(q, 'tcp', s.remoteAddress ?? '?', address);
        if (!answer) continue;
        const r = respond(q, 65535);
        const frame = Buffer.alloc(2 + r.length);
        frame.writeUInt16BE(r.length, 0);
        r.copy(frame, 2);
        s.write(frame);
      }
    });
  });
  await new Promise<void>((r) => tcp.listen(53, address, () => r()));
}

await Promise.all([...answerOn.map((a) => serve(a, true)), ...holeOn.map((a) => serve(a, false))]);
process.stdout.write('ready\n');
