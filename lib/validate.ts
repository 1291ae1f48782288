// Argument checks for the public API: each throws Node's error codes.
import { invalidArgType, invalidArgValue, outOfRange } from './errors';

export const SEM_VALUE_MAX = 2147483647;
/** glibc: '/' + at most 251 bytes (NAME_MAX 255 less the 'sem.' prefix). */
export const NAME_MAX_BYTES = 251;

/**
 * Returns the name with exactly one leading '/'. `reserve` bytes are kept
 * free for suffixes that a caller (the gauge) appends.
 */
export function semaphoreName(name: unknown, arg = 'name', reserve = 0): string {
  if (typeof name !== 'string') throw invalidArgType(arg, 'of type string', name);
  const bare = name.startsWith('/') ? name.slice(1) : name;
  if (bare.length === 0) throw invalidArgValue(arg, name, 'must not be empty');
  if (bare.includes('/')) throw invalidArgValue(arg, name, "must not contain '/' after the leading one");
  if (bare.includes('\0')) throw invalidArgValue(arg, name, 'must not contain null bytes');
  const max = NAME_MAX_BYTES - reserve;
  if (Buffer.byteLength(bare) > max) {
    const why = reserve > 0 ? ` (${NAME_MAX_BYTES} less ${reserve} reserved for its share names)` : '';
    throw invalidArgValue(arg, name, `must be at most ${max} bytes long without its leading '/'${why}`);
  }
  return '/' + bare;
}

export function wholeNumber(value: unknown, arg: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArgType(arg, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw outOfRange(arg, `an integer >= ${min} and <= ${max}`, value);
  }
  return value;
}

export function count(value: unknown, arg = 'count'): number {
  return value === undefined ? 1 : wholeNumber(value, arg, 1, SEM_VALUE_MAX);
}

export function mode(value: unknown): number {
  if (value === undefined) return 0o600;
  if (typeof value === 'string' && /^[0-7]{1,4}$/.test(value)) return parseInt(value, 8);
  if (typeof value !== 'number') throw invalidArgType('mode', 'an integer or an octal string', value);
  if (!Number.isInteger(value) || value < 0 || value > 0o7777) {
    throw outOfRange('mode', 'an integer >= 0 and <= 0o7777', value);
  }
  return value;
}

export function boolean(value: unknown, arg: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArgType(arg, 'of type boolean', value);
  return value;
}

/** Milliseconds: 0 = try once; Infinity or undefined = no limit (-1). */
export function timeout(value: unknown): number {
  if (value === undefined || value === Infinity) return -1;
  if (typeof value !== 'number') throw invalidArgType('options.timeout', 'of type number', value);
  if (!(value >= 0)) throw outOfRange('options.timeout', 'a number >= 0 or Infinity', value);
  return value;
}

export function options<T extends object>(value: unknown, arg = 'options'): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object') throw invalidArgType(arg, 'of type object', value);
  return value as Partial<T>;
}

export function abortSignal(value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', value);
  return value;
}
