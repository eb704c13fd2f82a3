import type { Command } from 'commander';
import { positiveInt } from '../../core/validate.js';
import { startServer } from '../../registry/server/serve.js';
import { action, collect } from '../context.js';

interface ServeFlags {
  data?: string;
  store?: string;
  db?: string;
  host: string;
  port: string;
  allowAnonymousRead?: boolean;
  publicMetrics?: boolean;
  trustProxy?: boolean;
  publicUrl?: string;
  bootstrapTokenFile?: string;
  s3Endpoint?: string;
  s3Region?: string;
  accessLog?: boolean;
  trustedKey?: string[];
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Run the registry server (API, web UI, metrics)')
    .option(
      '--data <dir>',
      'data folder: SQLite metadata, filesystem store, uploads in flight',
      'registry-data',
    )
    .option('--store <dir|s3://bucket/prefix>', 'content store (default: DATA/store)')
    .option('--db <sqlite:PATH|postgres://...>', 'metadata database (default: sqlite:DATA/registry.db)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port)', '8080')
    .option('--allow-anonymous-read', 'let requests without a token download, search and browse')
    .option('--public-metrics', 'serve /metrics without a token')
    .option('--trust-proxy', 'take client addresses from X-Forwarded-For (only behind your own proxy)')
    .option('--public-url <url>', 'URL users reach the server at (shown in deploy commands)')
    .option('--bootstrap-token-file <file>', 'first admin token, used when the server has no tokens yet')
    .option('--s3-endpoint <url>', 'S3 endpoint for an s3:// store')
    .option('--s3-region <region>', 'S3 region for an s3:// store')
    .option('--no-access-log', 'do not print one line per request')
    .option(
      '--trusted-key <file>',
      'public key (.pub or one-line key): accept only signatures by such keys, shown as verified (repeatable)',
      collect,
    )
    .action(
      action<ServeFlags>(async (opts, ui, common) => {
        const running = await startServer({
          cwd: common.cwd,
          data: opts.data,
          store: opts.store,
          db: opts.db,
          host: opts.host,
          port: positiveInt(opts.port, '--port', 0, 65535),
          allowAnonymousRead: opts.allowAnonymousRead,
          publicMetrics: opts.publicMetrics,
          trustProxy: opts.trustProxy,
          publicUrl: opts.publicUrl,
          bootstrapTokenFile: opts.bootstrapTokenFile,
          s3: { endpoint: opts.s3Endpoint, region: opts.s3Region },
          trustedKeys: opts.trustedKey,
          log:
            opts.accessLog === false || ui.flags.quiet
              ? undefined
              : (line) => process.stderr.write(`${line}\n`),
        });
        ui.json({ ok: true, url: running.url, ...running.describe, bootstrapped: running.bootstrapped });
        ui.success(`Registry listening on ${running.url}`);
        ui.info(`  store:    ${running.describe.store}`);
        ui.info(`  database: ${running.describe.db}`);
        if (running.bootstrapped) ui.info('  bootstrap admin token accepted (no other tokens existed)');
        await new Promise<void>((resolve) => {
          const stop = (): void => {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            void running.close().then(resolve, resolve);
          };
          process.on('SIGINT', stop);
          process.on('SIGTERM', stop);
        });
        ui.info('Registry stopped');
      }),
    );
}
