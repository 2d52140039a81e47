import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', '.meterbridge-demo/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Suites start real brokers, databases and HTTP servers on free ports; two cores, two workers.
    maxWorkers: 2,
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
