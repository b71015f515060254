/**
 * Text side of a checkpoint: `tokenizer.json` + `tokenizer_config.json` (+ `chat_template.json`) through
 * `@huggingface/tokenizers` (the tokenizer pipeline) and `@huggingface/jinja` (the chat template), plus
 * a streaming detokenizer that only ever yields whole UTF-8 characters.
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { WebVLMError } from '../errors.ts';

type Json = Record<string, unknown>;

export interface TokenizerFiles {
  /** `tokenizer.json` (parsed, or its text). */
  tokenizerJson: unknown;
  /** `tokenizer_config.json` (parsed, or its text). */
  tokenizerConfig: unknown;
  /** `chat_template.json` (`{ chat_template }`), or the template string; else the config's `chat_template`. */
  chatTemplate?: unknown;
}

/**
 * Message parts accepted by `applyChatTemplate`. Not the public `ChatMessage` (src/types.ts) on purpose: here image
 * parts are placeholders (the pixels travel separately, in order), and roles are whatever the template accepts.
 */
export type ChatPart =
  | { type: 'text'; text: string }
  | { type: 'image'; detail?: string; [k: string]: unknown }
  | { type: 'image_url'; image_url: string | { url: string; detail?: string } }
  | { type: 'input_image'; [k: string]: unknown };

export interface ChatMessage {
  role: string;
  content: string | ReadonlyArray<ChatPart>;
}

/** The shape Idefics3-style templates iterate over. */
export interface TemplateMessage {
  role: string;
  content: Array<{ type: 'text'; text: string } | { type: 'image' }>;
}

export interface SpecialTokenIds {
  image?: number;
  fakeTokenAroundImage?: number;
  globalImg?: number;
  endOfUtterance?: number;
  /** tokenizer_config `eos_token` (SmolVLM: `<end_of_utterance>`). */
  eos?: number;
  bos?: number;
  pad?: number;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

function parseJson(x: unknown, what: string): Json {
  if (typeof x === 'string') {
    try {
      x = JSON.parse(x);
    } catch (cause) {
      throw new WebVLMError('CorruptCheckpoint', `${what} is not valid JSON.`, { cause });
    }
  }
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new WebVLMError('CorruptCheckpoint', `${what} is not a JSON object.`);
  return x as Json;
}

/** Token strings in configs are either plain strings or AddedToken objects `{ content }`. */
function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

function pickTemplate(files: TokenizerFiles, config: Json): string | undefined {
  let t: unknown = files.chatTemplate;
  // A string is either chat_template.json's text or the Jinja source itself (which may start with '{%').
  if (typeof t === 'string') {
    try {
      const j: unknown = JSON.parse(t);
      if (typeof j === 'object' && j !== null) t = j;
    } catch {
      /* the template itself */
    }
  }
  if (typeof t === 'object' && t !== null && !Array.isArray(t)) t = (t as Json).chat_template;
  if (t === undefined) t = config.chat_template;
  // Named-template lists: [{ name, template }]; 'default' wins.
  if (Array.isArray(t)) t = (t.find((x) => x?.name === 'default') ?? t[0])?.template;
  return typeof t === 'string' ? t : undefined;
}

/** Converts OpenAI-style messages to the template's shape; string content becomes one text part. */
export function toTemplateMessages(messages: ReadonlyArray<ChatMessage>): TemplateMessage[] {
  if (!Array.isArray(messages)) throw new WebVLMError('InvalidArgument', 'messages must be an array.');
  return messages.map((m, i) => {
    if (typeof m?.role !== 'string') throw new WebVLMError('InvalidArgument', `messages[${i}].role must be a string.`);
    const parts = typeof m.content === 'string' ? [{ type: 'text' as const, text: m.content }] : m.content;
    if (!Array.isArray(parts)) throw new WebVLMError('InvalidArgument', `messages[${i}].content must be a string or an array of parts.`);
    const content: TemplateMessage['content'] = parts.map((p, j) => {
      if (p?.type === 'text') {
        if (typeof p.text !== 'string') throw new WebVLMError('InvalidArgument', `messages[${i}].content[${j}].text must be a string.`);
        return { type: 'text', text: p.text };
      }
      if (p?.type === 'image' || p?.type === 'image_url' || p?.type === 'input_image') return { type: 'image' };
      throw new WebVLMError('InvalidArgument', `messages[${i}].content[${j}] has unsupported type ${JSON.stringify((p as { type?: unknown })?.type)}.`);
    });
    // Templates index content[0]; an empty message is one empty text part.
    if (content.length === 0) content.push({ type: 'text', text: '' });
    return { role: m.role, content };
  });
}

/** The image parts of the messages in prompt order (the i-th `<image>` of the prompt is the i-th of these). */
export function imageParts(messages: ReadonlyArray<ChatMessage>): ChatPart[] {
  const out: ChatPart[] = [];
  for (const m of messages) {
    if (typeof m.content === 'string') continue;
    for (const p of m.content) if (p.type === 'image' || p.type === 'image_url' || p.type === 'input_image') out.push(p);
  }
  return out;
}

/** The `detail` an image part asks for, if any (ours: `part.detail`; OpenAI: `part.image_url.detail`). */
export function partDetail(p: ChatPart): string | undefined {
  if (p.type === 'image_url' && typeof p.image_url === 'object') return p.image_url.detail;
  const d = (p as { detail?: unknown }).detail;
  return typeof d === 'string' ? d : undefined;
}

/** GPT-2's byte ↔ unicode table: printable Latin-1 bytes map to themselves, the rest to U+0100 upwards. */
function unicodeToBytes(): Map<string, number> {
  const map = new Map<string, number>();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map.set(String.fromCodePoint(printable ? b : 256 + n++), b);
  }
  return map;
}

