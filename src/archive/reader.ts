/**
 * Reads a framed archive against its manifest: checks the archive's size and sha256, then each
 * frame's sha256 before it is decompressed, decompresses at most the declared bytes, and runs the
 * TarChecker over the stream so that the tar entries equal the index. An optional sink receives
 * the entries (to extract them).
 */
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { DeployToolError, errnoCode } from '../core/errors.js';
import type { ComponentManifest, FileEntry } from '../manifest/component.js';
import { createStreamHasher, type CodecPool, type StreamHasher } from './pool.js';
import { checkFileDigest, TarChecker, TarFormatError, type EntrySink, type FileDigester } from './tar.js';

/** Random access to the bytes of an archive. */
export interface ArchiveSource {
  /** Human-readable location, for messages. */
  readonly location: string;
  size(): Promise<number>;
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Optional: reads into `buf` (from its start) and returns the number of bytes read, which is less
   * than `length` only at the end of the archive. Lets readers reuse their buffers.
   */
  readInto?(buf: Uint8Array, offset: number, length: number): Promise<number>;
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
  const readInto = async (buf: Uint8Array, offset: number, length: number): Promise<number> => {
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got;
  };
  return {
    location: path,
    async size() {
      return (await fh.stat()).size;
    },
    async read(offset, length) {
      const buf = Buffer.allocUnsafe(length);
      const got = await readInto(buf, offset, length);
      return got === length ? buf : buf.subarray(0, got);
    },
    readInto,
    close: () => fh.close(),
  };
}

function corrupt(location: string, message: string, hint?: string): DeployToolError {
  return new DeployToolError('ERR_ARCHIVE_CORRUPT', `${location}: ${message}`, {
    hint: hint ?? 'The archive is damaged or does not belong to this manifest. Transfer or publish it again.',
  });
}

/** Checks the archive's size against the manifest (a stat: nothing is read). */
async function checkArchiveSize(source: ArchiveSource, manifest: ComponentManifest): Promise<void> {
  const size = await source.size();
  if (size !== manifest.archive.size) {
    throw corrupt(
      source.location,
      `archive has ${size} bytes, the manifest says ${manifest.archive.size}`,
      size < manifest.archive.size ? 'The archive is truncated: transfer it again.' : undefined,
    );
  }
}

function checkArchiveSha256(source: ArchiveSource, manifest: ComponentManifest, digest: string): void {
  if (digest !== manifest.archive.sha256) {
    throw corrupt(
      source.location,
      `archive sha256 is ${digest}, the manifest says ${manifest.archive.sha256}`,
    );
  }
}

/** Checks size and sha256 of the whole archive, reading it once. */
export async function verifyArchiveDigest(source: ArchiveSource, manifest: ComponentManifest): Promise<void> {
  await checkArchiveSize(source, manifest);
  const size = manifest.archive.size;
  const hash = createHash('sha256');
  const chunk = 8 * 1024 * 1024;
  // Two reused buffers: the next chunk is read while this one is hashed.
  const bufs = source.readInto
    ? [Buffer.allocUnsafe(Math.min(chunk, size)), Buffer.allocUnsafe(Math.min(chunk, size))]
    : undefined;
  const readChunk = async (off: number, i: number): Promise<Buffer> => {
    const length = Math.min(chunk, size - off);
    const buf = bufs?.[i % 2];
    if (!buf || !source.readInto) return source.read(off, length);
    return buf.subarray(0, await source.readInto(buf, off, length));
  };
  let pending = size > 0 ? readChunk(0, 0) : undefined;
  for (let off = 0, i = 0; pending; off += chunk, i++) {
    const data = await pending;
    pending = off + chunk < size ? readChunk(off + chunk, i + 1) : undefined;
    hash.update(data);
  }
  checkArchiveSha256(source, manifest, hash.digest('hex'));
}

