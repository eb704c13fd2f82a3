/**
 * The extraction sink's write paths: with `direct`, large files go to the disk with direct I/O, straight
 * from the caller's page-aligned memory or from the sink's own aligned buffers, and fall back to the
 * page cache for what the kernel refuses (an unaligned buffer, a tail shorter than a block); either
 * way the file holds exactly the bytes given, in order, even when the caller reuses its memory as
 * soon as each piece's promise resolves.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExtractSink, directIoEnabled } from '../../src/archive/extract.js';
import type { FileEntry } from '../../src/manifest/component.js';
import { sha256 } from './fixtures.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dt-sink-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const MiB = 1024 * 1024;

/** A page-aligned shared buffer (a shared WebAssembly.Memory starts on a page boundary). */
function aligned(size: number): Buffer {
  const pages = Math.ceil(size / 65536);
  const { WebAssembly: wasm } = globalThis as unknown as {
    WebAssembly: {
      Memory: new (d: { initial: number; maximum: number; shared: boolean }) => { buffer: ArrayBuffer };
    };
  };
  const mem = new wasm.Memory({ initial: pages, maximum: pages, shared: true });
  return Buffer.from(mem.buffer, 0, size);
}

function pattern(buf: Buffer, seed: number): Buffer {
  for (let i = 0; i < buf.length; i++) buf[i] = ((i + seed) * 2654435761) >>> 24;
  return buf;
}

describe('createExtractSink writes large files exactly', () => {
  it.each([
    ['direct', true],
    ['buffered', false],
  ] as const)('%s: aligned pieces, an unaligned piece and a short tail', async (name, direct) => {
    const out = join(root, name);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(out);
    // 2 MiB aligned, then 1 MiB + 100 bytes from an unaligned view, then 2 MiB aligned + 7 bytes.
    const a = pattern(aligned(2 * MiB), 1);
    const raw = Buffer.alloc(MiB + 101);
    const b = pattern(raw.subarray(1), 2);
    const c = pattern(aligned(2 * MiB + 7), 3);
    const data = Buffer.concat([a, b, c]); // a copy: the pieces are overwritten once given
    const entry: FileEntry = {
      path: 'big.bin',
      type: 'file',
      mode: '0644',
      size: data.length,
      sha256: sha256(data),
      header: 0,
      offset: 512,
    };
    const sink = createExtractSink(out, { durable: true, direct });
    await sink.start?.(entry);
    for (const piece of [a, b, c]) {
      await sink.data?.(entry, piece);
      // The caller's buffers are reused once data() resolves (readArchive's slots): what was
      // written must not change with them.
      piece.fill(0x11);
    }
    await sink.end?.(entry, entry.sha256);
    await sink.flush();
    const got = await readFile(join(out, 'big.bin'));
    expect(got.length).toBe(data.length);
    expect(sha256(got)).toBe(sha256(data));
  });
});

describe('directIoEnabled (DEPLOY_TOOL_DIRECT_IO)', () => {
  it.each([
    [undefined, true],
    ['', true],
    ['0', false],
    ['off', false],
    [' No ', false],
    ['false', false],
    ['1', true],
    [' ON ', true],
    ['true', true],
    ['yes', true],
  ] as const)('%s -> %s', (value, expected) => {
    const env: NodeJS.ProcessEnv = value === undefined ? {} : { DEPLOY_TOOL_DIRECT_IO: value };
    expect(directIoEnabled(env)).toBe(expected);
  });
});
