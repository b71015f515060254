/**
 * Streaming safetensors reader. The format: an 8-byte little-endian header length N, N bytes of JSON
 * (`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}`, padded with spaces),
 * then the data section, with offsets relative to its start. We validate the header as strictly as the
 * reference implementation (huggingface/safetensors `validate`: offsets contiguous from 0, no gaps, no
 * overlap, the data section ending exactly at the end of the file) and then hand out tensors one at a time,
 * in file order, while reading the stream, so peak JS memory is about one tensor plus one network chunk.
 */
import { WebVLMError } from '../errors.ts';
import { bf16ToF32, f16ToF32 } from '../kernels/dtype.ts';

/** Every dtype the format defines (safetensors 0.4), with its size in bytes. */
export const DTYPE_BYTES = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
} as const;
export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

/** The dtypes webvlm can turn into weights (the default `weightDtypes`). */
export const WEIGHT_DTYPES: readonly SafetensorsDtype[] = ['F32', 'F16', 'BF16'];

/** The reference implementation refuses headers above 100 MB; so do we (a lying length must not make us allocate). */
export const MAX_HEADER_BYTES = 100_000_000;
/** A single tensor must fit one ArrayBuffer in every browser. */
export const MAX_TENSOR_BYTES = 2 ** 31 - 1;

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range in the data section (relative to `dataOffset`), end exclusive. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** N, the JSON length. */
  headerLength: number;
  /** 8 + N: where the data section starts in the file. */
  dataOffset: number;
  dataLength: number;
  /** dataOffset + dataLength: the only file size this header is valid for. */
  fileSize: number;
  metadata: Record<string, string> | null;
  /** In file order (ascending offsets). */
  tensors: TensorInfo[];
}

export interface SafetensorsTensor extends TensorInfo {
  /** The tensor's raw little-endian bytes, in a buffer of its own (offset 0, so typed views are aligned). */
  bytes: Uint8Array;
}

export interface HeaderOptions {
  /** File name for messages. */
  file?: string;
  /** Size of the whole file when known: the header must account for exactly this many bytes. */
  fileSize?: number | null;
  /** Dtypes accepted as weights; others (though valid safetensors) throw `UnsupportedModel`. null: accept every dtype. */
  weightDtypes?: readonly SafetensorsDtype[] | null;
}

