/**
 * One interface for every place releases live: the local filesystem, S3-compatible buckets, the
 * registry server (and later OCI). Drivers are plain objects made by factories. Keys are relative,
 * '/'-separated paths; drivers refuse keys with '..' or empty segments.
 */
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  key: string;
  size: number;
  etag?: string | undefined;
}

export interface PutOptions {
  /** Create only if absent (If-None-Match: *). Returns 'exists' instead of overwriting. */
  ifNoneMatch?: boolean;
  /** Compare-and-swap: replace only if the current etag matches. */
  ifMatch?: string;
  /**
   * The sha256 (hex) of the bytes, when the caller already knows it (putFileRange): S3 signs the
   * request with it and the server refuses other bytes; drivers that do not need it ignore it.
   */
  sha256?: string;
}

export type PutResult =
  { status: 'created' | 'replaced'; etag?: string | undefined } | { status: 'exists' | 'conflict' };

export interface Store {
  /** Driver name, for messages: "filesystem", "s3", ... */
  readonly driver: string;
  /** Where the store is, for messages (never containing credentials). */
  readonly location: string;
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Reads a whole (small) object; undefined if absent. */
  get(key: string): Promise<Buffer | undefined>;
  /** Reads a byte range [offset, offset+length) of an object. */
  getRange(key: string, offset: number, length: number): Promise<Buffer>;
  /** Streams an object (or a range of it). */
  getStream(key: string, range?: { offset: number; length: number }): Promise<Readable>;
  put(key: string, data: Buffer | string, options?: PutOptions): Promise<PutResult>;
  /** Uploads a local file (streaming; drivers may link or use multipart). */
  putFile(key: string, path: string, options?: PutOptions): Promise<PutResult>;
  /**
   * Uploads the bytes [offset, offset+length) of a local file (streaming). Optional: see
   * putFileRange() in src/store/util.ts for the fallback over putFile.
   */
  putFileRange?(
    key: string,
    path: string,
    range: { offset: number; length: number },
    options?: PutOptions,
  ): Promise<PutResult>;
  list(prefix: string): Promise<ObjectInfo[]>;
  delete(key: string): Promise<void>;
  /** A local path of the object, when the store is on this machine (lets deploy avoid copies). */
  localPath?(key: string): string;
}

export function checkKey(driver: string, key: string): string {
  if (
    !key ||
    key.startsWith('/') ||
    key.split('/').some((p) => p === '' || p === '.' || p === '..') ||
    key.includes('\0')
  ) {
    throw new Error(`[${driver}] invalid key "${key}"`);
  }
  return key;
}
