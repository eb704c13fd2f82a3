/**
 * Loads the bundled CLI (`dist/bin/cli.cjs`, one CommonJS file) with a V8 code cache
 * (`dist/bin/cli.cache`, recorded at build time by scripts/record-cache.mjs). Node 20 compiles an
 * ES module from source on every run, and V8 compiles each function on its first call: together
 * that was most of a short command's time (start-up, then the first parse of YAML and of every
 * schema). With the cache, the functions the recorded commands ran come compiled.
 *
 * A missing, stale or rejected cache only costs that compilation again: V8 checks that the cache
 * was made from this very source, by this V8 with these flags, before it uses any of it.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Script } from 'node:vm';

export interface LoadedCli {
  runCli: (argv: string[]) => Promise<void>;
  /** The code cache of the bundle as it is now (its functions compiled so far included). */
  createCachedData: () => Buffer;
  /** True when a cache was given and V8 refused it. */
  cacheRejected: boolean;
}

type CjsWrapper = (
  exports: object,
  require: NodeJS.Require,
  module: { exports: object },
  filename: string,
  dirname: string,
) => void;

export function loadCli(file: string, cacheFile?: string): LoadedCli {
  const source = readFileSync(file, 'utf8');
  let cachedData: Buffer | undefined;
  if (cacheFile) {
    try {
      cachedData = readFileSync(cacheFile);
    } catch {
      // no cache: compile
    }
  }
  // The bundle is CommonJS: node's own wrapper, so that it runs as if required.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    cachedData,
  });
  const wrapper = script.runInThisContext() as CjsWrapper;
  const mod = { exports: {} as { runCli?: (argv: string[]) => Promise<void> } };
  wrapper.call(mod.exports, mod.exports, createRequire(file), mod, file, dirname(file));
  const runCli = mod.exports.runCli;
  if (typeof runCli !== 'function') throw new Error(`${file} does not export runCli`);
  return {
    runCli,
    createCachedData: () => script.createCachedData(),
    cacheRejected: cachedData !== undefined && script.cachedDataRejected === true,
  };
}
