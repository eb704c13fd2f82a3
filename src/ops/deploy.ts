/**
 * `deploy`: makes a published release (or a selective set of components) current on a target.
 * Plans (extract or reuse each component), stages the release folder, renames it into place and
 * switches `current` atomically, with hooks, health check, retention and crash recovery.
 */
import { lstat, rename } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DeployToolError, fsError } from '../core/errors.js';
import type { CommonOptions } from '../core/events.js';
import { fsyncDir } from '../core/fs-atomic.js';
import { sha256Hex } from '../core/hash.js';
import { tryOpenProject, type Project } from '../core/project.js';
import { parseComponentRef, validateVersion } from '../core/validate.js';
import {
  applyRetention,
  deployPool,
  findReusable,
  framesBytes,
  planFileReuse,
  readStoredManifest,
  sameComponents,
  stageRelease,
  stateComponents,
  type PlannedComponent,
} from '../deploy/engine.js';
import { createFilesystemReleaseSource } from '../deploy/fs-source.js';
import type { HookOutput } from '../deploy/hooks.js';
import {
  RESERVED_TYPES,
  readCurrent,
  readTargetRelease,
  releaseDir,
  targetPaths,
  type TargetPaths,
} from '../deploy/layout.js';
import { activate, openSession, testPause, type HookSummary } from '../deploy/session.js';
import type { ArchiveTransfer, LoadedComponent, ReleaseSource } from '../deploy/source.js';
import { finishHistory, readState, startHistory, type TargetState } from '../deploy/state.js';
import { resolveTarget } from '../deploy/target.js';
import { createTrustedSource, type DeployTrustOptions } from '../trust/source.js';
import { bucketSourceFromFlags } from '../deploy/sources/s3.js';
import { wantsStore, type StoreFlags } from '../store/resolve.js';
import { componentRoutes } from '../store/routes.js';
import { createRoutedReleaseSource } from '../deploy/sources/routed.js';

export interface TargetCommandOptions extends CommonOptions {
  /** --target: a folder, or a name from .deploy-tool.yaml (see deploy/target.ts). */
  target?: string | undefined;
  /** Wait for the target's lock instead of failing at once. */
  wait?: boolean | undefined;
  /** Overrides health_check of .deploy-tool.yaml. */
  healthCheck?: string | undefined;
  /** Output of hooks and health checks, line by line. */
  onHookOutput?: ((o: HookOutput) => void) | undefined;
  /** What the lock file records as the command (the CLI passes its argv). */
  command?: string | undefined;
}

export interface DeployOptions extends TargetCommandOptions {
  release?: string | undefined;
  /** TYPE:VERSION, repeatable: a selective deploy. */
  components?: string[] | undefined;
  method?: string | undefined;
  releasesDir?: string | undefined;
  dryRun?: boolean | undefined;
  keep?: number | undefined;
  /** A ReleaseSource of your own (library use); default: the filesystem method. */
  source?: ReleaseSource | undefined;
  /** Signatures and decryption (src/trust): --require-signature, --trusted-key, --identity, --passphrase-env. */
  trust?: DeployTrustOptions | undefined;
  /** Bucket stores and registries (src/deploy/sources/s3.ts): --store NAME, --method s3|bos with --bucket etc., --method registry --registry URL --namespace NS. */
  remote?: (StoreFlags & { cacheDir?: string | undefined }) | undefined;
}

export interface DeployPlanComponent {
  type: string;
  version: string;
  action: 'extract' | 'reuse';
  reuseFrom: string | null;
  unchanged: boolean;
  files: number;
  bytes: number;
  archiveBytes: number;
  archiveSha256: string;
  /**
   * action 'extract': files (and their bytes) hard-linked from kept releases on the target, which
   * hold them with the same sha256, size and mode; the others are extracted from only the frames
   * holding them. 0 when everything is extracted; for action 'reuse' every file is linked.
   */
  filesLinked: number;
  bytesLinked: number;
  /** The kept releases those files come from (empty when none). */
  linkedFrom: string[];
  /** Sources that download (bucket stores): what this component's archive cost; null otherwise. */
  transfer: ComponentTransfer | null;
}

/** Archive bytes of one component: fetched, from the local cache, or not needed (on the target). */
export interface ComponentTransfer {
  /** Bytes fetched from the stores (0 in a dry run). */
  bytesDownloaded: number;
  /** Bytes that had to be fetched (a dry run: that would be). */
  bytesToDownload: number;
  /** Bytes the local download cache had. */
  bytesFromCache: number;
  /**
   * Archive bytes not needed: the target already holds the component (hard links), or, with
   * file-level reuse, the compressed bytes of the frames not read (they hold only linked files).
   */
  bytesFromTarget: number;
  /** Where it came from: store names (the store itself or a mirror), "cache", or "target". */
  servedBy: string[];
}

