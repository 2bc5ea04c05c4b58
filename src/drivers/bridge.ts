/**
 * The bridge driver: the kernel side of a bridge network and its endpoints. Every step is
 * an idempotent ensure/delete, so a retry, a crash repair and the first run are the same
 * code path. The engine owns validation, IPAM, the store and the firewall.
 *
 * What a tutorial does by hand, and the call here that does it:
 *   ip link add br0 type bridge; ip addr add GW/24 dev br0; ip link set br0 up → ensureBridgeNetwork
 *   ip link add veth0 type veth peer name eth0 netns NS; ip link set veth0 master br0 up;
 *   ip -n NS addr add IP/24 dev eth0; ip -n NS link set eth0 up; ip -n NS link set lo up;
 *   ip -n NS route add default via GW                                           → attachEndpoint
 *   ip link del veth0                                                           → detachEndpoint
 */
import { createHash } from 'node:crypto';
import { Netns } from '../kernel/netns/netns.js';
import { addAddress, addAddressRequest, deleteAddress, listAddresses } from '../kernel/netlink/route/addr.js';
import { addRouteRequest } from '../kernel/netlink/route/route.js';
import { createVeth, deleteLink, ensureBridge, getLink, setBridgePort, setLinkMtu, setLinkUp, setLinkUpRequest, type Link } from '../kernel/netlink/route/link.js';
import type { EndpointRecord, NetworkRecord } from '../engine/types.js';

/** A stable, locally administered unicast MAC for a network's bridge (02:… from a hash of its name). */
export function bridgeMac(network: string): string {
  const h = createHash('sha256').update(`nsnet-bridge\0${network}`).digest();
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

function prefixOf(cidr: string): string {
  return cidr.split('/')[1]!;
}

/** Ensures the bridge exists, holds every gateway address, has the MTU and is up. */
export function ensureBridgeNetwork(host: Netns, n: NetworkRecord): Link {
  // nfCall: this bridge's bridged traffic passes nsnet's inet hooks, so policies between
  // members of one network are enforced statefully (per bridge, not the host-wide sysctl).
  // A fixed MAC: otherwise Linux gives the bridge the lowest MAC of its ports, and it changes
  // as ports come and go — every namespace's ARP entry for the gateway goes stale and gateway
  // traffic (DNS, NAT) is lost until it expires (netavark pins it too).
  const br = ensureBridge(host, n.bridge, { nfCall: true, mac: bridgeMac(n.name), ...(n.mtu ? { mtu: n.mtu } : {}) });
  if (n.mtu && br.mtu !== n.mtu) setLinkMtu(host, br.index, n.mtu);
  const have = new Set(listAddresses(host, { dev: br.index }).map((a) => `${a.address}/${a.prefixlen}`));
  for (const s of n.subnets) {
    const want = `${s.gateway}/${prefixOf(s.cidr)}`;
    if (!have.has(want)) addAddress(host, br.index, want);
  }
  if (!br.up) setLinkUp(host, br.index);
  return br;
}

/**
 * Sets a bridge network's MTU on the bridge, on every endpoint's host-side veth and on its
 * namespace-side interface (`open` returns undefined for a namespace that is gone: its veth
 * went with it). Returns how many links changed.
 *
 * Order: when the MTU grows, the endpoints first and the bridge last; when it shrinks, the
 * bridge first. A bridge whose MTU was set explicitly keeps it whatever its ports do
 * (BROPT_MTU_SET_BY_USER, net/bridge/br_device.c), so the two ends of each veth are what
 * must agree with it; doing the larger side last means no frame that fits one hop is
 * dropped at the next one for longer than one netlink call.
 */
export function setBridgeNetworkMtu(host: Netns, n: NetworkRecord, endpoints: readonly EndpointRecord[], mtu: number,
  open: (e: EndpointRecord) => Netns | undefined): number {
  let changes = 0;
  const set = (ns: Netns, dev: string): void => {
    const link = getLink(ns, dev);
    if (link && link.mtu !== mtu) { setLinkMtu(ns, link.index, mtu); changes++; }
  };
  const br = getLink(host, n.bridge);
  const growing = br?.mtu !== undefined && mtu > br.mtu;
  if (br && !growing) set(host, n.bridge);
  for (const e of endpoints) {
    set(host, e.hostIfname);
    const target = open(e);
    if (!target) continue;
    try { set(target, e.ifname); } finally { target.close(); }
  }
  if (br && growing) set(host, n.bridge);
  return changes;
}

/** Removes the bridge (its ports are the host ends of veths, which the engine detaches first). */
export function deleteBridgeNetwork(host: Netns, n: NetworkRecord): void {
  deleteLink(host, n.bridge);
}

/** Removes one gateway address from a bridge (used when a network's subnets change). */
export function removeGateway(host: Netns, bridge: string, cidr: string): void {
  deleteAddress(host, bridge, cidr);
}

/**
 * Creates the endpoint's veth pair with the namespace end born inside the namespace (no
 * half-made pair can exist), enslaved to the bridge and up; then addresses, loopback and
 * default routes inside the namespace. Throws after undoing its own work.
 */
export function attachEndpoint(host: Netns, target: Netns, n: NetworkRecord, bridgeIndex: number, e: EndpointRecord): void {
  const mtu = n.mtu ?? undefined;
  const veth = createVeth(
    host,
    e.hostIfname,
    { name: e.ifname, ns: target, mac: e.mac, ...(mtu ? { mtu } : {}) },
    { master: bridgeIndex, up: true, ...(mtu ? { mtu } : {}) },
  );
  try {
    // Hairpin: a container reaching its own published port through the host's address is
    // DNATed back to itself; the bridge must then send the frame out of the port it came in
    // on (Docker and the CNI bridge plugin's hairpinMode do the same).
    setBridgePort(host, veth.index, { hairpin: true });
    // Everything inside the namespace in one datagram, in order: the interface up (an IPv4
    // prefix route exists only on an up link), addresses, loopback (a no-op when nsnet
    // created the namespace), then the default routes that need them.
    const inside = [
      setLinkUpRequest(target, veth.peerIndex, e.ifname),
      ...e.addresses.map((a) => addAddressRequest(target, veth.peerIndex, a, {}, e.ifname)),
      setLinkUpRequest(target, 1, 'lo'),
    ];
    if (!n.internal) {
      // One default route per family, via that family's first gateway.
      const seen = new Set<string>();
      for (const s of n.subnets) {
        const fam = s.cidr.includes(':') ? '6' : '4';
        if (seen.has(fam)) continue;
        seen.add(fam);
        inside.push(addRouteRequest(target, { dst: 'default', family: fam === '6' ? 6 : 4, gateway: s.gateway, dev: veth.peerIndex }));
      }
    }
    target.netlink().requestAll(inside);
  } catch (err) {
    deleteLink(host, e.hostIfname);
    throw err;
  }
}

/** Deletes the endpoint's veth pair (both ends go together); missing is success. */
export function detachEndpoint(host: Netns, e: Pick<EndpointRecord, 'hostIfname'>): void {
  deleteLink(host, e.hostIfname);
}
