import type { LayerOptions, StoreUrl } from "../open.js";
import type { Store } from "../types.js";

/**
 * Stacks the layers named in `openStore`'s options on a freshly opened backend.
 * (Filled in by the layers module: cache, metrics, retry, timeout.)
 */
export async function applyLayers(store: Store, _options: LayerOptions, _target: StoreUrl): Promise<Store> {
  return store;
}