/** Totals over the components, and servedBy per component id (TYPE:VERSION). */
export interface DeployTransfer extends Omit<ComponentTransfer, 'servedBy'> {
  servedBy: Record<string, string[]>;
}

export interface LinkChange {
  path: string;
  from: string | null;
  to: string | null;
}

export interface DeployResult {
  status: 'deployed' | 'unchanged' | 'planned';
  dryRun: boolean;
  target: string;
  release: string;
  previous: string | null;
  /** The release was already on the target: no extraction, only the switch. */
  alreadyOnTarget: boolean;
  source: string;
  components: DeployPlanComponent[];
  /** Bytes that extraction writes (reused components write none). */
  bytesToWrite: number;
  /** Sources that download (bucket stores): bytes downloaded (or, dry run, to download) and reused; null otherwise. */
  transfer: DeployTransfer | null;
  links: LinkChange[];
  removed: string[];
  cleaned: string[];
  hooks: HookSummary[];
  healthCheck: HookSummary | null;
  seconds: number;
}

interface Wanted {
  release: string;
  sourceRelease: string | null;
  base: string | null;
  components: PlannedComponent[];
}

const planned = (
  manifestText: string,
  m: LoadedComponent['manifest'],
  extra: Partial<PlannedComponent>,
): PlannedComponent => ({
  type: m.type,
  version: m.version,
  archiveSha256: m.archive.sha256,
  manifestSha256: sha256Hex(manifestText),
  manifest: m,
  manifestText,
  action: 'extract',
  reuseFrom: null,
  unchanged: false,
  files: m.summary.files,
  bytes: m.summary.totalSize,
  archiveBytes: m.archive.size,
  ...extra,
});

function makeSource(o: DeployOptions, project: Project | undefined): ReleaseSource {
  if (o.source) return o.source;
  const bucket = (flags: StoreFlags): ReleaseSource =>
    bucketSourceFromFlags({
      flags,
      config: project?.config,
      baseDir: project?.root ?? o.cwd,
      cwd: o.cwd,
      cacheDir: o.remote?.cacheDir,
      onLog: o.onLog,
      onWarning: o.onWarning,
      onProgress: o.onProgress,
    });
  const flags: StoreFlags = { ...o.remote, method: o.method };
  // Mixed stores: components routed by deploy.components come from their own store.
  const routes = new Map<string, { name: string; source: ReleaseSource }>();
  for (const [type, name] of componentRoutes(project?.config, wantsStore(flags) ? flags.store : undefined))
    routes.set(type, { name, source: bucket({ store: name }) });
  if (wantsStore(flags)) return createRoutedReleaseSource({ main: bucket(flags), routes });
  const method = o.method ?? 'filesystem';
  if (method !== 'filesystem') {
    throw new DeployToolError('ERR_USAGE', `Deploy method "${method}" is not available in this version`, {
      hint: 'Use --method filesystem with --releases-dir DIR, --method s3|bos --bucket B, --method registry --registry URL, or --store NAME.',
    });
  }
  const main = createFilesystemReleaseSource({
    releasesDir: o.releasesDir ? resolve(o.cwd, o.releasesDir) : project?.paths.releases,
    componentsDir: project ? resolve(project.paths.deployment, 'components') : undefined,
    projectRoot: project?.root,
  });
  return createRoutedReleaseSource({ main, routes });
}

