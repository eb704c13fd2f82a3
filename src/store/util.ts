/** Helpers over any Store. */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { PutOptions, PutResult, Store } from './types.js';

/** The sha256 (hex) of bytes [offset, offset+length) of a file, streamed in 4 MiB reads. */
export async function sha256OfFileRange(path: string, offset: number, length: number): Promise<string> {
  const h = createHash('sha256');
  if (length > 0)
    for await (const c of createReadStream(path, {
      start: offset,
      end: offset + length - 1,
      highWaterMark: 4 * 1024 * 1024,
    }))
      h.update(c as Buffer);
  return h.digest('hex');
}

/**
 * Uploads bytes [offset, offset+length) of a local file: the driver's own streaming putFileRange
 * when it has one, else through a temporary file and putFile (never the whole range in memory).
 */
export async function putFileRange(
  store: Store,
  key: string,
  path: string,
  range: { offset: number; length: number },
  options?: PutOptions,
): Promise<PutResult> {
  if (store.putFileRange) return store.putFileRange(key, path, range, options);
  const dir = await mkdtemp(join(tmpdir(), 'deploy-tool-range-'));
  try {
    const tmp = join(dir, 'part');
    if (range.length === 0) await writeFile(tmp, '');
    else
      await pipeline(
        createReadStream(path, { start: range.offset, end: range.offset + range.length - 1 }),
        createWriteStream(tmp),
      );
    return await store.putFile(key, tmp, options);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
