/**
 * Captures rtnetlink datagrams from the real kernel as codec fixtures
 * (src/kernel/netlink/codec/fixtures.ts). Not a test; run it by hand, as root, when the
 * fixtures should be refreshed:
 *
 *   npx tsc -p tsconfig.json && node dist/test/kernel/tools/capture-netlink-fixtures.js
 *
 * It enters a private sandbox (unshare --net --mount), builds a small, fully specified
 * topology with `ip` and `bridge` (so the objects do not come from the code under test),
 * then talks to the kernel through a raw AF_NETLINK socket opened with the libc module:
 * requests are laid out by the independent test builder (codec/testing.ts), and every
 * datagram the kernel sends back is recorded byte for byte, before any decoding.
 */
import { enterSandbox } from '../../../src/sandbox/sandbox.js';
enterSandbox();

const { execFileSync } = await import('node:child_process');
const fs = await import('node:fs');
const path = await import('node:path');
const libc = await import('../../../src/kernel/sys/libc.js');
const T = await import('../../../src/kernel/netlink/codec/testing.js');

function sh(line: string): void {
  const [cmd, ...args] = line.split(/\s+/);
  execFileSync(cmd!, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

// The topology the fixtures describe (codec tests check these values after decoding).
for (const line of [
  'ip link add veth0 address 02:00:00:00:00:01 mtu 1400 type veth peer name veth1 address 02:00:00:00:00:02',
  'ip link add br0 address 02:00:00:00:00:03 type bridge',
  'ip link set veth1 master br0',
  'ip link set veth0 up',
  'ip link set veth1 up',
  'ip link set br0 up',
  'ip addr add 10.1.0.1/24 dev veth0',
  'ip addr add fd00:1::1/64 dev veth0 nodad',
  'ip route add 10.2.0.0/16 via 10.1.0.254 dev veth0 metric 50 proto 110',
  'ip route add default via 10.1.0.254 dev veth0',
  'ip route add 192.0.2.0/24 dev veth0 table 100',
  'ip -6 route add fd00:2::/48 via fd00:1::fe dev veth0 metric 7',
  'ip neigh add 10.1.0.9 lladdr 02:00:00:00:00:09 dev veth0 nud permanent',
  'ip link add vx0 address 02:00:00:00:00:04 type vxlan id 42 dstport 4789 local 10.1.0.1 dev veth0 nolearning',
  'bridge fdb append 00:00:00:00:00:00 dev vx0 dst 10.1.0.2 self permanent',
  'bridge fdb add 02:00:00:00:00:05 dev vx0 dst 10.1.0.3 self permanent',
]) sh(line);

const fd = libc.socket(libc.AF_NETLINK, libc.SOCK_RAW | libc.SOCK_CLOEXEC, libc.NETLINK_ROUTE);
libc.setsockoptInt(fd, libc.SOL_NETLINK, libc.NETLINK_EXT_ACK, 1);
const kernel = Buffer.alloc(12);
kernel.writeUInt16LE(libc.AF_NETLINK, 0);
libc.bind(fd, kernel);
const buf = Buffer.alloc(1 << 16);

/** Sends one request and records every datagram up to the one holding DONE/ERROR. */
function exchange(req: Buffer): Buffer[] {
  libc.sendto(fd, req, kernel);
  const out: Buffer[] = [];
  for (;;) {
    const n = libc.recv(fd, buf, 0);
    const d = Buffer.from(buf.subarray(0, n));
    out.push(d);
    if (T.messageOffsets(d).some((at) => [2, 3].includes(d.readUInt16LE(at + 4)))) return out;
  }
}

const REQUEST = 0x1, ACK = 0x4, DUMP = 0x300;
let seq = 1000;
const dump = (type: number, family: Buffer): Buffer[] => exchange(T.nlmsg({ type, flags: REQUEST | DUMP, seq: ++seq }, family));

const captures: Array<{ name: string; what: string; datagrams: Buffer[] }> = [];
captures.push({ name: 'linkDump', what: 'RTM_GETLINK dump: lo, veth0/veth1 (veth1 in br0), br0, vx0', datagrams: dump(18, T.ifinfomsg()) });
captures.push({ name: 'addrDump', what: 'RTM_GETADDR dump: lo 127.0.0.1/8 ::1/128, veth0 10.1.0.1/24 fd00:1::1/64 + link-locals', datagrams: dump(22, T.ifaddrmsg({ family: 0, prefixlen: 0, index: 0 })) });
captures.push({ name: 'routeDump4', what: 'RTM_GETROUTE dump, AF_INET, all tables', datagrams: dump(26, T.rtmsg({ family: 2 })) });
captures.push({ name: 'routeDump6', what: 'RTM_GETROUTE dump, AF_INET6, all tables', datagrams: dump(26, T.rtmsg({ family: 10 })) });
captures.push({ name: 'neighDump4', what: 'RTM_GETNEIGH dump, AF_INET', datagrams: dump(30, T.ndmsg({ family: 2, ifindex: 0 })) });
captures.push({ name: 'fdbDump', what: 'RTM_GETNEIGH dump, AF_BRIDGE (bridge fdb)', datagrams: dump(30, T.ndmsg({ family: 7, ifindex: 0 })) });

// An invalid MTU on veth0: the kernel answers with an extended ACK (NLMSGERR_ATTR_MSG),
// first with the whole request echoed, then (NETLINK_CAP_ACK) with only its header.
// (Not /sys/class/net: the sandbox keeps the host's sysfs mount.)
const veth0 = (JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'veth0'], { encoding: 'utf8' })) as Array<{ ifindex: number }>)[0]!.ifindex;
const badMtu = (): Buffer => T.nlmsg({ type: 16, flags: REQUEST | ACK, seq: ++seq }, T.ifinfomsg({ index: veth0 }), T.nla(4, T.u32(10)));
captures.push({ name: 'errorExtack', what: 'NLMSG_ERROR -EINVAL with extack, request echoed (set mtu 10 on veth0)', datagrams: exchange(badMtu()) });
libc.setsockoptInt(fd, libc.SOL_NETLINK, libc.NETLINK_CAP_ACK, 1);
captures.push({ name: 'errorExtackCapped', what: 'NLMSG_ERROR -EINVAL with extack, NLM_F_CAPPED (set mtu 10 on veth0)', datagrams: exchange(badMtu()) });
// A bad attribute the kernel can point at: NLMSGERR_ATTR_OFFS names its offset.
captures.push({
  name: 'errorExtackOffset',
  what: 'NLMSG_ERROR with extack message and offset (IFLA_IFNAME too long in RTM_GETLINK)',
  datagrams: exchange(T.nlmsg({ type: 18, flags: REQUEST | ACK, seq: ++seq }, T.ifinfomsg(), T.nla(3, T.cstr('x'.repeat(20))))),
});
captures.push({
  name: 'ack',
  what: 'NLMSG_ERROR 0 (ACK), capped (set veth0 mtu 1400 again)',
  datagrams: exchange(T.nlmsg({ type: 16, flags: REQUEST | ACK, seq: ++seq }, T.ifinfomsg({ index: veth0 }), T.nla(4, T.u32(1400)))),
});
libc.close(fd);

