/**
 * One config, two jobs:
 *  - `vite build` (npm run build): the library — ESM entry `dist/webvlm.js` plus the bundled worker
 *    `dist/webvlm.worker.js` (comlink, tokenizers, jinja and every shader inlined as text through `?raw`);
 *    `tsc -p tsconfig.build.json` then writes the declarations to `dist/types/`.
 *  - `vite` (npm run demo): the chat demo in `demo/`, with the embedded default model served from
 *    `models/` in Hugging Face hub layout at `/hub/{repo}/resolve/{revision}/{file}`.
 */
import { defineConfig, type Plugin } from 'vite';
import { posix, resolve } from 'node:path';
import { hubMiddleware } from './demo/hub-middleware.ts';

const root = import.meta.dirname;

/**
 * Vite writes the worker reference of a library as `new URL("/webvlm.worker.js", "" + import.meta.url)`:
 * absolute to the *site* root (wrong once the package sits in node_modules) and, through the `"" +`, hidden
 * from the consumer's bundler. Rewrite it to the standard `new URL("./webvlm.worker.js", import.meta.url)`,
 * which Vite, webpack 5, Parcel and plain browsers all resolve next to `webvlm.js` (bundlers re-emit the worker).
 */
function relativeWorkerUrl(): Plugin {
  const re = /new URL\(\s*(?:\/\*\s*@vite-ignore\s*\*\/\s*)?"([^"]+\.js)",\s*"" \+ import\.meta\.url\s*\)/g;
  return {
    name: 'webvlm-relative-worker-url',
    apply: 'build',
    generateBundle(_options, bundle) {
      for (const chunk of Object.values(bundle)) {
        if (chunk.type !== 'chunk' || !chunk.code.includes('new Worker(')) continue;
        let n = 0;
        chunk.code = chunk.code.replace(re, (_m, url: string) => {
          n++;
          const rel = posix.relative(posix.dirname(chunk.fileName), url.replace(/^\//, ''));
          return `new URL(${JSON.stringify(rel.startsWith('.') ? rel : `./${rel}`)}, import.meta.url)`;
        });
        if (n === 0) this.error(`${chunk.fileName}: found no worker URL to make relative; Vite's output changed, update vite.config.ts.`);
      }
    },
  };
}

export default defineConfig(({ command }) => {
  if (command === 'build') {
    return {
      build: {
        outDir: 'dist',
        emptyOutDir: true,
        target: 'es2022',
        sourcemap: true,
        lib: { entry: resolve(root, 'src/index.ts'), formats: ['es'], fileName: () => 'webvlm.js' },
        // Dependencies are bundled (external: none): the worker must be one self-contained file.
        rolldownOptions: { external: [] },
      },
      // A module worker, bundled with its own imports into one file with a stable name (exported as `webvlm/worker`
      // for apps that create the worker themselves and pass it as `createEngine(model, { worker })`).
      worker: { format: 'es', rolldownOptions: { output: { entryFileNames: 'webvlm.worker.js' } } },
      plugins: [relativeWorkerUrl()],
    };
  }
  return {
    root: resolve(root, 'demo'),
    server: { host: '127.0.0.1', port: 5173, fs: { allow: [root] } },
    worker: { format: 'es' },
    // The worker's dependencies, pre-bundled up front: discovered late (when the worker starts), they would make
    // Vite re-optimize and reload the page in the middle of the first model load.
    optimizeDeps: { include: ['comlink', '@huggingface/tokenizers', '@huggingface/jinja'] },
    plugins: [{ name: 'webvlm-hub', configureServer: (server) => void server.middlewares.use(hubMiddleware(resolve(root, 'models'))) }],
  };
});
