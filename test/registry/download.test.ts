/**
 * The content download path over the embedded default (filesystem store + SQLite), with an archive
 * several read chunks long and not a multiple of one: every byte of full, ranged and concurrent
 * downloads is right, the bytes and downloads recorded (stats, metrics) are exact, and a client
 * going away mid-download leaves the server serving correct content.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/registry/server/serve.js';
import { cleanupTempDirs, noise } from '../helpers/cli.js';
import {
  apiPublishComponent,
  BOOTSTRAP,
  packedProject,
  request,
  startRegistry,
  type PackedComponent,
} from './helpers.js';

let srv: RunningServer & { dataDir: string; logs: string[] };
let base: string;
let c: PackedComponent;
const A = BOOTSTRAP;
const NS = 'test-project';
const MiB = 1024 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const archivePath = `/api/v1/namespaces/${NS}/components/model/1.0.0/archive`;

beforeAll(async () => {
  const p = await packedProject([['./models', 'model', '1.0.0']], {
    'models/weights.bin': noise(5 * MiB + 4321, 11),
  });
  c = p.components[0]!;
  srv = await startRegistry();
  base = srv.url;
  const r = await apiPublishComponent(base, A, NS, c);
  expect(r.status).toBe(201);
});
afterAll(async () => {
  await srv?.close();
  await cleanupTempDirs();
});

async function modelStats(): Promise<{ downloads: number; bytes: number }> {
  const s = await request(base, 'GET', '/api/v1/stats', { token: A });
  const row = s.json.components.find((x: { type: string }) => x.type === 'model');
  return { downloads: row?.downloads ?? 0, bytes: row?.bytes ?? 0 };
}

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{namespace="${NS}",type="model"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('content download', () => {
  it('serves a multi-chunk archive byte for byte, alone and to 8 clients at once, and records exact bytes', async () => {
    const size = c.archive.length;
    expect(size).toBeGreaterThan(5 * MiB);
    expect(size % MiB).not.toBe(0);
    const one = await request(base, 'GET', archivePath, { token: A });
    expect(one.status).toBe(200);
    expect(one.headers['content-length']).toBe(String(size));
    expect(sha(one.body)).toBe(c.archiveSha256);

    const many = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        request(base, 'GET', i % 2 ? archivePath : `/api/v1/blobs/${c.archiveSha256}`, { token: A }),
      ),
    );
    for (const r of many) {
      expect(r.status).toBe(200);
      expect(sha(r.body)).toBe(c.archiveSha256);
    }
    // The blob route counts as an archive download too (the content belongs to model:1.0.0).
    expect(await modelStats()).toEqual({ downloads: 9, bytes: 9 * size });
    const m = await request(base, 'GET', '/metrics', { token: A });
    expect(metric(m.text, 'deploy_tool_registry_downloads_total')).toBe(9);
    expect(metric(m.text, 'deploy_tool_registry_download_bytes_total')).toBe(9 * size);
  });

  it('serves ranges across chunk boundaries exactly; continuations add bytes, not downloads', async () => {
    const size = c.archive.length;
    const before = await modelStats();
    const cases: [string, number, number][] = [
      [`bytes=${MiB - 7}-${3 * MiB + 9}`, MiB - 7, 3 * MiB + 9],
      [`bytes=${size - 1}-`, size - 1, size - 1],
      ['bytes=-4321', size - 4321, size - 1],
      [`bytes=${2 * MiB}-${4 * MiB - 1}`, 2 * MiB, 4 * MiB - 1],
    ];
    let bytes = 0;
    for (const [range, start, end] of cases) {
      const r = await request(base, 'GET', archivePath, { token: A, headers: { range } });
      expect(r.status, range).toBe(206);
      expect(r.headers['content-range'], range).toBe(`bytes ${start}-${end}/${size}`);
      expect(r.headers['content-length'], range).toBe(String(end - start + 1));
      expect(r.body.equals(c.archive.subarray(start, end + 1)), range).toBe(true);
      bytes += end - start + 1;
    }
    const after = await modelStats();
    expect(after.downloads).toBe(before.downloads);
    expect(after.bytes - before.bytes).toBe(bytes);
  });

  it('a client going away mid-download: partial bytes recorded, later downloads still exact', async () => {
    const size = c.archive.length;
    const before = await modelStats();
    const u = new URL(base);
    const received = await new Promise<number>((resolve, reject) => {
      const req = http.get(
        { host: u.hostname, port: u.port, path: archivePath, headers: { authorization: `Bearer ${A}` } },
        (res) => {
          let n = 0;
          res.on('data', (chunk: Buffer) => {
            n += chunk.length;
            if (n >= MiB) {
              req.destroy();
              resolve(n);
            }
          });
          res.on('error', () => undefined);
        },
      );
      req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    });
    expect(received).toBeGreaterThanOrEqual(MiB);
    // The server records the download once it notices the client left.
    let after = before;
    for (let i = 0; i < 100 && after.downloads === before.downloads; i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = await modelStats();
    }
    expect(after.downloads).toBe(before.downloads + 1);
    const partial = after.bytes - before.bytes;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(size);

    const again = await Promise.all(
      Array.from({ length: 3 }, () => request(base, 'GET', archivePath, { token: A })),
    );
    for (const r of again) expect(sha(r.body)).toBe(c.archiveSha256);
    const ready = await request(base, 'GET', '/healthz');
    expect(ready.status).toBe(200);
  });
});
