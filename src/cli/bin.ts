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

const here = dirname(fileURLToPath(import.meta.url));
const bundle = join(here, 'cli.cjs');
const runCli = existsSync(bundle)
  ? loadCli(bundle, join(here, 'cli.cache')).runCli
  : (await import('./main.js')).runCli;
await runCli(process.argv);
