#!/usr/bin/env node
/**
 * The `deploy-tool` executable: runs the CLI on this process's arguments. Built into
 * dist/bin/deploy-tool.js, where it loads the CommonJS bundle next to it with its code cache
 * (launch.ts); elsewhere (dist/cli/bin.js, or when the bundle is missing) the ES modules.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCli } from './launch.js';

// Threads for libuv's pool (file I/O, hashing of files): direct writes of extracted files block a
// thread each while the disk writes, and the reads of the archive must not wait behind them. Read
// when the pool starts, at the first asynchronous file operation, which comes after this line.
process.env['UV_THREADPOOL_SIZE'] ??= '8';

const here = dirname(fileURLToPath(import.meta.url));
const bundle = join(here, 'cli.cjs');
const runCli = existsSync(bundle)
  ? loadCli(bundle, join(here, 'cli.cache')).runCli
  : (await import('./main.js')).runCli;
await runCli(process.argv);