/** What to deploy: a published release, or the current one (or --release) with components replaced. */
async function wanted(
  o: DeployOptions,
  source: ReleaseSource,
  t: TargetPaths,
  current: string | null,
): Promise<Wanted> {
  const refs = (o.components ?? []).map(parseComponentRef);
  if (!o.release && refs.length === 0) {
    throw new DeployToolError('ERR_USAGE', 'deploy needs --release R or --component TYPE:VERSION', {
      hint: 'Example: deploy-tool deploy --release 2024.01.20 --target /opt/ml-apps/prod',
    });
  }
  const seen = new Set<string>();
  for (const r of refs) {
    if (seen.has(r.type))
      throw new DeployToolError('ERR_USAGE', `Component type "${r.type}" is given twice`, {
        hint: 'A release holds one version of each type.',
      });
    seen.add(r.type);
  }
  let base: PlannedComponent[] = [];
  let baseName: string | null = null;
  if (o.release) {
    const release = validateVersion(o.release, 'Release');
    const rel = await source.getRelease(release);
    // The component manifests are independent requests (a round trip each to a bucket or registry).
    const wantedRefs = rel.manifest.components.filter((c) => !seen.has(c.type));
    const loadedAll = await Promise.all(wantedRefs.map((c) => source.getComponent(c, release)));
    wantedRefs.forEach((c, k) => {
      const loaded = loadedAll[k];
      if (loaded)
        base.push(planned(loaded.text, loaded.manifest, { loaded, ref: c, sourceRelease: release }));
    });
    if (refs.length === 0) return { release, sourceRelease: release, base: null, components: base };
    baseName = release;
  } else if (current) {
    const rec = await readTargetRelease(t, current);
    baseName = current;
    for (const c of rec?.components ?? []) {
      if (seen.has(c.type)) continue;
      const { manifest, text } = await readStoredManifest(t, current, c);
      base.push(planned(text, manifest, {}));
    }
  }
  const replaced: PlannedComponent[] = [];
  for (const r of refs) {
    const loaded = await source.getComponent(r);
    replaced.push(planned(loaded.text, loaded.manifest, { loaded }));
  }
  base = [...base, ...replaced];
  const parts = replaced.map((c) => `${c.type}-${c.version}`).join('+');
  let name = baseName ? `${baseName}+${parts}` : parts;
  if (name.length > 100)
    name = `${(baseName ?? 'selective').split('+')[0]}+sel-${sha256Hex(
      stateComponents(base)
        .map((c) => `${c.type}:${c.archiveSha256}`)
        .sort()
        .join('|'),
    ).slice(0, 12)}`;
  return {
    release: validateVersion(name, 'Release'),
    sourceRelease: o.release ?? null,
    base: baseName,
    components: base,
  };
}

/** Decides extract or reuse for each component against the target's state. */
async function decide(t: TargetPaths, state: TargetState, current: string | null, w: Wanted): Promise<void> {
  const cur = current ? state.releases[current] : undefined;
  // The manifests being deployed, already parsed: kept releases often store the very same bytes.
  const known = new Map(w.components.map((c) => [c.manifestSha256, c.manifest]));
  for (const c of w.components) {
    if (RESERVED_TYPES.has(c.type)) {
      throw new DeployToolError(
        'ERR_INVALID_NAME',
        `Component type "${c.type}" cannot be deployed: the target uses that name`,
        {
          hint: `Pack it under another type name (not ${[...RESERVED_TYPES].join(' or ')}).`,
        },
      );
    }
    c.unchanged = !!cur?.components.some(
      (x) => x.type === c.type && x.version === c.version && x.archiveSha256 === c.archiveSha256,
    );
    c.reuseFrom = await findReusable(t, state, c);
    c.action = c.reuseFrom ? 'reuse' : 'extract';
    await planFileReuse(t, state, c, known);
  }
}

async function linkChanges(
  t: TargetPaths,
  current: string | null,
  release: string,
  types: string[],
): Promise<LinkChange[]> {
  const out: LinkChange[] = [];
  for (const type of types) {
    const exists = await lstat(resolve(t.root, type)).then(
      () => true,
      () => false,
    );
    if (!exists) out.push({ path: type, from: null, to: `current/.links/${type}` });
  }
  if (current !== release)
    out.push({ path: 'current', from: current ? `releases/${current}` : null, to: `releases/${release}` });
  if (current) {
    const rec = await readTargetRelease(t, current).catch(() => undefined);
    for (const c of rec?.components ?? [])
      if (!types.includes(c.type)) out.push({ path: c.type, from: `current/.links/${c.type}`, to: null });
  }
  return out;
}

