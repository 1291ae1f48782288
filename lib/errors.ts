// Error construction: the one place that turns a native errno or a bad
// argument into an Error with a stable `code`.
import * as util from 'node:util';

/**
 * Every `code` an error of this package carries, by name: errno names for a
 * failed system call (a SemaphoreError), ERR_* for the rest. Branch with
 * `isSemaphoreError(error, ErrorCodes.ENOENT)`, or the string itself.
 */
export const ErrorCodes = {
  // A system call failed: a SemaphoreError with errno, syscall and path.
  EACCES: 'EACCES',
  EEXIST: 'EEXIST',
  EINVAL: 'EINVAL',
  ELOOP: 'ELOOP',
  EMFILE: 'EMFILE',
  ENAMETOOLONG: 'ENAMETOOLONG',
  ENFILE: 'ENFILE',
  ENOENT: 'ENOENT',
  ENOMEM: 'ENOMEM',
  ENOSPC: 'ENOSPC',
  ENOSYS: 'ENOSYS',
  EOVERFLOW: 'EOVERFLOW',
  EPERM: 'EPERM',
  ESTALE: 'ESTALE',
  // Bad arguments (TypeError, RangeError), as Node's own.
  ERR_INVALID_ARG_TYPE: 'ERR_INVALID_ARG_TYPE',
  ERR_INVALID_ARG_VALUE: 'ERR_INVALID_ARG_VALUE',
  ERR_OUT_OF_RANGE: 'ERR_OUT_OF_RANGE',
  // Misuse.
  ERR_SEMAPHORE_CLOSED: 'ERR_SEMAPHORE_CLOSED',
  ERR_GAUGE_UNDERFLOW: 'ERR_GAUGE_UNDERFLOW',
  ERR_GAUGE_SHARE: 'ERR_GAUGE_SHARE',
  ERR_GAUGE_FOREIGN: 'ERR_GAUGE_FOREIGN',
  ERR_NOT_CLUSTER_PRIMARY: 'ERR_NOT_CLUSTER_PRIMARY',
  // named-semaphore/prometheus's prom-client helpers without prom-client.
  MODULE_NOT_FOUND: 'MODULE_NOT_FOUND',
} as const;

/** A `code` of an error this package throws. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/**
 * Whether `error` is an Error with one of the package's codes, or with `code`
 * if given: `if (isSemaphoreError(e, 'ENOENT')) ...`. A misspelt code does
 * not compile. (Any Error with that code passes: Node's own
 * ERR_INVALID_ARG_TYPE, say, is the same kind of mistake.)
 */
export function isSemaphoreError<C extends ErrorCode = ErrorCode>(error: unknown, code?: C): error is Error & { code: C } {
  if (!(error instanceof Error)) return false;
  const actual = (error as { code?: unknown }).code;
  return code === undefined ? Object.hasOwn(ErrorCodes, String(actual)) : actual === code;
}

/** A failed system call, shaped like Node's own system errors. */
export class SemaphoreError extends Error {
  /**
   * The errno name, e.g. 'ENOENT'. Typed as the names the package's calls are
   * documented to fail with; another errno would still come as its name.
   */
  readonly code: ErrorCode;
  /** The errno value as Node reports it (negative). */
  readonly errno: number;
  /** The failing call, e.g. 'sem_open'. */
  readonly syscall: string;
  /** The semaphore's name. */
  readonly path: string;

  constructor(err: number, syscall: string, name: string) {
    const [code, description] = util.getSystemErrorMap().get(-err) ?? [`E${err}`, 'unknown error'];
    super(`${code}: ${description}, ${syscall} '${name}'`);
    this.name = 'SemaphoreError';
    this.code = code as ErrorCode;
    this.errno = -err;
    this.syscall = syscall;
    this.path = name;
  }
}

/** Positive errno values used by the binding. */
export const errno = {
  EAGAIN: 11,
  EBADF: 9,
  ETIMEDOUT: 110,
  ESTALE: 116,
} as const;

type CodedError<E extends Error> = E & { code: string };

function coded<E extends Error>(error: E, code: string): CodedError<E> {
  return Object.assign(error, { code });
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `type string ('${value.length > 40 ? value.slice(0, 40) + '…' : value}')`;
  if (typeof value === 'function') return 'function';
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`;
  return `type ${typeof value} (${String(value)})`;
}

/** Whether `error` carries this `code` (errors of any origin). */
export function hasCode(error: unknown, code: string): boolean {
  return (error as { code?: unknown } | null)?.code === code;
}

/** A failed sock_diag read of the listeners on `port` (0: every port). */
export function sockDiagError(err: number, port: number): SemaphoreError {
  return new SemaphoreError(err, 'sock_diag', `port ${port}`);
}

export function invalidArgType(arg: string, expected: string, actual: unknown): CodedError<TypeError> {
  return coded(
    new TypeError(`The "${arg}" argument must be ${expected}. Received ${describe(actual)}`),
    'ERR_INVALID_ARG_TYPE',
  );
}

export function invalidArgValue(arg: string, actual: unknown, reason: string): CodedError<TypeError> {
  return coded(
    new TypeError(`The argument '${arg}' ${reason}. Received ${util.inspect(actual)}`),
    'ERR_INVALID_ARG_VALUE',
  );
}

export function outOfRange(arg: string, range: string, actual: unknown): CodedError<RangeError> {
  return coded(
    new RangeError(`The value of "${arg}" is out of range. It must be ${range}. Received ${util.inspect(actual)}`),
    'ERR_OUT_OF_RANGE',
  );
}

/** Any use of a closed semaphore or gauge. */
export function objectClosed(kind: 'semaphore' | 'gauge', name: string): CodedError<Error> {
  return coded(new Error(`The ${kind} '${name}' is closed`), 'ERR_SEMAPHORE_CLOSED');
}

export function gaugeUnderflow(name: string, count: number, local: number): CodedError<RangeError> {
  return coded(
    new RangeError(`Cannot acquire ${count} from the gauge '${name}': this object holds ${local}`),
    'ERR_GAUGE_UNDERFLOW',
  );
}

/**
 * A NamedSemaphore asked for one of a gauge's shares, which only the Gauge
 * that made it may write: its owner publishes its count with plain stores,
 * so any other write is lost or corrupts the total.
 */
export function gaugeShare(name: string, gauge: string): CodedError<Error> {
  return coded(
    new Error(
      `The semaphore '${name}' is a share of the gauge '${gauge}', which only the Gauge that made it may write: ` +
        `use the gauge (new Gauge('${gauge}'), Gauge.read('${gauge}'), Gauge.unlink('${gauge}'), reap)`,
    ),
    'ERR_GAUGE_SHARE',
  );
}

/**
 * The gauge's generation semaphore is not one a process of this gauge made:
 * not a regular file, too short, or another user's with a mode that does not
 * share the gauge (see "Trust model" in the README).
 */
export function gaugeForeign(name: string, why: string): CodedError<Error> {
  return coded(
    new Error(`The gauge '${name}' cannot be used: ${why}. Remove that file (as its owner or root) or choose another name`),
    'ERR_GAUGE_FOREIGN',
  );
}

/** Reports a gauge failure once per process and code, as a warning: counting never takes a server down. */
const warned = new Set<string>();
export function warnOnce(code: string, message: string): void {
  if (warned.has(code)) return;
  warned.add(code);
  process.emitWarning(`named-semaphore: ${message}`, { code });
}
