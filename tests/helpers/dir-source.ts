/** A FileSource over a local directory (Node tests that do not need the HTTP path). */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { FileHandle, FileSource } from '../../src/engine/file-source.ts';

export class DirSource implements FileSource {
  constructor(readonly dir: string) {}

  async open(file: string): Promise<FileHandle | null> {
    const path = join(this.dir, file);
    if (!existsSync(path)) return null;
    const size = statSync(path).size;
    return {
      name: file,
      size,
      sha256: null,
      stream: () => Readable.toWeb(createReadStream(path)) as unknown as ReadableStream<Uint8Array>,
      range: async (start: number, end: number) => new Uint8Array((await readFile(path)).subarray(start, end)),
    };
  }
}
