/**
 * Model families by config.json `model_type` (as mlx-lm picks a model module): a new family is a folder and a line
 * here. An unknown type is `UnsupportedModel` naming the supported types and the nearest one.
 */
import { WebVLMError } from '../errors.ts';
import type { ModelFamily, VlmConfig } from './family.ts';
import { idefics3Family } from './idefics3/index.ts';
import { smolvlmFamily } from './smolvlm/index.ts';
import { internvlFamily } from './internvl/index.ts';

const FAMILIES: readonly ModelFamily<VlmConfig>[] = [
  idefics3Family as unknown as ModelFamily<VlmConfig>,
  smolvlmFamily as unknown as ModelFamily<VlmConfig>,
  internvlFamily as unknown as ModelFamily<VlmConfig>,
];

const BY_TYPE = new Map<string, ModelFamily<VlmConfig>>(FAMILIES.flatMap((f) => f.modelTypes.map((t) => [t, f] as const)));

export const supportedModelTypes = (): string[] => [...BY_TYPE.keys()];
export const families = (): readonly ModelFamily<VlmConfig>[] => FAMILIES;

function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length];
}

/** The family that reads this config.json (by `model_type`). */
export function familyFor(config: unknown): ModelFamily<VlmConfig> {
  const type = typeof config === 'object' && config !== null ? (config as { model_type?: unknown }).model_type : undefined;
  const f = typeof type === 'string' ? BY_TYPE.get(type) : undefined;
  if (f) return f;
  const types = supportedModelTypes();
  const nearest = typeof type === 'string' ? [...types].sort((a, b) => distance(type, a) - distance(type, b))[0] : undefined;
  throw new WebVLMError('UnsupportedModel', `config.json model_type ${JSON.stringify(type)} is not supported; webvlm runs ${types.map((t) => `"${t}"`).join(', ')}${nearest ? ` (nearest: "${nearest}")` : ''}.`, {
    hint: `Pick a model of a supported family (${FAMILIES.flatMap((x) => x.examples).join(', ')}), or check the checkpoint's config.json.`,
    details: { modelType: type, supported: types, nearest },
  });
}
