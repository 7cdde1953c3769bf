import { defineConfig } from 'vitest/config';

// Unit tests of the pure modules only; ui-tests/ holds the browser tests, run by pytest.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node'
  }
});
