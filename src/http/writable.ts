import type { ServerResponse } from "node:http";

/**
 * Resolves when `res` can take more (`drain`) or is gone (`close`), and removes both listeners
 * either way: a long body waits many times, and listeners left behind would pile up.
 */
export function writable(res: ServerResponse): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
