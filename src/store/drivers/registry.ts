/**
 * The registry as a Store. The registry is not a free-form bucket: it validates what it stores.
 * Keys map onto the API like this (see docs/api.md, "Store driver key layout"):
 *
 *   blobs/sha256/HEX  or  blobs/sha256/AA/HEX          -> /api/v1/blobs/HEX (content-addressed)
 *   namespaces/NS/components/TYPE/VERSION/manifest.json -> component manifest (put = publish)
 *   namespaces/NS/releases/RELEASE/release.json         -> release manifest (put = publish)
 *   namespaces/NS/pointers/NAME                          -> {"target": RELEASE}; etag = revision
 *   ...manifest.json.minisig, ...release.json.minisig    -> the detached signature (put = sign)
 *
 * Published versions are immutable on the server: a put of different content answers 'exists'
 * with ifNoneMatch, and throws otherwise. Pointer puts are compare-and-swap (ifMatch/ifNoneMatch).
 */
import { Readable } from 'node:stream';
import { DeployToolError } from '../../core/errors.js';
import { sha256Hex } from '../../core/hash.js';
import { hashFile } from '../../core/hash.js';
import { createRegistryClient, type RegistryClient } from '../../registry/client.js';
import { checkKey, type ObjectInfo, type PutResult, type Store } from '../types.js';

export interface RegistryStoreOptions {
  url?: string;
  token?: string | undefined;
  client?: RegistryClient;
}

type Parsed =
  | { kind: 'blob'; sha256: string }
  | { kind: 'component'; ns: string; type: string; version: string }
  | { kind: 'release'; ns: string; release: string }
  | { kind: 'pointer'; ns: string; name: string }
  | { kind: 'component-signature'; ns: string; type: string; version: string }
  | { kind: 'release-signature'; ns: string; release: string };

function parseKey(key: string): Parsed {
  const p = checkKey('registry', key).split('/');
  const hex = /^[0-9a-f]{64}$/;
  if (p[0] === 'blobs' && p[1] === 'sha256') {
    const sha = p.length === 3 ? p[2] : p.length === 4 ? p[3] : undefined;
    if (sha && hex.test(sha) && (p.length === 3 || p[2] === sha.slice(0, 2)))
      return { kind: 'blob', sha256: sha };
  }
  if (p[0] === 'namespaces' && p[1]) {
    if (p[2] === 'components' && p.length === 6 && p[5] === 'manifest.json' && p[3] && p[4])
      return { kind: 'component', ns: p[1], type: p[3], version: p[4] };
    if (p[2] === 'components' && p.length === 6 && p[5] === 'manifest.json.minisig' && p[3] && p[4])
      return { kind: 'component-signature', ns: p[1], type: p[3], version: p[4] };
    if (p[2] === 'releases' && p.length === 5 && p[4] === 'release.json' && p[3])
      return { kind: 'release', ns: p[1], release: p[3] };
    if (p[2] === 'releases' && p.length === 5 && p[4] === 'release.json.minisig' && p[3])
      return { kind: 'release-signature', ns: p[1], release: p[3] };
    if (p[2] === 'pointers' && p.length === 4 && p[3]) return { kind: 'pointer', ns: p[1], name: p[3] };
  }
  throw new Error(`[registry] key "${key}" is not one the registry stores (see docs/api.md)`);
}

