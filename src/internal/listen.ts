import type { AddressInfo, Server } from "node:net";

/** Listens on `host:port` (0: a free port); resolves with the address as a URL shows it. */
export async function listenOn(server: Server, port: number, host: string): Promise<{ host: string; port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return { host: address.family === "IPv6" ? `[${address.address}]` : address.address, port: address.port };
}
