import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/pixel_shuffle.cases.ts');
