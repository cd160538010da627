// `.env` fills in what the environment leaves unset; the environment wins.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvFile } from './env-file';

describe('loadEnvFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'th-env-file-'));

  it('adds the variables the environment does not set, and reports which', () => {
    const path = join(dir, 'a.env');
    writeFileSync(path, '# comment\nPORT=3001\nMQTT_PORT=1884\nWS_TOKEN=\nADMIN_API_KEY="quoted key"\n');
    const env: NodeJS.ProcessEnv = { PORT: '4000' };
    const result = loadEnvFile(path, env);
    expect(result.path).toBe(path);
    expect([...result.applied].sort()).toEqual(['ADMIN_API_KEY', 'MQTT_PORT', 'WS_TOKEN']);
    expect(env).toEqual({ PORT: '4000', MQTT_PORT: '1884', WS_TOKEN: '', ADMIN_API_KEY: 'quoted key' });
  });

  it('keeps an environment variable set to the empty string (set on purpose)', () => {
    const path = join(dir, 'b.env');
    writeFileSync(path, 'DATABASE_URL=postgres://db/x\n');
    const env: NodeJS.ProcessEnv = { DATABASE_URL: '' };
    expect(loadEnvFile(path, env).applied).toEqual([]);
    expect(env.DATABASE_URL).toBe('');
  });

  it('does nothing when there is no file', () => {
    const env: NodeJS.ProcessEnv = {};
    expect(loadEnvFile(join(dir, 'missing.env'), env)).toEqual({ path: undefined, applied: [] });
    expect(env).toEqual({});
  });
});
