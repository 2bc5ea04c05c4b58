/**
 * The system calls Node does not expose: AF_NETLINK sockets, setns, unshare, mount.
 *
 * Why koffi rather than an N-API addon: koffi's npm package ships prebuilt binaries for
 * linux-x64/arm64, so nothing is compiled or downloaded at install time, and a call costs
 * well under a microsecond on top of the syscall. A hand-written addon would need a C++
 * toolchain on every install and a second language in the tree for a dozen thin wrappers.
 *
 * Every wrapper here is synchronous and runs on the calling (main) thread. That matters:
 * setns(2) changes only the calling thread's namespace, and a socket belongs to the network
 * namespace of the thread that created it (net/socket.c: sock_create uses current->nsproxy).
 * So "enter, open a socket, return" on the main thread pins that socket to the target
 * namespace while Node's worker threads never move. See src/kernel/netns/README.md.
 */
import koffi from 'koffi';
import { NsnetError } from '../../errors.js';

const libc = koffi.load('libc.so.6');

const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  bind: libc.func('int bind(int fd, const void *addr, uint32_t len)'),
  sendto: libc.func('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t alen)'),
  recv: libc.func('intptr_t recv(int fd, _Out_ void *buf, size_t len, int flags)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
  close: libc.func('int close(int fd)'),
  setns: libc.func('int setns(int fd, int nstype)'),
  unshare: libc.func('int unshare(int flags)'),
  mount: libc.func('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const void *data)'),
  umount2: libc.func('int umount2(const char *target, int flags)'),
  gettid: libc.func('int gettid(void)'),
  strerror: libc.func('const char *strerror(int errnum)'),
};

// include/uapi/linux/sched.h
export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWNET = 0x40000000;

// include/uapi/linux/mount.h
export const MS_RDONLY = 0x1;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 1 << 18;
export const MS_SLAVE = 1 << 19;
export const MS_SHARED = 1 << 20;
export const MNT_DETACH = 0x2;

// include/linux/socket.h, include/uapi/linux/netlink.h
export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_RCVTIMEO = 20; // struct timeval, x86_64/arm64 (asm-generic/socket.h, 64-bit time)
export const SOL_NETLINK = 270;
export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;
export const NETLINK_EXT_ACK = 11;
export const NETLINK_GET_STRICT_CHK = 12;
export const NETLINK_CAP_ACK = 10;
export const MSG_TRUNC = 0x20;

// include/uapi/asm-generic/errno-base.h, errno.h
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EAGAIN = 11;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const ENOTSUP = 95;
export const EOPNOTSUPP = 95;

export function errno(): number {
  return koffi.errno();
}

export function strerror(err: number): string {
  return String(c.strerror(err));
}

/** A failed system call as a typed error; `what` names the call and its object. */
export function syscallError(what: string, err: number, object?: string): NsnetError {
  return new NsnetError('SYSCALL_FAILED', `${what}: ${strerror(err)}`, { errno: err, object });
}

function check(ret: number | bigint, what: string, object?: string): number {
  const n = Number(ret);
  if (n < 0) throw syscallError(what, errno(), object);
  return n;
}

export function socket(domain: number, type: number, protocol: number): number {
  return check(c.socket(domain, type, protocol), 'socket');
}

export function bind(fd: number, addr: Buffer): void {
  check(c.bind(fd, addr, addr.length), 'bind');
}

export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  check(c.setsockopt(fd, level, name, b, 4), 'setsockopt');
}

export function setsockoptBuf(fd: number, level: number, name: number, value: Buffer): void {
  check(c.setsockopt(fd, level, name, value, value.length), 'setsockopt');
}

/** sendto(2) to a netlink address (the kernel: nl_pid 0). Retries EINTR. */
export function sendto(fd: number, buf: Buffer, addr: Buffer): number {
  for (;;) {
    const n = Number(c.sendto(fd, buf, buf.length, 0, addr, addr.length));
    if (n >= 0) return n;
    const e = errno();
    if (e !== EINTR) throw syscallError('sendto', e);
  }
}

/**
 * recv(2) into `buf`. With MSG_TRUNC in flags the return value is the datagram's real
 * length even when it did not fit (man 7 netlink), which lets the caller grow its buffer.
 */
export function recv(fd: number, buf: Buffer, flags: number): number {
  for (;;) {
    const n = Number(c.recv(fd, buf, buf.length, flags));
    if (n >= 0) return n;
    const e = errno();
    if (e !== EINTR) throw syscallError('recv', e);
  }
}

export function close(fd: number): void {
  c.close(fd);
}

/** setns(2) for the calling thread. Returns errno (0 on success) so callers decide. */
export function setnsRaw(fd: number, nstype: number): number {
  return c.setns(fd, nstype) < 0 ? errno() : 0;
}

export function unshareRaw(flags: number): number {
  return c.unshare(flags) < 0 ? errno() : 0;
}

export function mount(src: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  check(c.mount(src, target, fstype, flags, data), `mount ${target}`, target);
}

/** umount2(2); returns errno (0 on success). */
export function umount2Raw(target: string, flags: number): number {
  return c.umount2(target, flags) < 0 ? errno() : 0;
}

export function gettid(): number {
  return c.gettid();
}
