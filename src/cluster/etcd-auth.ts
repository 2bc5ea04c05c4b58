/**
 * etcd's user/password authentication (etcd's `auth enable`, RBAC on key prefixes): the
 * credentials behind `--etcd-user NAME` and `--etcd-password-file FILE` (or NSNET_ETCD_USER,
 * NSNET_ETCD_PASSWORD_FILE, NSNET_ETCD_PASSWORD), checked before anything talks to etcd, and
 * the one-line description of a refusal.
 *
 * As flannel's `-etcd-username/-etcd-password` and etcdctl's `--user`, but the password is
 * never taken on the command line, where every user of the host sees it (ps, /proc/PID/cmdline):
 * it comes from a file (mode 0600, as the TLS key) or from the environment, which only the
 * process's owner and root can read (/proc/PID/environ). The client exchanges it for a token
 * (etcd's Authenticate call) and renews the token when etcd reports it invalid.
 */
import fs from 'node:fs';
import { NsnetError } from '../errors.js';
import { readOptionFile, type ReadFile } from './etcd-tls.js';

/** The flags as given (undefined: not given; the environment is the fallback). */
export interface AuthOptions {
  user?: string | undefined;
  passwordFile?: string | undefined;
}

export interface EtcdAuth {
  user: string;
  password: string;
  /** Where the password came from, for messages: `--etcd-password-file /etc/nsnet/etcd-pw`, `$NSNET_ETCD_PASSWORD`. */
  from: string;
}

/**
 * The credentials, or undefined when no user is given. A password without a user, a user
 * without a password, a password on the command line (`--etcd-user NAME:PASSWORD`, etcdctl's
 * form) and an unreadable or empty password file are one-line USAGE errors naming the
 * option. The file's content is the password, without the line break that ends it.
 */
export function loadAuth(flags: AuthOptions, env: NodeJS.ProcessEnv = process.env, readFile: ReadFile = fs.readFileSync): EtcdAuth | undefined {
  const user = flags.user ?? (env.NSNET_ETCD_USER || undefined);
  const userFrom = flags.user !== undefined ? '--etcd-user' : 'NSNET_ETCD_USER';
  let file: [option: string, path: string] | undefined;
  if (flags.passwordFile !== undefined) file = ['--etcd-password-file', flags.passwordFile];
  else if (env.NSNET_ETCD_PASSWORD_FILE) file = ['NSNET_ETCD_PASSWORD_FILE', env.NSNET_ETCD_PASSWORD_FILE];
  const inEnv = env.NSNET_ETCD_PASSWORD;
  if (user === undefined) {
    if (file) throw new NsnetError('USAGE', `${file[0]} needs --etcd-user NAME (or NSNET_ETCD_USER): whose password is it?`);
    if (inEnv) throw new NsnetError('USAGE', 'NSNET_ETCD_PASSWORD is set but no user is: pass --etcd-user NAME (or set NSNET_ETCD_USER)');
    return undefined;
  }
  if (user === '') throw new NsnetError('USAGE', '--etcd-user needs a user name');
  if (user.includes(':')) {
    throw new NsnetError('USAGE', `${userFrom} "${user.split(':')[0]}:…" holds a password: put it in --etcd-password-file FILE or NSNET_ETCD_PASSWORD, not on the command line (every user of the host can read it there)`, { object: user.split(':')[0] });
  }
  if (file) {
    const [option, path] = file;
    if (path === '') throw new NsnetError('USAGE', `${option} needs a file name`);
    const text = readOptionFile(option, path, readFile).toString('utf8');
    // One line: the password, then possibly the newline an editor or `echo` leaves.
    const password = text.replace(/\r?\n$/, '');
    if (password === '') throw new NsnetError('USAGE', `${option} ${path} is empty: it must hold the password of etcd user ${user}`, { object: path });
    if (password.includes('\n')) throw new NsnetError('USAGE', `${option} ${path} has more than one line: it must hold only the password of etcd user ${user}`, { object: path });
    return { user, password, from: `${option} ${path}` };
  }
  if (inEnv) return { user, password: inEnv, from: '$NSNET_ETCD_PASSWORD' };
  throw new NsnetError('USAGE', `${userFrom} ${user} needs a password: --etcd-password-file FILE, or NSNET_ETCD_PASSWORD`, { object: user });
}

/**
 * etcd's refusals of a client's identity (etcd api/v3rpc/rpctypes/error.go), as one line
 * that says what to change; undefined for any other failure. `where` names the endpoints.
 */
export function describeAuthFailure(why: string, auth: EtcdAuth | undefined, where: string): string | undefined {
  if (/authentication failed, invalid user ID or password/.test(why)) {
    // etcd answers an unknown user and a wrong password alike (no user enumeration).
    return `etcd at ${where} refused user ${auth?.user ?? '?'}: unknown user or wrong password (the password from ${auth?.from ?? '?'})`;
  }
  if (/user name is empty/.test(why)) {
    return `etcd at ${where} requires a user (authentication is enabled): pass --etcd-user NAME and --etcd-password-file FILE (or NSNET_ETCD_USER and NSNET_ETCD_PASSWORD)`;
  }
  if (/permission denied/.test(why)) {
    return `etcd at ${where}: user ${auth?.user ?? '(none)'} may not use the keys under /nsnet/: grant one of its roles readwrite on them (etcdctl role grant-permission ROLE --prefix=true readwrite /nsnet/)`;
  }
  if (/authentication is not enabled/.test(why)) {
    return `etcd at ${where} has authentication disabled: drop --etcd-user (or enable it there: etcdctl auth enable)`;
  }
  return undefined;
}
