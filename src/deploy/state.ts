/**
 * The target's state: `DIR/.deploy-tool/state.json`, schema-versioned and written atomically. It
 * records the releases kept on the target (with their status) and the history of every deploy,
 * switch and rollback. The `current` symlink is the truth about which release is live; the state
 * mirrors it and is reconciled under the lock after a crash.
 */
import { hostname, userInfo } from 'node:os';
import { readFile } from 'node:fs/promises';
import * as z from 'zod';
import { DeployToolError, errnoCode } from '../core/errors.js';
import { writeFileAtomic } from '../core/fs-atomic.js';
import { toolName } from '../core/version.js';

export const STATE_SCHEMA_VERSION = 1;
export const MAX_HISTORY = 200;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const stateComponentSchema = z.object({
  type: z.string().min(1),
  version: z.string().min(1),
  archiveSha256: sha256,
  manifestSha256: sha256,
});
export type StateComponent = z.infer<typeof stateComponentSchema>;

export const RELEASE_STATUSES = ['staged', 'success', 'failed', 'interrupted'] as const;
export type ReleaseStatus = (typeof RELEASE_STATUSES)[number];

export const releaseRecordSchema = z.object({
  status: z.enum(RELEASE_STATUSES),
  createdAt: z.string(),
  /** Last time this release became current (null if it never did). */
  activatedAt: z.string().nullable(),
  /** Release this one was derived from by a selective deploy (null for a published release). */
  base: z.string().nullable(),
  components: z.array(stateComponentSchema),
  error: z.string().nullable(),
});
export type ReleaseRecord = z.infer<typeof releaseRecordSchema>;

export const HISTORY_STATUSES = ['in-progress', 'success', 'failed', 'interrupted'] as const;
export type HistoryStatus = (typeof HISTORY_STATUSES)[number];

export const historyEntrySchema = z.object({
  id: z.number().int().min(1),
  action: z.enum(['deploy', 'switch', 'rollback']),
  release: z.string(),
  /** Release that was current before. */
  from: z.string().nullable(),
  components: z.array(stateComponentSchema),
  startedAt: z.string(),
  finishedAt: z.string().nullable(),
  user: z.string(),
  host: z.string(),
  pid: z.number().int(),
  tool: z.string(),
  status: z.enum(HISTORY_STATUSES),
  error: z.string().nullable(),
});
export type HistoryEntry = z.infer<typeof historyEntrySchema>;

export const targetStateSchema = z.object({
  schemaVersion: z.literal(STATE_SCHEMA_VERSION),
  kind: z.literal('deploy-tool/target-state'),
  current: z.string().nullable(),
  releases: z.record(z.string(), releaseRecordSchema),
  history: z.array(historyEntrySchema),
});
export type TargetState = z.infer<typeof targetStateSchema>;

export function emptyState(): TargetState {
  return {
    schemaVersion: STATE_SCHEMA_VERSION,
    kind: 'deploy-tool/target-state',
    current: null,
    releases: {},
    history: [],
  };
}

export async function readState(path: string): Promise<TargetState> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return emptyState();
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DeployToolError('ERR_TARGET_INVALID', `${path} is not valid JSON (${(err as Error).message})`, {
      hint: 'The target state was damaged by hand. Restore it from a backup or move it away (the release folders are intact).',
    });
  }
  if (
    raw &&
    typeof raw === 'object' &&
    'schemaVersion' in raw &&
    raw.schemaVersion !== STATE_SCHEMA_VERSION
  ) {
    throw new DeployToolError(
      'ERR_TARGET_INVALID',
      `${path} has schemaVersion ${String(raw.schemaVersion)}; this deploy-tool reads ${STATE_SCHEMA_VERSION}`,
      { hint: 'Use the deploy-tool version that wrote this target, or a newer one.' },
    );
  }
  const parsed = targetStateSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DeployToolError(
      'ERR_TARGET_INVALID',
      `${path}: ${issue?.path.join('.') || '(top level)'}: ${issue?.message ?? 'invalid'}`,
      { hint: 'The target state was damaged by hand. See docs/formats.md ("Target state").' },
    );
  }
  return parsed.data;
}

export async function writeState(path: string, state: TargetState): Promise<void> {
  if (state.history.length > MAX_HISTORY) state.history.splice(0, state.history.length - MAX_HISTORY);
  await writeFileAtomic(path, `${JSON.stringify(state, null, 2)}\n`);
}

export function whoami(): { user: string; host: string; pid: number; tool: string } {
  let user = process.env.USER ?? '';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry: keep $USER
  }
  return {
    user: user || `uid ${process.getuid?.() ?? '?'}`,
    host: hostname(),
    pid: process.pid,
    tool: toolName(),
  };
}

export function startHistory(
  state: TargetState,
  action: HistoryEntry['action'],
  release: string,
  components: StateComponent[],
): HistoryEntry {
  const id = (state.history[state.history.length - 1]?.id ?? 0) + 1;
  const entry: HistoryEntry = {
    id,
    action,
    release,
    from: state.current,
    components,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    ...whoami(),
    status: 'in-progress',
    error: null,
  };
  state.history.push(entry);
  return entry;
}

export function finishHistory(entry: HistoryEntry, status: HistoryStatus, error?: string): void {
  entry.status = status;
  entry.finishedAt = new Date().toISOString();
  entry.error = error ?? null;
}

/**
 * The release `rollback` returns to: the most recent release that became current successfully and
 * is not the current one, still kept on the target.
 */
export function rollbackTarget(state: TargetState, current: string | null): string | undefined {
  for (let i = state.history.length - 1; i >= 0; i--) {
    const h = state.history[i];
    if (!h || h.status !== 'success' || h.release === current) continue;
    const rec = state.releases[h.release];
    if (rec && rec.status === 'success') return h.release;
  }
  return undefined;
}
