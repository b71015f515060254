import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/norm.cases.ts');
