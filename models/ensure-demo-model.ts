/**
 * Run before `npm run demo`: the random-weight SmolVLM-layout test checkpoint (models/generated/test) is
 * generated once, so the demo has a model offline even before the trained tiny model exists.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { writeCheckpoint } from './make-checkpoint.ts';

const out = fileURLToPath(new URL('./generated/test/', import.meta.url));
if (!existsSync(`${out}model.safetensors`)) {
  const r = await writeCheckpoint({ size: 'test', out });
  console.log(`webvlm: wrote the random test checkpoint (${r.tensors} tensors) to models/generated/test`);
}
