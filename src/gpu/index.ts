export { acquireDevice, describeCaps, type AcquireOptions, type AcquiredDevice, type GpuCapabilities, type AdapterSummary } from './device.ts';
export { GpuContext } from './context.ts';
export { Recorder, UniformSlot, type Binding, type DispatchTiming } from './recorder.ts';
export { PipelineCache, type PipelineSpec } from './pipelines.ts';
export { Arena, BufferAllocator, Usage, TENSOR_USAGE } from './buffers.ts';
export { upload, readBytes, readF32, readU32 } from './io.ts';
export { chooseVariants, type VariantChoice } from './variants.ts';
export { preprocess, type Defines } from './preprocess.ts';