export function createRegistryStore(options: RegistryStoreOptions): Store {
  const client = options.client ?? createRegistryClient({ url: options.url ?? '', token: options.token });

  const get = async (key: string): Promise<Buffer | undefined> => {
    const k = parseKey(key);
    switch (k.kind) {
      case 'blob':
        return client.getBlob(k.sha256);
      case 'component': {
        const t = await client.componentManifestText(k.ns, k.type, k.version);
        return t === undefined ? undefined : Buffer.from(t);
      }
      case 'release': {
        const t = await client.releaseManifestText(k.ns, k.release);
        return t === undefined ? undefined : Buffer.from(t);
      }
      case 'pointer': {
        const p = await client.getPointer(k.ns, k.name);
        return p ? Buffer.from(`${JSON.stringify({ target: p.target })}\n`) : undefined;
      }
      case 'component-signature': {
        const t = await client.componentSignatureText(k.ns, k.type, k.version);
        return t === undefined ? undefined : Buffer.from(t);
      }
      case 'release-signature': {
        const t = await client.releaseSignatureText(k.ns, k.release);
        return t === undefined ? undefined : Buffer.from(t);
      }
    }
  };

  const head = async (key: string): Promise<ObjectInfo | undefined> => {
    const k = parseKey(key);
    if (k.kind === 'blob') {
      const h = await client.headBlob(k.sha256);
      return h ? { key, size: h.size, etag: k.sha256 } : undefined;
    }
    if (k.kind === 'pointer') {
      const p = await client.getPointer(k.ns, k.name);
      return p
        ? {
            key,
            size: Buffer.byteLength(`${JSON.stringify({ target: p.target })}\n`),
            etag: String(p.revision),
          }
        : undefined;
    }
    const data = await get(key);
    return data ? { key, size: data.length, etag: sha256Hex(data) } : undefined;
  };

  const putText = async (
    key: string,
    text: string,
    opts: { ifNoneMatch?: boolean; ifMatch?: string },
  ): Promise<PutResult> => {
    const k = parseKey(key);
    const immutable = async (fn: () => Promise<{ status?: string }>): Promise<PutResult> => {
      try {
        const r = await fn();
        return r.status === 'unchanged' ? { status: 'exists' } : { status: 'created' };
      } catch (err) {
        if (
          opts.ifNoneMatch &&
          err instanceof DeployToolError &&
          (err.code === 'ERR_COMPONENT_EXISTS' || err.code === 'ERR_RELEASE_EXISTS')
        )
          return { status: 'exists' };
        throw err;
      }
    };
    switch (k.kind) {
      case 'blob': {
        if (sha256Hex(text) !== k.sha256)
          throw new Error(`[registry] content of ${key} does not match its sha256`);
        const r = await client.uploadBlob(k.sha256, Buffer.from(text));
        return { status: r.status === 'exists' ? 'exists' : 'created', etag: k.sha256 };
      }
      case 'component':
        return immutable(() => client.putComponent(k.ns, k.type, k.version, text));
      case 'release':
        return immutable(() => client.putRelease(k.ns, k.release, text));
      case 'component-signature':
      case 'release-signature': {
        // Immutable on the server too: another signature where one exists is 'exists' with
        // ifNoneMatch, and an error otherwise (an admin deletes the old one first).
        if (opts.ifNoneMatch) {
          const cur = await get(key);
          if (cur) return { status: 'exists' };
        }
        const r =
          k.kind === 'component-signature'
            ? await client.putComponentSignature(k.ns, k.type, k.version, text)
            : await client.putReleaseSignature(k.ns, k.release, text);
        return { status: r.status === 'unchanged' ? 'exists' : 'created' };
      }
      case 'pointer': {
        let target: string;
        try {
          target = String((JSON.parse(text) as { target: unknown }).target);
        } catch {
          throw new Error('[registry] a pointer is {"target": "RELEASE"}');
        }
        const expected =
          opts.ifMatch !== undefined ? Number(opts.ifMatch) : opts.ifNoneMatch ? null : undefined;
        let rev: number | null;
        if (expected === undefined) {
          const cur = await client.getPointer(k.ns, k.name);
          rev = cur ? cur.revision : null;
        } else rev = expected;
        try {
          const p = await client.setPointer(k.ns, k.name, target, rev);
          return { status: p.revision === 1 ? 'created' : 'replaced', etag: String(p.revision) };
        } catch (err) {
          if (err instanceof DeployToolError && err.code === 'ERR_CONFLICT')
            return opts.ifNoneMatch ? { status: 'exists' } : { status: 'conflict' };
          throw err;
        }
      }
    }
  };

  return {
    driver: 'registry',
    location: client.location,
    head,
    get,
    async getRange(key, offset, length) {
      const k = parseKey(key);
      if (k.kind === 'blob')
        return client.readBlobRange(k.sha256, offset, length, { continuation: offset > 0 });
      const data = await get(key);
      if (!data) throw new Error(`[registry] ${key} not found`);
      return data.subarray(offset, offset + length);
    },
    async getStream(key, range) {
      const k = parseKey(key);
      if (k.kind === 'blob') return client.blobStream(k.sha256, range);
      const data = await get(key);
      if (!data) throw Object.assign(new Error(`[registry] ${key} not found`), { code: 'ENOENT' });
      return Readable.from([range ? data.subarray(range.offset, range.offset + range.length) : data]);
    },
    put(key, data, opts = {}) {
      return putText(key, typeof data === 'string' ? data : data.toString('utf8'), opts);
    },
    async putFile(key, path, opts = {}) {
      const k = parseKey(key);
      if (k.kind !== 'blob') {
        const { readFile } = await import('node:fs/promises');
        return putText(key, await readFile(path, 'utf8'), opts);
      }
      if (opts.ifNoneMatch && (await client.headBlob(k.sha256))) return { status: 'exists' };
      const { sha256 } = await hashFile(path);
      if (sha256 !== k.sha256) throw new Error(`[registry] ${path} does not have sha256 ${k.sha256}`);
      const r = await client.uploadBlobFile(k.sha256, path);
      return { status: r.status === 'exists' ? 'exists' : 'created', etag: k.sha256 };
    },
    async list(prefix) {
      const p = prefix.split('/');
      if (p[0] === 'namespaces' && p[1] && p[2]?.startsWith('components')) {
        const items = await client.listComponents(p[1]);
        return items
          .map((c) => ({
            key: `namespaces/${c.namespace}/components/${c.type}/${c.version}/manifest.json`,
            size: c.manifestSize,
            etag: c.manifestSha256,
          }))
          .filter((o) => o.key.startsWith(prefix));
      }
      if (p[0] === 'namespaces' && p[1] && p[2]?.startsWith('releases')) {
        const items = await client.listReleases(p[1]);
        return items
          .map((r) => ({
            key: `namespaces/${r.namespace}/releases/${r.release}/release.json`,
            size: 0,
            etag: r.manifestSha256,
          }))
          .filter((o) => o.key.startsWith(prefix));
      }
      if (p[0] === 'namespaces' && p[1] && p[2]?.startsWith('pointers')) {
        const items = await client.listPointers(p[1]);
        return items
          .map((x) => ({
            key: `namespaces/${x.namespace}/pointers/${x.name}`,
            size: 0,
            etag: String(x.revision),
          }))
          .filter((o) => o.key.startsWith(prefix));
      }
      throw new Error(`[registry] cannot list "${prefix}": list namespaces/NS/components|releases|pointers`);
    },
    async delete(key) {
      const k = parseKey(key);
      if (k.kind === 'component') return client.deleteComponent(k.ns, k.type, k.version);
      if (k.kind === 'release') return client.deleteRelease(k.ns, k.release);
      if (k.kind === 'component-signature') return client.deleteComponentSignature(k.ns, k.type, k.version);
      if (k.kind === 'release-signature') return client.deleteReleaseSignature(k.ns, k.release);
      throw new Error(`[registry] ${k.kind} objects are not deleted through the store interface`);
    },
  };
}
