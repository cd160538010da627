// Turns a Grafana PostgreSQL panel query into the SQL Grafana would send, so a
// test can run dashboard queries against the real schema. Three steps, in
// Grafana's order:
// 1. template variables, as the SQL data sources format them (a multi-value
//    or include-all variable becomes quoted literals joined by commas, any
//    other variable its value with quotes doubled and no quotes around it);
// 2. the global substitutions of the SQL engine ($__interval, $__interval_ms,
//    $__unixEpochFrom(), $__unixEpochTo());
// 3. the PostgreSQL macros ($__timeFilter(col) → col BETWEEN '…' AND '…',
//    $__timeGroup(col, 5m) → floor(extract(epoch from col)/300)*300, …).
// Modelled on Grafana 11's pkg/tsdb/grafana-postgresql-datasource/macros.go
// and sqleng.Interpolate; unknown macros fail as they do in Grafana.

export interface GrafanaVariable {
  value: string | string[];
  /** multi-value or include-all: values are quoted even when only one is selected */
  multi: boolean;
}

export interface GrafanaQueryContext {
  from: Date;
  to: Date;
  /** what Grafana computed for $__interval */
  intervalMs: number;
  variables: Record<string, GrafanaVariable>;
}

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** gtime.ParseInterval for the units dashboards use (`30s`, `1m`, `2h`, `1d`, `1w`). */
export function parseInterval(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d|w)$/.exec(text.trim());
  if (!match) throw new Error(`error parsing interval ${text}`);
  return Number(match[1]) * UNITS_MS[match[2]];
}

/** gtime.FormatInterval: the largest unit that divides the duration (as Grafana prints `$__interval`). */
export function formatInterval(ms: number): string {
  for (const unit of ['w', 'd', 'h', 'm', 's'] as const) {
    if (ms >= UNITS_MS[unit] && ms % UNITS_MS[unit] === 0) return `${ms / UNITS_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}

/** Go's time.RFC3339Nano in UTC: no fractional part when it is zero, no trailing zeros otherwise. */
function rfc3339Nano(date: Date): string {
  return date.toISOString().replace(/\.(\d*?)0*Z$/, (_m, digits: string) => (digits ? `.${digits}Z` : 'Z'));
}

const quoteLiteral = (value: string) => `'${value.replace(/'/g, "''")}'`;

function formatVariable({ value, multi }: GrafanaVariable): string {
  if (Array.isArray(value)) return value.map(quoteLiteral).join(',');
  return multi ? quoteLiteral(value) : value.replace(/'/g, "''");
}

/** Step 1: `$name`, `${name}` and `[[name]]` of known variables; anything else is left for the macros. */
export function interpolateVariables(sql: string, ctx: GrafanaQueryContext): string {
  const builtins: Record<string, string> = {
    __interval: formatInterval(ctx.intervalMs),
    __interval_ms: String(ctx.intervalMs),
  };
  return sql.replace(/\$(\w+)|\$\{(\w+)\}|\[\[(\w+)\]\]/g, (whole, a?: string, b?: string, c?: string) => {
    const name = (a ?? b ?? c) as string;
    if (name in builtins) return builtins[name];
    const variable = ctx.variables[name];
    return variable ? formatVariable(variable) : whole;
  });
}

function evaluateMacro(name: string, args: string[], ctx: GrafanaQueryContext): string {
  const needColumn = () => {
    if (!args[0]) throw new Error(`missing time column argument for macro ${name}`);
    return args[0];
  };
  const from = rfc3339Nano(ctx.from);
  const to = rfc3339Nano(ctx.to);
  switch (name) {
    case '__time':
      return `${needColumn()} AS "time"`;
    case '__timeEpoch':
      return `extract(epoch from ${needColumn()}) as "time"`;
    case '__timeFilter':
      return `${needColumn()} BETWEEN '${from}' AND '${to}'`;
    case '__timeFrom':
      return `'${from}'`;
    case '__timeTo':
      return `'${to}'`;
    case '__timeGroup': {
      if (args.length < 2) throw new Error(`macro ${name} needs time column and interval and optional fill value`);
      const seconds = parseInterval(args[1].replace(/^'|'$/g, '')) / 1000;
      return `floor(extract(epoch from ${args[0]})/${seconds})*${seconds}`;
    }
    case '__timeGroupAlias':
      return `${evaluateMacro('__timeGroup', args, ctx)} AS "time"`;
    case '__unixEpochFilter': {
      const column = needColumn();
      return `${column} >= ${Math.floor(ctx.from.getTime() / 1000)} AND ${column} <= ${Math.floor(ctx.to.getTime() / 1000)}`;
    }
    default:
      throw new Error(`unknown macro "${name}"`);
  }
}

/** Steps 2 and 3: what Grafana's backend does to the query text before sending it to PostgreSQL. */
export function expandMacros(sql: string, ctx: GrafanaQueryContext): string {
  const global = sql
    .replaceAll('$__interval_ms', String(ctx.intervalMs))
    .replaceAll('$__interval', formatInterval(ctx.intervalMs))
    .replaceAll('$__unixEpochFrom()', String(Math.floor(ctx.from.getTime() / 1000)))
    .replaceAll('$__unixEpochTo()', String(Math.floor(ctx.to.getTime() / 1000)));
  return global.replace(/\$([_a-zA-Z0-9]+)\(([^)]*)\)/g, (whole, name: string, argText: string, offset: number) => {
    // Grafana's compatibility rule: `$__timeGroup(…),` (a comma right after) means the aliased form.
    const macro = name === '__timeGroup' && global[offset + whole.length] === ',' ? '__timeGroupAlias' : name;
    return evaluateMacro(
      macro,
      argText.split(',').map((a) => a.trim()),
      ctx,
    );
  });
}

/** The SQL Grafana sends for a panel's rawSql or a query variable. */
export function grafanaSql(rawSql: string, ctx: GrafanaQueryContext): string {
  return expandMacros(interpolateVariables(rawSql, ctx), ctx);
}
