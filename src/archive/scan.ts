/**
 * Walks a source folder into a sorted, validated list of entries. Special files, unreadable files
 * and symlinks that leave the folder are errors naming the file; symlinks inside are kept.
 */
import { constants } from 'node:fs';
import { access, lstat, readdir, readlink, realpath } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import picomatch from 'picomatch';
import { DeployToolError, errnoCode } from '../core/errors.js';
import type { PlannedEntry } from './tar.js';

export interface ScannedEntry extends PlannedEntry {
  abs: string;
}

export interface ScanOptions {
  include?: string[] | undefined;
  exclude?: string[] | undefined;
}

export interface ScanResult {
  entries: ScannedEntry[];
  excluded: number;
}

const byteCompare = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

export async function scanSource(root: string, options: ScanOptions = {}): Promise<ScanResult> {
  const rootAbs = resolve(root);
  let rootStat;
  try {
    rootStat = await lstat(rootAbs);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      throw new DeployToolError('ERR_SOURCE_NOT_FOUND', `Source path not found: ${rootAbs}`, {
        hint: 'Check the PATH argument of pack; it must be a folder with the files of the component.',
      });
    }
    throw err;
  }
  if (!rootStat.isDirectory()) {
    throw new DeployToolError('ERR_SOURCE_NOT_FOUND', `Source path is not a folder: ${rootAbs}`, {
      hint: 'Pass the folder that holds the component files (pack packs a whole folder).',
    });
  }
  const rootReal = await realpath(rootAbs);
  const includeMatch = options.include?.length ? picomatch(options.include, { dot: true }) : undefined;
  const excludeMatch = options.exclude?.length ? picomatch(options.exclude, { dot: true }) : undefined;
  const isExcluded = (rel: string, isDir: boolean): boolean =>
    !!excludeMatch &&
    (excludeMatch(rel) || (isDir && excludeMatch(`${rel}/`)) || excludeMatch(rel.split('/').pop() ?? ''));

  const entries: ScannedEntry[] = [];
  let excluded = 0;

  async function walk(dirAbs: string, relDir: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(dirAbs);
    } catch (err) {
      throw new DeployToolError(
        'ERR_SOURCE_UNREADABLE',
        `Cannot read folder ${dirAbs}: ${errnoCode(err) ?? String(err)}`,
        {
          hint: 'Fix the permissions of that folder, or exclude it with --exclude.',
        },
      );
    }
    names.sort(byteCompare);
    for (const name of names) {
      const abs = join(dirAbs, name);
      const rel = relDir ? `${relDir}/${name}` : name;
      const st = await lstat(abs);
      if (isExcluded(rel, st.isDirectory())) {
        excluded++;
        continue;
      }
      if (st.isDirectory()) {
        try {
          await access(abs, constants.R_OK | constants.X_OK);
        } catch {
          throw new DeployToolError('ERR_SOURCE_UNREADABLE', `Cannot read folder ${abs}: permission denied`, {
            hint: 'Fix the permissions of that folder, or exclude it with --exclude.',
          });
        }
        const before = entries.length;
        entries.push({ path: rel, type: 'directory', mode: 0o755, size: 0, abs });
        await walk(abs, rel);
        if (includeMatch && entries.length === before + 1) {
          entries.pop(); // a folder left empty by the include filter is not packed
        }
      } else if (st.isFile()) {
        if (includeMatch && !includeMatch(rel)) {
          excluded++;
          continue;
        }
        try {
          await access(abs, constants.R_OK);
        } catch {
          throw new DeployToolError('ERR_SOURCE_UNREADABLE', `Cannot read file ${abs}: permission denied`, {
            hint: 'Fix the permissions of that file, or exclude it with --exclude.',
          });
        }
        entries.push({ path: rel, type: 'file', mode: st.mode & 0o111 ? 0o755 : 0o644, size: st.size, abs });
      } else if (st.isSymbolicLink()) {
        if (includeMatch && !includeMatch(rel)) {
          excluded++;
          continue;
        }
        const target = await readlink(abs);
        const resolved = resolve(dirname(abs), target);
        const inside = resolved === rootAbs || resolved.startsWith(rootAbs + sep);
        let realInside = inside;
        if (inside) {
          try {
            const real = await realpath(abs);
            realInside = real === rootReal || real.startsWith(rootReal + sep);
          } catch {
            realInside = true; // dangling but lexically inside: kept as a link
          }
        }
        if (target.startsWith('/') || !inside || !realInside) {
          throw new DeployToolError(
            'ERR_SOURCE_SYMLINK_OUTSIDE',
            `Symlink ${abs} points outside the source folder (-> ${target})`,
            {
              hint: 'Replace it with the file itself, make it a relative link inside the folder, or --exclude it.',
            },
          );
        }
        entries.push({ path: rel, type: 'symlink', mode: 0o777, size: 0, abs, target });
      } else {
        const kind = st.isFIFO()
          ? 'a FIFO'
          : st.isSocket()
            ? 'a socket'
            : st.isCharacterDevice() || st.isBlockDevice()
              ? 'a device'
              : 'a special file';
        throw new DeployToolError('ERR_SOURCE_SPECIAL_FILE', `Cannot pack ${abs}: it is ${kind}`, {
          hint: 'Only regular files, folders and symlinks can be packed. Remove it or --exclude it.',
        });
      }
    }
  }

  await walk(rootAbs, '');
  if (!entries.some((e) => e.type === 'file')) {
    throw new DeployToolError(
      'ERR_SOURCE_EMPTY',
      `Nothing to pack: ${rootAbs} has no files${excluded ? ` (${excluded} excluded)` : ''}`,
      {
        hint: 'Check the PATH argument and the include/exclude patterns.',
      },
    );
  }
  void relative;
  return { entries, excluded };
}