function corrupt(file: string, message: string, details?: Record<string, unknown>): never {
  throw new WebVLMError('CorruptCheckpoint', `${file}: ${message}`, { details: { file, ...details } });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Reads N from the first 8 bytes and checks it against the limits and the file size. */
export function readHeaderLength(first8: Uint8Array, opts: HeaderOptions = {}): number {
  const file = opts.file ?? 'safetensors';
  if (first8.length < 8) corrupt(file, `file is ${first8.length} bytes, shorter than the 8-byte header length`);
  const dv = new DataView(first8.buffer, first8.byteOffset, 8);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  if (hi >= 2 ** 21) corrupt(file, `header length field is not a sane number (high word 0x${hi.toString(16)})`);
  if (n < 2) corrupt(file, `header length ${n} is too small for a JSON object`);
  if (n > MAX_HEADER_BYTES) corrupt(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`, { headerLength: n });
  if (opts.fileSize != null && 8 + n > opts.fileSize) {
    corrupt(file, `header length ${n} runs past the end of the ${opts.fileSize}-byte file`, { headerLength: n, fileSize: opts.fileSize });
  }
  return n;
}

/** Parses and validates the JSON header bytes (exactly N of them). */
export function parseSafetensorsHeader(json: Uint8Array, opts: HeaderOptions = {}): SafetensorsHeader {
  const file = opts.file ?? 'safetensors';
  const headerLength = json.length;
  // The format requires the JSON to start with '{'; writers pad the end with spaces to an 8-byte boundary.
  if (json[0] !== 0x7b) corrupt(file, `header does not start with '{' (byte 0x${(json[0] ?? 0).toString(16)})`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    corrupt(file, 'header is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    corrupt(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(parsed)) corrupt(file, 'header is not a JSON object');

  let metadata: Record<string, string> | null = null;
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      if (!isObject(entry)) corrupt(file, '__metadata__ is not an object of strings');
      for (const [k, v] of Object.entries(entry)) if (typeof v !== 'string') corrupt(file, `__metadata__.${k} is not a string`);
      metadata = entry as Record<string, string>;
      continue;
    }
    if (name === '') corrupt(file, 'a tensor has an empty name');
    if (!isObject(entry)) corrupt(file, `tensor ${name}: entry is not an object`, { tensor: name });
    for (const k of Object.keys(entry)) {
      if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') corrupt(file, `tensor ${name}: unexpected key "${k}"`, { tensor: name });
    }
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
      corrupt(file, `tensor ${name}: unknown dtype ${JSON.stringify(dtype)}`, { tensor: name, dtype });
    }
    if (!Array.isArray(shape) || shape.length > 16 || !shape.every(isCount)) {
      corrupt(file, `tensor ${name}: shape ${JSON.stringify(shape)} is not a list of at most 16 non-negative integers`, { tensor: name });
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      corrupt(file, `tensor ${name}: data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`, { tensor: name });
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) corrupt(file, `tensor ${name}: data_offsets [${begin}, ${end}] end before they begin`, { tensor: name });
    let bytes = DTYPE_BYTES[dtype as SafetensorsDtype] as number;
    for (const d of shape as number[]) {
      bytes *= d;
      if (bytes > Number.MAX_SAFE_INTEGER) corrupt(file, `tensor ${name}: shape ${JSON.stringify(shape)} overflows`, { tensor: name });
    }
    if (bytes !== end - begin) {
      corrupt(file, `tensor ${name}: shape ${JSON.stringify(shape)} × ${dtype} is ${bytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
        { tensor: name, expected: bytes, span: end - begin });
    }
    tensors.push({ name, dtype: dtype as SafetensorsDtype, shape: shape as number[], begin, end });
  }

  // File order; the data must tile [0, dataLength) exactly (what safetensors' own `validate` demands).
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const t of tensors) {
    if (t.begin < at) corrupt(file, `tensor ${t.name}: data_offsets [${t.begin}, ${t.end}] overlap the previous tensor, which ends at ${at}`, { tensor: t.name });
    if (t.begin > at) corrupt(file, `tensor ${t.name}: data_offsets [${t.begin}, ${t.end}] leave a gap of ${t.begin - at} bytes after offset ${at}`, { tensor: t.name });
    at = t.end;
  }
  const dataOffset = 8 + headerLength;
  const fileSize = dataOffset + at;
  if (opts.fileSize != null && opts.fileSize !== fileSize) {
    corrupt(file, opts.fileSize > fileSize
      ? `${opts.fileSize - fileSize} bytes after the last tensor (header accounts for ${fileSize} of ${opts.fileSize})`
      : `tensors run ${fileSize - opts.fileSize} bytes past the end of the ${opts.fileSize}-byte file`,
    { expected: fileSize, fileSize: opts.fileSize });
  }

  const accepted = opts.weightDtypes === undefined ? WEIGHT_DTYPES : opts.weightDtypes;
  if (accepted) {
    for (const t of tensors) {
      if (!accepted.includes(t.dtype)) {
        throw new WebVLMError('UnsupportedModel', `${file}: tensor ${t.name} is ${t.dtype}; webvlm loads ${accepted.join('/')} weights only.`, {
          details: { file, tensor: t.name, dtype: t.dtype },
        });
      }
    }
  }
  for (const t of tensors) {
    if (t.end - t.begin > MAX_TENSOR_BYTES) {
      throw new WebVLMError('UnsupportedModel', `${file}: tensor ${t.name} is ${t.end - t.begin} bytes, more than one ArrayBuffer can hold.`, { details: { file, tensor: t.name } });
    }
  }
  return { headerLength, dataOffset, dataLength: at, fileSize, metadata, tensors };
}

