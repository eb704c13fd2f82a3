import type { Command } from 'commander';
import { relative } from 'node:path';
import { pack } from '../../ops/pack.js';
import { positiveInt } from '../../core/validate.js';
import { action, collect } from '../context.js';
import { formatBytes } from '../ui.js';
import { DeployToolError } from '../../core/errors.js';
import { passphraseFromEnv } from '../../trust/encrypt.js';

interface PackFlags {
  type: string;
  version: string;
  auto?: boolean;
  compression?: string;
  level?: string;
  exclude?: string[];
  include?: string[];
  force?: boolean;
  encrypt?: boolean;
  recipient?: string[];
  passphraseEnv?: string;
}

export function registerPack(program: Command): void {
  program
    .command('pack')
    .description(
      'Package a folder as a versioned component: dist/TYPE-VERSION.tar.EXT plus a checksummed manifest',
    )
    .argument('<path>', 'folder with the component files')
    .requiredOption('--type <type>', 'component type (model, config, runtime, anything)')
    .requiredOption('--version <version>', 'component version (1.0.0 or 2024.01.20)')
    .option(
      '--auto',
      'analyse PATH, choose settings without prompting, and save them to deployment/package-configs/',
    )
    .option('--compression <alg>', 'zstd (default), gzip, bzip2, xz, lz4 or none')
    .option('--level <n>', 'compression level')
    .option('--exclude <pattern>', 'glob of files to leave out (repeatable)', collect)
    .option('--include <pattern>', 'glob of files to keep (repeatable; default: everything)', collect)
    .option('--force', 'replace an existing component version with different content')
    .option('--encrypt', 'encrypt the archive with age (the manifest keeps the plaintext sha256s)')
    .option('--recipient <age1...>', 'age public key to encrypt to (repeatable; with --encrypt)', collect)
    .option(
      '--passphrase-env <var>',
      'encrypt with the passphrase in this environment variable (with --encrypt)',
    )
    .action(
      action<PackFlags>(async (opts, ui, common, args) => {
        if (!opts.encrypt && (opts.recipient || opts.passphraseEnv)) {
          throw new DeployToolError('ERR_USAGE', '--recipient and --passphrase-env need --encrypt', {
            hint: 'Add --encrypt to encrypt the archive.',
          });
        }
        const r = await pack({
          ...common,
          path: args[0] ?? '',
          type: opts.type,
          version: opts.version,
          auto: opts.auto ?? false,
          compression: opts.compression,
          level: opts.level === undefined ? undefined : positiveInt(opts.level, '--level', 0, 22),
          exclude: opts.exclude,
          include: opts.include,
          force: opts.force ?? false,
          encrypt: opts.encrypt
            ? {
                recipients: opts.recipient ?? [],
                passphrase: opts.passphraseEnv ? passphraseFromEnv(opts.passphraseEnv) : undefined,
              }
            : undefined,
        });
        ui.stopProgress();
        ui.json({ ok: true, ...r });
        const root = process.cwd();
        const rel = (p: string): string => relative(root, p) || '.';
        ui.success(`Scanning directory: ${rel(r.source)}`);
        ui.success(
          `Found ${r.files} files (${formatBytes(r.totalSize)} total)${r.excluded ? `, ${r.excluded} excluded` : ''}`,
        );
        if (r.status === 'unchanged') {
          ui.success(`${r.type}:${r.version} is already packed with identical content; nothing changed`);
          ui.info(`  package:  ${rel(r.archivePath)}`);
          ui.info(`  manifest: ${rel(r.manifestPath)}`);
          return;
        }
        ui.success(
          `Creating package: ${rel(r.archivePath)} (${r.compression}${r.compression === 'none' ? '' : ` level ${r.level}`}, ${formatBytes(r.archiveSize)}, ${r.frames} frames, ${r.seconds.toFixed(2)} s)`,
        );
        if (r.encryption)
          ui.success(
            `Encrypted with age (${r.encryption.passphrase ? 'passphrase' : `recipients: ${r.encryption.recipients.join(', ')}`}); dist/ holds only the ciphertext`,
          );
        ui.success(`Generating manifest: ${rel(r.manifestPath)}`);
        if (r.packageConfigWritten && r.packageConfigPath)
          ui.success(`Saved package configuration: ${rel(r.packageConfigPath)}`);
        if (r.status === 'replaced') ui.warn(`replaced the previous ${r.type}:${r.version} (--force)`);
        if (r.git?.dirty)
          ui.warn('the git tree has uncommitted changes; the manifest records the commit as dirty');
        const manifestRel = rel(r.manifestPath);
        ui.info('');
        ui.info('Next steps:');
        ui.info('1. Track the manifest in Git:');
        ui.info(`   git add ${manifestRel}`);
        ui.info(`   git commit -m "Add ${r.type} v${r.version} manifest"`);
        ui.info('');
        ui.info(`2. The package file (${rel(r.archivePath)}) is NOT tracked by Git`);
      }),
    );
}
