/**
 * `--etcd-user`, `--etcd-password-file` and their environment fallbacks, checked without
 * etcd: files come from a map, not the disk. etcd's refusals are described from the texts
 * etcd 3.4 sends (test/cluster/auth.test.ts covers them end to end).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { describeAuthFailure, loadAuth } from './etcd-auth.js';
import { unreachable } from './etcd.js';

const files = (m: Record<string, string>) => (f: string): Buffer => {
  const text = m[f];
  if (text === undefined) throw Object.assign(new Error(`ENOENT: ${f}`), { code: 'ENOENT' });
  return Buffer.from(text);
};
const FILES = files({ '/pw': 's3cret\n', '/pw-crlf': 's3cret\r\n', '/empty': '\n', '/two': 'a\nb\n', '/spaces': ' pass word ' });

describe('etcd credentials', () => {
  it('no user: no credentials; a password without a user is refused', () => {
    assert.equal(loadAuth({}, {}, FILES), undefined);
    assert.throws(() => loadAuth({ passwordFile: '/pw' }, {}, FILES), /^NsnetError: --etcd-password-file needs --etcd-user NAME/);
    assert.throws(() => loadAuth({}, { NSNET_ETCD_PASSWORD: 'x' }, FILES), /NSNET_ETCD_PASSWORD is set but no user is/);
    assert.throws(() => loadAuth({}, { NSNET_ETCD_PASSWORD_FILE: '/pw' }, FILES), /NSNET_ETCD_PASSWORD_FILE needs --etcd-user NAME/);
  });

  it('the password from a file (one line, its line break dropped) or the environment', () => {
    assert.deepEqual(loadAuth({ user: 'nsnet', passwordFile: '/pw' }, {}, FILES), { user: 'nsnet', password: 's3cret', from: '--etcd-password-file /pw' });
    assert.equal(loadAuth({ user: 'nsnet', passwordFile: '/pw-crlf' }, {}, FILES)?.password, 's3cret');
    assert.equal(loadAuth({ user: 'nsnet', passwordFile: '/spaces' }, {}, FILES)?.password, ' pass word ', 'spaces are part of a password');
    assert.deepEqual(loadAuth({}, { NSNET_ETCD_USER: 'nsnet', NSNET_ETCD_PASSWORD: 'p' }, FILES), { user: 'nsnet', password: 'p', from: '$NSNET_ETCD_PASSWORD' });
    assert.deepEqual(loadAuth({}, { NSNET_ETCD_USER: 'u', NSNET_ETCD_PASSWORD_FILE: '/pw' }, FILES), { user: 'u', password: 's3cret', from: 'NSNET_ETCD_PASSWORD_FILE /pw' });
    // Flags win over the environment, the file over the password in the environment.
    assert.deepEqual(loadAuth({ user: 'a', passwordFile: '/pw' }, { NSNET_ETCD_USER: 'b', NSNET_ETCD_PASSWORD: 'p' }, FILES), { user: 'a', password: 's3cret', from: '--etcd-password-file /pw' });
  });

  it('refuses a user without a password, a password on the command line, and bad files, naming them', () => {
    assert.throws(() => loadAuth({ user: 'nsnet' }, {}, FILES), /^NsnetError: --etcd-user nsnet needs a password: --etcd-password-file FILE, or NSNET_ETCD_PASSWORD$/);
    assert.throws(() => loadAuth({ user: 'root:secret' }, {}, FILES), (e: Error) => {
      assert.match(e.message, /^--etcd-user "root:…" holds a password: put it in --etcd-password-file FILE or NSNET_ETCD_PASSWORD, not on the command line/);
      assert.doesNotMatch(e.message, /secret/, 'the password is not echoed');
      return true;
    });
    assert.throws(() => loadAuth({ user: '' }, {}, FILES), /--etcd-user needs a user name/);
    assert.throws(() => loadAuth({ user: 'u', passwordFile: '/nope' }, {}, FILES), /^NsnetError: cannot read --etcd-password-file \/nope: no such file$/);
    assert.throws(() => loadAuth({ user: 'u', passwordFile: '/empty' }, {}, FILES), /--etcd-password-file \/empty is empty: it must hold the password of etcd user u/);
    assert.throws(() => loadAuth({ user: 'u', passwordFile: '/two' }, {}, FILES), /--etcd-password-file \/two has more than one line/);
    assert.throws(() => loadAuth({ user: 'u', passwordFile: '' }, {}, FILES), /--etcd-password-file needs a file name/);
  });

  it('describes etcd\'s refusals and nothing else', () => {
    const auth = { user: 'nsnet', password: 'x', from: '--etcd-password-file /pw' };
    const where = 'http://10.0.0.2:2379';
    assert.equal(describeAuthFailure('etcdserver: authentication failed, invalid user ID or password', auth, where),
      'etcd at http://10.0.0.2:2379 refused user nsnet: unknown user or wrong password (the password from --etcd-password-file /pw)');
    assert.match(describeAuthFailure('etcdserver: user name is empty', undefined, where)!, /requires a user \(authentication is enabled\): pass --etcd-user NAME/);
    assert.match(describeAuthFailure('etcdserver: permission denied', auth, where)!, /user nsnet may not use the keys under \/nsnet\/: grant one of its roles readwrite/);
    assert.match(describeAuthFailure('etcdserver: authentication is not enabled', auth, where)!, /has authentication disabled: drop --etcd-user/);
    assert.equal(describeAuthFailure('connect ECONNREFUSED 10.0.0.2:2379', auth, where), undefined);
  });

  it('a refusal is ETCD_AUTH (named by the user), not ETCD_UNREACHABLE', () => {
    const target = { urls: ['http://10.0.0.2:2379'], auth: { user: 'nsnet', password: 'x', from: '$NSNET_ETCD_PASSWORD' } };
    const e = unreachable(target, new Error('3 INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password'));
    assert.equal(e.code, 'ETCD_AUTH');
    assert.equal(e.object, 'nsnet');
    assert.equal(unreachable(target, new Error('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 10.0.0.2:2379 (2026-11-26T00:00:00.000Z). Resolution note: ')).code, 'ETCD_UNREACHABLE');
  });
});
