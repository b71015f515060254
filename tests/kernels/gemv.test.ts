import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/gemv.cases.ts');
