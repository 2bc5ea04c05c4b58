/**
 * `--etcd`, `--etcd-ca`, `--etcd-cert`, `--etcd-key` (and their environment fallbacks),
 * checked without etcd or the kernel: files come from a map, not the disk. The handshake
 * failures are described from grpc-js's texts as seen against etcd 3.4 (test/cluster/tls.test.ts
 * covers them end to end).
 */
import crypto from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { describeTlsFailure, loadTls, type EtcdTls } from './etcd-tls.js';
import { etcdTarget, grpcReason, parseEndpoints, unreachable, type EtcdTarget } from './etcd.js';

// A self-signed P-256 certificate and its key (openssl req -x509 … -days 36500), test only.
const CERT = `-----BEGIN CERTIFICATE-----
MIIBizCCATGgAwIBAgIUVRHZVpIqSjPScQMvLDqJwaPvMXEwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPbnNuZXQtdW5pdC10ZXN0MCAXDTI2MTEyNjAzMzI0NloYDzIx
MjYxMTAyMDMzMjQ2WjAaMRgwFgYDVQQDDA9uc25ldC11bml0LXRlc3QwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAQ9Yl7Av5kRdj3n5M2KbiuXBVNQCcFhLMGQ6laq
SGYZ911L4XXcvV8w/tbibdJT0x9ZIEGFFYe3qvcIkqS0wCo8o1MwUTAdBgNVHQ4E
FgQUXknB2VP2sXT8KJgmHSPw8EP/t10wHwYDVR0jBBgwFoAUXknB2VP2sXT8KJgm
HSPw8EP/t10wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEA18oN
9yOnnDuaBGjIg5cnOLbYaJ0ZYEL0p+e7K00wGo8CIGP2CJmGYPMJ/pyg3x/zzZR8
/GYLdiGSQDoTU9s1plTF
-----END CERTIFICATE-----
`;
const KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg1m+Ae3JcSYCN6Fdu
Clp0zUeXru0jPzf7PFxUiIU1dTihRANCAAQ9Yl7Av5kRdj3n5M2KbiuXBVNQCcFh
LMGQ6laqSGYZ911L4XXcvV8w/tbibdJT0x9ZIEGFFYe3qvcIkqS0wCo8
-----END PRIVATE KEY-----
`;
const otherKey = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const encryptedKey = crypto.generateKeyPairSync('ec', {
  namedCurve: 'prime256v1', privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }, publicKeyEncoding: { type: 'spki', format: 'pem' },
}).privateKey;

const FILES: Record<string, string> = {
  '/pki/ca.pem': CERT, '/pki/client.pem': CERT, '/pki/client-key.pem': KEY, '/pki/other-key.pem': otherKey,
  '/pki/encrypted-key.pem': encryptedKey, '/pki/garbage.pem': 'hello\n', '/pki/broken.pem': '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
  '/etc/ssl/certs/ca-certificates.crt': CERT,
};
const readFile = (f: string): Buffer => {
  if (f === '/pki/secret.pem') throw Object.assign(new Error(`EACCES: permission denied, open '${f}'`), { code: 'EACCES' });
  const t = FILES[f];
  if (t === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${f}'`), { code: 'ENOENT' });
  return Buffer.from(t);
};
const exists = (f: string): boolean => f in FILES;
const load = (flags: Parameters<typeof loadTls>[0], env: NodeJS.ProcessEnv = {}): EtcdTls => loadTls(flags, env, readFile, exists);
const usage = (message: RegExp) => (e: unknown): boolean => {
  assert.equal((e as { code?: string }).code, 'USAGE');
  assert.match((e as Error).message, message);
  assert.ok(!(e as Error).message.includes('\n'), 'one line');
  return true;
};

describe('etcd endpoints', () => {
  it('http:// or https:// with a host and port, one scheme for all', () => {
    assert.deepEqual(parseEndpoints('https://10.0.0.2:2379, https://10.0.0.3:2379', {}), ['https://10.0.0.2:2379', 'https://10.0.0.3:2379']);
    assert.deepEqual(parseEndpoints(undefined, { NSNET_ETCD: 'http://e:2379' }), ['http://e:2379']);
    assert.throws(() => parseEndpoints('http://10.0.0.2:2379,https://10.0.0.3:2379', {}),
      usage(/^etcd endpoints mix http:\/\/ and https:\/\/ \(http:\/\/10\.0\.0\.2:2379,https:\/\/10\.0\.0\.3:2379\): use one scheme for all of them$/));
    assert.throws(() => parseEndpoints('unix:///run/etcd.sock', {}), usage(/invalid etcd endpoint "unix:\/\/\/run\/etcd\.sock": expected http:\/\/HOST:PORT or https:\/\/HOST:PORT/));
    assert.throws(() => parseEndpoints('https://10.0.0.2', {}), usage(/invalid etcd endpoint/));
    assert.throws(() => parseEndpoints(undefined, {}), usage(/no etcd endpoint: pass --etcd URL \(or set NSNET_ETCD\)/));
  });
});

