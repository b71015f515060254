/** Starts Vite's dev server over the repo root on 127.0.0.1 (a secure context for WebGPU). */
import { createServer } from 'vite';
import { fileURLToPath } from 'node:url';
import { hubMiddleware } from '../../demo/hub-middleware.ts';

export async function startViteServer(): Promise<{ origin: string; close(): Promise<void> }> {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const server = await createServer({
    root,
    configFile: false,
    logLevel: 'error',
    clearScreen: false,
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null, fs: { allow: [root, fileURLToPath(new URL('../../../shared', import.meta.url))] } },
    cacheDir: 'node_modules/.vite-test',
    optimizeDeps: { noDiscovery: true, include: [] },
    // Local models in hub layout at /hub/{repo}/resolve/{revision}/{file}, as in the demo.
    plugins: [{ name: 'webvlm-hub', configureServer: (server) => void server.middlewares.use(hubMiddleware(fileURLToPath(new URL('../../models', import.meta.url)))) }],
  });
  await server.listen();
  const addr = server.httpServer!.address();
  if (!addr || typeof addr === 'string') throw new Error('vite: no address');
  return { origin: `http://127.0.0.1:${addr.port}`, close: () => server.close() };
}
