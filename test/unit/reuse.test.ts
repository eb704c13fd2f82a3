/**
 * Whole-component reuse on a target: a kept release is reused for a component only when it holds
 * the same type, version, archive sha256 and manifest sha256 (the manifest pins every file's digest).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findReusable } from '../../src/deploy/engine.js';
import { componentDirRel, releaseDir, targetPaths } from '../../src/deploy/layout.js';
import { emptyState, type TargetState } from '../../src/deploy/state.js';
import { sha256 } from './fixtures.js';

describe('findReusable', () => {
  let root: string;
  const archive = sha256('archive');
  const manifest = sha256('manifest');
  let state: TargetState;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dt-reuse-'));
    const t = targetPaths(root);
    await mkdir(join(releaseDir(t, '1.0.0'), componentDirRel('model', '1.0.0')), { recursive: true });
    state = emptyState();
    state.current = '1.0.0';
    state.releases['1.0.0'] = {
      status: 'success',
      createdAt: '2026-12-01T00:00:00.000Z',
      activatedAt: '2026-12-01T00:00:00.000Z',
      base: null,
      components: [{ type: 'model', version: '1.0.0', archiveSha256: archive, manifestSha256: manifest }],
      error: null,
    };
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('reuses the kept release holding the same archive and manifest', async () => {
    const c = { type: 'model', version: '1.0.0', archiveSha256: archive, manifestSha256: manifest };
    expect(await findReusable(targetPaths(root), state, c)).toBe('1.0.0');
  });

  it('does not reuse it for another manifest claiming the same archive sha256', async () => {
    const c = { type: 'model', version: '1.0.0', archiveSha256: archive, manifestSha256: sha256('other') };
    expect(await findReusable(targetPaths(root), state, c)).toBeNull();
  });

  it('does not reuse a release whose component folder is gone', async () => {
    const other = { ...state, releases: { ...state.releases } };
    other.releases['0.9.0'] = { ...state.releases['1.0.0']!, activatedAt: null };
    other.current = '0.9.0';
    const c = { type: 'model', version: '1.0.0', archiveSha256: archive, manifestSha256: manifest };
    // 0.9.0 is tried first (current) but has no folder; 1.0.0 still qualifies.
    expect(await findReusable(targetPaths(root), other, c)).toBe('1.0.0');
  });
});