describe('etcd TLS options', () => {
  it('loads the CA, the client certificate and its key; flags win over the environment', () => {
    const t = load({ ca: '/pki/ca.pem', cert: '/pki/client.pem', key: '/pki/client-key.pem' }, { NSNET_ETCD_CA: '/nowhere' });
    assert.equal(t.ca?.file, '/pki/ca.pem');
    assert.equal(t.ca?.option, '--etcd-ca');
    assert.equal(t.systemRoots, false);
    assert.equal(t.cert?.pem.toString(), CERT);
    assert.equal(t.key?.pem.toString(), KEY);
    assert.equal(t.certExpires?.getUTCFullYear(), 2126);
    const e = load({}, { NSNET_ETCD_CA: '/pki/ca.pem', NSNET_ETCD_CERT: '/pki/client.pem', NSNET_ETCD_KEY: '/pki/client-key.pem' });
    assert.deepEqual([e.ca?.option, e.cert?.option, e.key?.option], ['NSNET_ETCD_CA', 'NSNET_ETCD_CERT', 'NSNET_ETCD_KEY']);
  });

  it('without --etcd-ca: the system roots (SSL_CERT_FILE, else the distribution bundle), no client certificate', () => {
    const t = load({});
    assert.equal(t.systemRoots, true);
    assert.equal(t.ca?.file, '/etc/ssl/certs/ca-certificates.crt');
    assert.equal(t.cert, undefined);
    assert.equal(load({}, { SSL_CERT_FILE: '/pki/ca.pem' }).ca?.file, '/pki/ca.pem');
    assert.equal(loadTls({}, {}, readFile, () => false).ca, undefined, 'no bundle: Node\'s built-in roots');
  });

  it('a certificate without its key, or a key without its certificate, is refused', () => {
    assert.throws(() => load({ cert: '/pki/client.pem' }),
      usage(/^--etcd-cert \/pki\/client\.pem is given without --etcd-key \(or NSNET_ETCD_KEY\): pass the client certificate and its key together$/));
    assert.throws(() => load({}, { NSNET_ETCD_KEY: '/pki/client-key.pem' }),
      usage(/^NSNET_ETCD_KEY \/pki\/client-key\.pem is given without --etcd-cert \(or NSNET_ETCD_CERT\)/));
    assert.throws(() => load({ cert: '' , key: '/pki/client-key.pem' }), usage(/^--etcd-cert needs a file name$/));
  });

  it('unreadable files and files that are not PEM of the right kind name the option and the file', () => {
    assert.throws(() => load({ ca: '/pki/missing.pem' }), usage(/^cannot read --etcd-ca \/pki\/missing\.pem: no such file$/));
    assert.throws(() => load({ ca: '/pki/secret.pem' }), usage(/^cannot read --etcd-ca \/pki\/secret\.pem: permission denied$/));
    assert.throws(() => load({ ca: '/pki/garbage.pem' }), usage(/^--etcd-ca \/pki\/garbage\.pem is not a PEM certificate \(no "-----BEGIN CERTIFICATE-----" block\)$/));
    assert.throws(() => load({ ca: '/pki/broken.pem' }), usage(/^--etcd-ca \/pki\/broken\.pem holds a PEM certificate that does not parse: /));
    assert.throws(() => load({ ca: '/pki/client-key.pem' }), usage(/^--etcd-ca \/pki\/client-key\.pem is not a PEM certificate/));
    // Swapped certificate and key.
    assert.throws(() => load({ cert: '/pki/client-key.pem', key: '/pki/client.pem' }), usage(/^--etcd-cert \/pki\/client-key\.pem is not a PEM certificate/));
    assert.throws(() => load({ cert: '/pki/client.pem', key: '/pki/ca.pem' }), usage(/^--etcd-key \/pki\/ca\.pem is not a PEM private key/));
    assert.throws(() => load({ cert: '/pki/client.pem', key: '/pki/encrypted-key.pem' }), usage(/^--etcd-key \/pki\/encrypted-key\.pem is encrypted: nsnet needs an unencrypted key/));
    assert.throws(() => load({ cert: '/pki/client.pem', key: '/pki/other-key.pem' }), usage(/^--etcd-key \/pki\/other-key\.pem is not the key of --etcd-cert \/pki\/client\.pem$/));
    assert.throws(() => load({}, { SSL_CERT_FILE: '/pki/missing.pem' }), usage(/^cannot read SSL_CERT_FILE \/pki\/missing\.pem: no such file$/));
  });

  it('TLS files with http:// endpoints are refused before any file is read', () => {
    assert.throws(() => etcdTarget({ etcd: 'http://10.0.0.2:2379', ca: '/pki/missing.pem' }, {}),
      usage(/^--etcd-ca \/pki\/missing\.pem is for TLS, but the etcd endpoints are http:\/\/: use https:\/\/ endpoints$/));
    assert.throws(() => etcdTarget({ etcd: 'http://10.0.0.2:2379' }, { NSNET_ETCD_CERT: '/a', NSNET_ETCD_KEY: '/b' }), usage(/^NSNET_ETCD_CERT \/a is for TLS/));
    assert.deepEqual(etcdTarget({ etcd: 'http://10.0.0.2:2379' }, {}), { urls: ['http://10.0.0.2:2379'] });
  });
});

