/**
 * Typed errors with stable codes. Callers branch on `code`, never on the message
 * (STYLE.md: undici-style errors). The CLI maps codes to exit statuses and one-line
 * messages; the CNI face maps them to spec error codes.
 *
 * `NsnetError` means "the user asked for something impossible or the world is not as
 * expected"; any other thrown value is a bug in nsnet and is reported with a stack.
 */
export type ErrorCode =
  // kernel / netlink
  | 'NETLINK_ERROR'
  | 'NETLINK_EEXIST'
  | 'NETLINK_ENOENT'
  | 'NETLINK_ENODEV'
  | 'NETLINK_EBUSY'
  | 'NETLINK_EINVAL'
  | 'NETLINK_EPERM'
  | 'NETLINK_EOPNOTSUPP'
  | 'NETLINK_DUMP_INTERRUPTED'
  | 'NETLINK_DECODE'
  | 'SYSCALL_FAILED'
  | 'LINK_NOT_FOUND'
  | 'LINK_TYPE_UNSUPPORTED'
  | 'IFNAME_INVALID'
  | 'NS_NOT_FOUND'
  | 'NS_EXISTS'
  | 'NS_NAME_INVALID'
  | 'NS_SWITCH_FAILED'
  | 'SYSCTL_FAILED'
  | 'NFT_ERROR'
  | 'NFT_UNAVAILABLE'
  // addressing
  | 'ADDRESS_INVALID'
  | 'CIDR_INVALID'
  | 'MAC_INVALID'
  // ipam / store / engine
  | 'IPAM_EXHAUSTED'
  | 'IPAM_ADDRESS_TAKEN'
  | 'IPAM_OUT_OF_SUBNET'
  | 'SUBNET_OVERLAP'
  | 'SUBNET_INVALID'
  | 'GATEWAY_INVALID'
  | 'NETWORK_NOT_FOUND'
  | 'NETWORK_EXISTS'
  | 'NETWORK_IN_USE'
  | 'PARENT_IN_USE'
  | 'NAME_INVALID'
  | 'ENDPOINT_EXISTS'
  | 'ENDPOINT_NOT_FOUND'
  | 'STORE_ERROR'
  | 'TOPOLOGY_INVALID'
  | 'PORT_IN_USE'
  | 'PORT_NOT_FOUND'
  | 'POLICY_EXISTS'
  | 'POLICY_NOT_FOUND'
  // multi-host cluster (src/cluster)
  | 'CLUSTER_CONFIG_INVALID'
  | 'CLUSTER_NOT_INITIALISED'
  | 'CLUSTER_EXISTS'
  | 'CLUSTER_SUBNETS_EXHAUSTED'
  | 'ETCD_UNREACHABLE'
  | 'ETCD_TLS'
  | 'ETCD_AUTH'
  | 'NODE_NAME_IN_USE'
  | 'NODE_NOT_FOUND'
  | 'NODE_ALIVE'
  | 'USAGE';

export interface ErrorDetails {
  /** The object the error is about: an interface, namespace, network, file… */
  object?: string;
  /** errno from the kernel (positive), when the error came from a system call or netlink. */
  errno?: number;
  /** The kernel's extended-ack message (NLMSGERR_ATTR_MSG), when it sent one. */
  extack?: string;
  cause?: unknown;
}

export class NsnetError extends Error {
  readonly code: ErrorCode;
  readonly object: string | undefined;
  readonly errno: number | undefined;
  readonly extack: string | undefined;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'NsnetError';
    this.code = code;
    this.object = details.object;
    this.errno = details.errno;
    this.extack = details.extack;
  }
}

export function isNsnetError(e: unknown, code?: ErrorCode): e is NsnetError {
  return e instanceof NsnetError && (code === undefined || e.code === code);
}
