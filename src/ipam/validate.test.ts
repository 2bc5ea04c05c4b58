import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isNsnetError, type ErrorCode } from '../errors.js';
import { IpAddress } from './address.js';
import { parseCidr } from './cidr.js';
import { validateGateway, validateSubnets } from './validate.js';

function throwsCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => isNsnetError(e, code) && (message === undefined || message.test(e.message)));
}

const subnets = (...t: string[]): void => validateSubnets(t.map(parseCidr));
const gateway = (subnet: string, gw: string): void => validateGateway(parseCidr(subnet), IpAddress.parse(gw));

describe('validateSubnets', () => {
  it('accepts disjoint subnets, several per family', () => {
    subnets();
    subnets('10.89.0.0/24');
    subnets('10.89.0.0/24', 'fd00:10::/64');
    subnets('10.89.0.0/24', '10.89.1.0/24', 'fd00:10::/64', 'fd00:11::/64');
    subnets('10.0.0.0/25', '10.0.0.128/25');
    subnets('10.0.0.0/31', '10.0.0.2/32');
  });

  it('refuses overlaps, naming both subnets', () => {
    throwsCode(() => subnets('10.0.0.0/16', '10.0.5.0/24'), 'SUBNET_OVERLAP', /10\.0\.0\.0\/16.*10\.0\.5\.0\/24/);
    throwsCode(() => subnets('10.0.5.0/24', '192.168.0.0/24', '10.0.0.0/16'), 'SUBNET_OVERLAP', /10\.0\.0\.0\/16.*10\.0\.5\.0\/24/);
    throwsCode(() => subnets('10.0.0.0/24', '10.0.0.0/24'), 'SUBNET_OVERLAP');
    throwsCode(() => subnets('10.2.0.0/16', '10.1.0.0/16', '10.0.0.0/8'), 'SUBNET_OVERLAP');
    throwsCode(() => subnets('fd00::/48', 'fd00:0:0:5::/64'), 'SUBNET_OVERLAP');
  });

  it('refuses reserved ranges', () => {
    for (const bad of ['127.0.0.0/24', '224.0.0.0/24', '0.0.0.0/0', '0.0.0.0/8', '255.255.255.0/24', 'ff02::/16', '::1/128', '::ffff:0:0/120', '::/0']) {
      throwsCode(() => subnets(bad), 'SUBNET_INVALID');
    }
    throwsCode(() => subnets('10.0.0.0/24', '127.0.0.0/8'), 'SUBNET_INVALID', /loopback/);
  });
});

describe('validateGateway', () => {
  it('accepts usable host addresses', () => {
    gateway('10.0.0.0/24', '10.0.0.1');
    gateway('10.0.0.0/24', '10.0.0.254');
    gateway('10.0.0.0/31', '10.0.0.0');
    gateway('10.0.0.9/32', '10.0.0.9');
    gateway('fd00::/64', 'fd00::1');
    gateway('fd00::/64', 'fd00::ffff:ffff:ffff:ffff');
    gateway('2001:db8::/127', '2001:db8::');
  });

  it('refuses addresses outside the subnet, of the other family, or reserved', () => {
    throwsCode(() => gateway('10.0.0.0/24', '10.0.1.1'), 'GATEWAY_INVALID', /not in subnet 10\.0\.0\.0\/24/);
    throwsCode(() => gateway('10.0.0.0/24', 'fd00::1'), 'GATEWAY_INVALID', /IPv6.*IPv4/);
    throwsCode(() => gateway('10.0.0.0/24', '10.0.0.0'), 'GATEWAY_INVALID', /network/);
    throwsCode(() => gateway('10.0.0.0/24', '10.0.0.255'), 'GATEWAY_INVALID', /broadcast/);
    throwsCode(() => gateway('fd00::/64', 'fd00::'), 'GATEWAY_INVALID', /anycast/);
    throwsCode(() => gateway('fd00::/64', '10.0.0.1'), 'GATEWAY_INVALID');
  });

  it('errors are NsnetErrors with the gateway as object', () => {
    try {
      gateway('10.0.0.0/24', '10.0.0.0');
      assert.fail('no error');
    } catch (e) {
      assert.ok(isNsnetError(e, 'GATEWAY_INVALID'));
      assert.equal(e.object, '10.0.0.0');
    }
  });
});
