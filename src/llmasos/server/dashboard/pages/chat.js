// Chat and playground: a conversation streamed from POST /v1/chat/completions, with the model,
// the sampling fields, an optional JSON schema the reply must follow, and the log-probabilities
// of each token shown with its alternatives underneath.
import { html, useState, useEffect, Page, Status, mount, api, headers, serverEvents } from "../common.js";

const DEFAULTS = { model: "", temperature: 0.7, top_p: 1, max_tokens: 128, seed: "", schema: "", top_logprobs: 0 };

function Field({ label, id, children }) {
  return html`<label for=${id}>${label}${children}</label>`;
}

function request(settings, messages) {
  const body = { messages, stream: true, max_tokens: Number(settings.max_tokens),
    temperature: Number(settings.temperature), top_p: Number(settings.top_p) };
  if (settings.model) body.model = settings.model;
  if (settings.seed !== "") body.seed = Number(settings.seed);
  if (Number(settings.top_logprobs) > 0) Object.assign(body, { logprobs: true, top_logprobs: Number(settings.top_logprobs) });
  if (settings.schema.trim()) {
    body.response_format = { type: "json_schema", json_schema: { name: "output", schema: JSON.parse(settings.schema), strict: true } };
  }
  return body;
}

function Tokens({ steps }) {
  return html`<div class="tokens" aria-label="Tokens with their alternatives">${steps.map((s, i) => html`
    <span class="token" key=${i}><span class="chosen" title=${`logprob ${s.logprob.toFixed(3)}`}>${s.token}</span>
      ${s.top_logprobs.filter((a) => a.token !== s.token).slice(0, 4).map((a) => html`
        <span class="alt">${JSON.stringify(a.token)} ${Math.exp(a.logprob).toFixed(2)}</span>`)}</span>`)}</div>`;
}

function Chat() {
  const [settings, setSettings] = useState(DEFAULTS);
  const [models, setModels] = useState([]);
  const [messages, setMessages] = useState([]);
  const [draft, setDraft] = useState("");
  const [reply, setReply] = useState(null); // {text, steps} while streaming and after
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => { api("/v1/models").then((m) => setModels(m.data.map((x) => x.id)), (e) => setError(e.message)); }, []);
  const set = (name) => (e) => setSettings({ ...settings, [name]: e.target.value });

  const send = async (event) => {
    event.preventDefault();
    if (!draft.trim() || busy) return;
    const history = [...messages, { role: "user", content: draft }];
    setMessages(history); setDraft(""); setError(null); setBusy(true);
    let text = "", steps = [];
    try {
      const body = request(settings, history);
      const answer = await fetch("/v1/chat/completions", { method: "POST",
        headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body) });
      if (!answer.ok) throw new Error((await answer.json()).error?.message || answer.statusText);
      for await (const { data } of serverEvents(answer)) {
        if (data === "[DONE]") break;
        const choice = JSON.parse(data).choices?.[0];
        if (!choice) continue;
        text += choice.delta?.content || "";
        steps = steps.concat(choice.logprobs?.content || []);
        setReply({ text, steps });
      }
      setMessages([...history, { role: "assistant", content: text }]);
    } catch (e) {
      setError(e instanceof SyntaxError ? `JSON schema: ${e.message}` : e.message);
    } finally {
      setBusy(false);
    }
  };

  return html`<${Page} title="Chat and playground">
    <form class="playground" aria-label="Sampling settings" onSubmit=${(e) => e.preventDefault()}>
      <${Field} label="Model" id="model"><select id="model" value=${settings.model} onChange=${set("model")}>
        <option value="">the server's default</option>${models.map((m) => html`<option value=${m}>${m}</option>`)}</select><//>
      <${Field} label="Temperature" id="temperature"><input id="temperature" type="number" min="0" max="2" step="0.1" value=${settings.temperature} onInput=${set("temperature")} /><//>
      <${Field} label="Top p" id="top_p"><input id="top_p" type="number" min="0" max="1" step="0.05" value=${settings.top_p} onInput=${set("top_p")} /><//>
      <${Field} label="Max tokens" id="max_tokens"><input id="max_tokens" type="number" min="1" max="4096" value=${settings.max_tokens} onInput=${set("max_tokens")} /><//>
      <${Field} label="Seed" id="seed"><input id="seed" type="number" min="0" value=${settings.seed} onInput=${set("seed")} placeholder="random" /><//>
      <${Field} label="Alternatives shown (logprobs)" id="top_logprobs"><input id="top_logprobs" type="number" min="0" max="20" value=${settings.top_logprobs} onInput=${set("top_logprobs")} /><//>
      <${Field} label="JSON schema of the reply (optional)" id="schema"><textarea id="schema" rows="3" value=${settings.schema} onInput=${set("schema")} placeholder='{"type": "object"}'></textarea><//>
    </form>
    <section class="messages" aria-label="Conversation" aria-live="polite">
      ${messages.map((m, i) => html`<p key=${i} data-role=${m.role}><b>${m.role}:</b> ${m.content}</p>`)}
      ${busy && reply ? html`<p data-role="streaming"><b>assistant:</b> ${reply.text}</p>` : ""}
    </section>
    ${reply && reply.steps.length ? html`<h3>Tokens of the last reply</h3><${Tokens} steps=${reply.steps} />` : ""}
    <${Status} error=${error} note=${busy ? "Generating…" : ""} />
    <form onSubmit=${send} aria-label="New message">
      <label for="message">Message</label><br />
      <textarea id="message" rows="3" cols="70" value=${draft} onInput=${(e) => setDraft(e.target.value)}></textarea><br />
      <button type="submit" disabled=${busy}>Send</button>
      <button type="button" onClick=${() => { setMessages([]); setReply(null); }}>Clear</button>
    </form>
  <//>`;
}

mount(Chat);
