/**
 * Frame codecs: compress one frame, and decompress one frame into exactly the number of bytes the
 * index declares (never more: a frame that would inflate past its declared size is refused while
 * decompressing, which defuses decompression bombs). These run inside codec workers.
 */
import { createRequire } from 'node:module';
import type { Compression } from '../core/config.js';

const require = createRequire(import.meta.url);
// Loaded on first use: every codec worker loads this module, and most archives are zstd (each
// built-in module a worker loads costs it compile time while it boots).
const zlib = (): typeof import('node:zlib') => require('node:zlib') as typeof import('node:zlib');
const childProcess = (): typeof import('node:child_process') =>
  require('node:child_process') as typeof import('node:child_process');

interface ZstdBinding {
  DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number };
  CCtx: new () => {
    setParameter(param: number, value: number): void;
    compress2(dst: Uint8Array, src: Uint8Array): number;
  };
  CParameter: { compressionLevel: number };
  compressBound(size: number): number;
  versionNumber(): number;
}
interface Lz4Module {
  compressFrameSync(data: Buffer): Buffer;
  decompressFrameSync(data: Buffer): Buffer;
}
interface LzmaModule {
  compress(data: Buffer, opts: { preset: number }): Promise<Buffer>;
  createStream(kind: 'autoDecoder', opts?: Record<string, unknown>): NodeJS.ReadWriteStream;
}

let zstdBinding: ZstdBinding | undefined;
let lz4: Lz4Module | undefined;
let lzma: LzmaModule | undefined;

const loadZstdBinding = (): ZstdBinding => (zstdBinding ??= require('zstd-napi/binding') as ZstdBinding);

/**
 * Loads the zstd addon now (codec workers do it while they wait for their first task, so that the
 * first frame is not delayed by it). A failure is left for the first real use to report.
 */
export function preloadZstd(): void {
  try {
    loadZstdBinding();
  } catch {
    // reported by the first compression or decompression
  }
}
const loadLz4 = (): Lz4Module => (lz4 ??= require('lz4-napi') as Lz4Module);
const loadLzma = (): LzmaModule => (lzma ??= require('lzma-native') as LzmaModule);

/**
 * libzstd 1.5.7 added a "pre-block splitter" that, at the default setting, runs at every level from 3
 * up (strategy dfast and above): before compressing each 128 KiB block it samples the block's byte
 * histograms to look for a better cut. On model weights (float noise) it doubles level 3's CPU time
 * and makes the output slightly larger. We turn it off (`ZSTD_c_blockSplitterLevel` = 1, "no
 * splitting"); every other parameter is the level's own, so the frames are byte for byte what the
 * zstd 1.5.4 CLI (Debian 12's) writes with `zstd -3 --no-check` for the same bytes (checked on the
 * bench's weights). The parameter is experimental, so it is set only on the 1.5.x releases (from
 * 1.5.7) known to have it under this number.
 */
const ZSTD_C_BLOCK_SPLITTER_LEVEL = 1017; // ZSTD_c_experimentalParam20
const hasPreSplitter = (b: ZstdBinding): boolean => {
  const v = b.versionNumber();
  return v >= 10507 && v < 10600;
};

// One compression context per level and one decompression context, per thread (each codec worker
// has its own module instance): creating a context per frame costs an allocation and a table reset.
// Compressing with a reused context gives the same bytes as zstd-napi's compress().
const zstdCCtxs = new Map<number, InstanceType<ZstdBinding['CCtx']>>();
let zstdDCtx: InstanceType<ZstdBinding['DCtx']> | undefined;
function zstdCCtx(level: number): InstanceType<ZstdBinding['CCtx']> {
  let c = zstdCCtxs.get(level);
  if (!c) {
    const b = loadZstdBinding();
    c = new b.CCtx();
    c.setParameter(b.CParameter.compressionLevel, level);
    if (hasPreSplitter(b)) c.setParameter(ZSTD_C_BLOCK_SPLITTER_LEVEL, 1);
    zstdCCtxs.set(level, c);
  }
  return c;
}

export const DEFAULT_LEVELS: Record<Compression, number> = {
  zstd: 3,
  gzip: 6,
  bzip2: 9,
  xz: 6,
  lz4: 1,
  none: 0,
};

export const LEVEL_RANGES: Record<Compression, [number, number]> = {
  zstd: [1, 19],
  gzip: [1, 9],
  bzip2: [1, 9],
  xz: [0, 9],
  lz4: [1, 1],
  none: [0, 0],
};

export class CodecError extends Error {
  constructor(
    message: string,
    readonly kind: 'corrupt' | 'too-large' | 'too-small' | 'failed',
  ) {
    super(message);
    this.name = 'CodecError';
  }
}

