import type { Command } from 'commander';
import { relative } from 'node:path';
import { signProjectFiles } from '../../trust/sign.js';
import { action } from '../context.js';

interface SignFlags {
  release?: string;
  component?: string;
  key: string;
  force?: boolean;
  method?: string;
  store?: string;
  bucket?: string;
  endpoint?: string;
  region?: string;
  prefix?: string;
}

export function registerSign(program: Command): void {
  program
    .command('sign')
    .description(
      'Sign a published release (release.json, which covers every byte by sha256) or a component manifest',
    )
    .option('--release <version>', 'release in deployment/releases/ to sign')
    .option('--component <type:version>', 'component manifest in deployment/manifests/ to sign on its own')
    .requiredOption('--key <file>', 'private key (made by "deploy-tool keys generate")')
    .option('--force', 'replace a signature made by another key')
    .option('--method <method>', 'where the release is published: filesystem (default), s3 or bos')
    .option('--store <name>', 'sign in a store from "stores:" in .deploy-tool.yaml instead of the project')
    .option('--bucket <bucket>', 's3/bos: bucket name')
    .option('--endpoint <url>', 's3/bos: endpoint URL (default: AWS, or https://s3.REGION.bcebos.com)')
    .option('--region <region>', 's3/bos: region (bos default: bj)')
    .option('--prefix <prefix>', 's3/bos: key prefix inside the bucket')
    .action(
      action<SignFlags>(async (opts, ui, common) => {
        const r = await signProjectFiles({
          ...common,
          key: opts.key,
          release: opts.release,
          component: opts.component,
          force: opts.force,
          remote: {
            method: opts.method,
            store: opts.store,
            bucket: opts.bucket,
            endpoint: opts.endpoint,
            region: opts.region,
            prefix: opts.prefix,
          },
        });
        ui.json({ ok: true, ...r });
        if (r.store) {
          ui.success(`Signed with key ${r.keyId}: [${r.store.driver}] ${r.store.location} ${r.store.key}`);
          return;
        }
        const rel = (p: string): string => relative(common.cwd, p) || p;
        for (const f of r.signatureFiles) ui.success(`Signed with key ${r.keyId}: ${rel(f)}`);
        ui.info('');
        ui.info('Transfer the .minisig files with the release (they live beside the manifests).');
        if (opts.release)
          ui.info(
            `   git add ${r.signatureFiles
              .map(rel)
              .filter((f) => f.endsWith('.release.json.minisig'))
              .join(' ')}`,
          );
      }),
    );
}
