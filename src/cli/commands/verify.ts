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
