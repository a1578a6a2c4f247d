// KV memory over time (pages used, cached as prefix cache, and swap), the prefix-cache hit
// rate, and the loaded models and where they are. The history is this page's own: a point a
// second from the live snapshots since it opened.
import { html, useState, useEffect, Page, Status, mount, useWatch, Chart, api } from "../common.js";

const HISTORY = 600; // points kept (10 minutes)

function useHistory(snapshot) {
  const [history, setHistory] = useState({ times: [], used: [], cached: [], swapped: [] });
  useEffect(() => {
    const tick = () => {
      if (!snapshot) return;
      const reports = Object.values(snapshot.memory);
      const sum = (f) => reports.reduce((total, r) => total + f(r), 0);
      setHistory((h) => {
        const keep = (list, value) => [...list, value].slice(-HISTORY);
        return {
          times: keep(h.times, Date.now() / 1000),
          used: keep(h.used, sum((r) => r.used_pages)),
          cached: keep(h.cached, sum((r) => r.cached_pages)),
          swapped: keep(h.swapped, sum((r) => (r.swap_ram_bytes + r.swap_disk_bytes) / 2 ** 20)),
        };
      });
    };
    tick();
    const timer = setInterval(tick, 1000);
    return () => clearInterval(timer);
  }, [snapshot]);
  return history;
}

// The Ray cluster's nodes and replicas, when this page is served through a cluster front
// (its /health counts replicas; a single server's does not, and has no GET /v1/cluster).
function Cluster() {
  const [cluster, setCluster] = useState(null);
  useEffect(() => {
    let stopped = false;
    const load = () => api("/v1/cluster").then((c) => !stopped && setCluster(c), () => {});
    let timer;
    fetch("/health").then((r) => r.json()).then((health) => {
      if (stopped || !("replicas" in health)) return;
      load();
      timer = setInterval(load, 5000);
    }, () => {});
    return () => { stopped = true; clearInterval(timer); };
  }, []);
  if (!cluster) return "";
  return html`<section aria-label="Cluster"><h3>Cluster: pool ${cluster.pool}, routing ${cluster.routing}</h3>
    <table aria-label="Nodes"><thead><tr><th>Node</th><th>Address</th><th>Alive</th><th class="num">CPUs</th><th class="num">GPUs</th><th class="num">Memory</th></tr></thead>
      <tbody>${cluster.nodes.map((n) => html`<tr key=${n.node_id}><td>${n.node_id.slice(0, 8)}</td><td>${n.address}</td>
        <td>${n.alive ? "yes" : "no"}</td><td class="num">${n.cpus}</td><td class="num">${n.gpus}</td>
        <td class="num">${(n.memory_bytes / 2 ** 30).toFixed(1)} GiB</td></tr>`)}</tbody></table>
    <table aria-label="Replicas"><thead><tr><th class="num">Replica</th><th>State</th><th>Node</th><th>Model</th><th class="num">In flight</th><th class="num">Served</th><th>Devices</th></tr></thead>
      <tbody>${cluster.replicas.map((r) => html`<tr key=${r.replica}><td class="num">${r.replica}</td><td>${r.state}</td>
        <td>${(r.node_id || "").slice(0, 8)}</td><td>${r.model || ""}</td><td class="num">${r.in_flight}</td>
        <td class="num">${r.served}</td><td>${r.devices.join(", ")}</td></tr>`)}</tbody></table>
  </section>`;
}

function Memory() {
  const { snapshot, error } = useWatch();
  const history = useHistory(snapshot);
  if (!snapshot) return html`<${Page} title="Memory and models"><${Status} error=${error} note="Connecting…" /><//>`;
  return html`<${Page} title="Memory and models">
    <${Status} error=${error} />
    ${Object.entries(snapshot.memory).map(([model, r]) => html`<section aria-label=${`KV memory of ${model}`}>
      <h3>${model}</h3>
      <div class="cards">
        <div class="card">Pages used<b data-field="used_pages">${r.used_pages}</b>of ${r.total_pages} (${r.page_size} tokens each)</div>
        <div class="card">Cached prefixes<b>${r.cached_pages}</b>pages</div>
        <div class="card">Free<b>${r.free_pages}</b>pages</div>
        <div class="card">Prefix-cache hit rate<b>${(100 * r.prefix_hit_rate).toFixed(1)}%</b>${r.prefix_hits} hits, ${r.prefix_misses} misses</div>
        <div class="card">Swap<b>${r.swap_outs} out / ${r.swap_ins} in</b>${((r.swap_ram_bytes + r.swap_disk_bytes) / 2 ** 20).toFixed(1)} MiB held</div>
      </div></section>`)}
    <${Chart} title="KV pages over time" times=${history.times}
      series=${{ "pages used": history.used, "pages cached": history.cached }} />
    <${Chart} title="Swapped KV (MiB) over time" times=${history.times} series=${{ "swapped MiB": history.swapped }} height=${160} />
    <h3>Loaded models</h3>
    <table aria-label="Loaded models">
      <thead><tr><th>Model</th><th>Device</th><th class="num">Memory</th><th class="num">Live processes</th><th class="num">Keep-alive</th></tr></thead>
      <tbody>${snapshot.models.map((m) => html`<tr key=${m.name}><td>${m.name}</td><td>${m.device}</td>
        <td class="num">${(m.memory_bytes / 2 ** 20).toFixed(0)} MiB</td><td class="num">${m.live_processes}</td>
        <td class="num">${m.keep_alive_s == null ? "kept" : `${m.keep_alive_s} s`}</td></tr>`)}</tbody>
    </table>
    <${Cluster} />
  <//>`;
}

mount(Memory);
