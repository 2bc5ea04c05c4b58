/**
 * TLS to etcd: the key material behind `--etcd-ca`, `--etcd-cert`, `--etcd-key` (or
 * NSNET_ETCD_CA, NSNET_ETCD_CERT, NSNET_ETCD_KEY), checked before anything talks to etcd,
 * and the one-line description of a failed handshake.
 *
 * The files are what etcd's own `--trusted-ca-file`, `--cert-file`, `--key-file` take (and
 * flannel's `-etcd-cafile/-etcd-certfile/-etcd-keyfile`, Calico's `etcdCACertFile`…): PEM
 * certificates and an unencrypted PEM private key. Without `--etcd-ca` the server must chain
 * to the system's roots, found as Go's crypto/x509 finds them (root_linux.go) — the roots
 * etcd's and flannel's own clients trust on the same host.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { NsnetError } from '../errors.js';

/** The three flags as given (undefined: not given; the environment is the fallback). */
export interface TlsOptions {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

/** One PEM file, read and checked, with the option that named it (for messages). */
export interface PemFile {
  /** `--etcd-ca` or `NSNET_ETCD_CA` (…), whichever gave the path. */
  option: string;
  file: string;
  pem: Buffer;
}

export interface EtcdTls {
  /** Trust roots: `--etcd-ca`, else the system bundle (undefined: Node's built-in roots). */
  ca: PemFile | undefined;
  /** Whether `ca` is the system bundle rather than `--etcd-ca`. */
  systemRoots: boolean;
  /** Client certificate (chain) and key: both or neither. */
  cert: PemFile | undefined;
  key: PemFile | undefined;
  /** The client certificate's notAfter, for the message when the server rejects it. */
  certExpires: Date | undefined;
}

const OPTIONS = {
  ca: { flag: '--etcd-ca', env: 'NSNET_ETCD_CA' },
  cert: { flag: '--etcd-cert', env: 'NSNET_ETCD_CERT' },
  key: { flag: '--etcd-key', env: 'NSNET_ETCD_KEY' },
} as const;

/**
 * The system trust store: SSL_CERT_FILE, else the first bundle that exists, in the order of
 * Go's crypto/x509 root_linux.go (Debian/Ubuntu, Fedora/RHEL, openSUSE, OpenELEC, CentOS/RHEL 7,
 * Alpine).
 */
export const SYSTEM_CA_FILES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/pki/tls/cacert.pem',
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem',
  '/etc/ssl/cert.pem',
];

export type ReadFile = (file: string) => Buffer;

/**
 * Which of the three options are set and where from (flag wins over environment), and the
 * combinations that make no sense: TLS files with http:// endpoints, a certificate without
 * its key or a key without its certificate. Pure: no file is read.
 */
export function tlsChoices(flags: TlsOptions, env: NodeJS.ProcessEnv, scheme: 'http' | 'https'):
    { ca?: [option: string, file: string]; cert?: [string, string]; key?: [string, string] } {
  const out: { ca?: [string, string]; cert?: [string, string]; key?: [string, string] } = {};
  for (const k of ['ca', 'cert', 'key'] as const) {
    const flag = flags[k];
    const fromEnv = env[OPTIONS[k].env];
    if (flag !== undefined) {
      if (flag === '') throw new NsnetError('USAGE', `${OPTIONS[k].flag} needs a file name`);
      out[k] = [OPTIONS[k].flag, flag];
    } else if (fromEnv !== undefined && fromEnv !== '') {
      out[k] = [OPTIONS[k].env, fromEnv];
    }
  }
  if (out.cert && !out.key) {
    throw new NsnetError('USAGE', `${out.cert[0]} ${out.cert[1]} is given without --etcd-key (or NSNET_ETCD_KEY): pass the client certificate and its key together`, { object: out.cert[1] });
  }
  if (out.key && !out.cert) {
    throw new NsnetError('USAGE', `${out.key[0]} ${out.key[1]} is given without --etcd-cert (or NSNET_ETCD_CERT): pass the client certificate and its key together`, { object: out.key[1] });
  }
  if (scheme === 'http') {
    const given = out.ca ?? out.cert;
    if (given) {
      throw new NsnetError('USAGE', `${given[0]} ${given[1]} is for TLS, but the etcd endpoints are http://: use https:// endpoints`, { object: given[1] });
    }
  }
  return out;
}

