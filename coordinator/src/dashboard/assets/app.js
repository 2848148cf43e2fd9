// Draws the page model (coordinator/src/dashboard/model.rs) that /api/stream pushes; all
// judgements are made on the server, this only renders them.
"use strict";

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function replace(id, children) {
  document.getElementById(id).replaceChildren(...children);
}

// an event's time as the UTC time of day (a date too when not today): never stale, unlike
// "5s ago" between two pushes
function when(ms) {
  const iso = new Date(ms).toISOString();
  const today = new Date().toISOString().slice(0, 10);
  return (iso.slice(0, 10) === today ? "" : iso.slice(0, 10) + " ") + iso.slice(11, 19);
}

function render(model) {
  document.getElementById("cluster").textContent = model.cluster || "Triad";
  document.getElementById("version").textContent = "coordinator " + model.version;
  document.title = "Triad " + model.cluster + ": " + model.health;
  const health = document.getElementById("health");
  health.className = "badge tone-" + model.health;
  health.dataset.health = model.health;
  health.textContent = { ok: "healthy", warn: "degraded", bad: "down", idle: "unknown" }[model.health];
  replace("reasons", model.reasons.map((r) => el("li", {}, r)));

  replace("grid-head", [el("th", {}, "node"), ...model.services.map((s) => el("th", {}, s))]);
  replace("grid-body", model.nodes.map((node) => {
    const row = el("tr");
    const tile = el("td", { class: "tile tone-" + node.tone, "data-node": node.id, "data-state": node.state, "data-tone": node.tone });
    tile.append(el("strong", {}, node.id), el("span", { class: "state" }, " " + node.state));
    tile.append(el("div", { class: "meta" }, node.role + (node.state === "down" ? "" : " · cpu " + node.cpu_percent.toFixed(0) + "%")));
    if (node.reason) tile.append(el("div", { class: "reason" }, node.reason));
    row.append(tile, ...node.cells.map((cell) => el("td", { class: "cell tone-" + cell.tone }, cell.state)));
    return row;
  }));

  document.getElementById("balancer-kind").textContent = model.balancer ? model.balancer.kind : "";
  replace("balancer", model.balancer
    ? model.balancer.members.map((m) => el("li", { class: "tone-" + m.tone, "data-member": m.name }, m.name + " " + m.state))
    : [el("li", { class: "tone-idle" }, "no balancer configured")]);
  document.getElementById("balancer-error").textContent =
    model.balancer && model.balancer.last_error ? "last error (" + model.balancer.errors_total + "): " + model.balancer.last_error : "";

  replace("activity", model.activity.flatMap((a) => [
    el("dt", { class: a.busy ? "busy" : "" }, a.label),
    el("dd", { class: a.busy ? "busy" : "" }, a.text),
  ]));
  replace("events", model.events.map((e) => {
    const item = el("li", { class: "kind-" + e.kind });
    item.append(el("time", { datetime: new Date(e.at).toISOString() }, when(e.at)), el("b", {}, " " + e.kind + " " + e.subject + " "), document.createTextNode(e.text));
    return item;
  }));
  document.body.dataset.updated = String(Date.now());
}

function connect() {
  const link = document.getElementById("link");
  const source = new EventSource("/api/stream");
  source.onopen = () => { link.textContent = "live"; link.className = "link live"; };
  source.onmessage = (message) => render(JSON.parse(message.data));
  // EventSource retries by itself; a refused session (401) ends it: reload shows why
  source.onerror = () => {
    link.textContent = "disconnected, retrying";
    link.className = "link lost";
    if (source.readyState === EventSource.CLOSED) setTimeout(() => location.reload(), 5000);
  };
}

connect();
