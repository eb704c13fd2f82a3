import type { Command } from 'commander';
import { relative } from 'node:path';
import { publish, type PublishResult } from '../../ops/publish.js';
import { action, collect } from '../context.js';
import { formatBytes, type Ui } from '../ui.js';
import type { StorePublishInfo } from '../../store/publish.js';

interface PublishFlags {
  component?: string[];
  releaseVersion?: string;
  method?: string;
  notes?: string;
  sign?: string;
  store?: string;
  bucket?: string;
  endpoint?: string;
  region?: string;
  prefix?: string;
  pointer?: string | false;
  registry?: string;
  namespace?: string;
}

export function registerPublish(program: Command): void {
  program
    .command('publish')
    .description('Publish components (and a release: a set of component versions) for deployment')
    .option('--component <type:version>', 'component to publish (repeatable)', collect)
    .option('--release-version <version>', 'release version to create (for example 2024.01.20)')
    .option(
      '--method <method>',
      'filesystem (default), s3 or bos (uploads to a bucket), registry (uploads to deploy-tool serve)',
      'filesystem',
    )
    .option('--store <name>', 'a store from "stores:" in .deploy-tool.yaml (bucket, endpoint, mirrors)')
    .option('--bucket <bucket>', 's3/bos: bucket name')
    .option('--endpoint <url>', 's3/bos: endpoint URL (default: AWS, or https://s3.REGION.bcebos.com)')
    .option('--region <region>', 's3/bos: region (bos default: bj)')
    .option('--prefix <prefix>', 's3/bos: key prefix inside the bucket')
    .option('--registry <url>', 'registry: server URL (default: DEPLOY_TOOL_REGISTRY, else the last login)')
    .option('--namespace <ns>', "registry: namespace to publish into (default: the project's name)")
    .option(
      '--pointer <name>',
      's3/bos: pointer moved to the new release (default: latest); registry: none unless given',
    )
    .option('--no-pointer', 's3/bos: move no pointer')
    .option('--notes <text>', 'release notes stored in the release manifest')
    .option('--sign <key>', 'sign the release and component manifests with this private key (keys generate)')
    .action(
      action<PublishFlags>(async (opts, ui, common) => {
        const r = await publish({
          ...common,
          components: opts.component ?? [],
          releaseVersion: opts.releaseVersion,
          method: opts.method,
          notes: opts.notes,
          sign: opts.sign,
          store: opts.store,
          bucket: opts.bucket,
          endpoint: opts.endpoint,
          region: opts.region,
          prefix: opts.prefix,
          pointer: opts.pointer,
          registry: opts.registry,
          namespace: opts.namespace,
        });
        ui.json({ ok: true, ...r });
        for (const c of r.routed ?? [])
          ui.success(
            `${c.type}:${c.version} is in store ${c.store} (${c.location}): ${formatBytes(c.bytesUploaded)} sent, ${formatBytes(c.bytesReused)} already there`,
          );
        if (r.store) {
          renderStorePublish(ui, r.status, r.release, r.store, r.gitReleaseFile, r.signed);
          return;
        }
        const rel = (p: string): string => relative(process.cwd(), p) || '.';
        const dir = `${rel(r.publishedDir)}/`;
        if (r.release) {
          ui.success(
            r.status === 'unchanged'
              ? `Release ${r.release} is already published (identical); nothing changed`
              : `Release created: ${r.release}`,
          );
        } else {
          ui.success(
            `Published ${r.components.map((c) => `${c.type}:${c.version}`).join(', ')} (no release)`,
          );
        }
        ui.success(
          `Published to: ${dir} (${formatBytes(r.totalBytes)}; ${r.components.filter((c) => c.placedBy === 'link').length} hard-linked)`,
        );
        if (r.signed)
          ui.success(`Signed with key ${r.signed.keyId} (${r.signed.files.length} .minisig files)`);
        ui.info('');
        ui.info('Directory structure:');
        ui.info(dir);
        for (const c of r.components) ui.info(`  ${c.type}/${c.version}/${c.archive.split('/').pop() ?? ''}`);
        if (!r.release) return;
        const R = r.release;
        ui.info('');
        ui.info('Next steps for filesystem publishing:');
        ui.info('1. Add release manifest to Git:');
        ui.info(`   git add ${rel(r.gitReleaseFile ?? '')}`);
        ui.info(`   git commit -m "Release version ${R}"`);
        ui.info('   git push');
        ui.info('');
        ui.info('2. Transfer the published files to your deployment server:');
        ui.info('   # Option A: Using rsync (recommended for large files)');
        ui.info(`   rsync -avz ${dir} user@server:/opt/deployments/releases/${R}/`);
        ui.info('   # Option B: Using scp');
        ui.info(`   scp -r ${dir} user@server:/opt/deployments/releases/`);
        ui.info('   # Option C: Using shared storage');
        ui.info(`   cp -r ${dir} /mnt/shared/deployments/releases/`);
        ui.info('');
        ui.info('3. On the deployment server, ensure the files are in:');
        ui.info(`   /opt/deployments/releases/${R}/`);
        ui.info(
          `   then: deploy-tool deploy --release ${R} --target /opt/ml-apps/my-project --releases-dir /opt/deployments/releases`,
        );
      }),
    );
}

function renderStorePublish(
  ui: Ui,
  status: 'published' | 'unchanged',
  release: string | undefined,
  s: StorePublishInfo,
  gitReleaseFile: string | undefined,
  signed: PublishResult['signed'],
): void {
  if (release) {
    ui.success(
      status === 'unchanged'
        ? `Release ${release} is already published (identical); nothing changed`
        : `Release created: ${release}`,
    );
  } else {
    ui.success(`Published ${s.components.map((c) => `${c.type}:${c.version}`).join(', ')} (no release)`);
  }
  ui.success(
    `Uploaded to [${s.type}] ${s.location}: ${formatBytes(s.bytesUploaded)} sent, ${formatBytes(s.bytesReused)} already there`,
  );
  for (const c of s.components)
    ui.info(
      `  ${`${c.type}:${c.version}`.padEnd(28)} ${c.chunksUploaded ? `${c.chunksUploaded}/${c.chunks} chunks uploaded (${formatBytes(c.bytesUploaded)})` : 'already in the bucket'}`,
    );
  if (s.releaseKey) ui.info(`  release manifest: ${s.releaseKey}`);
  if (s.pointer)
    ui.info(
      `  pointer ${s.pointer.name} -> ${s.pointer.release}${s.pointer.previous ? ` (was ${s.pointer.previous})` : ''}`,
    );
  if (signed) ui.success(`Signed with key ${signed.keyId} (${signed.files.length} .minisig files)`);
  if (!release) return;
  ui.info('');
  ui.info('Next steps:');
  if (gitReleaseFile)
    ui.info(
      `  git add ${relative(process.cwd(), gitReleaseFile)} && git commit -m "Release version ${release}"`,
    );
  const flags =
    s.name === 's3' || s.name === 'bos'
      ? `--method ${s.type} --bucket ${s.location.split(' bucket ')[1]?.split(' ')[0] ?? 'BUCKET'}`
      : s.name === 'registry' && s.type === 'registry'
        ? `--method registry --registry ${s.location.replace(' namespace ', ' --namespace ')}`
        : `--store ${s.name}`;
  ui.info(`  deploy-tool deploy --release ${release} --target /opt/ml-apps/my-project ${flags}`);
}
