/**
 * Where a model's files are: the Hugging Face layout, `{baseUrl}/{repo}/resolve/{revision}/{file}` (`hubUrl`, strict
 * about repo ids), or a plain folder, `{folder}{file}`, when the model id is itself a URL or a path
 * (`https://cdn.example.com/tiny/`, `/models/tiny/`, `./tiny/`).
 */
import { WebVLMError } from '../errors.ts';

/** `{base}/{repo}/resolve/{revision}/{file}`, each segment percent-encoded (the revision as one segment). */
export function hubUrl(model: string, file: string, opts: { revision?: string; baseUrl?: string } = {}): string {
  checkPath('model id', model);
  checkPath('file', file);
  const base = (opts.baseUrl ?? 'https://huggingface.co').replace(/\/+$/, '');
  const rev = opts.revision ?? 'main';
  if (!rev) throw new WebVLMError('InvalidArgument', 'revision must not be empty.');
  return `${base}/${encodePath(model)}/resolve/${encodeURIComponent(rev)}/${encodePath(file)}`;
}

export function checkPath(what: string, p: string): void {
  if (typeof p !== 'string' || !p || p.startsWith('/') || p.endsWith('/') || p.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new WebVLMError('InvalidArgument', `Invalid ${what} ${JSON.stringify(p)}: expected a relative path like "owner/name".`);
  }
}

export const encodePath = (p: string) => p.split('/').map(encodeURIComponent).join('/');

/** A model id that names a folder rather than a repo: `scheme://…`, `/…`, `./…`, `../…`. */
const FOLDER_ID = /^([a-z][a-z0-9+.-]*:\/\/|\.{0,2}\/)/i;

export const isFolderId = (model: unknown): boolean => typeof model === 'string' && FOLDER_ID.test(model);

const ABSOLUTE = /^[a-z][a-z0-9+.-]*:/i;

/** A folder model id given as a relative path ('/models/tiny/', './tiny/'), which needs a base URL to resolve. */
export const isRelativeFolderId = (model: unknown): model is string => isFolderId(model) && !ABSOLUTE.test(model as string);

/** The absolute URL, ending in '/', of a folder model id (relative ones resolve against the page or worker). */
export function folderUrl(model: string): string {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  const absolute = ABSOLUTE.test(model);
  if (!absolute && !base) {
    throw new WebVLMError('InvalidArgument', `The model folder ${JSON.stringify(model)} is a relative path and there is no page to resolve it against: pass an absolute URL (e.g. "http://localhost:5173/models/tiny/").`);
  }
  let u: URL;
  try {
    u = new URL(model, absolute ? undefined : base);
  } catch (cause) {
    throw new WebVLMError('InvalidArgument', `The model folder ${JSON.stringify(model)} is not a valid URL.`, { cause });
  }
  if (u.search || u.hash) throw new WebVLMError('InvalidArgument', `The model folder URL ${JSON.stringify(model)} must not have a query or fragment: files are read as {folder}{file}.`);
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u.href;
}
