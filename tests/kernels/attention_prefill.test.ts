import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/attention_prefill.cases.ts');
