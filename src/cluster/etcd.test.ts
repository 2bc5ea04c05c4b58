/**
 * The fail-over between etcd members (etcd.ts MemberFailover), without etcd: the policies
 * etcd3 runs each call through, driven by hand. test/cluster/ha.test.ts covers it end to end
 * with a three-member etcd.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GRPCUnavailableError } from 'etcd3';
import { MemberDown, MemberFailover } from './etcd.js';

describe('fail-over between etcd members', () => {
  const unavailable = (): Error => new GRPCUnavailableError('14 UNAVAILABLE: No connection established');
  it('skips a member that just failed, unless every member did; a success clears it', async () => {
    let t = 0;
    const f = new MemberFailover(3, () => t);
    const [a, b, c] = ['http://a', 'http://b', 'http://c'].map((h) => f.member(h));
    await assert.rejects(a!.execute(() => { throw unavailable(); }), GRPCUnavailableError);
    let called = false;
    await assert.rejects(a!.execute(() => { called = true; }), MemberDown);
    assert.equal(called, false, 'refused without calling: etcd3 moves to the next member');
    assert.equal(await b!.execute(() => 'b'), 'b');
    // Not recoverable (a refusal by etcd itself): the member stays usable.
    await assert.rejects(b!.execute(() => { throw new Error('etcdserver: permission denied'); }));
    assert.equal(await b!.execute(() => 'b'), 'b');
    await assert.rejects(b!.execute(() => { throw unavailable(); }));
    await assert.rejects(c!.execute(() => { throw unavailable(); }));
    // All three down: calls go through again (a returning etcd is seen at once), and the
    // member that answers is usable from then on.
    assert.equal(await a!.execute(() => 'a'), 'a');
    assert.equal(await a!.execute(() => 'a'), 'a');
    // Down for a while only.
    t += 3000;
    assert.equal(await c!.execute(() => 'c'), 'c');
  });

  it('retries a recoverable failure at once, up to once per other member; one member: never', async () => {
    let n = 0;
    await assert.rejects(new MemberFailover(3).global.execute(() => { n++; throw unavailable(); }), GRPCUnavailableError);
    assert.equal(n, 3);
    n = 0;
    assert.equal(await new MemberFailover(3).global.execute(() => { if (n++ === 0) throw unavailable(); return 'ok'; }), 'ok');
    n = 0;
    await assert.rejects(new MemberFailover(1).global.execute(() => { n++; throw unavailable(); }));
    assert.equal(n, 1);
    n = 0;
    await assert.rejects(new MemberFailover(3).global.execute(() => { n++; throw new Error('etcdserver: permission denied'); }));
    assert.equal(n, 1, 'a refusal is not retried');
  });
});
