import { BaseStore, type CleanBatchEntry, type CleanDeleteOptions, type CleanFolderOptions, type CleanListPageOptions, type CleanPutOptions, type CleanWriteOptions } from "../store.js";
import type {
  Capabilities,
  ChangeEvent,
  GetOptions,
  ListPage,
  ObjectInfo,
  OperationOptions,
  Store,
  VersionInfo,
} from "../types.js";

/**
 * The base of every layer: a {@link BaseStore} whose narrow methods forward to the store it
 * wraps. A layer overrides only what it intercepts; everything else passes through, and the
 * capabilities are the inner store's (a layer that changes what the store can do overrides
 * `capabilities`).
 *
 * Validation happens once per stack: the outermost layer's public method validates, and a
 * layer whose inner store is also a layer calls that layer's narrow method directly (already
 * clean arguments, same signal) instead of its public one. Only the last hop, into a backend
 * or any other `Store`, goes through a public method, so the backend's own checks and error
 * classification still apply.
 *
 * Closing a layer closes the store it wraps: a stack is closed from the outside.
 */
export abstract class LayerStore extends BaseStore {
  readonly capabilities: Readonly<Capabilities>;
  /** The wrapped store. */
  readonly inner: Store;

  constructor(inner: Store) {
    super();
    this.inner = inner;
    this.capabilities = inner.capabilities;
  }

  protected override _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._put(key, data, options) : inner.put(key, data, options);
  }

  protected override _get(key: string, options: GetOptions): Promise<Uint8Array> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._get(key, options) : inner.get(key, options);
  }

  protected override _list(prefix: string, options: OperationOptions): Promise<string[]> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._list(prefix, options) : inner.list(prefix, options);
  }

  protected override _delete(key: string, options: CleanDeleteOptions): Promise<void> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._delete(key, options) : inner.delete(key, options);
  }

  protected override _close(): Promise<void> {
    return this.inner.close();
  }

  protected override _stat(key: string, options: OperationOptions): Promise<ObjectInfo> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._stat(key, options) : inner.stat(key, options);
  }

  protected override _versions(key: string, options: OperationOptions): Promise<VersionInfo[]> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._versions(key, options) : inner.versions(key, options);
  }

  protected override _putStream(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._putStream(key, source, options) : inner.putStream(key, source, options);
  }

  protected override _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._getStream(key, options) : inner.getStream(key, options);
  }

  protected override _listPage(prefix: string, options: CleanListPageOptions): Promise<ListPage> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._listPage(prefix, options) : inner.listPage(prefix, options);
  }

  protected override _listFolder(prefix: string, options: CleanFolderOptions): Promise<ListPage> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._listFolder(prefix, options) : inner.listPage(prefix, options);
  }

  protected override _putMany(entries: CleanBatchEntry[], options: CleanWriteOptions): Promise<void> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._putMany(entries, options) : inner.putMany(entries, options);
  }

  protected override _getMany(keys: string[], options: OperationOptions): Promise<(Uint8Array | undefined)[]> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._getMany(keys, options) : inner.getMany(keys, options);
  }

  protected override _deleteMany(keys: string[], options: CleanWriteOptions): Promise<void> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._deleteMany(keys, options) : inner.deleteMany(keys, options);
  }

  protected override _watch(prefix: string, options: OperationOptions): Promise<AsyncIterable<ChangeEvent>> {
    const inner = this.inner;
    return inner instanceof LayerStore ? inner._watch(prefix, options) : inner.watch(prefix, options);
  }
}

/**
 * The first layer of class `type` in the stack under (and including) `store`, following
 * `inner`; undefined when there is none. Lets `withMetrics` find a cache beneath it.
 */
export function findLayer<T extends LayerStore>(store: Store, type: abstract new (...args: never[]) => T): T | undefined {
  for (let s: Store | undefined = store; s; s = s instanceof LayerStore ? s.inner : undefined) {
    if (s instanceof type) return s;
  }
  return undefined;
}

/** The store at the bottom of a stack of layers (the backend). */
export function innermost(store: Store): Store {
  let s = store;
  while (s instanceof LayerStore) s = s.inner;
  return s;
}
