/**
 * The one setting self-hosted model files need: a file that is not there must be a 404. webvlm asks for every
 * optional checkpoint file (chat_template.jinja, …); Vite's default `appType: 'spa'` answers unknown paths with
 * index.html, which would be taken for that file. 'mpa' turns the fallback off in `vite` (dev) and `vite preview`.
 * (The production host needs the same: see the README's "Self-hosting the model files".)
 * No `import { defineConfig } from 'vite'`, so the file also loads where vite is not a local dependency.
 * @type {import('vite').UserConfig}
 */
export default {
  appType: 'mpa',
};