export interface ReadArchiveOptions {
  manifest: ComponentManifest;
  source: ArchiveSource;
  pool: CodecPool;
  /**
   * Receives the entries. The chunks given to `sink.data` lie in buffers that are reused once the
   * promise it returns resolves: copy them to keep them.
   */
  sink?: EntrySink;
  /**
   * Check the whole archive's size (before anything is read) and sha256 (default true). The sha256
   * is computed over the frames' compressed bytes as they are read (the frames tile the archive),
   * on a thread of its own, and checked before readArchive returns; when anything else is refused
   * first, the whole archive is hashed again so that a damaged archive is reported as such.
   */
  verifyDigest?: boolean;
  onProgress?: (doneTarBytes: number, totalTarBytes: number) => void;
}

/** Where one frame lives while it is in flight: its compressed bytes and its tar bytes. */
interface Slot {
  input: Buffer;
  output: Buffer;
}

const WASM_PAGE = 64 * 1024;
/** The WebAssembly global (not in this project's TypeScript libs); undefined under --jitless. */
const wasm = (
  globalThis as {
    WebAssembly?: {
      Memory?: new (d: { initial: number; maximum: number; shared: boolean }) => {
        buffer: SharedArrayBuffer;
      };
    };
  }
).WebAssembly;

/**
 * Shared memory for one slot. A shared WebAssembly.Memory is a SharedArrayBuffer that starts on a
 * page boundary, so a large file's data (which starts a frame, hence a slot's output) can be written
 * from it with direct I/O (src/archive/extract.ts); a plain SharedArrayBuffer when WebAssembly is
 * not available.
 */
function sharedSlot(inLen: number, outLen: number): Slot {
  const inPad = Math.ceil(inLen / WASM_PAGE) * WASM_PAGE;
  const pages = Math.max(1, Math.ceil((inPad + outLen) / WASM_PAGE));
  let buf: SharedArrayBuffer | undefined;
  try {
    buf = wasm?.Memory && new wasm.Memory({ initial: pages, maximum: pages, shared: true }).buffer;
  } catch {
    buf = undefined;
  }
  if (!buf)
    return {
      input: Buffer.from(new SharedArrayBuffer(inLen)),
      output: Buffer.from(new SharedArrayBuffer(outLen)),
    };
  return { input: Buffer.from(buf, 0, inLen), output: Buffer.from(buf, inPad, outLen) };
}

/** Files at least this large are hashed on a hasher thread (their data fills whole frames). */
const HASH_ELSEWHERE = 1024 * 1024;
/** Archives smaller than this are hashed on the calling thread (a hasher thread costs its boot). */
const HASH_THREAD_MIN = 16 * 1024 * 1024;

/** sha256 streams hashed on the calling thread (small archives). */
function inProcessHasher(): StreamHasher {
  const hashes: Hash[] = [];
  return {
    update(stream, data) {
      (hashes[stream] ??= createHash('sha256')).update(data);
      return Promise.resolve();
    },
    digest: () => Promise.resolve(Array.from(hashes, (h) => (h ?? createHash('sha256')).digest('hex'))),
    close: () => Promise.resolve(),
  };
}

const contentCodes = new Set(['ERR_ARCHIVE_CORRUPT', 'ERR_ARCHIVE_UNSAFE', 'ERR_INDEX_MISMATCH']);

/**
 * Reads the whole archive: every frame's sha256 is checked before it is decompressed (on the codec
 * pool), the tar stream is checked against the index (TarChecker) and handed to the sink, every
 * file's sha256 is checked, and (verifyDigest) the whole archive's size and sha256. Resolves only
 * once all of these passed. The work is spread over threads: the pool's workers check and
 * decompress frames; a hasher thread hashes the whole archive as its frames are read, another one
 * the data of the large files (the very bytes the sink receives, in the same shared buffers); the
 * calling thread checks the tar stream and feeds the sink.
 */
