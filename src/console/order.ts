/**
 * Keys in the order the stores list them: byte order of their UTF-8 encoding, which is code
 * point order (JavaScript's `<` compares UTF-16 units and puts some characters elsewhere).
 */
export function compareKeys(a: string, b: string): number {
  const left = a[Symbol.iterator]();
  const right = b[Symbol.iterator]();
  for (;;) {
    const x = left.next();
    const y = right.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const difference = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (difference !== 0) return difference;
  }
}

/** Where `name` goes in the sorted `names` (binary search). */
export function insertionIndex(names: readonly string[], name: string): number {
  let low = 0;
  let high = names.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareKeys(names[middle]!, name) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}
