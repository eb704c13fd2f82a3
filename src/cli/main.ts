import { Command, CommanderError } from 'commander';
import { toolVersion } from '../core/version.js';
type Register = (program: Command) => void;

/**
 * The commands, in the order --help lists them, each loaded only when it runs: a command's
 * module pulls in its operations (codecs, the S3 SDK, SQLite...), and loading all of them cost
 * about 0.4 s of CPU on every run. `names` are the top-level commands a module registers.
 */
const COMMANDS: { names: string[]; load: () => Promise<Register> }[] = [
  { names: ['init'], load: async () => (await import('./commands/init.js')).registerInit },
  { names: ['pack'], load: async () => (await import('./commands/pack.js')).registerPack },
  { names: ['publish'], load: async () => (await import('./commands/publish.js')).registerPublish },
  { names: ['component', 'release'], load: async () => (await import('./commands/list.js')).registerLists },
  { names: ['keys'], load: async () => (await import('./commands/keys.js')).registerKeys },
  { names: ['sign'], load: async () => (await import('./commands/sign.js')).registerSign },
  { names: ['deploy'], load: async () => (await import('./commands/deploy.js')).registerDeploy },
  { names: ['version'], load: async () => (await import('./commands/version.js')).registerVersion },
  { names: ['verify'], load: async () => (await import('./commands/verify.js')).registerVerify },
  { names: ['status'], load: async () => (await import('./commands/status.js')).registerStatus },
  { names: ['serve'], load: async () => (await import('./commands/serve.js')).registerServe },
  { names: ['token'], load: async () => (await import('./commands/token.js')).registerToken },
  { names: ['audit'], load: async () => (await import('./commands/audit.js')).registerAudit },
  { names: ['stats'], load: async () => (await import('./commands/stats.js')).registerStats },
  { names: ['login', 'logout'], load: async () => (await import('./commands/login.js')).registerLogin },
  { names: ['search'], load: async () => (await import('./commands/search.js')).registerSearch },
  { names: ['info'], load: async () => (await import('./commands/info.js')).registerInfo },
  { names: ['cache'], load: async () => (await import('./commands/cache.js')).registerCache },
  { names: ['mirrors'], load: async () => (await import('./commands/mirrors.js')).registerMirrors },
];

/** Program options that take a value (so the word after them is not the command). */
const VALUE_OPTIONS = new Set(['--project-root']);

/** The command word of argv (after node and the script), or undefined (help, version, none). */
export function commandWord(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if (a === '--') return args[i + 1];
    if (a.startsWith('-')) {
      if (VALUE_OPTIONS.has(a)) i++;
      continue;
    }
    return a;
  }
  return undefined;
}

/**
 * The program with the command that `args` names (all of them when it names none we know: --help,
 * a typo, which commander then reports with the list of commands).
 */
export async function buildProgram(args: string[] = process.argv.slice(2)): Promise<Command> {
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
  const word = commandWord(args);
  const only = COMMANDS.find((c) => word !== undefined && c.names.includes(word));
  // `deploy-tool --version` needs no command at all.
  const none = word === undefined && (args.includes('-V') || args.includes('--version'));
  if (!none) (await import('../core/zod-cli.js')).configureZodForCli();
  for (const c of none ? [] : only ? [only] : COMMANDS) (await c.load())(program);
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

/**
 * Runs the CLI on `argv` (node's: the program and the script first) and sets `process.exitCode`.
 * Never exits the process. The entry point is `bin.ts`; the bundled CLI calls this from the
 * CommonJS bundle that `launch.ts` loads with its code cache.
 */
export async function runCli(argv: string[] = process.argv): Promise<void> {
  const args = argv.slice(2);
  const program = await buildProgram(args);
  try {
    await program.parseAsync(argv);
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