const utf8 = new TextEncoder();

export class Tokenizer {
  readonly specialIds: SpecialTokenIds;
  readonly chatTemplate: string | undefined;
  /** True when the decoder is byte-level BPE (each token is a byte string). */
  readonly byteLevel: boolean;
  private readonly hf: HfTokenizer;
  private readonly config: Json;
  private readonly added = new Map<number, { content: string; special: boolean }>();
  private template: Template | undefined;
  private byteTable: Map<string, number> | undefined;
  private readonly bytesCache = new Map<number, Uint8Array>();
  private vocabSizeCache: number | undefined;

  private constructor(tokenizerJson: Json, config: Json, chatTemplate: string | undefined) {
    try {
      this.hf = new HfTokenizer(tokenizerJson, config);
    } catch (cause) {
      throw new WebVLMError('CorruptCheckpoint', `tokenizer.json could not be loaded: ${(cause as Error)?.message ?? cause}`, { cause });
    }
    this.config = config;
    this.chatTemplate = chatTemplate;
    for (const t of (tokenizerJson.added_tokens as Array<{ id: number; content: string; special?: boolean }>) ?? []) {
      this.added.set(t.id, { content: t.content, special: t.special === true });
    }
    const dec = tokenizerJson.decoder as Json | null | undefined;
    this.byteLevel = dec?.type === 'ByteLevel';
    const id = (s: string | undefined) => (s === undefined ? undefined : this.tokenToId(s));
    this.specialIds = {
      image: id('<image>'),
      fakeTokenAroundImage: id('<fake_token_around_image>'),
      globalImg: id('<global-img>'),
      endOfUtterance: id('<end_of_utterance>'),
      eos: id(tokenString(config.eos_token)),
      bos: id(tokenString(config.bos_token)),
      pad: id(tokenString(config.pad_token)),
    };
  }

  static fromFiles(files: TokenizerFiles): Tokenizer {
    const tokenizerJson = parseJson(files.tokenizerJson, 'tokenizer.json');
    const config = parseJson(files.tokenizerConfig, 'tokenizer_config.json');
    if (typeof tokenizerJson.model !== 'object' || tokenizerJson.model === null) throw new WebVLMError('CorruptCheckpoint', 'tokenizer.json has no model.');
    return new Tokenizer(tokenizerJson, config, pickTemplate(files, config));
  }

  /** Vocabulary size including added tokens (largest id + 1). */
  get vocabSize(): number {
    if (this.vocabSizeCache === undefined) {
      let max = -1;
      for (const v of this.hf.get_vocab(true).values()) if (v > max) max = v;
      this.vocabSizeCache = max + 1;
    }
    return this.vocabSizeCache;
  }

  /** Token ids of `text`. Special tokens are added only where the tokenizer's post-processor says so (SmolVLM: none). */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new WebVLMError('InvalidArgument', 'encode: text must be a string.');
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const arr = Array.from(ids);
    if (arr.length === 0) return '';
    return this.hf.decode(arr, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.added.get(id)?.content ?? this.hf.id_to_token(id);
  }

  /** An id the model needs, or a typed error naming the token. */
  requireId(token: string): number {
    const id = this.tokenToId(token);
    if (id === undefined) throw new WebVLMError('UnsupportedModel', `The tokenizer has no ${token} token.`);
    return id;
  }

  isSpecial(id: number): boolean {
    return this.added.get(id)?.special === true;
  }

