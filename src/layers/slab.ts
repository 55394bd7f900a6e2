/**
 * Copies of small values carved out of shared slabs, the way Node's `Buffer.allocUnsafe` pools
 * small buffers: allocating an ArrayBuffer per copy costs microseconds (a backing store per
 * buffer, tracked by the GC), a view into a slab about a tenth of that. The cache hands out
 * one fresh copy per hit, so this is its hot path.
 *
 * Each copy is a plain Uint8Array over its own byte range: writing to it never touches
 * another copy or the cached value. Like a pooled Buffer, its `.buffer` is the larger slab; code
 * that reaches through `.buffer` must use `byteOffset` and `byteLength`, as it must for any view.
 */
const SLAB_BYTES = 64 * 1024;
/** Values above this get an ArrayBuffer of their own (a slab would pin too much memory). */
export const SLAB_MAX_COPY = 4 * 1024;

let slab = new ArrayBuffer(SLAB_BYTES);
let used = 0;

/** A fresh copy of `data` as a plain Uint8Array. */
export function copyBytes(data: Uint8Array): Uint8Array {
  const size = data.byteLength;
  if (size > SLAB_MAX_COPY) return new Uint8Array(data);
  if (used + size > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    used = 0;
  }
  const copy = new Uint8Array(slab, used, size);
  copy.set(data);
  // Keep copies 8-byte aligned so a caller may view them as wider typed arrays when sizes allow.
  used += (size + 7) & ~7;
  return copy;
}
