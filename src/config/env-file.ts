// `.env` support for `npm start` and `npm run simulate`: the variables of a
// `.env` file in the working directory (the format of .env.example, which
// docker compose reads too) fill in what the real environment leaves unset.
// The real environment always wins, so `PORT=3001 npm start` overrides .env.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';

export interface EnvFileResult {
  /** Absolute path of the file read; undefined when there was none. */
  path: string | undefined;
  /** Variables taken from the file (those the environment did not set already). */
  applied: string[];
}

export function loadEnvFile(path = '.env', env: NodeJS.ProcessEnv = process.env): EnvFileResult {
  const absolute = resolve(path);
  let content: string;
  try {
    content = readFileSync(absolute, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { path: undefined, applied: [] };
    throw error;
  }
  const applied: string[] = [];
  for (const [name, value] of Object.entries(parseEnv(content))) {
    if (value === undefined || env[name] !== undefined) continue;
    env[name] = value;
    applied.push(name);
  }
  return { path: absolute, applied };
}
