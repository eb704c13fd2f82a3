import type { Command } from 'commander';
import { DeployToolError } from '../../core/errors.js';
import { verify } from '../../ops/verify.js';
import { verifyReleaseSignature } from '../../trust/sign.js';
import { action, collect } from '../context.js';
import { formatBytes } from '../ui.js';

interface VerifyFlags {
  release?: string;
  target?: string;
  signature?: boolean;
  releasesDir?: string;
  trustedKey?: string[];
  method?: string;
  store?: string;
  bucket?: string;
  endpoint?: string;
  region?: string;
  prefix?: string;
  cacheDir?: string;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description(
      'Re-hash the deployed files of a release (default: the current one); exit 1 on any difference',
    )
    .option('--release <release>', 'release to verify (default: the current one)')
    .option('--target <dir>', 'target folder, or a name from deploy.targets in .deploy-tool.yaml')
    .option(
      '--signature',
      'check a published release instead: its signature by a trusted key and every sha256',
    )
    .option(
      '--releases-dir <dir>',
      'with --signature: folder holding release folders (default: deployment/releases)',
    )
    .option(
      '--trusted-key <file>',
      'with --signature: public key to trust, besides trust.keys (repeatable)',
      collect,
    )
    .option('--method <method>', 'with --signature: where the release is published: filesystem, s3 or bos')
    .option('--store <name>', 'with --signature: a store from "stores:" in .deploy-tool.yaml')
    .option('--bucket <bucket>', 's3/bos: bucket name')
    .option('--endpoint <url>', 's3/bos: endpoint URL (default: AWS, or https://s3.REGION.bcebos.com)')
    .option('--region <region>', 's3/bos: region (bos default: bj)')
    .option('--prefix <prefix>', 's3/bos: key prefix inside the bucket')
    .option('--cache-dir <dir>', 's3/bos: download cache (default: $XDG_CACHE_HOME/deploy-tool)')
    .action(
      action<VerifyFlags>(async (opts, ui, common) => {
        if (opts.signature) {
          if (!opts.release)
            throw new DeployToolError('ERR_USAGE', 'verify --signature needs --release R', {
              hint: 'Example: deploy-tool verify --signature --release 2024.01.20 --trusted-key deploy-tool.pub',
            });
          const s = await verifyReleaseSignature({
            ...common,
            release: opts.release,
            releasesDir: opts.releasesDir,
            trustedKeys: opts.trustedKey,
            remote: {
              method: opts.method,
              store: opts.store,
              bucket: opts.bucket,
              endpoint: opts.endpoint,
              region: opts.region,
              prefix: opts.prefix,
              cacheDir: opts.cacheDir,
            },
          });
          ui.json({ ok: true, ...s });
          ui.success(`Release ${s.release} (${s.releaseDir}): ${s.summary}`);
          if (s.trustedComment) ui.info(`  trusted comment: ${s.trustedComment}`);
          for (const c of s.components)
            ui.success(
              `${c.type}:${c.version}: manifest and archive match the signed release${c.manifestSigned ? ' (manifest signed too)' : ''}`,
            );
          return;
        }
        if (
          opts.store !== undefined ||
          opts.bucket !== undefined ||
          (opts.method ?? 'filesystem') !== 'filesystem'
        )
          throw new DeployToolError(
            'ERR_USAGE',
            'A store (--store, --method, --bucket) needs verify --signature',
            {
              hint: 'verify alone re-hashes a deployed target; add --signature to check a release published in a store.',
            },
          );
        const r = await verify({ ...common, release: opts.release, target: opts.target });
        ui.stopProgress();
        if (!r.ok) {
          for (const p of r.problems)
            ui.info(`${p.problem.toUpperCase().padEnd(9)} ${p.path}  (${p.component}: ${p.detail})`);
          throw new DeployToolError(
            'ERR_VERIFY_FAILED',
            `Release ${r.release} on ${r.target}: ${r.problems.length} problem(s): ${[
              'modified',
              'missing',
              'extra',
            ]
              .map((k) => `${r.problems.filter((p) => p.problem === k).length} ${k}`)
              .join(', ')}`,
            {
              hint: `Find out who changed the files. To get intact files, switch to another kept release (deploy-tool version switch R --target ${r.target}) or deploy a newly published release; a release already on the target is not extracted again.`,
              details: { release: r.release, problems: r.problems },
            },
          );
        }
        ui.json(r);
        ui.success(
          `Release ${r.release}${r.current ? ' (current)' : ''} on ${r.target}: ${r.files} files, ${formatBytes(r.bytes)} verified, no differences (${r.seconds.toFixed(2)} s)`,
        );
      }),
    );
}
