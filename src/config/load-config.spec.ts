// docs/api.md Configuration: defaults, one clear problem per malformed variable, no secret
// ever echoed, and the same behaviour through the built CLI.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from './load-config';
import { secretsOf } from './app-config';

const ALL_VARIABLES = [
  'PORT',
  'DATABASE_URL',
  'DATA_DIR',
  'REDIS_URL',
  'REDIS_CLUSTER_NODES',
  'MQTT_URL',
  'MQTT_PORT',
  'ADMIN_API_KEY',
  'WS_TOKEN',
  'DEVICE_TOKENS',
  'CACHE_TTL_LATEST_S',
  'CACHE_TTL_DASHBOARD_S',
  'CACHE_TTL_DEVICE_STATS_S',
  'CACHE_TTL_HOURLY_S',
  'WS_RATE_LIMIT',
  'WS_RATE_WINDOW_S',
  'HTTP_RATE_LIMIT',
  'HTTP_RATE_WINDOW_S',
  'INSTANCE_ID',
  'TRUST_PROXY',
  'LOG_LEVEL',
  'RETENTION_DAYS',
];

/** The ConfigError loadConfig throws for env, or fails the test when it does not throw one. */
function configErrorFor(env: Record<string, string>): ConfigError {
  let thrown: unknown;
  try {
    loadConfig(env);
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(ConfigError);
  return thrown as ConfigError;
}

/** Variable names a problem line mentions (whole words only, so CACHE_TTL_… does not match PORT). */
function variablesNamedIn(text: string): string[] {
  return ALL_VARIABLES.filter((name) => new RegExp(`(^|[^A-Z_])${name}([^A-Z_]|$)`).test(text));
}

describe('loadConfig', () => {
  describe('defaults (docs/api.md Configuration)', () => {
    it('gives the documented defaults when nothing is set', () => {
      const config = loadConfig({});
      expect(config.port).toBe(3000);
      expect(config.database).toEqual({ url: undefined, dataDir: './data' });
      expect(config.redis).toEqual({ url: undefined, clusterNodes: undefined });
      expect(config.mqtt).toEqual({ url: undefined, embeddedPort: 1883, deviceTokens: undefined, keepaliveS: 30 });
      expect(config.adminApiKey).toBeUndefined();
      expect(config.wsToken).toBeUndefined();
      expect(config.cacheTtl).toEqual({ latestS: 10, dashboardS: 300, deviceStatsS: 900, hourlyS: 600 });
      expect(config.wsRateLimit).toEqual({ capacity: 100, windowS: 60 });
      expect(config.httpRateLimit).toBeUndefined();
      expect(config.logLevel).toBe('info');
      expect(config.trustProxy).toBe(false);
      expect(config.instanceId).toBe(`${hostname()}-3000`);
      expect(config.storage).toEqual({ retentionDays: undefined });
    });

    it('reads MQTT_KEEPALIVE_S (an added variable): seconds, 1 to 65535', () => {
      expect(loadConfig({ MQTT_KEEPALIVE_S: '2' }).mqtt.keepaliveS).toBe(2);
      expect(() => loadConfig({ MQTT_KEEPALIVE_S: '0' })).toThrow(/MQTT_KEEPALIVE_S/);
      expect(() => loadConfig({ MQTT_KEEPALIVE_S: '65536' })).toThrow(/MQTT_KEEPALIVE_S/);
      expect(() => loadConfig({ MQTT_KEEPALIVE_S: '1.5' })).toThrow(/MQTT_KEEPALIVE_S/);
    });

    it('reads RETENTION_DAYS (an added variable, not in the contract)', () => {
      expect(loadConfig({ RETENTION_DAYS: '30' }).storage).toEqual({ retentionDays: 30 });
      expect(loadConfig({ RETENTION_DAYS: '' }).storage).toEqual({ retentionDays: undefined });
    });

    it('reads HTTP_RATE_LIMIT / HTTP_RATE_WINDOW_S: unset = not limited, the window defaults to 60 s, alone it changes nothing', () => {
      expect(loadConfig({ HTTP_RATE_LIMIT: '20', HTTP_RATE_WINDOW_S: '10' }).httpRateLimit).toEqual({ capacity: 20, windowS: 10 });
      expect(loadConfig({ HTTP_RATE_LIMIT: '20' }).httpRateLimit).toEqual({ capacity: 20, windowS: 60 });
      expect(loadConfig({ HTTP_RATE_WINDOW_S: '10' }).httpRateLimit).toBeUndefined();
      expect(loadConfig({ HTTP_RATE_LIMIT: '', HTTP_RATE_WINDOW_S: '' }).httpRateLimit).toBeUndefined();
    });

    it('reads ALARM_WEBHOOK_SECRET (unset: webhooks unsigned) and counts it as a secret to mask', () => {
      expect(loadConfig({}).alarms).toEqual({ webhookSecret: undefined });
      expect(loadConfig({ ALARM_WEBHOOK_SECRET: '' }).alarms).toEqual({ webhookSecret: undefined });
      const config = loadConfig({ ALARM_WEBHOOK_SECRET: 'hmac-key-1' });
      expect(config.alarms).toEqual({ webhookSecret: 'hmac-key-1' });
      expect(secretsOf(config)).toContain('hmac-key-1');
    });

    it('derives INSTANCE_ID from the host name and the configured PORT', () => {
      expect(loadConfig({ PORT: '4100' }).instanceId).toBe(`${hostname()}-4100`);
      expect(loadConfig({ PORT: '4100', INSTANCE_ID: 'edge-a.1' }).instanceId).toBe('edge-a.1');
    });

    it('reads every documented variable', () => {
      const config = loadConfig({
        PORT: '8080',
        DATABASE_URL: 'postgres://app:pw@db:5432/telemetry',
        DATA_DIR: '/var/lib/th',
        REDIS_URL: 'rediss://:pw@cache:6380',
        REDIS_CLUSTER_NODES: 'r1:7000, r2:7001,[::1]:7002',
        MQTT_URL: 'mqtts://hub:pw@broker:8883',
        MQTT_PORT: '1884',
        ADMIN_API_KEY: 'admin-key',
        WS_TOKEN: 'ws-token',
        DEVICE_TOKENS: 'dev-1:secret1,site:dev:2:secret2',
        CACHE_TTL_LATEST_S: '11',
        CACHE_TTL_DASHBOARD_S: '301',
        CACHE_TTL_DEVICE_STATS_S: '901',
        CACHE_TTL_HOURLY_S: '601',
        WS_RATE_LIMIT: '50',
        WS_RATE_WINDOW_S: '30',
        TRUST_PROXY: 'true',
        LOG_LEVEL: 'debug',
      });
      expect(config.port).toBe(8080);
      expect(config.database).toEqual({ url: 'postgres://app:pw@db:5432/telemetry', dataDir: '/var/lib/th' });
      expect(config.redis).toEqual({
        url: 'rediss://:pw@cache:6380',
        clusterNodes: [
          { host: 'r1', port: 7000 },
          { host: 'r2', port: 7001 },
          { host: '::1', port: 7002 },
        ],
      });
      expect(config.mqtt.url).toBe('mqtts://hub:pw@broker:8883');
      expect(config.mqtt.embeddedPort).toBe(1884);
      expect([...(config.mqtt.deviceTokens ?? new Map()).entries()]).toEqual([
        ['dev-1', 'secret1'],
        ['site:dev:2', 'secret2'],
      ]);
      expect(config.adminApiKey).toBe('admin-key');
      expect(config.wsToken).toBe('ws-token');
      expect(config.cacheTtl).toEqual({ latestS: 11, dashboardS: 301, deviceStatsS: 901, hourlyS: 601 });
      expect(config.wsRateLimit).toEqual({ capacity: 50, windowS: 30 });
      expect(config.trustProxy).toBe(true);
      expect(config.logLevel).toBe('debug');
      expect(config.instanceId).toBe(`${hostname()}-8080`);
    });

    it('treats an empty string as unset', () => {
      const config = loadConfig({
        PORT: '',
        DATABASE_URL: '',
        DATA_DIR: '',
        REDIS_URL: '',
        REDIS_CLUSTER_NODES: '',
        MQTT_URL: '',
        MQTT_PORT: '',
        DEVICE_TOKENS: '',
        ADMIN_API_KEY: '',
        WS_TOKEN: '',
        CACHE_TTL_LATEST_S: '',
        WS_RATE_LIMIT: '',
        INSTANCE_ID: '',
        TRUST_PROXY: '',
        LOG_LEVEL: '',
      });
      expect(config).toEqual(loadConfig({}));
    });

    it('returns a deeply frozen object', () => {
      const config = loadConfig({ REDIS_CLUSTER_NODES: 'r1:7000' });
      expect(Object.isFrozen(config)).toBe(true);
      for (const inner of [config.database, config.storage, config.redis, config.mqtt, config.cacheTtl, config.wsRateLimit, config.ingest]) {
        expect(Object.isFrozen(inner)).toBe(true);
      }
      expect(Object.isFrozen(config.redis.clusterNodes)).toBe(true);
      expect(Object.isFrozen(config.redis.clusterNodes?.[0])).toBe(true);
      expect(() => {
        (config as { port: number }).port = 1;
      }).toThrow(TypeError);
      expect(() => {
        (config.cacheTtl as { latestS: number }).latestS = 1;
      }).toThrow(TypeError);
      expect(config.port).toBe(3000);
      expect(config.cacheTtl.latestS).toBe(10);
    });
  });

  describe('malformed variables', () => {
    // [variable, bad value, secret inside it that must never be echoed back (null: none)]
    const cases: Array<[string, string, string | null]> = [
      ['PORT', 'abc', null],
      ['PORT', '70000', null],
      ['PORT', '30.5', null],
      ['MQTT_PORT', '-1', null],
      ['DATABASE_URL', 'http://x', null],
      ['DATABASE_URL', 'http://u:pw123@x', 'pw123'],
      ['DATABASE_URL', 'postgres//u:pgSecret9@db/x', 'pgSecret9'],
      ['REDIS_URL', 'foo', null],
      ['REDIS_URL', 'http://:redisPw77@cache:6379', 'redisPw77'],
      ['MQTT_URL', 'nonsense', null],
      ['MQTT_URL', 'ftp://hub:mqttPw55@broker', 'mqttPw55'],
      ['REDIS_CLUSTER_NODES', 'bad', null],
      ['REDIS_CLUSTER_NODES', 'r1:7000,r2:99999', null],
      ['DEVICE_TOKENS', 'nocolon', 'nocolon'],
      ['DEVICE_TOKENS', 'dev-1:goodTok1,bad id:leakyTok2', 'leakyTok2'],
      ['DEVICE_TOKENS', 'dev-1:', null],
      ['CACHE_TTL_LATEST_S', '0', null],
      ['CACHE_TTL_DASHBOARD_S', 'five', null],
      ['CACHE_TTL_DEVICE_STATS_S', '-5', null],
      ['CACHE_TTL_HOURLY_S', '1.5', null],
      ['WS_RATE_LIMIT', '-1', null],
      ['WS_RATE_WINDOW_S', '0', null],
      ['HTTP_RATE_LIMIT', '0', null],
      ['HTTP_RATE_LIMIT', 'lots', null],
      ['HTTP_RATE_LIMIT', '2.5', null],
      ['HTTP_RATE_WINDOW_S', '0', null],
      ['HTTP_RATE_WINDOW_S', 'minute', null],
      ['LOG_LEVEL', 'loud', null],
      ['TRUST_PROXY', 'maybe', null],
      ['INSTANCE_ID', 'my host', null],
      ['INSTANCE_ID', 'x'.repeat(65), null],
      ['RETENTION_DAYS', '0', null],
      ['RETENTION_DAYS', '-3', null],
      ['RETENTION_DAYS', '1.5', null],
      ['RETENTION_DAYS', 'forever', null],
    ];

    it.each(cases)('%s=%s fails with one problem naming exactly that variable', (name, value, secret) => {
      const error = configErrorFor({ [name]: value });
      expect(error.problems).toHaveLength(1);
      expect(variablesNamedIn(error.problems[0])).toEqual([name]);
      expect(error.message).toContain(name);
      if (secret !== null) {
        expect(value).toContain(secret); // the case really carries the secret it checks for
        for (const text of [...error.problems, error.message, String(error.stack)]) expect(text).not.toContain(secret);
      }
    });

    it('quotes the value of a variable that cannot hold a secret, and only those', () => {
      expect(configErrorFor({ PORT: 'abc' }).problems).toEqual(['invalid environment variable PORT (given "abc"): must be a port number from 0 to 65535']);
      expect(configErrorFor({ LOG_LEVEL: 'loud' }).problems[0]).toContain('LOG_LEVEL (given "loud")');
      const secretive = configErrorFor({ REDIS_URL: 'nope', DEVICE_TOKENS: 'x' }).problems;
      expect(secretive).toHaveLength(2);
      expect(secretive.join('\n')).not.toContain('given');
    });

    it('reports every bad variable at once, one problem each', () => {
      const error = configErrorFor({
        PORT: 'abc',
        DATABASE_URL: 'http://u:pw123@x',
        LOG_LEVEL: 'loud',
        DEVICE_TOKENS: 'nocolon',
        WS_RATE_LIMIT: '-1',
        DATA_DIR: '/ok',
        MQTT_PORT: '1884',
      });
      expect(error.problems).toHaveLength(5);
      expect(error.problems.map((p) => variablesNamedIn(p)).sort()).toEqual([['DATABASE_URL'], ['DEVICE_TOKENS'], ['LOG_LEVEL'], ['PORT'], ['WS_RATE_LIMIT']]);
      expect(error.message).not.toContain('pw123');
      expect(error.message).not.toContain('nocolon');
    });

    it('is a ConfigError that is also an Error with a readable message', () => {
      const error = configErrorFor({ TRUST_PROXY: 'maybe' });
      expect(error).toBeInstanceOf(Error);
      expect(error.name).toBe('ConfigError');
      expect(error.message).toBe(error.problems.join('; '));
    });
  });

  describe('start-up through the built CLI', () => {
    const root = join(__dirname, '..', '..');
    const main = join(root, 'dist', 'main.js');

    beforeAll(() => {
      const build = spawnSync('npm', ['run', 'build'], { cwd: root, encoding: 'utf8' });
      if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}\n${build.stderr}`);
    }, 180_000);

    /** Runs dist/main.js with ONLY the given variables (plus PATH) in an empty directory (no .env), so nothing else can interfere. */
    function runCli(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
      return new Promise((resolve, reject) => {
        const cwd = mkdtempSync(join(tmpdir(), 'th-cli-'));
        const child = spawn(process.execPath, [main], { cwd, env: { PATH: process.env.PATH ?? '', ...env } });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk) => (stdout += chunk));
        child.stderr.on('data', (chunk) => (stderr += chunk));
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`CLI did not exit within 20 s; stderr so far: ${stderr}`));
        }, 20_000);
        child.once('error', reject);
        child.once('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      });
    }

    it('exits 1 with exactly one stderr line naming PORT when PORT=abc', async () => {
      const { code, stdout, stderr } = await runCli({ PORT: 'abc' });
      expect(code).toBe(1);
      expect(stdout).toBe('');
      const lines = stderr.split('\n').filter((line) => line.length > 0);
      expect(lines).toHaveLength(1);
      expect(variablesNamedIn(lines[0])).toEqual(['PORT']);
      expect(lines[0]).toContain('"abc"'); // the value given, quoted: PORT is no secret
      expect(stderr.endsWith('\n')).toBe(true);
    });

    it('names each bad variable on its own line and never prints the password', async () => {
      const { code, stderr } = await runCli({ PORT: 'abc', DATABASE_URL: 'http://u:pw123@x' });
      expect(code).toBe(1);
      const lines = stderr.split('\n').filter((line) => line.length > 0);
      expect(lines.map((line) => variablesNamedIn(line)).sort()).toEqual([['DATABASE_URL'], ['PORT']]);
      expect(stderr).not.toContain('pw123');
    });
  });
});
