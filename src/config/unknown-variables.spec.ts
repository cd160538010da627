// Misspelt variables are reported by name (never by value); the rest of a
// normal environment (shell, CI, Kubernetes service links) stays quiet.
import { CONFIG_VARIABLES } from './load-config';
import { editDistance, RELATED_VARIABLES, unknownVariableWarnings } from './unknown-variables';

const KNOWN = [...CONFIG_VARIABLES, ...RELATED_VARIABLES];

describe('editDistance', () => {
  it('counts a swap of neighbours as one edit', () => {
    expect(editDistance('MQTT_PROT', 'MQTT_PORT')).toBe(1);
    expect(editDistance('DATABSE_URL', 'DATABASE_URL')).toBe(1);
    expect(editDistance('HOST', 'PORT')).toBe(2);
    expect(editDistance('', 'PORT')).toBe(4);
  });
});

describe('unknownVariableWarnings', () => {
  it.each([
    ['DATABSE_URL', 'DATABASE_URL'],
    ['MQTT_PROT', 'MQTT_PORT'],
    ['mqtt_port', 'MQTT_PORT'],
    ['PROT', 'PORT'],
    ['REDIS_ULR', 'REDIS_URL'],
    ['CACHE_TTL_LATEST', 'CACHE_TTL_LATEST_S'],
    ['LOGLEVEL', 'LOG_LEVEL'],
  ])('suggests the known name for %s', (typo, meant) => {
    const warnings = unknownVariableWarnings({ [typo]: 'value-never-shown' }, KNOWN);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(typo);
    expect(warnings[0]).toContain(`did you mean ${meant}`);
    expect(warnings[0]).not.toContain('value-never-shown');
  });

  it('warns about an unknown name with a prefix only this service uses', () => {
    const warnings = unknownVariableWarnings({ MQTT_HOSTNAME: 'broker', REDIS_HOST: 'cache' }, KNOWN);
    expect(warnings).toEqual([
      expect.stringMatching(/^unknown variable MQTT_HOSTNAME is ignored \(the MQTT_… variables are .*MQTT_URL/),
      expect.stringMatching(/^unknown variable REDIS_HOST is ignored \(the REDIS_… variables are .*REDIS_URL/),
    ]);
  });

  it('says nothing about known names, a usual environment, or Kubernetes service links', () => {
    const env: NodeJS.ProcessEnv = Object.fromEntries(KNOWN.map((name) => [name, 'x']));
    Object.assign(env, {
      PATH: '/usr/bin',
      HOME: '/root',
      HOST: 'box',
      HOSTNAME: 'box',
      PWD: '/app',
      USER: 'node',
      SHELL: '/bin/sh',
      TERM: 'xterm',
      LANG: 'C.UTF-8',
      NODE_ENV: 'production',
      NODE_OPTIONS: '',
      CI: 'true',
      HTTP_PROXY: 'http://proxy:3128',
      npm_lifecycle_event: 'start',
      TEST_DATABASE_URL: 'postgres://x',
      REDIS_SERVICE_HOST: '10.0.0.2',
      REDIS_SERVICE_PORT: '6379',
      REDIS_PORT: 'tcp://10.0.0.2:6379',
      REDIS_PORT_6379_TCP_ADDR: '10.0.0.2',
      MQTT_PORT_1883_TCP: 'tcp://10.0.0.3:1883',
    });
    expect(unknownVariableWarnings(env, KNOWN)).toEqual([]);
  });
});