  /**
   * Renders the checkpoint's chat template (Jinja) for OpenAI-style messages.
   * `textAsString`: a message of text parts only is passed as one string, as HF passes string content (templates
   * that concatenate `message['content']`, e.g. InternVL's system turn, need it; list-iterating templates do not).
   */
  applyChatTemplate(messages: ReadonlyArray<ChatMessage>, opts: { addGenerationPrompt?: boolean; textAsString?: boolean } = {}): string {
    if (this.chatTemplate === undefined) throw new WebVLMError('UnsupportedModel', 'The checkpoint has no chat template.');
    try {
      this.template ??= new Template(this.chatTemplate);
    } catch (cause) {
      throw new WebVLMError('CorruptCheckpoint', `The chat template does not parse: ${(cause as Error)?.message ?? cause}`, { cause });
    }
    const c = this.config;
    try {
      return this.template.render({
        messages: opts.textAsString
          ? toTemplateMessages(messages).map((m) => (m.content.every((p) => p.type === 'text') ? { role: m.role, content: m.content.map((p) => (p as { text: string }).text).join('') } : m))
          : toTemplateMessages(messages),
        add_generation_prompt: opts.addGenerationPrompt ?? false,
        bos_token: tokenString(c.bos_token) ?? '',
        eos_token: tokenString(c.eos_token) ?? '',
        unk_token: tokenString(c.unk_token) ?? '',
        pad_token: tokenString(c.pad_token) ?? '',
      });
    } catch (cause) {
      // Templates call raise_exception(msg) to refuse a conversation (e.g. roles that do not alternate); the message
      // is the template's own.
      if (cause instanceof WebVLMError) throw cause;
      throw new WebVLMError('TemplateError', `The chat template refused this conversation: ${(cause as Error)?.message ?? cause}`, { cause });
    }
  }

  /** A detokenizer for a stream of generated ids: `push(id)` returns the newly completed text. */
  createStreamDecoder(opts: DecodeOptions = {}): StreamDecoder {
    return this.byteLevel ? new ByteLevelStreamDecoder(this, opts) : new OffsetStreamDecoder(this, opts);
  }

  /** The UTF-8 bytes a token contributes (byte-level tokenizers), or null when skipped. */
  tokenBytes(id: number, skipSpecialTokens: boolean): Uint8Array | null {
    const a = this.added.get(id);
    if (a) return a.special && skipSpecialTokens ? null : utf8.encode(a.content);
    let b = this.bytesCache.get(id);
    if (b) return b;
    const tok = this.hf.id_to_token(id);
    if (tok === undefined) throw new WebVLMError('InvalidArgument', `token id ${id} is outside the vocabulary.`);
    this.byteTable ??= unicodeToBytes();
    const bytes: number[] = [];
    for (const ch of tok) {
      const v = this.byteTable.get(ch);
      if (v !== undefined) bytes.push(v);
      else bytes.push(...utf8.encode(ch));
    }
    b = Uint8Array.from(bytes);
    this.bytesCache.set(id, b);
    return b;
  }
}

export interface StreamDecoder {
  /** Feeds one id; returns the text completed by it ('' while a character is still incomplete). */
  push(id: number): string;
  /** End of stream: returns what is left (an incomplete trailing character becomes U+FFFD). */
  flush(): string;
  reset(): void;
}

/** Byte-level BPE: concatenate token bytes, decode UTF-8 incrementally (never half a character). */
class ByteLevelStreamDecoder implements StreamDecoder {
  private td = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  constructor(
    private readonly tok: Tokenizer,
    private readonly opts: DecodeOptions,
  ) {}
  push(id: number): string {
    const b = this.tok.tokenBytes(id, this.opts.skipSpecialTokens ?? false);
    return b === null || b.length === 0 ? '' : this.td.decode(b, { stream: true });
  }
  flush(): string {
    const s = this.td.decode();
    this.reset();
    return s;
  }
  reset(): void {
    this.td = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  }
}

/**
 * Other decoders (SentencePiece/Metaspace, byte fallback): decode a short window with one token of
 * left context and emit the new suffix, holding back while it ends in U+FFFD (an incomplete byte run).
 */
class OffsetStreamDecoder implements StreamDecoder {
  private ids: number[] = [];
  private prefix = 0;
  private read = 0;
  constructor(
    private readonly tok: Tokenizer,
    private readonly opts: DecodeOptions,
  ) {}
  push(id: number): string {
    this.ids.push(id);
    const before = this.tok.decode(this.ids.slice(this.prefix, this.read), this.opts);
    const now = this.tok.decode(this.ids.slice(this.prefix), this.opts);
    if (now.length <= before.length || now.endsWith('\uFFFD') || !now.startsWith(before)) return '';
    this.prefix = this.read;
    this.read = this.ids.length;
    return now.slice(before.length);
  }
  flush(): string {
    const before = this.tok.decode(this.ids.slice(this.prefix, this.read), this.opts);
    const now = this.tok.decode(this.ids.slice(this.prefix), this.opts);
    this.reset();
    return now.startsWith(before) ? now.slice(before.length) : now;
  }
  reset(): void {
    this.ids = [];
    this.prefix = 0;
    this.read = 0;
  }
}
