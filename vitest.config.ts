import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The card image's boot test runs on its own: `make image-test` (vitest.image.config.ts).
    exclude: ['test/image/**', 'node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Test files start real servers on free ports; two cores, so keep parallelism modest.
    maxWorkers: 2,
    reporters: ['default', './test/helpers/closingLine.ts'],
  },
});
