/**
 * A tiny WGSL preprocessor for what `override` constants cannot express: `enable` directives and
 * element types that differ between variants (f16 vs f32, subgroups or not).
 *   #if NAME / #if !NAME / #else / #endif   (nestable; NAME is truthy when defined and not false/0)
 * Numeric specialisation belongs in WGSL `override` constants, not here.
 */
export type Defines = Record<string, boolean | number | undefined>;

export function preprocess(source: string, defines: Defines): string {
  const out: string[] = [];
  const stack: Array<{ active: boolean; taken: boolean }> = [];
  const active = () => stack.every((s) => s.active);
  const lines = source.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const t = line.trim();
    const m = /^#(if|else|endif)\b\s*(!?)\s*([A-Za-z_][A-Za-z0-9_]*)?/.exec(t);
    if (!m) {
      if (active()) out.push(line);
      continue;
    }
    if (m[1] === 'if') {
      if (!m[3]) throw new Error(`preprocess: line ${i + 1}: #if needs a name`);
      const v = defines[m[3]];
      const truthy = v !== undefined && v !== false && v !== 0;
      const cond = m[2] === '!' ? !truthy : truthy;
      stack.push({ active: cond, taken: cond });
    } else if (m[1] === 'else') {
      const top = stack[stack.length - 1];
      if (!top) throw new Error(`preprocess: line ${i + 1}: #else without #if`);
      top.active = !top.taken;
      top.taken = true;
    } else {
      if (!stack.pop()) throw new Error(`preprocess: line ${i + 1}: #endif without #if`);
    }
  }
  if (stack.length) throw new Error('preprocess: unterminated #if');
  return out.join('\n');
}
