// Loaded with `node --import ./tests/node/register.mjs`: TypeScript via tsx, `?raw` text imports via our hooks.
import { register } from 'node:module';
import 'tsx/esm';
register('./raw-hooks.mjs', import.meta.url);
