/**
 * The tar layer of the archive format. Headers are encoded and decoded with node-tar's Header and
 * Pax classes; the layout (which bytes go where) is ours, so that the index can describe it exactly.
 *
 * TarChecker consumes the uncompressed stream in order and proves that it equals the index: every
 * header at its declared offset, with the declared path, type, mode, size and link target, no extra,
 * missing or duplicate entries, no PAX records other than path/linkpath, zero padding between
 * entries and at the end. It hashes each file's data as it passes and hands it to a sink (which
 * extracts it, or does nothing when only checking).
 */
import { createHash, type Hash } from 'node:crypto';
import { Header } from 'tar/header';
import { Pax } from 'tar/pax';
import type { Entry, FileEntry } from '../manifest/component.js';

export const BLOCK = 512;
export const roundUp512 = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;
const EPOCH = new Date(0);

export interface PlannedEntry {
  path: string;
  type: Entry['type'];
  mode: number;
  size: number;
  target?: string;
}

/** Header bytes (an optional PAX extended header, then the ustar header) of one entry. */
export function encodeHeader(e: PlannedEntry): Buffer {
  const headerPath = e.type === 'directory' ? `${e.path}/` : e.path;
  const data = {
    path: headerPath,
    mode: e.mode,
    uid: 0,
    gid: 0,
    size: e.type === 'file' ? e.size : 0,
    mtime: EPOCH,
    type: e.type === 'file' ? 'File' : e.type === 'directory' ? 'Directory' : 'SymbolicLink',
    linkpath: e.target ?? '',
    uname: '',
    gname: '',
  } as const;
  const h = new Header(data);
  const needPax = h.encode();
  const block = h.block;
  if (!block) throw new Error('tar header encoding failed');
  if (!needPax) return Buffer.from(block);
  const paxFields: { path: string; linkpath?: string } = { path: headerPath };
  if (e.target) paxFields.linkpath = e.target;
  const pax = new Pax(paxFields).encode();
  return Buffer.concat([pax, block]);
}

export class TarFormatError extends Error {
  constructor(
    message: string,
    readonly entryPath?: string,
  ) {
    super(message);
    this.name = 'TarFormatError';
  }
}

export interface EntrySink {
  /** Called when an entry's header has been checked. */
  start?(entry: Entry): Promise<void> | void;
  /** Called with each piece of a file's data, in order. */
  data?(entry: FileEntry, chunk: Buffer): Promise<void> | void;
  /** Called when an entry is complete, with the sha256 of a file's data. */
  end?(entry: Entry, sha256: string | undefined): Promise<void> | void;
}

/** Parses PAX records ("LEN key=value\n"); only path and linkpath are allowed in our archives. */
function parsePax(body: Buffer, where: string): { path?: string; linkpath?: string } {
  const out: { path?: string; linkpath?: string } = {};
  let pos = 0;
  while (pos < body.length) {
    if (body[pos] === 0) {
      if (body.subarray(pos).every((b) => b === 0)) break;
      throw new TarFormatError(`malformed PAX header at ${where}`);
    }
    const space = body.indexOf(0x20, pos);
    if (space < 0 || space - pos > 10) throw new TarFormatError(`malformed PAX header at ${where}`);
    const len = Number(body.toString('latin1', pos, space));
    if (!Number.isInteger(len) || len <= 0 || pos + len > body.length || body[pos + len - 1] !== 0x0a) {
      throw new TarFormatError(`malformed PAX record at ${where}`);
    }
    const rec = body.toString('utf8', space + 1, pos + len - 1);
    const eq = rec.indexOf('=');
    if (eq <= 0) throw new TarFormatError(`malformed PAX record at ${where}`);
    const key = rec.slice(0, eq);
    const value = rec.slice(eq + 1);
    if (key === 'path') out.path = value;
    else if (key === 'linkpath') out.linkpath = value;
    else throw new TarFormatError(`unexpected PAX record "${key}" at ${where} (not in the index)`);
    pos += len;
  }
  return out;
}

/** The size field as written (node-tar reports 0 for any folder); -1 when it is not plain octal. */
function rawSizeField(block: Buffer): number {
  const text = block.toString('latin1', 124, 136).replace(/[\0 ]+$/, '');
  if (text === '') return 0;
  return /^[0-7]+$/.test(text) ? parseInt(text, 8) : -1;
}

/** Names the entry when stray trailing data is a whole ustar header (a tar entry the index omits). */
function strayHeader(chunk: Buffer, i: number, at: number): string {
  if (at % 512 !== 0 || chunk.length - i < 512) return '';
  const block = chunk.subarray(i, i + 512);
  if (block.toString('latin1', 257, 262) !== 'ustar') return '';
  const end = block.indexOf(0);
  const name = block.toString('utf8', 0, end >= 0 && end < 100 ? end : 100);
  return `: a tar header for ${JSON.stringify(name)} that the index does not list`;
}

