/**
 * Mixed stores: `deploy.components` of .deploy-tool.yaml maps a component type to the `stores:`
 * entry it lives in. Publishing a release puts (or finds) each routed component in its store and
 * the rest where the command says; deploying reads each routed component from its store (and that
 * store's mirrors), the rest from the command's source. See docs/formats.md, "Mixed stores".
 */
import type { ProjectConfig } from '../core/config.js';
import { DeployToolError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import { sha256Hex } from '../core/hash.js';
import type { ComponentRef } from '../core/validate.js';
import type { ComponentManifest } from '../manifest/component.js';
import type { ReleaseComponent } from '../manifest/release.js';
import { keys, publishComponent } from './bucket.js';
import { resolveStore, type ResolvedStore } from './resolve.js';

/** Component type -> store name, without the entries that name `exclude` (the command's own store). */
export function componentRoutes(config: ProjectConfig | undefined, exclude?: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [type, store] of Object.entries(config?.deploy?.components ?? {})) {
    if (store === exclude) continue;
    if (!config?.stores?.[store]) {
      const known = Object.keys(config?.stores ?? {});
      throw new DeployToolError(
        'ERR_CONFIG_INVALID',
        `deploy.components.${type} names store "${store}", which is not under "stores:"`,
        {
          hint: known.length
            ? `Known stores: ${known.join(', ')}.`
            : `Add stores.${store} (type s3, bos, filesystem or registry) to .deploy-tool.yaml.`,
        },
      );
    }
    out.set(type, store);
  }
  return out;
}

export interface RoutedComponent {
  type: string;
  version: string;
  /** The `stores:` name and where it is. */
  store: string;
  location: string;
  bytesUploaded: number;
  bytesReused: number;
}

/**
 * Publishes the routed components of a release to their stores (content-addressed: nothing is
 * sent that is already there). A registry store is only checked: the component must have been
 * published to it (deploy-tool publish --component T:V --store NAME).
 */
export async function publishRoutedComponents(
  items: {
    ref: ComponentRef;
    manifest: ComponentManifest;
    text: string;
    archivePath: string;
    entry: ReleaseComponent;
    earlier?: (() => Promise<ComponentManifest[]>) | undefined;
  }[],
  routes: Map<string, string>,
  ctx: { config: ProjectConfig; baseDir: string },
  o: Reporter,
): Promise<RoutedComponent[]> {
  const out: RoutedComponent[] = [];
  const resolved = new Map<string, ResolvedStore>();
  for (const c of items) {
    const name = routes.get(c.ref.type);
    if (!name) continue;
    let r = resolved.get(name);
    if (!r) {
      r = resolveStore({ store: name }, ctx);
      resolved.set(name, r);
    }
    const id = `${c.ref.type}:${c.ref.version}`;
    if (r.type === 'registry') {
      const have = await r.store.get(keys.component(c.ref.type, c.ref.version));
      if (!have || sha256Hex(have) !== sha256Hex(c.text)) {
        throw new DeployToolError(
          'ERR_COMPONENT_NOT_FOUND',
          `${id} is ${have ? 'published with other content' : 'not published'} in store "${name}" (${r.store.location})`,
          {
            hint: have
              ? 'Published versions are immutable: pack the change under a new --version.'
              : `Publish it there first: deploy-tool publish --component ${id} --store ${name}`,
          },
        );
      }
      out.push({ ...c.ref, store: name, location: r.store.location, bytesUploaded: 0, bytesReused: 0 });
      continue;
    }
    o.onLog?.(`${id} lives in store "${name}": publishing it to ${r.store.location}`);
    const res = await publishComponent(r.store, c, o);
    out.push({
      ...c.ref,
      store: name,
      location: r.store.location,
      bytesUploaded: res.bytesUploaded,
      bytesReused: res.bytesReused,
    });
  }
  return out;
}
