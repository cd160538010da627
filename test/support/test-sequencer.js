// Jest's order (failed first, then slowest first, or largest first on a cold
// cache), except that the 'load' files (test/support/cpu-share.ts) go first:
// they may run together, so both cores start on them, and the files that
// must not run beside them are not kept waiting halfway through the run.
const { default: Sequencer } = require('@jest/test-sequencer');
const { readFileSync } = require('node:fs');

const isLoad = (path) => /shareCpuAs\('load'\)/.test(readFileSync(path, 'utf8'));

class LoadFirstSequencer extends Sequencer {
  sort(tests) {
    const sorted = super.sort(tests);
    return [...sorted.filter((t) => isLoad(t.path)), ...sorted.filter((t) => !isLoad(t.path))];
  }
}
module.exports = LoadFirstSequencer;
