/**
 * Reads a framed archive against its manifest: checks the archive's size and sha256, then each
 * frame's sha256 before it is decompressed, decompresses at most the declared bytes, and runs the
 * TarChecker over the stream so that the tar entries equal the index. An optional sink receives
 * the entries (to extract them).
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { DeployToolError, errnoCode } from '../core/errors.js';
import type { ComponentManifest } from '../manifest/component.js';
import type { CodecPool } from './pool.js';
import { TarChecker, TarFormatError, type EntrySink } from './tar.js';

/** Random access to the bytes of an archive. */
export interface ArchiveSource {
  /** Human-readable location, for messages. */
  readonly location: string;
  size(): Promise<number>;
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

export async function openLocalArchive(path: string): Promise<ArchiveSource> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      throw new DeployToolError('ERR_ARCHIVE_MISSING', `Archive not found: ${path}`, {
        hint: 'Transfer the published release folder to this machine (see the publish output), or pack the component again.',
      });
    }
    throw err;
  }
  return {
    location: path,
    async size() {
      return (await fh.stat()).size;
    },
    async read(offset, length) {
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === length ? buf : buf.subarray(0, got);
    },
    close: () => fh.close(),
  };
}

function corrupt(location: string, message: string, hint?: string): DeployToolError {
  return new DeployToolError('ERR_ARCHIVE_CORRUPT', `${location}: ${message}`, {
    hint: hint ?? 'The archive is damaged or does not belong to this manifest. Transfer or publish it again.',
  });
}

/** Checks size and sha256 of the whole archive, reading it once. */
export async function verifyArchiveDigest(source: ArchiveSource, manifest: ComponentManifest): Promise<void> {
  const size = await source.size();
  if (size !== manifest.archive.size) {
    throw corrupt(
      source.location,
      `archive has ${size} bytes, the manifest says ${manifest.archive.size}`,
      size < manifest.archive.size ? 'The archive is truncated: transfer it again.' : undefined,
    );
  }
  const hash = createHash('sha256');
  const chunk = 8 * 1024 * 1024;
  for (let off = 0; off < size; off += chunk)
    hash.update(await source.read(off, Math.min(chunk, size - off)));
  const digest = hash.digest('hex');
  if (digest !== manifest.archive.sha256) {
    throw corrupt(
      source.location,
      `archive sha256 is ${digest}, the manifest says ${manifest.archive.sha256}`,
    );
  }
}

export interface ReadArchiveOptions {
  manifest: ComponentManifest;
  source: ArchiveSource;
  pool: CodecPool;
  sink?: EntrySink;
  /** Check the whole archive's size and sha256 before decompressing anything (default true). */
  verifyDigest?: boolean;
  onProgress?: (doneTarBytes: number, totalTarBytes: number) => void;
}

export async function readArchive(options: ReadArchiveOptions): Promise<void> {
  const { manifest, source, pool } = options;
  if (options.verifyDigest !== false) await verifyArchiveDigest(source, manifest);
  const checker = new TarChecker(manifest.files, manifest.archive.tarSize, {
    checkDigests: true,
    sink: options.sink,
  });
  const depth = Math.max(2, pool.size * 2);
  const inflight: Promise<Buffer>[] = [];
  let next = 0;
  const submit = (): void => {
    const f = manifest.frames[next++];
    if (!f) return;
    const index = next - 1;
    inflight.push(
      source.read(f.offset, f.size).then(async (data) => {
        if (data.length !== f.size) throw corrupt(source.location, `archive is truncated in frame ${index}`);
        const r = await pool.run({
          op: 'decompress',
          alg: manifest.archive.compression,
          data,
          expectedSize: f.tarSize,
          expectedSha256: f.sha256,
        });
        if (!r.ok) {
          if (r.kind === 'too-large') {
            throw new DeployToolError(
              'ERR_ARCHIVE_UNSAFE',
              `${source.location}: frame ${index} inflates past its declared ${f.tarSize} bytes`,
              {
                hint: 'Refused as a possible decompression bomb. Do not deploy this archive.',
              },
            );
          }
          throw corrupt(source.location, `frame ${index}: ${r.message}`);
        }
        return Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength);
      }),
    );
    // Awaited in order below; this keeps a later frame that fails first from being an unhandled rejection.
    inflight[inflight.length - 1]?.catch(() => undefined);
  };
  try {
    while (inflight.length < depth && next < manifest.frames.length) submit();
    let done = 0;
    while (inflight.length) {
      const data = await inflight.shift();
      submit();
      if (!data) break;
      await checker.push(data);
      done += data.length;
      options.onProgress?.(done, manifest.archive.tarSize);
    }
    checker.finish();
  } catch (err) {
    await Promise.allSettled(inflight);
    if (err instanceof TarFormatError) {
      throw new DeployToolError('ERR_INDEX_MISMATCH', `${source.location}: ${err.message}`, {
        hint: 'The archive does not match its manifest; it was altered or crafted. Do not deploy it.',
      });
    }
    throw err;
  }
}