export async function deploy(o: DeployOptions): Promise<DeployResult> {
  const t0 = performance.now();
  const project = await tryOpenProject(o);
  for (const w of project?.warnings ?? []) o.onWarning?.(w);
  const root = resolveTarget(o.target, o.cwd, project);
  const t = targetPaths(root);
  // Trust (src/trust/source.ts): the release's signature is checked, and encrypted archives are
  // decrypted, around whichever source was chosen; refusals happen while planning, before the lock.
  const inner = makeSource(o, project);
  const source = await createTrustedSource(inner, {
    ...o.trust,
    cwd: o.cwd,
    config: project?.config.trust,
    configDir: project?.root,
    tmpDir: t.staging,
    onLog: o.onLog,
  });
  const log = o.onLog;
  const keep = o.keep ?? project?.config.defaults?.keep ?? 5;

  // Bytes per archive (sources that download): the plan of a dry run, else what openArchive fetched.
  const plans = new Map<string, ArchiveTransfer>();
  const downloads = !!inner.transferOf;
  const transferOf = (c: PlannedComponent): ComponentTransfer | null => {
    if (!downloads) return null;
    const none = { bytesDownloaded: 0, bytesToDownload: 0, bytesFromCache: 0, bytesFromTarget: 0 };
    if (c.action === 'reuse') return { ...none, bytesFromTarget: c.archiveBytes, servedBy: ['target'] };
    const a =
      plans.get(`${c.type}:${c.version}`) ??
      inner.transferOf?.({ manifest: c.manifest, text: c.manifestText });
    // File-level reuse: the frames not read are archive bytes the target provided.
    const read = framesBytes(c);
    const fromTarget = read === undefined ? 0 : Math.max(0, c.archiveBytes - read);
    const target = fromTarget > 0 ? ['target'] : [];
    if (!a) return { ...none, bytesFromTarget: fromTarget, servedBy: target };
    return {
      bytesDownloaded: a.bytesDownloaded,
      bytesToDownload: a.bytesToDownload,
      bytesFromCache: a.bytesFromCache,
      bytesFromTarget: fromTarget,
      servedBy: [...a.servedBy, ...target],
    };
  };
  const totalTransfer = (cs: PlannedComponent[]): DeployTransfer | null => {
    if (!downloads) return null;
    const t: DeployTransfer = {
      bytesDownloaded: 0,
      bytesToDownload: 0,
      bytesFromCache: 0,
      bytesFromTarget: 0,
      servedBy: {},
    };
    for (const c of cs) {
      const x = transferOf(c);
      if (!x) continue;
      t.bytesDownloaded += x.bytesDownloaded;
      t.bytesToDownload += x.bytesToDownload;
      t.bytesFromCache += x.bytesFromCache;
      t.bytesFromTarget += x.bytesFromTarget;
      t.servedBy[`${c.type}:${c.version}`] = x.servedBy;
    }
    return t;
  };

  const result = (w: Wanted, current: string | null, extra: Partial<DeployResult>): DeployResult => ({
    status: 'planned',
    dryRun: !!o.dryRun,
    target: root,
    release: w.release,
    previous: current,
    alreadyOnTarget: false,
    source: source.description,
    components: w.components.map((c) => ({
      type: c.type,
      version: c.version,
      action: c.action,
      reuseFrom: c.reuseFrom,
      unchanged: c.unchanged,
      files: c.files,
      bytes: c.bytes,
      archiveBytes: c.archiveBytes,
      archiveSha256: c.archiveSha256,
      filesLinked: c.action === 'reuse' ? c.files : (c.filesLinked ?? 0),
      bytesLinked: c.action === 'reuse' ? c.bytes : (c.bytesLinked ?? 0),
      linkedFrom: c.action === 'reuse' ? (c.reuseFrom ? [c.reuseFrom] : []) : (c.linkedFrom ?? []),
      transfer: transferOf(c),
    })),
    bytesToWrite: w.components
      .filter((c) => c.action === 'extract')
      .reduce((s, c) => s + c.bytes - (c.bytesLinked ?? 0), 0),
    transfer: totalTransfer(w.components),
    links: [],
    removed: [],
    cleaned: [],
    hooks: [],
    healthCheck: null,
    seconds: (performance.now() - t0) / 1000,
    ...extra,
  });

  if (o.dryRun) {
    // Reads only: no lock, no cleanup, nothing created.
    const state = await readState(t.state);
    const current = (await readCurrent(t)) ?? null;
    const w = await wanted(o, source, t, current);
    await decide(t, state, current, w);
    const existing = await readTargetRelease(t, w.release);
    if (existing && sameComponents(existing.components, stateComponents(w.components))) {
      for (const c of w.components) {
        c.action = 'reuse';
        c.reuseFrom = w.release;
      }
    }
    // The archives must be there (size only: a dry run does not read them). Sources that download
    // plan from their manifests and cache index instead: nothing fetched, nothing written.
    for (const c of w.components) {
      if (c.action !== 'extract') continue;
      const loaded = c.loaded ?? (await source.getComponent({ type: c.type, version: c.version }));
      const plan = await inner.planArchive?.(loaded, c.linked ? { frames: c.frames ?? [] } : undefined);
      if (plan) {
        plans.set(`${c.type}:${c.version}`, plan);
        continue;
      }
      const a = await source.openArchive(loaded, c.ref, c.sourceRelease);
      try {
        const size = await a.size();
        if (size !== c.archiveBytes) {
          throw new DeployToolError(
            'ERR_ARCHIVE_CORRUPT',
            `${a.location}: archive has ${size} bytes, the manifest says ${c.archiveBytes}`,
            {
              hint: 'Transfer or publish it again.',
            },
          );
        }
      } finally {
        await a.close();
      }
    }
    const links = await linkChanges(
      t,
      current,
      w.release,
      w.components.map((c) => c.type),
    );
    return result(w, current, { alreadyOnTarget: !!existing, links });
  }

  // Resolve what to deploy before taking the lock (reads the source only).
  const preCurrent = (await readCurrent(t).catch(() => null)) ?? null;
  const selectiveFromCurrent = !o.release && (o.components?.length ?? 0) > 0;
  let w = selectiveFromCurrent ? undefined : await wanted(o, source, t, preCurrent);

  const s = await openSession({
    root,
    command: o.command ?? 'deploy',
    wait: o.wait,
    onWarning: o.onWarning,
    onLog: log,
  });
  const { state } = s;
  let entry: ReturnType<typeof startHistory> | undefined;
  let stagedName: string | undefined;
  try {
    const current = state.current;
    // A selective deploy builds on the current release: read it under the lock.
    w ??= await wanted(o, source, t, current);
    await decide(t, state, current, w);
    const links = await linkChanges(
      t,
      current,
      w.release,
      w.components.map((c) => c.type),
    );
    const comps = stateComponents(w.components);
    const existing = await readTargetRelease(t, w.release);
    if (existing && !sameComponents(existing.components, comps)) {
      throw new DeployToolError(
        'ERR_RELEASE_EXISTS',
        `Release ${w.release} is already on ${root} with different components`,
        {
          hint: 'Published releases are immutable: publish the change under a new release version.',
          details: { onTarget: existing.components.map((c) => `${c.type}:${c.version}`) },
        },
      );
    }
    if (existing && current === w.release && state.releases[w.release]?.status === 'success') {
      log?.(`release ${w.release} is already current on ${root}`);
      return result(w, current, { status: 'unchanged', alreadyOnTarget: true, cleaned: s.cleaned });
    }
    entry = startHistory(state, 'deploy', w.release, comps);
    if (!existing) {
      const { release, base } = w;
      const pool = deployPool(w.components);
      let staging: string;
      try {
        staging = await stageRelease({
          t,
          release: w.release,
          components: w.components,
          source,
          pool,
          onLog: log,
          onWarning: o.onWarning,
          onProgress: o.onProgress,
          record: {
            createdAt: new Date().toISOString(),
            source: source.description,
            sourceRelease: w.sourceRelease,
            base: w.base,
          },
          // Recorded as staged while the release folder's last fsyncs complete (before its rename).
          whileSyncing: async () => {
            state.releases[release] = {
              status: 'staged',
              createdAt: new Date().toISOString(),
              activatedAt: null,
              base,
              components: comps,
              error: null,
            };
            stagedName = release;
            await s.save();
          },
        });
      } finally {
        await pool.close();
      }
      await testPause('staged', log); // test-only (crash test), see session.ts
      try {
        await rename(staging, releaseDir(t, w.release));
      } catch (err) {
        throw fsError(err, releaseDir(t, w.release), 'create');
      }
      await fsyncDir(t.releases);
      log?.(`release folder ready: ${releaseDir(t, w.release)}`);
    } else {
      log?.(`release ${w.release} is already on the target: switching to it`);
      state.releases[w.release] ??= {
        status: 'staged',
        createdAt: existing.createdAt,
        activatedAt: null,
        base: existing.base,
        components: comps,
        error: null,
      };
      await s.save();
    }
    const act = await activate(s, w.release, entry, {
      config: project?.config,
      healthCheck: o.healthCheck,
      onHookOutput: o.onHookOutput,
      onLog: log,
    });
    const removed = await applyRetention(t, state, keep, () => s.save());
    if (removed.length) log?.(`removed old releases: ${removed.join(', ')} (--keep ${keep})`);
    return result(w, current, {
      status: 'deployed',
      alreadyOnTarget: !!existing,
      links,
      removed,
      cleaned: s.cleaned,
      hooks: act.hooks,
      healthCheck: act.healthCheck,
      seconds: (performance.now() - t0) / 1000,
    });
  } catch (err) {
    if (entry && entry.status === 'in-progress') {
      finishHistory(entry, 'failed', err instanceof Error ? err.message : String(err));
      const rec = stagedName ? state.releases[stagedName] : undefined;
      if (rec && rec.status === 'staged') {
        rec.status = 'failed';
        rec.error = err instanceof Error ? err.message : String(err);
      }
      await s.save().catch(() => undefined);
    }
    throw err;
  } finally {
    await s.close();
  }
}