function runCli(cmd: string, args: string[], input: Uint8Array, maxOut: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let total = 0;
    let stderr = '';
    let tooLarge = false;
    child.stdout.on('data', (c: Buffer) => {
      total += c.length;
      if (total > maxOut) {
        tooLarge = true;
        child.kill('SIGKILL');
        return;
      }
      chunks.push(c);
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) =>
      reject(
        new CodecError(`cannot run ${cmd}: ${err.message} (install it: apt-get install ${cmd})`, 'failed'),
      ),
    );
    child.on('close', (code) => {
      if (tooLarge) reject(new CodecError(`frame inflates past its declared size`, 'too-large'));
      else if (code !== 0)
        reject(new CodecError(`${cmd} failed: ${stderr.trim() || `exit ${code}`}`, 'corrupt'));
      else resolve(Buffer.concat(chunks));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** lzma-native refuses buffers in shared memory: give it a copy. */
const inPlainMemory = (b: Buffer): Buffer => (b.buffer instanceof SharedArrayBuffer ? Buffer.from(b) : b);

/**
 * Compresses one frame. With `out` (for example a view of a SharedArrayBuffer slot), zstd writes the
 * frame there and returns a view of it, without allocating; other codecs, or an `out` too small for
 * the worst case, return a new buffer.
 */
export async function compressFrame(
  alg: Compression,
  level: number,
  data: Buffer,
  out?: Buffer,
): Promise<Buffer> {
  switch (alg) {
    case 'zstd': {
      const b = loadZstdBinding();
      const dst =
        out && out.length >= b.compressBound(data.length)
          ? out
          : Buffer.allocUnsafe(b.compressBound(data.length));
      return dst.subarray(0, zstdCCtx(level).compress2(dst, data));
    }
    case 'gzip':
      return zlib().gzipSync(data, { level });
    case 'lz4':
      return loadLz4().compressFrameSync(data);
    case 'xz':
      return loadLzma().compress(inPlainMemory(data), { preset: level });
    case 'bzip2':
      return runCli('bzip2', ['-c', `-${level}`], data, Number.MAX_SAFE_INTEGER);
    case 'none':
      return data;
  }
}

/** Upper bound of an LZ4 frame's output, from its block structure, without decompressing. */
function lz4Bound(src: Buffer): number {
  if (src.length < 7 || src.readUInt32LE(0) !== 0x184d2204)
    throw new CodecError('not an LZ4 frame', 'corrupt');
  const flg = src[4] ?? 0;
  const bd = src[5] ?? 0;
  const blockMax = [0, 0, 0, 0, 65536, 262144, 1048576, 4194304][(bd >> 4) & 7] ?? 0;
  if (blockMax === 0) throw new CodecError('LZ4 frame has an invalid block size', 'corrupt');
  let pos = 6 + (flg & 0x08 ? 8 : 0) + (flg & 0x01 ? 4 : 0) + 1;
  let blocks = 0;
  for (;;) {
    if (pos + 4 > src.length) throw new CodecError('LZ4 frame is truncated', 'corrupt');
    const raw = src.readUInt32LE(pos);
    pos += 4;
    if (raw === 0) break;
    pos += (raw & 0x7fffffff) + (flg & 0x10 ? 4 : 0);
    blocks++;
  }
  pos += flg & 0x04 ? 4 : 0;
  if (pos !== src.length) throw new CodecError('LZ4 frame has trailing data', 'corrupt');
  return blocks * blockMax;
}

function checkSize(out: Buffer, expected: number): Buffer {
  if (out.length > expected) throw new CodecError(`frame inflates past its declared size`, 'too-large');
  if (out.length < expected)
    throw new CodecError(`frame inflates to ${out.length} bytes, expected ${expected}`, 'too-small');
  return out;
}

/**
 * Decompresses one frame into exactly `expected` bytes. With `out` (at least `expected` bytes long),
 * zstd decompresses into it and returns a view of it; otherwise into a new buffer.
 */
export async function decompressFrame(
  alg: Compression,
  data: Buffer,
  expected: number,
  out?: Buffer,
): Promise<Buffer> {
  try {
    switch (alg) {
      case 'zstd': {
        // The destination is exactly the declared size: a frame that inflates past it fails here.
        const dst = out && out.length >= expected ? out.subarray(0, expected) : Buffer.allocUnsafe(expected);
        const n = (zstdDCtx ??= new (loadZstdBinding().DCtx)()).decompress(dst, data);
        return checkSize(dst.subarray(0, n), expected);
      }
      case 'gzip':
        return checkSize(zlib().gunzipSync(data, { maxOutputLength: expected + 1 }), expected);
      case 'lz4': {
        if (lz4Bound(data) > expected + 4 * 1048576) {
          throw new CodecError('frame inflates past its declared size', 'too-large');
        }
        return checkSize(loadLz4().decompressFrameSync(data), expected);
      }
      case 'xz':
        return checkSize(
          await streamCapped(loadLzma().createStream('autoDecoder'), inPlainMemory(data), expected),
          expected,
        );
      case 'bzip2':
        return checkSize(await runCli('bzip2', ['-dc'], data, expected), expected);
      case 'none':
        return checkSize(data, expected);
    }
  } catch (err) {
    if (err instanceof CodecError) throw err;
    const msg = (err as Error).message;
    if (/too small|buffer|maxOutputLength|Cannot create a Buffer larger/i.test(msg)) {
      throw new CodecError('frame inflates past its declared size', 'too-large');
    }
    throw new CodecError(`cannot decompress ${alg} frame: ${msg}`, 'corrupt');
  }
}

function streamCapped(stream: NodeJS.ReadWriteStream, data: Buffer, cap: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let done = false;
    stream.on('data', (c: Buffer) => {
      total += c.length;
      if (total > cap && !done) {
        done = true;
        reject(new CodecError('frame inflates past its declared size', 'too-large'));
        (stream as unknown as { destroy?: () => void }).destroy?.();
        return;
      }
      chunks.push(c);
    });
    stream.on('error', (err: Error) => {
      if (!done) {
        done = true;
        reject(new CodecError(`cannot decompress frame: ${err.message}`, 'corrupt'));
      }
    });
    stream.on('end', () => {
      if (!done) {
        done = true;
        resolve(Buffer.concat(chunks));
      }
    });
    stream.end(data);
  });
}
