// Jest on Node 20 cannot require() the ESM-only Nest 12 / aedes packages, so
// @swc/jest transpiles both our TypeScript and those packages to CommonJS.
const esmPackages = [
  '@nestjs',
  'aedes',
  'file-type',
  'load-esm',
  'uid',
  '@standard-schema',
  'strtok3',
  'token-types',
  'peek-readable',
  '@tokenizer',
  'uint8array-extras',
  'cookie',
];
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      keepClassNames: true,
      target: 'es2022',
    },
    module: { type: 'commonjs' },
  },
];
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts', '**/*.test.ts'],
  transform: { '^.+\\.(t|j|mj)s$': swc },
  transformIgnorePatterns: [`/node_modules/(?!(${esmPackages.join('|')})/)`],
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  testTimeout: 60000,
  testSequencer: '<rootDir>/test/support/test-sequencer.js',
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
};
