/** Keys every upstream type takes: the schema side (zod); the run-time side is in sizeLimits.ts. */
import { z } from 'zod';
import { byteSize } from './bytes.js';

/**
 * `upstreams[].max_message_bytes`: the largest message the upstream takes, counted as the message
 * is sent (headers and body as encoded, so an attached file counts about 4/3 of its size).
 * `25MB`, `512KB` or bytes; 0 = no limit. Unset: the preset's figure (`presetLimit`).
 */
const sizeLimitKey = {
  max_message_bytes: byteSize.refine((bytes) => bytes === 0 || bytes >= 1024, 'expected 0 (no limit) or at least 1KB, like 25MB').optional(),
};

const count = z.number({ error: 'expected a whole number (0 = no limit)' }).int('expected a whole number (0 = no limit)').min(0, 'expected 0 (no limit) or more');

/** `upstreams[].rate`: each key given overrides the preset's figure for that window only. */
const rate = z.strictObject({
  per_minute: count.optional(),
  per_hour: count.optional(),
  per_day: count.optional(),
  recipients_per_day: count.optional(),
});

/** The keys every upstream type takes besides its own: spread into each type's schema. */
export const commonUpstreamKeys = { ...sizeLimitKey, rate: rate.optional() };
