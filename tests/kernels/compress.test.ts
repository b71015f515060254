import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/compress.cases.ts');
