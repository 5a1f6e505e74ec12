"use strict";
(function () {
  const METHODS = ["get", "put", "post", "delete", "patch", "head", "options"];
  const main = document.getElementById("main");
  const toc = document.getElementById("toc");
  let doc = null;

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
    return e;
  }
  function resolve(node) {
    let seen = 0;
    while (node && node.$ref && seen++ < 20) {
      const parts = node.$ref.replace(/^#\//, "").split("/").map(p => p.replace(/~1/g, "/").replace(/~0/g, "~"));
      let t = doc;
      for (const p of parts) t = t ? t[p] : undefined;
      node = t;
    }
    return node || {};
  }
  function refName(node) { return node && node.$ref ? node.$ref.split("/").pop() : null; }
  function typeOf(s) {
    s = resolve(s);
    if (s.const !== undefined) return "const " + JSON.stringify(s.const);
    if (s.enum) return "enum";
    let t = Array.isArray(s.type) ? s.type.join(" | ") : (s.type || "");
    if (s.type === "array" && s.items) t = "array of " + (refName(s.items) || typeOf(s.items));
    if (!t && (s.anyOf || s.oneOf)) t = (s.anyOf ? "any of" : "one of");
    return t || "any";
  }
  function rules(s) {
    s = resolve(s);
    const r = [];
    if (s.enum) r.push("one of " + s.enum.map(v => JSON.stringify(v)).join(", "));
    if (s.pattern) r.push("pattern " + s.pattern);
    for (const [k, n] of [["minLength", "min length"], ["maxLength", "max length"], ["minimum", "≥"], ["maximum", "≤"], ["minItems", "min items"], ["maxItems", "max items"], ["maxProperties", "max members"]])
      if (s[k] !== undefined) r.push(n + " " + s[k]);
    return r.join("; ");
  }
  // schema renders a schema as nested tables; depth bounds recursion
  // (schemas here are not recursive, the bound is a guard).
  function schema(s, depth) {
    const name = refName(s);
    s = resolve(s);
    const box = el("div", { class: "schema" });
    if (depth > 8) { box.append(el("span", { class: "rule" }, "…")); return box; }
    if (name) box.append(el("div", { class: "rule" }, name));
    if (s.description) box.append(el("div", { class: "desc" }, s.description));
    const alts = s.anyOf || s.oneOf;
    if (alts) {
      const d = el("details", {}, el("summary", {}, (s.anyOf ? "any of " : "one of ") + alts.length + " shapes"));
      alts.forEach(a => d.append(schema(a, depth + 1)));
      box.append(d);
    }
    if (s.properties) {
      const req = new Set(s.required || []);
      const tb = el("table", {}, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "member"), el("th", { scope: "col" }, "type"), el("th", { scope: "col" }, "rules and meaning"))));
      const body = el("tbody");
      for (const [k, v] of Object.entries(s.properties)) {
        const rv = resolve(v);
        const cell = el("td", {}, rules(v) ? el("div", { class: "rule" }, rules(v)) : null, rv.description && !refName(v) ? el("div", { class: "desc" }, rv.description) : null);
        const nested = rv.properties || (rv.items && resolve(rv.items).properties) || rv.anyOf || rv.oneOf || (rv.additionalProperties && typeof rv.additionalProperties === "object");
        if (nested) {
          const d = el("details", {}, el("summary", {}, "shape"));
          d.addEventListener("toggle", () => { if (d.open && d.childNodes.length === 1) d.append(schema(rv.type === "array" ? rv.items : v, depth + 1)); }, { once: false });
          cell.append(d);
        } else if (refName(v) && rv.description) {
          cell.append(el("div", { class: "desc" }, rv.description));
        }
        body.append(el("tr", {}, el("td", {}, el("code", {}, k), req.has(k) ? el("span", { class: "req", title: "required" }, " required") : null), el("td", { class: "type" }, typeOf(v)), cell));
      }
      tb.append(body);
      box.append(tb);
      if (s.additionalProperties === false) box.append(el("div", { class: "rule" }, "No other members (an unknown member is 400)."));
    } else if (s.type === "array" && s.items) {
      box.append(el("div", { class: "type" }, typeOf(s)));
      box.append(schema(s.items, depth + 1));
    } else if (!alts) {
      box.append(el("div", {}, el("span", { class: "type" }, typeOf(s)), rules(s) ? el("span", { class: "rule" }, " " + rules(s)) : null));
      if (s.additionalProperties && typeof s.additionalProperties === "object") {
        box.append(el("div", { class: "rule" }, "values:"), schema(s.additionalProperties, depth + 1));
      }
    }
    return box;
  }
  function security(op) {
    const reqs = op.security || doc.security || [];
    if (!reqs.length) return null;
    const names = reqs.map(r => Object.keys(r).join(" + ") || "none");
    return el("p", {}, el("strong", {}, "Authentication: "), names.join(" or "));
  }
  function params(op, item) {
    const ps = [...(item.parameters || []), ...(op.parameters || [])].map(resolve);
    if (!ps.length) return null;
    const tb = el("table", {}, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "parameter"), el("th", { scope: "col" }, "in"), el("th", { scope: "col" }, "type"), el("th", { scope: "col" }, "meaning"))));
    const body = el("tbody");
    for (const p of ps) {
      const s = resolve(p.schema || {});
      body.append(el("tr", {}, el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, " required") : null), el("td", {}, p.in),
        el("td", { class: "type" }, typeOf(p.schema || {})), el("td", {}, p.description || s.description || "", rules(p.schema || {}) ? el("div", { class: "rule" }, rules(p.schema || {})) : null)));
    }
    tb.append(body);
    return el("div", {}, el("h4", {}, "Parameters"), tb);
  }
  function content(c) {
    const out = el("div");
    for (const [mt, m] of Object.entries(c || {})) {
      out.append(el("div", {}, el("code", {}, mt)));
      if (m.schema) out.append(schema(m.schema, 0));
    }
    return out;
  }
  function operation(path, method, op, item) {
    const id = "op-" + method + "-" + path.replace(/[^A-Za-z0-9]+/g, "-");
    const sec = el("section", { class: "op", id: id, "data-search": (method + " " + path + " " + (op.summary || "") + " " + (op.tags || []).join(" ")).toLowerCase() },
      el("h3", {}, el("span", { class: "method m-" + method }, method), el("span", { class: "path" }, path), el("span", { class: "summary" }, op.summary || "")));
    if (op.description) sec.append(el("p", { class: "desc" }, op.description));
    for (const part of [security(op), params(op, item)]) if (part) sec.append(part);
    if (op.requestBody) {
      const rb = resolve(op.requestBody);
      sec.append(el("h4", {}, "Request body" + (rb.required ? "" : " (optional)")));
      if (rb.description) sec.append(el("p", { class: "desc" }, rb.description));
      sec.append(content(rb.content));
    }
    sec.append(el("h4", {}, "Responses"));
    for (const [code, r0] of Object.entries(op.responses || {})) {
      const r = resolve(r0);
      const d = el("details", {}, el("summary", {}, el("span", { class: "status" }, code), " " + (r.description || "")));
      d.addEventListener("toggle", () => { if (d.open && d.childNodes.length === 1) d.append(content(r.content)); });
      sec.append(d);
    }
    return { sec, id };
  }
  function render() {
    document.getElementById("title").textContent = doc.info.title;
    document.getElementById("version").textContent = "· OpenAPI " + doc.openapi + " · version " + doc.info.version;
    main.textContent = "";
    main.append(el("p", { class: "desc" }, doc.info.description || ""));
    const schemes = (doc.components || {}).securitySchemes || {};
    if (Object.keys(schemes).length) {
      const dl = el("dl");
      for (const [name, sc] of Object.entries(schemes)) {
        dl.append(el("dt", {}, el("code", {}, name), " ", el("span", { class: "rule" }, sc.type + (sc.scheme ? " " + sc.scheme : "") + (sc.in ? " in " + sc.in + " " + sc.name : ""))),
          el("dd", { class: "desc" }, sc.description || ""));
      }
      main.append(el("h2", { id: "security" }, "Authentication"), dl);
    }
    const byTag = new Map();
    for (const t of doc.tags || []) byTag.set(t.name, []);
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const m of METHODS) {
        if (!item[m]) continue;
        const tag = (item[m].tags || ["Other"])[0];
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push([path, m, item[m], item]);
      }
    }
    for (const [tag, ops] of byTag) {
      if (!ops.length) continue;
      const group = el("div", { class: "tag" }, el("h2", { id: "tag-" + tag }, tag));
      const list = el("ul");
      for (const [path, m, op, item] of ops) {
        const { sec, id } = operation(path, m, op, item);
        group.append(sec);
        list.append(el("li", { "data-for": id }, el("a", { href: "#" + id }, m.toUpperCase() + " " + path)));
      }
      main.append(group);
      toc.append(el("h2", {}, tag), list);
    }
    if (location.hash) { const t = document.getElementById(location.hash.slice(1)); if (t) t.scrollIntoView(); }
  }
  document.getElementById("filter").addEventListener("input", e => {
    const q = e.target.value.trim().toLowerCase();
    for (const s of main.querySelectorAll("section.op")) {
      const hit = !q || s.dataset.search.includes(q);
      s.classList.toggle("hidden", !hit);
      const li = toc.querySelector('[data-for="' + s.id + '"]');
      if (li) li.classList.toggle("hidden", !hit);
    }
  });
  // On a phone the route list starts folded, so the reference comes first.
  if (window.matchMedia("(max-width: 760px)").matches) document.getElementById("navbox").open = false;
  fetch("openapi.json", { headers: { Accept: "application/json" } })
    .then(r => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then(d => { doc = d; render(); })
    .catch(err => { document.getElementById("status").textContent = "Could not load openapi.json: " + err.message; });
})();
