/** Keys every upstream type takes: the schema side (zod); the run-time side is in sizeLimits.ts. */
import { byteSize } from './bytes.js';

/**
 * `upstreams[].max_message_bytes`: the largest message the upstream takes, counted as the message
 * is sent (headers and body as encoded, so an attached file counts about 4/3 of its size).
 * `25MB`, `512KB` or bytes; 0 = no limit. Unset: the preset's figure (`presetLimit`).
 */
export const sizeLimitKey = {
  max_message_bytes: byteSize.refine((bytes) => bytes === 0 || bytes >= 1024, 'expected 0 (no limit) or at least 1KB, like 25MB').optional(),
};
