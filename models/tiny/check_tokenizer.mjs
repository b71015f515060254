// Checks the tiny model's tokenizer files with the runtime's own libraries:
//   node models/tiny/check_tokenizer.mjs [CKPT_DIR] [CASES_JSON]
// CASES_JSON (written by `python3 models/tiny/tokenizer.py --cases ...`) holds
//   {"encode": [{"text", "ids"}], "chat": [{"messages", "add_generation_prompt", "text"}]}
// and this script asserts that @huggingface/tokenizers encodes/decodes every text to the same ids and that
// @huggingface/jinja renders the chat template to the same string as the Python implementation.
import { readFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";

const dir = process.argv[2] ?? new URL("./checkpoint", import.meta.url).pathname;
const casesPath = process.argv[3] ?? new URL("./tokenizer_cases.json", import.meta.url).pathname;
const tj = JSON.parse(readFileSync(`${dir}/tokenizer.json`, "utf8"));
const tc = JSON.parse(readFileSync(`${dir}/tokenizer_config.json`, "utf8"));
const cases = JSON.parse(readFileSync(casesPath, "utf8"));
const tok = new Tokenizer(tj, tc);
let bad = 0;
for (const c of cases.encode) {
  const ids = Array.from(tok.encode(c.text).ids);
  if (JSON.stringify(ids) !== JSON.stringify(c.ids)) {
    bad++;
    console.log("ENCODE MISMATCH", JSON.stringify(c.text).slice(0, 200), "\n js:", ids.join(","), "\n py:", c.ids.join(","));
  }
  const dec = tok.decode(c.ids, { skip_special_tokens: false });
  if (dec !== c.text) {
    bad++;
    console.log("DECODE MISMATCH", JSON.stringify(dec).slice(0, 200), "vs", JSON.stringify(c.text).slice(0, 200));
  }
}
const tmpl = new Template(tc.chat_template);
for (const c of cases.chat) {
  const s = tmpl.render({ messages: c.messages, add_generation_prompt: c.add_generation_prompt });
  if (s !== c.text) {
    bad++;
    console.log("TEMPLATE MISMATCH", JSON.stringify(s), "vs", JSON.stringify(c.text));
  }
}
console.log(`${cases.encode.length} encode cases, ${cases.chat.length} template cases, ${bad} mismatches`);
process.exit(bad ? 1 : 0);
