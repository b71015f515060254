import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/resample.cases.ts');