/** A file known to be shorter than the 8-byte length field is corrupt, before any read asks for bytes it lacks. */
function requireLengthField(file: string, size: number | null | undefined): void {
  if (size != null && size < 8) corrupt(file, `file is ${size} bytes, shorter than the 8-byte header length`, { fileSize: size });
}

/** What `readHeaderByRange` needs of a file (a `FileHandle` from ./file-source.ts). */
export interface RangeReadable {
  readonly name: string;
  readonly size: number | null;
  range(start: number, end: number, opts?: { signal?: AbortSignal }): Promise<Uint8Array>;
}

/**
 * A file's validated header from two small range reads (the 8-byte length, then the JSON), without the data.
 * A file known to be too short for the length field is refused here: asking the source for bytes past its end
 * would be the source's `InvalidArgument` (an API-usage error) instead of what it is, a corrupt checkpoint.
 */
export async function readHeaderByRange(f: RangeReadable, opts: Omit<HeaderOptions, 'file' | 'fileSize'> & { signal?: AbortSignal } = {}): Promise<SafetensorsHeader> {
  const ho: HeaderOptions = { file: f.name, fileSize: f.size, weightDtypes: opts.weightDtypes };
  requireLengthField(f.name, f.size);
  const n = readHeaderLength(await f.range(0, 8, { signal: opts.signal }), ho);
  return parseSafetensorsHeader(await f.range(8, 8 + n, { signal: opts.signal }), ho);
}

