/**
 * One config, two jobs:
 *  - `vite build` (npm run build): the library — ESM entry `dist/webvlm.js` plus the bundled worker
 *    `dist/webvlm.worker.js` (comlink, tokenizers, jinja and every shader inlined as text through `?raw`). Both are
 *    self-contained (no imports; the worker found next to `webvlm.js`), so the same two files serve bundlers and
 *    plain static hosts (README: "Without a bundler"). `tsc -p tsconfig.build.json` then writes the declarations
 *    to `dist/types/` and `scripts/prune-types.mjs` keeps the ones the public API reaches.
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

/** Fails the build if an emitted file still imports a module by name: a page without a bundler could not load it. */
function selfContained(): Plugin {
  const bare = /(?:^|[;\n}])\s*(?:import|export)\s[^;]*?\bfrom\s*["'`]([^"'`./][^"'`]*)["'`]|\bimport\s*\(\s*["'`]([^"'`./][^"'`]*)["'`]\s*\)/;
  return {
    name: 'webvlm-self-contained',
    apply: 'build',
    generateBundle(_options, bundle) {
      for (const file of Object.values(bundle)) {
        const code = file.type === 'chunk' ? file.code : file.fileName.endsWith('.js') ? String(file.source) : null;
        const m = code ? bare.exec(code) : null;
        if (m) this.error(`${file.fileName} imports "${m[1] ?? m[2]}": dependencies must be bundled in (rolldownOptions.external stays empty).`);
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
        // Dependencies are bundled (external: none): the worker must be one self-contained file. Chunks shared by the
        // entry and the lazily loaded inline host get stable names (`webvlm-<name>.js`), so a static host copies
        // `dist/*.js` without hashes to track.
        rolldownOptions: { external: [], output: { chunkFileNames: 'webvlm-[name].js' } },
      },
      // A module worker, bundled with its own imports into one file with a stable name (exported as `webvlm/worker`
      // for apps that create the worker themselves and pass it as `createEngine(model, { worker })`).
      worker: { format: 'es', rolldownOptions: { output: { entryFileNames: 'webvlm.worker.js' } } },
      plugins: [relativeWorkerUrl(), selfContained()],
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
