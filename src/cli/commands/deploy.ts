import type { Command } from 'commander';
import { positiveInt } from '../../core/validate.js';
import { deploy, type DeployResult } from '../../ops/deploy.js';
import { action, collect } from '../context.js';
import { formatBytes, type Ui } from '../ui.js';
import type { HookOutput } from '../../deploy/hooks.js';

interface DeployFlags {
  release?: string;
  target?: string;
  component?: string[];
  method?: string;
  releasesDir?: string;
  dryRun?: boolean;
  healthCheck?: string;
  keep?: string;
  wait?: boolean;
  requireSignature?: boolean;
  trustedKey?: string[];
  identity?: string[];
  passphraseEnv?: string;
  store?: string;
  bucket?: string;
  endpoint?: string;
  region?: string;
  prefix?: string;
  cacheDir?: string;
  registry?: string;
  namespace?: string;
}

export const hookPrinter =
  (ui: Ui) =>
  (h: HookOutput): void =>
    ui.info(`  [${h.hook}] ${h.line}`);

export const commandLine = (): string => ['deploy-tool', ...process.argv.slice(2)].join(' ');

export function registerDeploy(program: Command): void {
  program
    .command('deploy')
    .description(
      'Deploy a published release (or selected components) to a target folder, switching atomically',
    )
    .option('--release <release>', 'release version to deploy (e.g. 2024.01.20)')
    .option(
      '--target <dir>',
      'target folder, or a name from deploy.targets in .deploy-tool.yaml (default: deploy.target, else deployment/targets/default)',
    )
    .option(
      '--component <type:version>',
      'deploy only this component on top of the current release (or of --release); repeatable',
      collect,
    )
    .option('--method <method>', 'where releases come from: filesystem (default), s3, bos or registry')
    .option('--store <name>', 'a store from "stores:" in .deploy-tool.yaml (bucket, endpoint, mirrors)')
    .option('--bucket <bucket>', 's3/bos: bucket name')
    .option('--endpoint <url>', 's3/bos: endpoint URL (default: AWS, or https://s3.REGION.bcebos.com)')
    .option('--region <region>', 's3/bos: region (bos default: bj)')
    .option('--prefix <prefix>', 's3/bos: key prefix inside the bucket')
    .option('--registry <url>', 'registry: server URL (default: DEPLOY_TOOL_REGISTRY, else the last login)')
    .option('--namespace <ns>', "registry: namespace the release is in (default: the project's name)")
    .option('--cache-dir <dir>', 's3/bos/registry: download cache (default: $XDG_CACHE_HOME/deploy-tool)')
    .option(
      '--releases-dir <dir>',
      'folder holding published release folders (default: deployment/releases of the project)',
    )
    .option('--dry-run', 'print the plan (extract/reuse, bytes, links) and change nothing')
    .option(
      '--health-check <cmd>',
      'command run in the target after the switch; on failure switch back (overrides health_check)',
    )
    .option('--keep <n>', 'successful releases to keep on the target (default: defaults.keep, else 5)')
    .option('--wait', 'wait for another deploy on the same target to finish instead of failing')
    .option(
      '--require-signature',
      'refuse releases not signed by a trusted key (also: trust.require_signatures)',
    )
    .option('--trusted-key <file>', 'public key (.pub) to trust, besides trust.keys (repeatable)', collect)
    .option('--identity <file>', 'age identity file to decrypt encrypted components (repeatable)', collect)
    .option('--passphrase-env <var>', 'environment variable holding the passphrase of encrypted components')
    .action(
      action<DeployFlags>(async (opts, ui, common) => {
        const r = await deploy({
          ...common,
          release: opts.release,
          target: opts.target,
          components: opts.component,
          method: opts.method,
          releasesDir: opts.releasesDir,
          dryRun: opts.dryRun ?? false,
          healthCheck: opts.healthCheck,
          keep: opts.keep === undefined ? undefined : positiveInt(opts.keep, '--keep', 1, 1000),
          wait: opts.wait ?? false,
          onHookOutput: hookPrinter(ui),
          command: commandLine(),
          trust: {
            requireSignature: opts.requireSignature,
            trustedKeys: opts.trustedKey,
            identities: opts.identity,
            passphraseEnv: opts.passphraseEnv,
          },
          remote: {
            store: opts.store,
            bucket: opts.bucket,
            endpoint: opts.endpoint,
            region: opts.region,
            prefix: opts.prefix,
            cacheDir: opts.cacheDir,
            registry: opts.registry,
            namespace: opts.namespace,
          },
        });
        ui.stopProgress();
        ui.json({ ok: true, ...r });
        renderDeploy(ui, r);
      }),
    );
}