/** Translates a failed stream read into a typed error. */
function readError(file: string, e: unknown): WebVLMError {
  if (e instanceof WebVLMError) return e;
  if (typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'AbortError') {
    return new WebVLMError('Aborted', `Reading ${file} was aborted.`, { cause: e });
  }
  return new WebVLMError('DownloadFailed', `Reading ${file} failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

/** Exact-length reads over a byte stream, copying each request into a buffer of its own. */
export class ByteReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private chunk: Uint8Array = new Uint8Array(0);
  private pos = 0;
  /** Bytes handed out so far. */
  offset = 0;

  constructor(stream: ReadableStream<Uint8Array>, private readonly file: string) {
    this.reader = stream.getReader();
  }

  /** Next chunk, or null at the end of the stream. */
  private async next(): Promise<boolean> {
    let r: ReadableStreamReadResult<Uint8Array>;
    try {
      r = await this.reader.read();
    } catch (e) {
      throw readError(this.file, e);
    }
    if (r.done) return false;
    this.chunk = r.value;
    this.pos = 0;
    return true;
  }

  /** Fills `dst` completely; `what` names the bytes for the truncation message. */
  async readInto(dst: Uint8Array, what: string): Promise<Uint8Array> {
    let filled = 0;
    while (filled < dst.length) {
      if (this.pos >= this.chunk.length && !(await this.next())) {
        corrupt(this.file, `file truncated: ${what} needs ${dst.length} bytes at offset ${this.offset - filled}, the file ends after ${filled}`, {
          offset: this.offset,
        });
      }
      const take = Math.min(dst.length - filled, this.chunk.length - this.pos);
      dst.set(this.chunk.subarray(this.pos, this.pos + take), filled);
      this.pos += take;
      filled += take;
      this.offset += take;
    }
    return dst;
  }

  read(n: number, what: string): Promise<Uint8Array> {
    return this.readInto(new Uint8Array(n), what);
  }

  /** True when no byte is left (reads ahead one chunk if needed). */
  async atEnd(): Promise<boolean> {
    while (this.pos >= this.chunk.length) if (!(await this.next())) return true;
    return false;
  }

  async cancel(reason?: unknown): Promise<void> {
    try {
      await this.reader.cancel(reason);
    } catch {
      // The stream may already have errored; nothing is left to release.
    }
  }
}

export interface ReadOptions extends HeaderOptions {
  /** Called once the header is validated, before any tensor data is read. Throwing here stops the read. */
  onHeader?: (header: SafetensorsHeader) => void;
  /** 'parse' progress: bytes of the file consumed so far. */
  onProgress?: (e: { phase: 'parse'; file: string; loaded: number; total: number }) => void;
  signal?: AbortSignal;
}

/**
 * Yields the tensors of one safetensors file in file order while reading `stream`. Errors: `CorruptCheckpoint`
 * for anything malformed (including a truncated or over-long stream), `UnsupportedModel` for a valid dtype that
 * is not a weight dtype, and whatever the stream itself fails with (`DownloadFailed`, `Aborted`, ...).
 * Stopping early (break / return) cancels the stream.
 */
export async function* readSafetensors(stream: ReadableStream<Uint8Array>, opts: ReadOptions = {}): AsyncGenerator<SafetensorsTensor, SafetensorsHeader, undefined> {
  const file = opts.file ?? 'safetensors';
  const reader = new ByteReader(stream, file);
  let finished = false;
  try {
    if (opts.signal?.aborted) throw new WebVLMError('Aborted', `Reading ${file} was aborted.`, { cause: opts.signal.reason });
    const n = readHeaderLength(await reader.read(8, 'the header length'), opts);
    const header = parseSafetensorsHeader(await reader.read(n, 'the header'), opts);
    opts.onHeader?.(header);
    opts.onProgress?.({ phase: 'parse', file, loaded: header.dataOffset, total: header.fileSize });
    for (const t of header.tensors) {
      if (opts.signal?.aborted) throw new WebVLMError('Aborted', `Reading ${file} was aborted.`, { cause: opts.signal.reason });
      const bytes = await reader.read(t.end - t.begin, `tensor ${t.name}`);
      opts.onProgress?.({ phase: 'parse', file, loaded: reader.offset, total: header.fileSize });
      yield { ...t, bytes };
    }
    // The stream must end exactly here: extra bytes mean the header lied about the file (or the server did).
    if (!(await reader.atEnd())) {
      corrupt(file, `data continues past the ${header.fileSize} bytes the header accounts for`, { expected: header.fileSize });
    }
    finished = true;
    return header;
  } finally {
    if (!finished) await reader.cancel('safetensors reader stopped');
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A tensor's values as f32 (exact for F32/F16/BF16). The result may share memory with `bytes` for F32. */
export function tensorToF32(t: { name?: string; dtype: SafetensorsDtype; bytes: Uint8Array }): Float32Array {
  if (!LITTLE_ENDIAN) throw new WebVLMError('UnsupportedFeature', 'Checkpoint conversion assumes a little-endian platform.');
  const aligned = (t.bytes.byteOffset & 3) === 0 ? t.bytes : t.bytes.slice();
  switch (t.dtype) {
    case 'F32':
      return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.length >>> 2);
    case 'F16':
      return f16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.length >>> 1));
    case 'BF16':
      return bf16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.length >>> 1));
    default:
      throw new WebVLMError('UnsupportedModel', `tensor ${t.name ?? ''} is ${t.dtype}; only F32/F16/BF16 convert to f32.`);
  }
}

/**
 * Throws `CorruptCheckpoint` at the first NaN or ±Infinity of a weight: one such value turns every activation
 * downstream into NaN (f32) or fails the int4 quantizer, and either way the model can only produce garbage.
 */
export function requireFinite(values: Float32Array, where: { name: string; file?: string }): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    // v − v is 0 for every finite v and NaN for NaN and ±Infinity; one subtraction keeps the scan cheap.
    if (v - v !== 0) {
      const file = where.file ?? 'safetensors';
      corrupt(file, `tensor ${where.name} holds ${v} at element ${i} of ${values.length}; weights must be finite numbers.`, { tensor: where.name, index: i, value: String(v) });
    }
  }
}
