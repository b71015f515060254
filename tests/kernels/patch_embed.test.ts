import { runKernelCases } from '../harness/suite.ts';
await runKernelCases('tests/kernels/patch_embed.cases.ts');
