import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/int4_gemv.cases.ts');
