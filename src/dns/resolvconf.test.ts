import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DNS_DOMAIN, dnsResolvConf, hostUpstreams, networkHasDns, parseResolvConf, renderResolvConf } from './resolvconf.js';

const net = (subnets: Array<[string, string]>, declared: object = {}): { subnets: Array<{ cidr: string; gateway: string }>; declared: never } =>
  ({ subnets: subnets.map(([cidr, gateway]) => ({ cidr, gateway })), declared: declared as never });

test('dnsResolvConf: the gateways (IPv4 first, at most 3), the search domain first', () => {
  const c = dnsResolvConf([
    net([['10.1.0.0/24', '10.1.0.1'], ['fd00:1::/64', 'fd00:1::1']]),
    net([['10.2.0.0/24', '10.2.0.1']]),
    net([['10.3.0.0/24', '10.3.0.1']]),
  ]);
  assert.deepEqual(c.nameservers, ['10.1.0.1', '10.2.0.1', '10.3.0.1']);
  assert.equal(c.search[0], DNS_DOMAIN);
  assert.match(renderResolvConf(c), /^nameserver 10\.1\.0\.1\nnameserver 10\.2\.0\.1\nnameserver 10\.3\.0\.1\nsearch dns\.nsnet/m);
  assert.deepEqual(dnsResolvConf([net([['10.1.0.0/24', '10.1.0.1'], ['fd00:1::/64', 'fd00:1::1']])]).nameservers, ['10.1.0.1', 'fd00:1::1']);
});

test('dnsResolvConf: without a DNS-enabled network, the host\'s upstreams as before', () => {
  const off = net([['10.1.0.0/24', '10.1.0.1']], { dns: false });
  assert.equal(networkHasDns(off), false);
  assert.deepEqual(dnsResolvConf([off]), hostUpstreams());
  assert.deepEqual(dnsResolvConf([]), hostUpstreams());
});

test('parseResolvConf', () => {
  assert.deepEqual(parseResolvConf('nameserver 1.1.1.1 # x\nsearch a b\noptions ndots:2\n'), { nameservers: ['1.1.1.1'], search: ['a', 'b'], options: ['ndots:2'] });
});
