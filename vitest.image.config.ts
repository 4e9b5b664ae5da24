import { defineConfig } from 'vitest/config';

// `make image-test`: the card image booted under QEMU (test/image/). One guest, steps in order.
export default defineConfig({
  test: {
    include: ['test/image/**/*.test.ts'],
    testTimeout: 15 * 60_000,
    hookTimeout: 5 * 60_000,
    fileParallelism: false,
    reporters: ['default', './test/helpers/closingLine.ts'],
  },
});
