import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/copy.cases.ts');
