/**
 * One config, two jobs:
 *  - `vite build` (npm run build): the library — ESM entry `dist/webvlm.js` plus the bundled worker
 *    and its shaders (WGSL is inlined as text through `?raw`).
 *  - `vite` (npm run demo): the chat demo in `demo/`, with the embedded default model served from
 *    `models/` in Hugging Face hub layout at `/hub/{repo}/resolve/{revision}/{file}`.
 */
import { defineConfig } from 'vite';
import { resolve } from 'node:path';
import { hubMiddleware } from './demo/hub-middleware.ts';

const root = import.meta.dirname;

export default defineConfig(({ command }) => {
  if (command === 'build') {
    return {
      build: {
        outDir: 'dist',
        emptyOutDir: true,
        target: 'es2022',
        sourcemap: true,
        lib: { entry: resolve(root, 'src/index.ts'), formats: ['es'], fileName: () => 'webvlm.js' },
        rollupOptions: { external: [] },
      },
      worker: { format: 'es' },
    };
  }
  return {
    root: resolve(root, 'demo'),
    server: { host: '127.0.0.1', port: 5173, fs: { allow: [root] } },
    worker: { format: 'es' },
    plugins: [{ name: 'webvlm-hub', configureServer: (server) => void server.middlewares.use(hubMiddleware(resolve(root, 'models'))) }],
  };
});
