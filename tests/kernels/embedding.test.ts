import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/embedding.cases.ts');
