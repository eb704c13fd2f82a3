import type { Command } from 'commander';
import { relative } from 'node:path';
import { generateKeys } from '../../trust/keys.js';
import { action } from '../context.js';

interface KeysGenerateFlags {
  out?: string;
  name?: string;
  force?: boolean;
}

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('Manage Ed25519 signing keys');
  keys
    .command('generate')
    .description('Create an Ed25519 key pair: NAME.key (private, mode 0600) and NAME.pub (minisign format)')
    .option('--out <dir>', 'folder for the key files (default: the current folder)')
    .option('--name <name>', 'base name of the key files', 'deploy-tool')
    .option('--force', 'replace existing key files')
    .action(
      action<KeysGenerateFlags>(async (opts, ui, common) => {
        const r = await generateKeys({ outDir: opts.out ?? common.cwd, name: opts.name, force: opts.force });
        ui.json({ ok: true, ...r });
        const rel = (p: string): string => relative(common.cwd, p) || p;
        ui.success(`Key pair created (key id ${r.keyId})`);
        ui.info(`  private key: ${rel(r.privateKeyPath)} (mode 0600: keep it secret, never commit it)`);
        ui.info(`  public key:  ${rel(r.publicKeyPath)}`);
        ui.info('');
        ui.info('Trust it on deploy machines, in .deploy-tool.yaml:');
        ui.info('  trust:');
        ui.info(`    keys: ["${r.publicKey}"]`);
        ui.info('    require_signatures: true');
        ui.info(`or: deploy-tool deploy ... --require-signature --trusted-key ${rel(r.publicKeyPath)}`);
        ui.info(`Check signatures with minisign: minisign -V -p ${rel(r.publicKeyPath)} -m release.json`);
      }),
    );
}
