// The command bar: a sentence, translated by the server (GET /v1/shell/translate) into one
// llmasos command, shown with what it needs of the key's role; the Run button (the
// confirmation) does it through the API, as the CLI command would.
import { html, useState } from "/dashboard/static/vendor/htm-preact-3.1.1.module.js";
import { api, headers } from "./common.js";

const go = (path) => () => { location.href = path; return "opened"; };
const enc = encodeURIComponent;
// A path's segments, each encoded; "." and ".." never reach the URL (the browser would climb).
const filePath = (path) => path.split("/").map((part) => {
  if (part === "." || part === "..") throw new Error(`a path may not hold "${part}"`);
  return enc(part);
}).join("/");

// argv -> what running it does here (a promise of something to show, or a page to open).
function action(argv) {
  const [a, b, c] = argv;
  const post = (path, body) => api(path, { method: "POST", body });
  const table = {
    "ps": go("/"), "agents ps": go("/"), "models ps": go("/dashboard/memory"),
    "jobs ls": go("/dashboard/jobs"),
    "models list": () => api("/v1/models"), "models show": () => api(`/v1/models/${enc(c)}`),
    "jobs status": () => api(`/v1/tasks/${enc(c)}`), "jobs logs": () => api(`/v1/tasks/${enc(c)}/logs`),
    "jobs cancel": () => post(`/v1/tasks/${enc(c)}/cancel`), "jobs suspend": () => post(`/v1/tasks/${enc(c)}/suspend`),
    "jobs resume": () => post(`/v1/tasks/${enc(c)}/resume`),
    "fs ls": () => api("/v1/fs/list"), "fs usage": () => api("/v1/fs/usage"),
    "fs cat": () => fetchText(`/v1/fs/files/${filePath(c)}`), "fs log": () => api(`/v1/fs/history/${filePath(c)}`),
    "fs rm": () => api(`/v1/fs/files/${filePath(c)}`, { method: "DELETE" }),
    "agents kill": () => api(`/v1/agents/${enc(c)}`, { method: "DELETE" }),
    "kill": () => post(`/v1/processes/${enc(b)}/signal`, { signal: "kill" }),
    "run": () => post("/v1/processes", { prompt: argv[argv.length - 1], max_tokens: 128 }),
    "keys list": () => api("/v1/admin/keys"), "keys revoke": () => api(`/v1/admin/keys/${enc(c)}`, { method: "DELETE" }),
    "audit verify": () => api("/v1/admin/audit/verify"),
  };
  return table[argv.join(" ")] || table[`${a} ${b}`] || table[a];
}

async function fetchText(path) {
  const reply = await fetch(path, { headers: headers() });
  if (!reply.ok) throw new Error(`${reply.status} ${reply.statusText}`);
  return reply.text();
}

const shellQuote = (word) => (/^[\w@%+=:,./~-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`);

export function CommandBar() {
  const [sentence, setSentence] = useState("");
  const [found, setFound] = useState(null);
  const [outcome, setOutcome] = useState(null);
  const [busy, setBusy] = useState(false);
  const translate = async (event) => {
    event.preventDefault();
    setBusy(true); setFound(null); setOutcome(null);
    try {
      setFound(await api(`/v1/shell/translate?sentence=${enc(sentence)}`));
    } catch (e) {
      setOutcome({ error: e.message });
    } finally {
      setBusy(false);
    }
  };
  const run = async () => {
    try {
      const result = await action(found.argv)();
      setOutcome({ text: typeof result === "string" ? result : JSON.stringify(result, null, 1) });
    } catch (e) {
      setOutcome({ error: e.message });
    }
  };
  return html`<section class="commandbar" aria-label="Command bar">
    <form onSubmit=${translate}>
      <label for="command-sentence">Say what to do </label>
      <input id="command-sentence" size="48" maxlength="500" value=${sentence}
        placeholder="e.g. kill the longest running job" onInput=${(e) => setSentence(e.target.value)} />
      <button type="submit" disabled=${busy || !sentence.trim()}>${busy ? "Translating…" : "Translate"}</button>
    </form>
    ${found ? html`<p><code data-command>llmasos ${found.argv.map(shellQuote).join(" ")}</code>
      <span class="muted"> (${found.access})</span>
      ${found.allowed ? html` <button onClick=${run}>Run</button>`
        : html` <span class="error">your key's role (${found.role}) may not run this</span>`}</p>` : ""}
    ${outcome ? html`<pre class=${outcome.error ? "error" : ""} role="status">${outcome.error || outcome.text}</pre>` : ""}
  </section>`;
}
