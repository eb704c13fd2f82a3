/** An ArchiveSource over any Store object: a local file when the store has one, else range reads. */
import { openLocalArchive, type ArchiveSource } from '../archive/reader.js';
import { DeployToolError } from '../core/errors.js';
import type { Store } from '../store/types.js';

export async function openStoreArchive(store: Store, key: string): Promise<ArchiveSource> {
  const local = store.localPath?.(key);
  if (local) return openLocalArchive(local);
  const info = await store.head(key);
  if (!info) {
    throw new DeployToolError(
      'ERR_ARCHIVE_MISSING',
      `Archive not found: [${store.driver}] ${store.location} ${key}`,
      {
        hint: 'Publish the release again, or check the store location.',
      },
    );
  }
  return {
    location: `[${store.driver}] ${store.location}/${key}`,
    size: () => Promise.resolve(info.size),
    read: (offset, length) => store.getRange(key, offset, length),
    close: () => Promise.resolve(),
  };
}
