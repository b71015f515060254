import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/matmul.cases.ts');