/** One line on what the archives cost: downloaded (or to download), from the cache, on the target. */
function transferLine(r: DeployResult): string | undefined {
  const t = r.transfer;
  if (!t) return undefined;
  const from = [
    ...new Set(
      Object.values(t.servedBy)
        .flat()
        .filter((s) => s !== 'cache' && s !== 'target'),
    ),
  ];
  const head = r.dryRun
    ? `to download: ${formatBytes(t.bytesToDownload)}`
    : `downloaded: ${formatBytes(t.bytesDownloaded)}${from.length ? ` (from ${from.join(', ')})` : ''}`;
  return `${head}; from the cache: ${formatBytes(t.bytesFromCache)}; already on the target: ${formatBytes(t.bytesFromTarget)}`;
}

function renderDeploy(ui: Ui, r: DeployResult): void {
  const describe = (c: DeployResult['components'][number]): string => {
    const id = `${c.type}:${c.version}`.padEnd(28);
    if (c.action === 'reuse') {
      return `${id} ${r.dryRun ? 'reuse  ' : 'reused '} ${c.reuseFrom === r.release ? '(already on the target)' : `from ${c.reuseFrom} (hard links, nothing extracted)`}`;
    }
    const t = c.transfer;
    const fetched = t
      ? r.dryRun
        ? `, ${formatBytes(t.bytesToDownload)} to download`
        : t.bytesDownloaded === 0
          ? `, from the ${t.servedBy.join(' + ') || 'cache'}`
          : `, ${formatBytes(t.bytesDownloaded)} downloaded${t.servedBy.length ? ` from ${t.servedBy.join(' + ')}` : ''}`
      : '';
    return `${id} ${r.dryRun ? 'extract' : 'extracted'} ${formatBytes(c.bytes)} in ${c.files} files (archive ${formatBytes(c.archiveBytes)}${fetched})`;
  };
  if (r.status === 'planned') {
    ui.heading(`Plan: deploy ${r.release} to ${r.target} (dry run, nothing changed)`);
    ui.info(`  source: ${r.source}`);
    for (const c of r.components) ui.info(`  ${describe(c)}${c.unchanged ? '  [unchanged]' : ''}`);
    ui.info(`  bytes to write: ${formatBytes(r.bytesToWrite)}`);
    const tl = transferLine(r);
    if (tl) ui.info(`  ${tl}`);
    ui.info('  links:');
    if (r.links.length === 0) ui.info('    (none change)');
    for (const l of r.links) ui.info(`    ${l.path}: ${l.from ?? '(none)'} -> ${l.to ?? '(removed)'}`);
    return;
  }
  if (r.status === 'unchanged') {
    ui.success(`Release ${r.release} is already current on ${r.target}; nothing changed`);
    return;
  }
  ui.success(
    `Deployed ${r.release} to ${r.target}${r.previous ? ` (was ${r.previous})` : ''} in ${r.seconds.toFixed(2)} s`,
  );
  for (const c of r.components) ui.info(`  ${describe(c)}`);
  const tl = transferLine(r);
  if (tl) ui.info(`  ${tl}`);
  for (const l of r.links) ui.info(`  link ${l.path}: ${l.from ?? '(none)'} -> ${l.to ?? '(removed)'}`);
  if (r.healthCheck) ui.success(`Health check passed (${r.healthCheck.ms} ms)`);
  if (r.removed.length) ui.info(`  removed old releases: ${r.removed.join(', ')}`);
  ui.info('');
  ui.info(`Check it: deploy-tool status --target ${r.target}`);
  ui.info(`Roll back: deploy-tool version rollback --target ${r.target}`);
}
