#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { toolVersion } from '../core/version.js';
import { registerInit } from './commands/init.js';
import { registerLists } from './commands/list.js';
import { registerPack } from './commands/pack.js';
import { registerPublish } from './commands/publish.js';
import { registerKeys } from './commands/keys.js';
import { registerSign } from './commands/sign.js';
import { registerDeploy } from './commands/deploy.js';
import { registerVersion } from './commands/version.js';
import { registerVerify } from './commands/verify.js';
import { registerStatus } from './commands/status.js';
import { registerServe } from './commands/serve.js';
import { registerToken } from './commands/token.js';
import { registerAudit } from './commands/audit.js';
import { registerStats } from './commands/stats.js';
import { registerLogin } from './commands/login.js';
import { registerSearch } from './commands/search.js';
import { registerInfo } from './commands/info.js';
import { registerCache } from './commands/cache.js';
import { registerMirrors } from './commands/mirrors.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('deploy-tool')
    .description('Pack, publish and deploy ML model artifacts as versioned, verified components')
    .version(toolVersion(), '-V, --version', 'print the version')
    // Program options are read before the subcommand only, so that `pack --version 1.0.0` is the
    // component version; the global flags are added to every subcommand below instead.
    .enablePositionalOptions()
    // Usage errors look like every other error: "error [ERR_USAGE]: ..." and a hint (exit code 2).
    .configureOutput({ outputError: writeUsageError })
    .showHelpAfterError('hint: run the command with --help for its usage')
    .exitOverride();
  addGlobalOptions(program);
  for (const register of [
    registerInit,
    registerPack,
    registerPublish,
    registerLists,
    registerKeys,
    registerSign,
    registerDeploy,
    registerVersion,
    registerVerify,
    registerStatus,
    registerServe,
    registerToken,
    registerAudit,
    registerStats,
    registerLogin,
    registerSearch,
    registerInfo,
    registerCache,
    registerMirrors,
  ])
    register(program);
  const visit = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      sub.exitOverride();
      if (sub.commands.length === 0) addGlobalOptions(sub);
      visit(sub);
    }
  };
  visit(program);
  return program;
}

function writeUsageError(str: string, write: (s: string) => void): void {
  const message = str.trim().replace(/^error:\s*/, '');
  if (process.argv.includes('--json')) {
    const hint = 'Run the command with --help for its usage.';
    process.stdout.write(
      `${JSON.stringify({ ok: false, error: { code: 'ERR_USAGE', message, hint, details: null } }, null, 2)}\n`,
    );
    return;
  }
  write(`error [ERR_USAGE]: ${message}\n`);
}

function addGlobalOptions(cmd: Command): void {
  cmd
    .option('--project-root <dir>', 'project root (default: the nearest folder with .deploy-tool.yaml)')
    .option('-v, --verbose', 'show each step with timings, and stack traces on errors')
    .option('-q, --quiet', 'print only errors')
    .option('--json', 'print one JSON result on stdout')
    .option('--no-color', 'no colors (also with NO_COLOR)');
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (
        err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.version' ||
        err.code === 'commander.help'
      ) {
        process.exitCode = 0;
      } else {
        process.exitCode = 2;
      }
      return;
    }
    throw err;
  }
}

await main();
