import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/attention_decode.cases.ts');