type State =
  | { kind: 'header' }
  | { kind: 'pax'; remaining: number; padded: number }
  | { kind: 'data'; entry: FileEntry; remaining: number; hash: Hash }
  | { kind: 'padding'; remaining: number }
  | { kind: 'trailer' };

export interface TarCheckerOptions {
  /** Compare each file's sha256 with the index (deploy); off when the index is being filled (pack). */
  checkDigests: boolean;
  /** Compute the sha256 of the whole uncompressed stream. */
  hashTar?: boolean;
  sink?: EntrySink;
}

export class TarChecker {
  private pos = 0;
  private index = 0;
  private state: State = { kind: 'header' };
  private buf: Buffer[] = [];
  private bufLen = 0;
  private pax: { path?: string; linkpath?: string } | undefined;
  private paxChunks: Buffer[] = [];
  private readonly tarHash: Hash | undefined;
  readonly digests = new Map<string, string>();

  constructor(
    private readonly entries: readonly Entry[],
    private readonly tarSize: number,
    private readonly options: TarCheckerOptions,
  ) {
    this.tarHash = options.hashTar ? createHash('sha256') : undefined;
  }

  get position(): number {
    return this.pos;
  }

  async push(chunk: Buffer): Promise<void> {
    if (this.pos + chunk.length > this.tarSize) {
      throw new TarFormatError(`tar stream is longer than the declared ${this.tarSize} bytes`);
    }
    this.tarHash?.update(chunk);
    let off = 0;
    while (off < chunk.length) {
      const st = this.state;
      if (st.kind === 'data') {
        const n = Math.min(st.remaining, chunk.length - off);
        const piece = chunk.subarray(off, off + n);
        // The sink starts writing the piece, then the piece is hashed while it is written: the
        // bytes hashed are the bytes written (the same memory, which neither changes).
        const written = this.options.sink?.data?.(st.entry, piece);
        st.hash.update(piece);
        if (written) await written;
        st.remaining -= n;
        off += n;
        this.pos += n;
        if (st.remaining === 0) await this.finishFile(st.entry, st.hash);
        continue;
      }
      if (st.kind === 'padding' || st.kind === 'trailer') {
        const n = st.kind === 'padding' ? Math.min(st.remaining, chunk.length - off) : chunk.length - off;
        for (let i = off; i < off + n; i++) {
          if (chunk[i] !== 0) {
            throw new TarFormatError(
              st.kind === 'trailer'
                ? `unexpected data after the last indexed entry at tar offset ${this.pos + (i - off)}${strayHeader(chunk, i, this.pos + (i - off))}`
                : `non-zero padding at tar offset ${this.pos + (i - off)}`,
            );
          }
        }
        off += n;
        this.pos += n;
        if (st.kind === 'padding') {
          st.remaining -= n;
          if (st.remaining === 0) this.state = { kind: 'header' };
        }
        continue;
      }
      // header or pax: need whole blocks
      const need = st.kind === 'header' ? BLOCK : st.padded - this.bufLen;
      if (st.kind === 'header' && this.bufLen === 0 && this.index >= this.entries.length) {
        this.state = { kind: 'trailer' };
        continue;
      }
      const take = Math.min(need - (st.kind === 'header' ? this.bufLen : 0), chunk.length - off);
      this.buf.push(chunk.subarray(off, off + take));
      this.bufLen += take;
      off += take;
      if (st.kind === 'header' && this.bufLen === BLOCK) {
        const block = Buffer.concat(this.buf);
        this.buf = [];
        this.bufLen = 0;
        await this.onHeader(block);
      } else if (st.kind === 'pax' && this.bufLen === st.padded) {
        const body = Buffer.concat(this.buf).subarray(0, st.remaining);
        this.buf = [];
        this.bufLen = 0;
        this.pax = parsePax(body, `tar offset ${this.pos}`);
        this.pos += st.padded;
        this.state = { kind: 'header' };
      }
    }
  }

