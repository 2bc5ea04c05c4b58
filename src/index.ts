/**
 * nsnet's library API. The CLI is a thin layer over exactly these exports.
 *
 *   import { Nsnet } from 'nsnet';
 *   const net = new Nsnet();
 *   net.addNamespace('web');
 *   net.createNetwork({ name: 'frontend', subnets: ['192.168.10.0/24'] });
 *   net.connect({ network: 'frontend', namespace: 'web' });
 */
export { Nsnet, type NsnetOptions, type OpOptions, type ApplyResult, type NamespaceStatus } from './engine/engine.js';
export { loadTopology, parseTopology } from './engine/topology.js';
export type * from './engine/types.js';
export { NsnetError, isNsnetError, type ErrorCode } from './errors.js';
export { Netns, createNetns, deleteNetns, listNetns } from './kernel/netns/netns.js';
export { spawnInNetns, spawnSyncInNetns } from './kernel/netns/exec.js';
