export { NamedSemaphore, type SemaphoreOptions, type WaitOptions, type SyncWaitOptions } from './semaphore';
export type { WaitMechanism } from './native';
export { SemaphoreError, ErrorCodes, isSemaphoreError, type ErrorCode } from './errors';
export { SEM_VALUE_MAX, NAME_MAX_BYTES } from './validate';
export { Gauge, type GaugeOptions } from './gauge';
