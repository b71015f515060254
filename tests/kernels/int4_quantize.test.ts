import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/int4_quantize.cases.ts');
