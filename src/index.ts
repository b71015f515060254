/** webvlm: small vision-language models on the user's GPU, in a browser tab, through WebGPU. */
export { createEngine, type WebVLMEngine } from './api/engine.ts';
export type * from './types.ts';
export { WebVLMError, isWebVLMError, type WebVLMErrorCode } from './errors.ts';
export { modelCache, type ModelCache, type CachedModelInfo, type CachedFileInfo } from './engine/cache.ts';
