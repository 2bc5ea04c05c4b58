/**
 * Messages here are built byte by byte (RFC 1035 §4.1), independently of dns-packet and
 * of the code under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cacheKey, decodeQuery, encodeReply, headerReply, precheckQuery, readyAnswer, sameQuestion, skipName, truncatedReply, udpLimit,
  walkResponse, RCODE,
} from './wire.js';

const name = (...labels: string[]): Buffer => Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
const u16 = (...xs: number[]): Buffer => { const b = Buffer.alloc(2 * xs.length); xs.forEach((x, i) => b.writeUInt16BE(x, 2 * i)); return b; };
const u32 = (x: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(x); return b; };
const header = (id: number, flags: number, qd: number, an = 0, ns = 0, ar = 0): Buffer => u16(id, flags, qd, an, ns, ar);
const opt = (size: number): Buffer => Buffer.concat([Buffer.from([0]), u16(41, size), u32(0), u16(0)]);

/** www.Example.test A IN, RD, with an OPT record advertising 1400 bytes. */
const query = Buffer.concat([header(0x1234, 0x0100, 1, 0, 0, 1), name('www', 'Example', 'test'), u16(1, 1), opt(1400)]);
/** Its answer: two A records (the second named by a pointer to the question), SOA-less, plus OPT. */
const answer = Buffer.concat([
  header(0xbeef, 0x8180, 1, 2, 0, 1), name('www', 'example', 'test'), u16(1, 1),
  Buffer.from([0xc0, 12]), u16(1, 1), u32(300), u16(4), Buffer.from([192, 0, 2, 1]),
  Buffer.from([0xc0, 12]), u16(1, 1), u32(120), u16(4), Buffer.from([192, 0, 2, 2]),
  opt(1232),
]);

test('precheckQuery settles what the header alone tells', () => {
  assert.equal(precheckQuery(query), 'ok');
  assert.equal(precheckQuery(query.subarray(0, 11)), 'drop');
  assert.equal(precheckQuery(answer), 'drop', 'a response');
  const upd = Buffer.from(query); upd[2] = 0x28; // opcode 5
  assert.equal(precheckQuery(upd), 'notimp');
  const many = Buffer.from(query); many.writeUInt16BE(65535, 4);
  assert.equal(precheckQuery(many), 'formerr');
  const an = Buffer.from(query); an.writeUInt16BE(3, 6);
  assert.equal(precheckQuery(an), 'formerr');
});

test('headerReply: same ID and opcode, QR set, the RCODE, no sections', () => {
  const r = headerReply(query, RCODE.FORMERR);
  assert.deepEqual(r, Buffer.concat([u16(0x1234, 0x8101), u16(0, 0, 0, 0)]));
});

test('skipName follows labels and stops at a pointer; rejects overruns', () => {
  assert.equal(skipName(query, 12), 12 + 18);
  assert.equal(skipName(answer, 12 + 18 + 4), 12 + 18 + 4 + 2);
  assert.throws(() => skipName(Buffer.from([5, 0x61]), 0));
  assert.throws(() => skipName(Buffer.from([0x80]), 0));
});

test('walkResponse finds every TTL except OPT\'s, the minimum, rcode and TC', () => {
  const w = walkResponse(answer);
  assert.deepEqual(w.ttlOffsets, [34 + 6, 34 + 16 + 6]);
  assert.equal(w.minTtl, 120);
  assert.equal(w.rcode, 0);
  assert.equal(w.truncated, false);
  assert.throws(() => walkResponse(answer.subarray(0, answer.length - 5)));
});

test('readyAnswer: the asker\'s ID and letter case, TTLs aged', () => {
  const out = readyAnswer(answer, query, walkResponse(answer).ttlOffsets, 100);
  assert.equal(out.readUInt16BE(0), 0x1234);
  assert.equal(out.subarray(12, 30).toString('latin1'), query.subarray(12, 30).toString('latin1'));
  assert.equal(out.readUInt32BE(34 + 6), 200);
  assert.equal(out.readUInt32BE(34 + 16 + 6), 20);
  assert.equal(answer.readUInt16BE(0), 0xbeef, 'the cached copy is untouched');
});

test('sameQuestion ignores letter case, not type or name', () => {
  assert.equal(sameQuestion(query, answer), true);
  const aaaa = Buffer.from(answer); aaaa.writeUInt16BE(28, 30);
  assert.equal(sameQuestion(query, aaaa), false);
  const other = Buffer.from(answer); other[13] = 0x78;
  assert.equal(sameQuestion(query, other), false);
});

test('truncatedReply: header with TC and the question only', () => {
  const t = truncatedReply(query, answer);
  assert.deepEqual(t, Buffer.concat([u16(0x1234, 0x8380, 1, 0, 0, 0), query.subarray(12, 34)]));
});

test('decode, limits and keys of a query; encodeReply echoes EDNS', () => {
  const q = decodeQuery(query);
  assert.equal(udpLimit(q), 1232, 'capped at what nsnet advertises');
  assert.equal(udpLimit(decodeQuery(Buffer.concat([header(1, 0x0100, 1), name('a'), u16(1, 1)]))), 512);
  assert.equal(cacheKey(q), 'www.example.test|A|IN|0|0');
  const r = encodeReply(q, { rcode: RCODE.NXDOMAIN, aa: true });
  assert.equal(r.readUInt16BE(0), 0x1234);
  assert.equal(r.readUInt16BE(2), 0x8503, 'QR AA RD, NXDOMAIN');
  assert.deepEqual([r.readUInt16BE(4), r.readUInt16BE(6), r.readUInt16BE(8), r.readUInt16BE(10)], [1, 0, 0, 1]);
});