export async function readArchive(options: ReadArchiveOptions): Promise<void> {
  const { manifest, source, pool } = options;
  const verifyDigest = options.verifyDigest !== false;
  if (verifyDigest) await checkArchiveSize(source, manifest);
  const threads = manifest.archive.size >= HASH_THREAD_MIN;
  const archiveHasher = verifyDigest ? (threads ? createStreamHasher() : inProcessHasher()) : undefined;
  const largeFiles = manifest.files.some((e) => e.type === 'file' && e.size >= HASH_ELSEWHERE);
  const fileHasher = largeFiles ? (threads ? createStreamHasher() : inProcessHasher()) : undefined;
  // The hasher promises of the frame being pushed through the checker: its slot is reused only once
  // they resolve (the hashers read the slot in place).
  let frameHashes: Promise<void>[] = [];
  const streams = new Map<FileEntry, number>();
  const digester: FileDigester | undefined = fileHasher && {
    takes: (e) => {
      if (e.size < HASH_ELSEWHERE) return false;
      streams.set(e, streams.size);
      return true;
    },
    update: (e, piece) => {
      frameHashes.push(fileHasher.update(streams.get(e) ?? 0, piece));
    },
  };
  const checker = new TarChecker(manifest.files, manifest.archive.tarSize, {
    checkDigests: true,
    sink: options.sink,
    digester,
  });
  /** The files the digester hashed, complete, against the index (the first mismatch throws). */
  const checkTaken = async (): Promise<void> => {
    if (!fileHasher) return;
    const digests = await fileHasher.digest();
    for (const e of checker.taken) checkFileDigest(e, digests[streams.get(e) ?? -1] ?? '');
  };
  const depth = Math.max(2, pool.size * 2 + 1);
  // Frames live in slots of shared memory reused from frame to frame: the archive is read into a
  // slot (when the source can read into a buffer), a worker checks and decompresses it into the
  // same slot's output, and the checker and the sink consume it there: no copies between threads
  // and no allocation per frame. A slot is reused once the sink has written its bytes and the
  // hashers have hashed them.
  let maxIn = 0;
  let maxOut = 0;
  for (const f of manifest.frames) {
    maxIn = Math.max(maxIn, f.size);
    maxOut = Math.max(maxOut, f.tarSize);
  }
  const maxSlots = depth + 2;
  let slots = 0;
  const free: Slot[] = [];
  const takeSlot = (): Slot | undefined => {
    const s = free.pop();
    if (s || slots >= maxSlots) return s;
    slots++;
    return sharedSlot(source.readInto ? maxIn : 0, maxOut);
  };
  interface Decoded {
    data: Buffer;
    slot: Slot;
    /** The archive hasher has this frame's compressed bytes. */
    archived: Promise<void>;
  }
  const inflight: Promise<Decoded>[] = [];
  // The archive hasher gets the frames in order: frame i is posted once it is read and frame i-1
  // posted (not hashed). Posting copies bytes that are not in shared memory, so the frame may then
  // be transferred to a worker.
  let posted: Promise<unknown> = Promise.resolve();
  let next = 0;
  const submit = (): boolean => {
    const f = manifest.frames[next];
    if (!f) return false;
    const slot = takeSlot();
    if (!slot) return false;
    const index = next++;
    const read =
      source.readInto && f.size <= slot.input.length
        ? source.readInto(slot.input, f.offset, f.size).then((n) => slot.input.subarray(0, n))
        : source.read(f.offset, f.size);
    const mine = Promise.all([posted, read]).then(([, data]) => ({
      data,
      hashed: archiveHasher ? archiveHasher.update(0, data) : Promise.resolve(),
    }));
    posted = mine;
    inflight.push(
      mine.then(async ({ data, hashed }) => {
        hashed.catch(() => undefined); // awaited before the slot is reused
        if (data.length !== f.size) throw corrupt(source.location, `archive is truncated in frame ${index}`);
        const r = await pool.run({
          op: 'decompress',
          alg: manifest.archive.compression,
          data,
          expectedSize: f.tarSize,
          expectedSha256: f.sha256,
          out: slot.output,
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
        return {
          data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength),
          slot,
          archived: hashed,
        };
      }),
    );
    // Awaited in order below; this keeps a later frame that fails first from being an unhandled rejection.
    inflight[inflight.length - 1]?.catch(() => undefined);
    return true;
  };
  const fill = (): void => {
    while (inflight.length < depth && submit());
  };
  // Slots waiting for the hashers before they are reused.
  const releasing = new Set<Promise<void>>();
  try {
    fill();
    let done = 0;
    while (inflight.length) {
      const frame = await inflight.shift();
      if (!frame) break;
      frameHashes = [frame.archived];
      await checker.push(frame.data);
      const hashes = frameHashes;
      const release = Promise.all(hashes).then(() => {
        free.push(frame.slot);
        releasing.delete(release);
        fill();
      });
      release.catch(() => undefined); // awaited below
      releasing.add(release);
      fill();
      done += frame.data.length;
      options.onProgress?.(done, manifest.archive.tarSize);
      // Every slot is waiting for a hasher: wait for one (a failed hasher throws here).
      while (inflight.length === 0 && next < manifest.frames.length && releasing.size)
        await Promise.race(releasing);
    }
    await Promise.all(releasing);
    checker.finish();
    const whole = archiveHasher && (await archiveHasher.digest());
    if (whole) checkArchiveSha256(source, manifest, whole[0] ?? '');
    await checkTaken();
  } catch (err) {
    await Promise.allSettled([...inflight, ...releasing]);
    let e = err;
    if (err instanceof TarFormatError) {
      e = new DeployToolError('ERR_INDEX_MISMATCH', `${source.location}: ${err.message}`, {
        hint: 'The archive does not match its manifest; it was altered or crafted. Do not deploy it.',
      });
    }
    throw await firstProblem(e);
  } finally {
    await archiveHasher?.close();
    await fileHasher?.close();
  }

  /**
   * The refusal the checks in their documented order would give: a damaged archive (whole sha256)
   * first, then a complete file with another sha256 than the index (the checker would have stopped
   * there), then `err`. Only for refusals of the content, not for errors of the target (ENOSPC).
   */
  async function firstProblem(err: unknown): Promise<unknown> {
    if (!(err instanceof DeployToolError) || !contentCodes.has(err.code)) return err;
    if (verifyDigest) {
      try {
        await verifyArchiveDigest(source, manifest);
      } catch (e) {
        if (e instanceof DeployToolError && e.code === 'ERR_ARCHIVE_CORRUPT') return e;
      }
    }
    try {
      await checkTaken();
    } catch (e) {
      if (e instanceof TarFormatError)
        return new DeployToolError('ERR_INDEX_MISMATCH', `${source.location}: ${e.message}`, {
          hint: 'The archive does not match its manifest; it was altered or crafted. Do not deploy it.',
        });
    }
    return err;
  }
}

/**
 * The frames that hold the data of the given files (sorted frame indexes): for each file, the frames
 * with `tarOffset < F.offset + F.size` and `tarOffset + tarSize > F.offset` (docs/formats.md,
 * "Fetching one file by range"). Empty files, folders and symlinks need no frame.
 */
export function framesOfFiles(manifest: ComponentManifest, files: Iterable<FileEntry>): number[] {
  const frames = manifest.frames;
  const out = new Set<number>();
  for (const f of files) {
    if (f.size === 0) continue;
    const end = f.offset + f.size;
    // Binary search for the frame holding f.offset (frames tile the tar stream: checked by the parser).
    let lo = 0;
    let hi = frames.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((frames[mid]?.tarOffset ?? 0) <= f.offset) lo = mid;
      else hi = mid - 1;
    }
    for (let i = lo; i < frames.length; i++) {
      const fr = frames[i];
      if (!fr || fr.tarOffset >= end) break;
      out.add(i);
    }
  }
  return [...out].sort((a, b) => a - b);
}