  private async onHeader(block: Buffer): Promise<void> {
    const headerPos = this.pos;
    this.pos += BLOCK;
    const expected = this.entries[this.index];
    if (!expected) throw new TarFormatError('internal: header past the last entry');
    if (this.pax === undefined && headerPos !== expected.header) {
      throw new TarFormatError(
        `entry "${expected.path}" should start at tar offset ${expected.header}, found a header at ${headerPos}`,
        expected.path,
      );
    }
    if (block.every((b) => b === 0)) {
      throw new TarFormatError(`archive ends before entry "${expected.path}" (missing entry)`, expected.path);
    }
    const h = new Header(block, 0);
    if (!h.cksumValid)
      throw new TarFormatError(`bad tar header checksum at tar offset ${headerPos}`, expected.path);
    const type = h.type;
    if (type === 'ExtendedHeader') {
      if (this.pax !== undefined)
        throw new TarFormatError(`two PAX headers in a row at tar offset ${headerPos}`);
      if (headerPos !== expected.header) {
        throw new TarFormatError(
          `entry "${expected.path}" should start at tar offset ${expected.header}`,
          expected.path,
        );
      }
      const size = h.size ?? 0;
      if (size <= 0 || size > 65536)
        throw new TarFormatError(`PAX header of unreasonable size at ${headerPos}`);
      this.state = { kind: 'pax', remaining: size, padded: roundUp512(size) };
      return;
    }
    const pax = this.pax ?? {};
    this.pax = undefined;
    const rawPath = pax.path ?? h.path ?? '';
    // The raw typeflag, not node-tar's interpretation (which turns "0" plus a trailing slash into a
    // folder and reads a folder's size as 0): only the three flags we write are accepted.
    const flag = String.fromCharCode(block[156] ?? 0);
    const typeName =
      flag === '0' ? 'file' : flag === '5' ? 'directory' : flag === '2' ? 'symlink' : undefined;
    if (!typeName) {
      throw new TarFormatError(
        `entry "${rawPath}" has unsupported type ${String(type)} (only files, folders and symlinks are allowed)`,
        rawPath,
      );
    }
    const path = typeName === 'directory' ? rawPath.replace(/\/$/, '') : rawPath;
    if (path !== expected.path) {
      throw new TarFormatError(`tar entry "${path}" does not match index entry "${expected.path}"`, path);
    }
    if (typeName !== expected.type) {
      throw new TarFormatError(`tar entry "${path}" is a ${typeName}, the index says ${expected.type}`, path);
    }
    const mode = (h.mode ?? 0) & 0o7777;
    if (mode.toString(8).padStart(4, '0') !== expected.mode) {
      throw new TarFormatError(
        `tar entry "${path}" has mode ${mode.toString(8)}, the index says ${expected.mode}`,
        path,
      );
    }
    const size = typeName === 'file' ? (h.size ?? 0) : rawSizeField(block);
    if (expected.type === 'symlink') {
      const target = pax.linkpath ?? h.linkpath ?? '';
      if (target !== expected.target)
        throw new TarFormatError(`symlink "${path}" target does not match the index`, path);
    }
    if (expected.type === 'file') {
      if (size !== expected.size) {
        throw new TarFormatError(
          `tar entry "${path}" has ${size} bytes, the index says ${expected.size}`,
          path,
        );
      }
      if (this.pos !== expected.offset) {
        throw new TarFormatError(
          `data of "${path}" starts at ${this.pos}, the index says ${expected.offset}`,
          path,
        );
      }
    } else if (size !== 0) {
      throw new TarFormatError(`tar entry "${path}" is a ${typeName} with data`, path);
    }
    this.index++;
    if (this.options.sink?.start) await this.options.sink.start(expected);
    if (expected.type === 'file') {
      const hash = createHash('sha256');
      if (expected.size === 0) await this.finishFile(expected, hash);
      else this.state = { kind: 'data', entry: expected, remaining: expected.size, hash };
    } else {
      if (this.options.sink?.end) await this.options.sink.end(expected, undefined);
      this.state = { kind: 'header' };
    }
  }

  private async finishFile(entry: FileEntry, hash: Hash): Promise<void> {
    const digest = hash.digest('hex');
    if (this.options.checkDigests && digest !== entry.sha256) {
      throw new TarFormatError(
        `file "${entry.path}" has sha256 ${digest}, the manifest says ${entry.sha256}`,
        entry.path,
      );
    }
    this.digests.set(entry.path, digest);
    if (this.options.sink?.end) await this.options.sink.end(entry, digest);
    const pad = roundUp512(entry.size) - entry.size;
    this.state = pad > 0 ? { kind: 'padding', remaining: pad } : { kind: 'header' };
  }

  /** Checks that the stream ended where it should; returns the sha256 of the tar if requested. */
  finish(): string | undefined {
    if (this.pos !== this.tarSize) {
      throw new TarFormatError(`tar stream ended at ${this.pos} bytes, the index says ${this.tarSize}`);
    }
    if (this.index !== this.entries.length) {
      throw new TarFormatError(`archive has ${this.index} entries, the index lists ${this.entries.length}`);
    }
    if (this.state.kind !== 'trailer' && this.state.kind !== 'header') {
      throw new TarFormatError('archive is truncated');
    }
    return this.tarHash?.digest('hex');
  }
}