/** Reads the file an option names; one USAGE line naming both when it cannot (also for etcd-auth.ts). */
export function readOptionFile(option: string, file: string, readFile: ReadFile): Buffer {
  try {
    return readFile(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EISDIR' ? 'is a directory' : err.message;
    throw new NsnetError('USAGE', `cannot read ${option} ${file}: ${why}`, { object: file, cause: e });
  }
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** The PEM certificates in `pem` as X509Certificate objects; refuses a file with none or a broken one. */
function certificates(option: string, file: string, pem: Buffer): crypto.X509Certificate[] {
  const blocks = [...pem.toString('latin1').matchAll(PEM_BLOCK)].filter((m) => m[1] === 'CERTIFICATE');
  if (blocks.length === 0) {
    throw new NsnetError('USAGE', `${option} ${file} is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block)`, { object: file });
  }
  return blocks.map((m) => {
    try {
      return new crypto.X509Certificate(m[0]);
    } catch (e) {
      throw new NsnetError('USAGE', `${option} ${file} holds a PEM certificate that does not parse: ${(e as Error).message}`, { object: file, cause: e });
    }
  });
}

function privateKey(option: string, file: string, pem: Buffer): crypto.KeyObject {
  const text = pem.toString('latin1');
  const block = [...text.matchAll(PEM_BLOCK)].find((m) => /PRIVATE KEY$/.test(m[1]!));
  if (!block) {
    throw new NsnetError('USAGE', `${option} ${file} is not a PEM private key (no "-----BEGIN … PRIVATE KEY-----" block)`, { object: file });
  }
  if (block[1] === 'ENCRYPTED PRIVATE KEY' || /Proc-Type: 4,ENCRYPTED/.test(block[0])) {
    throw new NsnetError('USAGE', `${option} ${file} is encrypted: nsnet needs an unencrypted key (as etcd's --key-file)`, { object: file });
  }
  try {
    return crypto.createPrivateKey(block[0]);
  } catch (e) {
    throw new NsnetError('USAGE', `${option} ${file} holds a PEM private key that does not parse: ${(e as Error).message}`, { object: file, cause: e });
  }
}

/**
 * Reads and checks the key material for https:// endpoints: every file readable and PEM of
 * the right kind, the key belonging to the certificate. Throws a one-line USAGE error naming
 * the option and the file. `readFile` and `env` are parameters for the unit tests.
 */
export function loadTls(flags: TlsOptions, env: NodeJS.ProcessEnv = process.env, readFile: ReadFile = fs.readFileSync,
  exists: (file: string) => boolean = fs.existsSync): EtcdTls {
  const c = tlsChoices(flags, env, 'https');
  let ca: PemFile | undefined;
  let systemRoots = false;
  if (c.ca) {
    ca = { option: c.ca[0], file: c.ca[1], pem: readOptionFile(c.ca[0], c.ca[1], readFile) };
    certificates(ca.option, ca.file, ca.pem);
  } else {
    systemRoots = true;
    const file = env.SSL_CERT_FILE || SYSTEM_CA_FILES.find(exists);
    if (file) ca = { option: env.SSL_CERT_FILE ? 'SSL_CERT_FILE' : 'the system roots', file, pem: readOptionFile(env.SSL_CERT_FILE ? 'SSL_CERT_FILE' : 'the system roots', file, readFile) };
  }
  let cert: PemFile | undefined;
  let key: PemFile | undefined;
  let certExpires: Date | undefined;
  if (c.cert && c.key) {
    cert = { option: c.cert[0], file: c.cert[1], pem: readOptionFile(c.cert[0], c.cert[1], readFile) };
    key = { option: c.key[0], file: c.key[1], pem: readOptionFile(c.key[0], c.key[1], readFile) };
    const leaf = certificates(cert.option, cert.file, cert.pem)[0]!;
    const k = privateKey(key.option, key.file, key.pem);
    if (!leaf.checkPrivateKey(k)) {
      throw new NsnetError('USAGE', `${key.option} ${key.file} is not the key of ${cert.option} ${cert.file}`, { object: key.file });
    }
    certExpires = new Date(leaf.validTo);
  }
  return { ca, systemRoots, cert, key, certExpires };
}

/**
 * The gRPC error text of a failed TLS handshake, as one short clause saying what to fix, or
 * undefined when `why` is not about TLS. `why` is grpc-js's "Last error" (Node's TLS error
 * or OpenSSL's alert from the server).
 */
export function describeTlsFailure(why: string, tls: EtcdTls): string | undefined {
  const roots = tls.ca && !tls.systemRoots ? `${tls.ca.option} ${tls.ca.file}` : `the system roots${tls.ca ? ` in ${tls.ca.file}` : ''}`;
  // The server refused us: OpenSSL's text of its alert ("sslv3 alert bad certificate",
  // "tlsv13 alert certificate required", "tlsv1 alert unknown ca"), RFC 8446 §6.2.
  const alert = /(?:sslv3|tlsv1[0-9]?) alert ([a-z ]+)/.exec(why)?.[1]?.trim();
  if (alert) {
    if (/certificate|unknown ca|access denied/.test(alert)) {
      if (!tls.cert) return `the server requires a client certificate (TLS alert "${alert}"): pass --etcd-cert and --etcd-key`;
      const expired = tls.certExpires && tls.certExpires.getTime() < Date.now() ? `; it expired ${tls.certExpires.toISOString()}` : '';
      return `the server rejected the client certificate ${tls.cert.option} ${tls.cert.file} (TLS alert "${alert}"${expired})`;
    }
    return `the TLS handshake failed (TLS alert "${alert}")`;
  }
  // Our check of the server's certificate (Node's tls.checkServerIdentity / OpenSSL verify).
  const altnames = /Hostname\/IP does not match certificate's altnames: (.*)/.exec(why)?.[1];
  if (altnames) return `the server's certificate is not valid for this address (${altnames.replace(/\.$/, '')})`;
  const verify = /(unable to verify the first certificate|unable to get (?:local )?issuer certificate(?: locally)?|self[- ]signed certificate(?: in certificate chain)?|certificate has expired|certificate is not yet valid|unsupported certificate purpose|certificate signature failure|invalid CA certificate|certificate chain too long|path length constraint exceeded|certificate revoked)/.exec(why)?.[1];
  if (verify) {
    if (/expired|not yet valid/.test(verify)) return `the server's certificate ${verify}`;
    return `the server's certificate is not trusted by ${roots} (${verify})${tls.systemRoots ? ': pass the CA that signed it with --etcd-ca' : ''}`;
  }
  if (/disconnected before secure TLS connection was established|wrong version number|packet length too long|http request/i.test(why)) {
    return 'the TLS handshake failed: the server closed the connection (does it serve http:// rather than https://?)';
  }
  if (/SSL routines|ERR_SSL_|ERR_TLS_/.test(why)) return `the TLS handshake failed (${why})`;
  return undefined;
}