function wrap(hex: string): string {
  const lines: string[] = [];
  for (let i = 0; i < hex.length; i += 96) lines.push(`    ${hex.slice(i, i + 96)}`);
  return lines.join('\n');
}

const kver = fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
let out = `/**
 * rtnetlink datagrams captured from the kernel (${kver}) by
 * test/kernel/tools/capture-netlink-fixtures.ts — regenerate with it, do not edit by hand.
 * Each capture is the exact bytes of every datagram the kernel sent for one request.
 * Test-only (see captured.test.ts).
 *
 * Topology (made with ip/bridge): veth0 02:00:00:00:00:01 mtu 1400 up 10.1.0.1/24
 * fd00:1::1/64 ↔ veth1 02:00:00:00:00:02 up, port of br0 02:00:00:00:00:03 up;
 * routes 10.2.0.0/16 via 10.1.0.254 metric 50 proto 110, default via 10.1.0.254,
 * 192.0.2.0/24 dev veth0 table 100, fd00:2::/48 via fd00:1::fe metric 7;
 * neighbour 10.1.0.9 lladdr 02:00:00:00:00:09 permanent; vxlan vx0 02:00:00:00:00:04 id 42
 * dstport 4789 local 10.1.0.1 dev veth0 nolearning, fdb 00:00:00:00:00:00 dst 10.1.0.2 and
 * 02:00:00:00:00:05 dst 10.1.0.3 (self permanent).
 */
export interface Capture {
  what: string;
  /** One hex string per datagram. */
  datagrams: string[];
}

export const KERNEL_RELEASE = '${kver}';

`;
for (const c of captures) {
  out += `/** ${c.what} */\nexport const ${c.name}: Capture = {\n  what: ${JSON.stringify(c.what)},\n  datagrams: [\n`;
  for (const d of c.datagrams) out += `    \`\n${wrap(d.toString('hex'))}\`,\n`;
  out += '  ],\n};\n\n';
}
const target = path.resolve(process.argv[2] ?? 'src/kernel/netlink/codec/fixtures.ts');
fs.writeFileSync(target, out.trimEnd() + '\n');
console.log(`wrote ${target}: ${captures.map((c) => `${c.name} ${c.datagrams.length}×`).join(', ')}`);
