/**
 * Reads a framed archive against its manifest: checks the archive's size and sha256, then each
 * frame's sha256 before it is decompressed, decompresses at most the declared bytes, and runs the
 * TarChecker over the stream so that the tar entries equal the index. An optional sink receives
 * the entries (to extract them).
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { DeployToolError, errnoCode } from '../core/errors.js';
import type { ComponentManifest, FileEntry, Frame } from '../manifest/component.js';
import type { CodecPool } from './pool.js';
import { TarChecker, TarFormatError, type EntrySink } from './tar.js';

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

/**
 * Decompresses frame `index` on the pool (its compressed sha256 checked first, its output capped at
 * the declared size), mapping a refusal to the error a user sees. Shared by full and partial reads.
 */
async function decodeFrame(
  pool: CodecPool,
  manifest: ComponentManifest,
  location: string,
  index: number,
  data: Buffer,
  out?: Uint8Array,
): Promise<Buffer> {
  const f = manifest.frames[index];
  if (!f) throw new Error('internal: no such frame');
  const r = await pool.run({
    op: 'decompress',
    alg: manifest.archive.compression,
    data,
    expectedSize: f.tarSize,
    expectedSha256: f.sha256,
    ...(out ? { out } : {}),
  });
  if (!r.ok) {
    if (r.kind === 'too-large') {
      throw new DeployToolError(
        'ERR_ARCHIVE_UNSAFE',
        `${location}: frame ${index} inflates past its declared ${f.tarSize} bytes`,
        { hint: 'Refused as a possible decompression bomb. Do not deploy this archive.' },
      );
    }
    throw corrupt(location, `frame ${index}: ${r.message}`);
  }
  return Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength);
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
   * Check the whole archive (default true): its size before anything is read, and every byte the
   * archive's sha256 covers. The manifest parser checks that the frames tile the archive exactly,
   * and each frame's sha256 (from the same manifest as the archive's sha256, which the release
   * pins through manifestSha256) is checked before the frame is decompressed; so once every frame
   * passed, so did every byte of the archive, and the whole sha256 is not computed a second time
   * (it was half of this thread's hashing). When a refusal of the content comes first, the whole
   * archive is hashed so that a damaged archive is reported as such.
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
 * At least `bytes` of shared memory that starts on a page boundary (a shared WebAssembly.Memory),
 * or undefined when WebAssembly is not available (--jitless).
 */
export function pageAlignedMemory(bytes: number): SharedArrayBuffer | undefined {
  const pages = Math.max(1, Math.ceil(bytes / WASM_PAGE));
  try {
    return wasm?.Memory && new wasm.Memory({ initial: pages, maximum: pages, shared: true }).buffer;
  } catch {
    return undefined;
  }
}

/**
 * Shared memory for one slot. A shared WebAssembly.Memory is a SharedArrayBuffer that starts on a
 * page boundary, so a large file's data (which starts a frame, hence a slot's output) can be written
 * from it with direct I/O (src/archive/extract.ts); a plain SharedArrayBuffer when WebAssembly is
 * not available.
 */
function sharedSlot(inLen: number, outLen: number): Slot {
  const inPad = Math.ceil(inLen / WASM_PAGE) * WASM_PAGE;
  const buf = pageAlignedMemory(inPad + outLen);
  if (!buf)
    return {
      input: Buffer.from(new SharedArrayBuffer(inLen)),
      output: Buffer.from(new SharedArrayBuffer(outLen)),
    };
  return { input: Buffer.from(buf, 0, inLen), output: Buffer.from(buf, inPad, outLen) };
}

/**
 * The slots of one read, sized for the largest of `frames`: taken for a frame in flight, given back
 * once its bytes are consumed. `read` reads a frame into a slot's input when the source can read
 * into a buffer (else into a new one).
 */
function slotPool(source: ArchiveSource, frames: Iterable<Frame | undefined>) {
  let maxIn = 0;
  let maxOut = 0;
  for (const f of frames) {
    maxIn = Math.max(maxIn, f?.size ?? 0);
    maxOut = Math.max(maxOut, f?.tarSize ?? 0);
  }
  const free: Slot[] = [];
  return {
    take: (): Slot => free.pop() ?? sharedSlot(source.readInto ? maxIn : 0, maxOut),
    give: (slot: Slot): void => {
      free.push(slot);
    },
    read: async (f: Frame, slot: Slot): Promise<Buffer> =>
      source.readInto && f.size <= slot.input.length
        ? slot.input.subarray(0, await source.readInto(slot.input, f.offset, f.size))
        : source.read(f.offset, f.size),
  };
}

const contentCodes = new Set(['ERR_ARCHIVE_CORRUPT', 'ERR_ARCHIVE_UNSAFE', 'ERR_INDEX_MISMATCH']);

/**
 * Reads the whole archive: every frame's sha256 is checked before it is decompressed (on the codec
 * pool), the tar stream is checked against the index (TarChecker) and handed to the sink, every
 * file's sha256 is checked, and (verifyDigest) the archive's size, its bytes being checked by the
 * frames' digests (see ReadArchiveOptions.verifyDigest). Resolves only once all of these passed.
 * The pool's workers check and decompress frames; the calling thread checks the tar stream and
 * hashes each piece of file data while the sink writes it.
 */
export async function readArchive(options: ReadArchiveOptions): Promise<void> {
  const { manifest, source, pool } = options;
  const verifyDigest = options.verifyDigest !== false;
  if (verifyDigest) await checkArchiveSize(source, manifest);
  const checker = new TarChecker(manifest.files, manifest.archive.tarSize, {
    checkDigests: true,
    sink: options.sink,
  });
  const depth = Math.max(2, pool.size * 2);
  // Frames live in slots of shared memory reused from frame to frame: the archive is read into a
  // slot (when the source can read into a buffer), a worker checks and decompresses it into the
  // same slot's output, and the checker and the sink consume it there: no copies between threads
  // and no allocation per frame. A slot is reused once the sink has written its bytes.
  const slots = slotPool(source, manifest.frames);
  const inflight: Promise<{ data: Buffer; slot: Slot }>[] = [];
  let next = 0;
  const submit = (): void => {
    const f = manifest.frames[next++];
    if (!f) return;
    const index = next - 1;
    const slot = slots.take();
    const read = slots.read(f, slot);
    inflight.push(
      read.then(async (data) => {
        if (data.length !== f.size) throw corrupt(source.location, `archive is truncated in frame ${index}`);
        const out = await decodeFrame(pool, manifest, source.location, index, data, slot.output);
        return { data: out, slot };
      }),
    );
    // Awaited in order below; this keeps a later frame that fails first from being an unhandled rejection.
    inflight[inflight.length - 1]?.catch(() => undefined);
  };
  try {
    while (inflight.length < depth && next < manifest.frames.length) submit();
    let done = 0;
    while (inflight.length) {
      const frame = await inflight.shift();
      if (!frame) break;
      await checker.push(frame.data);
      slots.give(frame.slot);
      submit();
      done += frame.data.length;
      options.onProgress?.(done, manifest.archive.tarSize);
    }
    checker.finish();
  } catch (err) {
    await Promise.allSettled(inflight);
    let e = err;
    if (err instanceof TarFormatError) {
      e = new DeployToolError('ERR_INDEX_MISMATCH', `${source.location}: ${err.message}`, {
        hint: 'The archive does not match its manifest; it was altered or crafted. Do not deploy it.',
      });
    }
    // The refusal the checks in their documented order give: a damaged archive (its size and sha256)
    // before anything found inside it. Only for refusals of the content, not for errors of the
    // target (ENOSPC, EACCES), which are reported as they are.
    if (verifyDigest && e instanceof DeployToolError && contentCodes.has(e.code)) {
      try {
        await verifyArchiveDigest(source, manifest);
      } catch (whole) {
        if (whole instanceof DeployToolError && whole.code === 'ERR_ARCHIVE_CORRUPT') throw whole;
      }
    }
    throw e;
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
  /** Receives the entries; as in readArchive, a chunk given to `sink.data` is reused once its promise resolves. */
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
  // Frames in flight live in reused slots of shared memory, as in readArchive: memory stays at
  // depth x (largest frame in + out) whatever the number of frames, with no garbage per frame.
  const slots = slotPool(
    source,
    wanted.map((i) => manifest.frames[i]),
  );
  type Decoded = { tarOffset: number; data: Buffer; slot: Slot };
  const decode = async (index: number): Promise<Decoded> => {
    const f = manifest.frames[index];
    if (!f) throw new Error('internal: no such frame');
    const slot = slots.take();
    try {
      const data = await slots.read(f, slot);
      if (data.length !== f.size) throw corrupt(source.location, `archive is truncated in frame ${index}`);
      const out = await decodeFrame(pool, manifest, source.location, index, data, slot.output);
      if (out.byteLength !== f.tarSize)
        throw corrupt(
          source.location,
          `frame ${index} inflates to ${out.byteLength} bytes, not ${f.tarSize}`,
        );
      return { tarOffset: f.tarOffset, data: out, slot };
    } catch (err) {
      slots.give(slot);
      throw err;
    }
  };
  const inflight: Promise<Decoded>[] = [];
  let next = 0;
  /** Slots taken: the frames in flight and the one being consumed (`cur`) count towards depth. */
  let held = 0;
  const fill = (): void => {
    while (inflight.length + held < depth && next < wanted.length) {
      const p = decode(wanted[next++]!);
      p.catch(() => undefined); // awaited in order below
      inflight.push(p);
    }
  };
  let cur: Decoded | undefined;
  const advance = async (): Promise<Decoded> => {
    // The frame consumed so far is written (sink.data resolved): its slot takes the next frame.
    if (cur) slots.give(cur.slot);
    cur = undefined;
    held = 0;
    fill();
    const p = inflight.shift();
    if (!p) throw new Error('internal: a file lies outside the frames read');
    held = 1;
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
