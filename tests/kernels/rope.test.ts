import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/rope.cases.ts');