describe('etcd TLS failures', () => {
  const tls = load({ ca: '/pki/ca.pem', cert: '/pki/client.pem', key: '/pki/client-key.pem' });
  const system = load({});
  // grpc-js 1.14's texts for a connection that could not be made.
  const grpc = (last: string): Error => new Error(`14 UNAVAILABLE: No connection established. Last error: ${last}. Resolution note: `);
  const target = { urls: ['https://10.99.0.2:2379'], tls };

  it('strips gRPC\'s decoration', () => {
    assert.equal(grpcReason(new Error('14 UNAVAILABLE: No connection established. Last error: Failed to connect (2026-11-26T03:28:48.781Z). Resolution note: ')), 'Failed to connect');
    assert.equal(grpcReason(grpc('Error: unable to verify the first certificate')), 'unable to verify the first certificate');
    assert.equal(grpcReason(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded after 3.002s')), 'Deadline exceeded after 3.002s');
  });

  it('says what to fix, naming the endpoint', () => {
    const msg = (e: Error, t: EtcdTarget = target): [string, string] => { const n = unreachable(t, e); return [n.code, n.message]; };
    assert.deepEqual(msg(grpc('Error: unable to verify the first certificate')),
      ['ETCD_TLS', 'etcd at https://10.99.0.2:2379: the server\'s certificate is not trusted by --etcd-ca /pki/ca.pem (unable to verify the first certificate)']);
    assert.deepEqual(msg(grpc('Error: unable to verify the first certificate'), { urls: target.urls, tls: system }),
      ['ETCD_TLS', 'etcd at https://10.99.0.2:2379: the server\'s certificate is not trusted by the system roots in /etc/ssl/certs/ca-certificates.crt (unable to verify the first certificate): pass the CA that signed it with --etcd-ca']);
    assert.deepEqual(msg(grpc('Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate\'s altnames: IP: 10.99.0.2 is not in the cert\'s list: 10.99.0.3')),
      ['ETCD_TLS', 'etcd at https://10.99.0.2:2379: the server\'s certificate is not valid for this address (IP: 10.99.0.2 is not in the cert\'s list: 10.99.0.3)']);
    const alert = grpc('80EC6CD9B47F0000:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 42\n (2026-11-26T03:28:48.712Z)');
    assert.deepEqual(msg(alert), ['ETCD_TLS', 'etcd at https://10.99.0.2:2379: the server rejected the client certificate --etcd-cert /pki/client.pem (TLS alert "bad certificate")']);
    assert.deepEqual(msg(alert, { urls: target.urls, tls: system }),
      ['ETCD_TLS', 'etcd at https://10.99.0.2:2379: the server requires a client certificate (TLS alert "bad certificate"): pass --etcd-cert and --etcd-key']);
    assert.deepEqual(msg(grpc('Error: Client network socket disconnected before secure TLS connection was established')),
      ['ETCD_TLS', 'etcd at https://10.99.0.2:2379: the TLS handshake failed: the server closed the connection (does it serve http:// rather than https://?)']);
    assert.deepEqual(msg(grpc('read ECONNRESET')),
      ['ETCD_UNREACHABLE', 'etcd at https://10.99.0.2:2379 is unreachable: read ECONNRESET during the TLS handshake (does it serve http:// rather than https://?)']);
    assert.deepEqual(msg(grpc('connect ECONNREFUSED 10.99.0.2:2379')), ['ETCD_UNREACHABLE', 'etcd at https://10.99.0.2:2379 is unreachable: connect ECONNREFUSED 10.99.0.2:2379']);
    assert.deepEqual(msg(grpc('Failed to connect (2026-11-26T03:28:48.781Z)'), { urls: ['http://10.99.0.2:2379'], tls: undefined }),
      ['ETCD_UNREACHABLE', 'etcd at http://10.99.0.2:2379 is unreachable: Failed to connect (the server closed the connection: if it serves TLS, use https://)']);
  });

  it('leaves other errors alone', () => {
    assert.equal(describeTlsFailure('connect EHOSTUNREACH 10.99.0.2:2379', tls), undefined);
    assert.equal(describeTlsFailure('Deadline exceeded', tls), undefined);
  });
});
