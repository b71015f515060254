import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/softmax.cases.ts');