/** An EntrySink that can also create a file as a hard link (or copy) of a file already verified. */
export interface LinkingSink extends EntrySink {
  link(entry: FileEntry, from: string): Promise<void>;
}

export interface ReadArchiveFilesOptions {
  manifest: ComponentManifest;
  source: ArchiveSource;
  pool: CodecPool;
  sink: LinkingSink;
  /** Files (by path) not to extract but to link from an existing copy: path -> absolute source path. */
  linked: ReadonlyMap<string, string>;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/**
 * Partial extraction (incremental deploys): creates every entry of the manifest in stream order,
 * linking the files of `linked` and extracting the others from only the frames that hold their
 * bytes. What is checked, as in the full path: each frame read must have its declared compressed
 * size and sha256 (checked before it is decompressed), decompresses to exactly its declared
 * `tarSize` (more is refused as a decompression bomb), and every extracted file's bytes must have
 * the manifest's sha256 (ERR_INDEX_MISMATCH otherwise). The whole archive's sha256 and the tar
 * headers are not checked, since neither is read: entry paths, types, modes and link targets come
 * from the manifest, which the parser has validated (and whose sha256 the release manifest pins),
 * and the sink applies the same safety rules as in a full extraction.
 */
export async function readArchiveFiles(
  o: ReadArchiveFilesOptions,
): Promise<{ frames: number; bytes: number }> {
  const { manifest, source, pool, sink, linked } = o;
  const files = manifest.files.filter((e): e is FileEntry => e.type === 'file' && !linked.has(e.path));
  const wanted = framesOfFiles(manifest, files);
  const total = files.reduce((s, f) => s + f.size, 0);
  const depth = Math.max(2, pool.size * 2 + 1);
  const decode = async (index: number): Promise<{ tarOffset: number; data: Buffer }> => {
    const f = manifest.frames[index];
    if (!f) throw new Error('internal: no such frame');
    const data = await source.read(f.offset, f.size);
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
          { hint: 'Refused as a possible decompression bomb. Do not deploy this archive.' },
        );
      }
      throw corrupt(source.location, `frame ${index}: ${r.message}`);
    }
    if (r.data.byteLength !== f.tarSize)
      throw corrupt(
        source.location,
        `frame ${index} inflates to ${r.data.byteLength} bytes, not ${f.tarSize}`,
      );
    return { tarOffset: f.tarOffset, data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength) };
  };
  const inflight: Promise<{ tarOffset: number; data: Buffer }>[] = [];
  let next = 0;
  const fill = (): void => {
    while (inflight.length < depth && next < wanted.length) {
      const p = decode(wanted[next++]!);
      p.catch(() => undefined); // awaited in order below
      inflight.push(p);
    }
  };
  let cur: { tarOffset: number; data: Buffer } | undefined;
  const advance = async (): Promise<{ tarOffset: number; data: Buffer }> => {
    fill();
    const p = inflight.shift();
    if (!p) throw new Error('internal: a file lies outside the frames read');
    const v = await p;
    fill();
    return v;
  };
  let done = 0;
  try {
    for (const e of manifest.files) {
      if (e.type !== 'file') {
        await sink.start?.(e);
        await sink.end?.(e, undefined);
        continue;
      }
      const from = linked.get(e.path);
      if (from !== undefined) {
        await sink.link(e, from);
        continue;
      }
      await sink.start?.(e);
      const hash = createHash('sha256');
      const end = e.offset + e.size;
      for (let pos = e.offset; pos < end;) {
        while (!cur || cur.tarOffset + cur.data.length <= pos) cur = await advance();
        if (cur.tarOffset > pos) throw new Error('internal: frames out of order');
        const start = pos - cur.tarOffset;
        const n = Math.min(cur.data.length - start, end - pos);
        const chunk = cur.data.subarray(start, start + n);
        hash.update(chunk);
        await sink.data?.(e, chunk);
        pos += n;
        done += n;
        o.onProgress?.(done, total);
      }
      const digest = hash.digest('hex');
      if (digest !== e.sha256) {
        throw new DeployToolError(
          'ERR_INDEX_MISMATCH',
          `${source.location}: ${e.path} has sha256 ${digest}, the manifest says ${e.sha256}`,
          { hint: 'The archive does not match its manifest; it was altered or crafted. Do not deploy it.' },
        );
      }
      await sink.end?.(e, digest);
    }
  } finally {
    await Promise.allSettled(inflight);
  }
  return { frames: wanted.length, bytes: total };
}
