// Lint: typescript-eslint's recommended rules plus the type-aware ones that
// catch real bugs in a service full of promises and event callbacks.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'data/', 'public/vendor/', 'test/support/summary-reporter.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      'no-empty': ['error', { allowEmptyCatch: false }],
    },
  },
  {
    // The dashboard page: plain browser scripts.
    files: ['public/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: Object.fromEntries(
        [
          'window',
          'document',
          'location',
          'history',
          'navigator',
          'localStorage',
          'WebSocket',
          'fetch',
          'URL',
          'URLSearchParams',
          'CSS',
          'ResizeObserver',
          'Intl',
          'performance',
          'requestAnimationFrame',
          'setTimeout',
          'clearTimeout',
          'setInterval',
          'clearInterval',
          'console',
          'uPlot',
          'SwaggerUIBundle',
          'SwaggerUIStandalonePreset',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    ignores: ['public/**'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: Object.fromEntries(['require', 'module', 'process', 'console', '__dirname', 'setTimeout', 'clearTimeout'].map((name) => [name, 'readonly'])),
    },
    // Jest loads these CommonJS files itself (config, reporter, sequencer): require() is their import.
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
