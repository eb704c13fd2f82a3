import type { Command } from 'commander';
import { DeployToolError } from '../../core/errors.js';
import { positiveInt } from '../../core/validate.js';
import { clientFromFlags, table, type RegistryFlags } from '../../registry/cli-helpers.js';
import { action, collect } from '../context.js';

interface CreateFlags extends RegistryFlags {
  name?: string;
  role?: string;
  namespace?: string[];
  expiresInDays?: string;
}

export function registerToken(program: Command): void {
  const token = program.command('token').description('Manage registry API tokens (admin)');
  token
    .command('create')
    .description('Create a token; it is printed once and stored only as a hash')
    .requiredOption('--name <name>', 'who or what uses the token')
    .option('--role <role>', 'reader, publisher or admin', 'reader')
    .option('--namespace <ns>', 'namespace the token may act on (repeatable; default: all)', collect)
    .option('--expires-in-days <days>', 'expiry (default: never)')
    .option('--registry <url>', 'registry URL (default: the last one logged in to)')
    .action(
      action<CreateFlags>(async (opts, ui) => {
        const role = opts.role ?? 'reader';
        if (!['reader', 'publisher', 'admin'].includes(role))
          throw new DeployToolError('ERR_USAGE', `--role must be reader, publisher or admin, got "${role}"`);
        const client = await clientFromFlags(opts);
        try {
          const t = await client.createToken({
            name: opts.name ?? '',
            role,
            namespaces: opts.namespace?.length ? opts.namespace : ['*'],
            ...(opts.expiresInDays
              ? { expiresInDays: positiveInt(opts.expiresInDays, '--expires-in-days', 1, 3650) }
              : {}),
          });
          if (ui.flags.json) {
            // The one place a token is printed: bypass redaction on purpose, once.
            process.stdout.write(`${JSON.stringify({ ok: true, ...t }, null, 2)}\n`);
            return;
          }
          ui.success(
            `Token "${t.name}" created (id ${t.id}, ${t.role} on ${t.namespaces.join(', ')}${t.expiresAt ? `, expires ${t.expiresAt}` : ''})`,
          );
          ui.info('Copy it now; it is not shown again:');
          if (!ui.flags.quiet) process.stdout.write(`${t.token}\n`);
        } finally {
          client.close();
        }
      }),
    );
  token
    .command('list')
    .description('List tokens (never their values)')
    .option('--registry <url>', 'registry URL')
    .action(
      action<RegistryFlags>(async (opts, ui) => {
        const client = await clientFromFlags(opts);
        try {
          const tokens = await client.listTokens();
          ui.json({ ok: true, tokens });
          ui.info(
            table([
              ['ID', 'NAME', 'ROLE', 'NAMESPACES', 'CREATED', 'EXPIRES', 'LAST USED', 'STATUS'],
              ...tokens.map((t) => [
                t.id,
                t.name,
                t.role,
                t.namespaces.join(','),
                t.createdAt.slice(0, 10),
                t.expiresAt?.slice(0, 10) ?? 'never',
                t.lastUsedAt?.slice(0, 16).replace('T', ' ') ?? '-',
                t.status,
              ]),
            ]),
          );
        } finally {
          client.close();
        }
      }),
    );
  token
    .command('revoke')
    .description('Revoke a token by id (or by name when unique)')
    .argument('<id-or-name>', 'token id (16 hex digits) or name')
    .option('--registry <url>', 'registry URL')
    .action(
      action<RegistryFlags>(async (opts, ui, _common, args) => {
        const client = await clientFromFlags(opts);
        try {
          let id = args[0] ?? '';
          if (!/^[0-9a-f]{16}$/.test(id)) {
            const matches = (await client.listTokens()).filter((t) => t.name === id && t.status === 'active');
            if (matches.length !== 1)
              throw new DeployToolError('ERR_USAGE', `${matches.length} active tokens are named "${id}"`, {
                hint: 'Revoke by id (see deploy-tool token list).',
              });
            id = matches[0]?.id ?? '';
          }
          await client.revokeToken(id);
          ui.json({ ok: true, revoked: id });
          ui.success(`Token ${id} revoked`);
        } finally {
          client.close();
        }
      }),
    );
}
