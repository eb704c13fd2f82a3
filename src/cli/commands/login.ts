import type { Command } from 'commander';
import { DeployToolError } from '../../core/errors.js';
import { registerSecret } from '../../core/redact.js';
import { createRegistryClient } from '../../registry/client.js';
import { normalizeRegistryUrl, removeCredentials, saveCredentials } from '../../registry/credentials.js';
import { action } from '../context.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8').trim();
}

export function registerLogin(program: Command): void {
  program
    .command('login')
    .description(
      'Check a registry token and save it in a user-only file (~/.config/deploy-tool/credentials.json)',
    )
    .argument('<url>', 'registry URL')
    .option('--token-stdin', 'read the token from standard input (default: DEPLOY_TOOL_TOKEN, else stdin)')
    .action(
      action<{ tokenStdin?: boolean }>(async (opts, ui, _common, args) => {
        const url = normalizeRegistryUrl(args[0] ?? '');
        let token = opts.tokenStdin ? '' : (process.env.DEPLOY_TOOL_TOKEN ?? '');
        if (!token) {
          if (process.stdin.isTTY) process.stderr.write('Token: ');
          token = await readStdin();
        }
        if (!token)
          throw new DeployToolError('ERR_USAGE', 'No token given', {
            hint: 'Pipe it in: deploy-tool login URL --token-stdin < token-file (or set DEPLOY_TOOL_TOKEN)',
          });
        registerSecret(token);
        const client = createRegistryClient({ url, token });
        try {
          const me = await client.whoami();
          const path = await saveCredentials(url, token);
          ui.json({
            ok: true,
            registry: url,
            name: me.name ?? null,
            role: me.role,
            namespaces: me.namespaces,
            saved: path,
          });
          ui.success(
            `Logged in to ${url} as ${me.name ?? me.kind} (${me.role} on ${me.namespaces.join(', ')})`,
          );
          ui.info(`Token saved to ${path} (readable by you only)`);
        } finally {
          client.close();
        }
      }),
    );
  program
    .command('logout')
    .description('Forget the saved token of a registry')
    .argument('<url>', 'registry URL')
    .action(
      action(async (_opts, ui, _common, args) => {
        const url = normalizeRegistryUrl(args[0] ?? '');
        const removed = await removeCredentials(url);
        ui.json({ ok: true, registry: url, removed });
        ui.success(removed ? `Logged out of ${url}` : `No saved token for ${url}`);
      }),
    );
}
