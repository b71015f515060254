import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/elementwise.cases.ts');
