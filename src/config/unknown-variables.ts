// A misspelt variable (DATABSE_URL, MQTT_PROT) would otherwise be ignored in
// silence and the service would start with a default the operator did not
// want. Names close to one of ours, or starting like ours, get a warning.
// Only names are compared; values are never printed (they may be secrets).

/**
 * Documented names besides those loadConfig validates: the compose stack's
 * secrets (.env.example), the simulator's broker login, and the device-status,
 * alarm and HTTP rate-limit settings.
 */
export const RELATED_VARIABLES = [
  'POSTGRES_PASSWORD',
  'REDIS_PASSWORD',
  'MQTT_SERVICE_USER',
  'MQTT_SERVICE_PASSWORD',
  'MQTT_SIMULATOR_USER',
  'MQTT_SIMULATOR_PASSWORD',
  'GRAFANA_ADMIN_PASSWORD',
  'GRAFANA_DB_PASSWORD',
  'DEVICE_OFFLINE_AFTER_S',
  'ALARM_WEBHOOK_SECRET',
  'HTTP_RATE_LIMIT',
  'HTTP_RATE_WINDOW_S',
];

/** Prefixes only this service's variables use; another program's REDIS_HOST is worth a warning here too. */
const OWN_PREFIXES = ['MQTT_', 'REDIS_', 'DATABASE_', 'CACHE_TTL_', 'WS_', 'INGEST_', 'HTTP_RATE_', 'DEVICE_', 'ALARM_'];

/** Variables Kubernetes injects for a Service (REDIS_SERVICE_HOST, REDIS_PORT_6379_TCP_ADDR, REDIS_PORT=tcp://…). */
function injectedByKubernetes(name: string, value: string | undefined): boolean {
  return (
    /_SERVICE_(HOST|PORT)(_[A-Z0-9_]+)?$/.test(name) ||
    /_PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?$/.test(name) ||
    (/_PORT$/.test(name) && /^(tcp|udp|sctp):\/\//.test(value ?? ''))
  );
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours (PROT → PORT) cost 1. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** Short names tolerate one typo, longer ones two: HOST must not pass for PORT. */
function closeEnough(candidate: string, known: string): boolean {
  return editDistance(candidate, known) <= (known.length <= 5 ? 1 : 2);
}

/**
 * One warning line per variable in `env` that is not in `known` but looks like
 * one of them: within a typo or two of a known name (case ignored), or
 * starting with a prefix only this service uses.
 */
export function unknownVariableWarnings(env: NodeJS.ProcessEnv, known: readonly string[]): string[] {
  const knownSet = new Set(known);
  const warnings: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (knownSet.has(name) || injectedByKubernetes(name, env[name])) continue;
    const upper = name.toUpperCase();
    if (!/^[A-Z][A-Z0-9_]*$/.test(upper)) continue;
    const near = known.filter((k) => closeEnough(upper, k)).sort((a, b) => editDistance(upper, a) - editDistance(upper, b));
    if (near.length > 0) {
      warnings.push(`unknown variable ${name} is ignored: did you mean ${near.slice(0, 3).join(' or ')}?`);
      continue;
    }
    const prefix = OWN_PREFIXES.find((p) => upper.startsWith(p));
    if (prefix) {
      const family = known.filter((k) => k.startsWith(prefix));
      warnings.push(`unknown variable ${name} is ignored${family.length > 0 ? ` (the ${prefix}… variables are ${family.join(', ')})` : ''}`);
    }
  }
  return warnings;
}
