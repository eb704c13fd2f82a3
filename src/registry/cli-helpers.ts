/** Shared pieces of the registry commands (login, token, audit, stats, search, info). */
import { createRegistryClient, type RegistryClient } from './client.js';
import { resolveRegistry } from './credentials.js';

export interface RegistryFlags {
  registry?: string;
}

export async function clientFromFlags(flags: RegistryFlags): Promise<RegistryClient> {
  const r = await resolveRegistry(flags.registry);
  return createRegistryClient({ url: r.url, token: r.token });
}

/** "2024-01-20", "7d" (days ago), or any ISO date. */
export function parseWhen(value: string | undefined, now = new Date()): string | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)([dh])$/.exec(value.trim());
  if (m) {
    const n = Number(m[1]);
    return new Date(now.getTime() - n * (m[2] === 'd' ? 86400_000 : 3600_000)).toISOString();
  }
  return value;
}

export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
    .join('\n');
}
