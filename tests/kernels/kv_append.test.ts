import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/kv_append.cases.ts');
