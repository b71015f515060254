import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/sampling.cases.ts');
