/**
 * Run before `npm run demo`: the demo's default is the committed tiny trained model (models/tiny/checkpoint); the
 * random-weight SmolVLM-layout test checkpoint (models/generated/test, listed second: long answers, for trying
 * streaming and Stop) is generated once here.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { writeCheckpoint } from './make-checkpoint.ts';

const out = fileURLToPath(new URL('./generated/test/', import.meta.url));
if (!existsSync(`${out}model.safetensors`)) {
  const r = await writeCheckpoint({ size: 'test', out });
  console.log(`webvlm: wrote the random test checkpoint (${r.tensors} tensors) to models/generated/test`);
}
