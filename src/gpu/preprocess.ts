/**
 * A tiny WGSL preprocessor for what `override` constants cannot express: `enable` directives, element types
 * that differ between variants (f16 vs f32, subgroups or not), and WGSL shared between kernels.
 *   #if NAME / #if !NAME / #else / #endif   (nestable; NAME is truthy when defined and not false/0)
 *   #include "name.wgsl"                    a chunk from shaders/common/ (registry: src/gpu/shader-chunks.ts)
 * Includes nest. A chunk enters a shader once: a repeated include is skipped (two chunks may include a third),
 * while a chunk that includes itself through others is an error. `#if` in a chunk sees the shader's defines, and
 * must close in the chunk that opened it. Any other line starting with `#` is an error: WGSL has no `#` tokens.
 * Numeric specialisation belongs in WGSL `override` constants, not here.
 * Errors are WebVLMError('ShaderCompile') naming the file and line; `expand` also returns where each output
 * line came from, so WGSL compile errors can name the chunk and line too (`describeLine`).
 */
import { WebVLMError } from '../errors.ts';

export type Defines = Record<string, boolean | number | undefined>;
/** Chunk text by include name ("workgroup_reduce.wgsl"). */
export type Chunks = Readonly<Record<string, string>>;

export interface SourceLine {
  /** The shader's name, or `common/<chunk>` for an included chunk. */
  file: string;
  /** 1-based line in that file. */
  line: number;
}

export interface Expanded {
  code: string;
  /** origin[i]: where line i + 1 of `code` came from. */
  origin: SourceLine[];
}

export interface ExpandOptions {
  /** The shader's name, for messages (default 'shader'). */
  name?: string;
  chunks?: Chunks;
}

const DIRECTIVE = /^#\s*([A-Za-z_]\w*)\s*(.*)$/;
const IF_ARG = /^(!?)\s*([A-Za-z_]\w*)$/;
const INCLUDE_ARG = /^"([^"]+)"$/;

function fail(at: SourceLine, message: string): never {
  throw new WebVLMError('ShaderCompile', `preprocess: ${at.file}:${at.line}: ${message}`);
}

export function expand(source: string, defines: Defines, options: ExpandOptions = {}): Expanded {
  const chunks = options.chunks ?? {};
  const code: string[] = [];
  const origin: SourceLine[] = [];
  const included = new Set<string>();

  // `chain`: the include names from the shader down to this file, for cycle detection and messages.
  const run = (text: string, file: string, chain: string[]) => {
    const stack: Array<{ active: boolean; taken: boolean; at: SourceLine }> = [];
    const active = () => stack.every((s) => s.active);
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const at = { file, line: i + 1 };
      const t = line.trim();
      if (!t.startsWith('#')) {
        if (active()) {
          code.push(line);
          origin.push(at);
        }
        continue;
      }
      const m = DIRECTIVE.exec(t.replace(/\s*\/\/.*$/, '')); // a trailing // comment is allowed
      if (!m) fail(at, `not a directive: ${t}`);
      const [, what, arg] = m;
      if (what === 'if') {
        const a = IF_ARG.exec(arg);
        if (!a) fail(at, `#if takes NAME or !NAME, got "${arg}"`);
        const v = defines[a[2]];
        const truthy = v !== undefined && v !== false && v !== 0;
        const cond = a[1] === '!' ? !truthy : truthy;
        stack.push({ active: cond, taken: cond, at });
      } else if (what === 'else' || what === 'endif') {
        if (arg) fail(at, `#${what} takes nothing, got "${arg}"`);
        const top = stack[stack.length - 1];
        if (!top) fail(at, `#${what} without #if`);
        if (what === 'endif') stack.pop();
        else {
          top.active = !top.taken;
          top.taken = true;
        }
      } else if (what === 'include') {
        const a = INCLUDE_ARG.exec(arg);
        if (!a) fail(at, `#include takes "name.wgsl", got "${arg}"`);
        if (!active()) continue;
        const name = a[1];
        const text = Object.hasOwn(chunks, name) ? chunks[name] : undefined;
        if (text === undefined) {
          const known = Object.keys(chunks).sort().join(', ') || 'none';
          fail(at, `unknown include "${name}" (shaders/common/ has: ${known})`);
        }
        if (chain.includes(name)) fail(at, `include cycle: ${[...chain, name].join(' → ')}`);
        if (included.has(name)) continue;
        included.add(name);
        run(text, `common/${name}`, [...chain, name]);
      } else {
        fail(at, `unknown directive #${what} (the preprocessor knows #if, #else, #endif, #include)`);
      }
    }
    if (stack.length) fail(stack[stack.length - 1].at, '#if without #endif in this file');
  };

  run(source, options.name ?? 'shader', []);
  return { code: code.join('\n'), origin };
}

export function preprocess(source: string, defines: Defines, chunks?: Chunks): string {
  return expand(source, defines, { chunks }).code;
}

/** "file:line" for 1-based line `lineNum` of the expanded code (as WGSL compilation messages number it). */
export function describeLine(origin: readonly SourceLine[], lineNum: number): string {
  const o = origin[lineNum - 1];
  return o ? `${o.file}:${o.line}` : `line ${lineNum}`;
}
