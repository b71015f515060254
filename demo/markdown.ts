/** A small, safe Markdown subset for answers: everything is HTML-escaped first, then code, bold, italics, lists, breaks. */
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function renderMarkdown(src: string): string {
  const parts = src.split(/```/);
  return parts
    .map((part, i) => {
      if (i % 2 === 1) return `<pre><code>${esc(part.replace(/^[a-z0-9]*\n/i, ''))}</code></pre>`;
      const lines = esc(part).split('\n');
      const out: string[] = [];
      let list = false;
      for (const line of lines) {
        const item = /^\s*[-*]\s+(.*)$/.exec(line);
        if (item) {
          if (!list) out.push('<ul>');
          list = true;
          out.push(`<li>${inline(item[1])}</li>`);
          continue;
        }
        if (list) out.push('</ul>');
        list = false;
        out.push(inline(line) + '<br>');
      }
      if (list) out.push('</ul>');
      return out.join('').replace(/(<br>)+$/, '');
    })
    .join('');
}

function inline(s: string): string {
  return s
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(/(^|[^*])\*([^*]+)\*/g, '$1<em>$2</em>');
}
