// Served with `Content-Security-Policy: script-src 'self'; worker-src 'self'` next to the *built* library
// (dist layout at the server root): loads the random test checkpoint and runs one short chat.
import { createEngine } from '/webvlm.js';

const violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  // This page's own probe below is expected to be refused; anything else (the library) is a finding.
  if (!e.sourceFile.endsWith('/csp-page.js')) violations.push(`${e.violatedDirective}: ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`);
});

async function run() {
  const engine = await createEngine('webvlm/random-smolvlm-test', { baseUrl: `${location.origin}/hub`, contextLength: 64, cache: false });
  let text = '';
  let done = null;
  for await (const d of engine.chat({ messages: [{ role: 'user', content: 'Hi' }], maxTokens: 2, temperature: 0 })) {
    if (d.type === 'text') text += d.text;
    else done = d;
  }
  await engine.dispose();
  return { ok: true, text, finishReason: done?.finishReason, completionTokens: done?.usage.completionTokens };
}

// The policy must really be in force here: string-to-code is refused.
let evalBlocked = false;
try {
  new Function('return 1')();
} catch {
  evalBlocked = true;
}

window.__csp = run().then(
  (r) => ({ ...r, evalBlocked, violations }),
  (e) => ({ ok: false, error: `${e?.code ?? e?.name}: ${e?.message}`, evalBlocked, violations }),
);
document.getElementById('status').textContent = 'started';
