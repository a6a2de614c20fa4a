// Bulkhead operator dashboard. Vanilla JS, no dependencies. Every string
// that comes from the server (tenant ids, names, principals, resources)
// goes through esc() before it reaches innerHTML.
(function () {
  "use strict";
  var meta = function (n) { return document.querySelector('meta[name="' + n + '"]').content; };
  var prefix = meta("prefix"), csrf = meta("csrf-token");
  var $ = function (id) { return document.getElementById(id); };
  var ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  function esc(s) { return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) { return ESC[c]; }); }

  var fleet = [], sortKey = "", sortDir = 1, filterText = "", openId = "", firstRender = true;

  function get(path) {
    return fetch(prefix + "/api/" + path, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { location.assign(prefix + "/"); throw new Error("signed out"); }
        if (!r.ok) { return r.json().then(function (p) { throw new Error(p.detail || r.statusText); }); }
        return r.json();
      });
  }

  function num(v, d) { return v == null ? "" : Number(v).toFixed(d); }
  function bytes(n) {
    var u = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  }
  function flagsHTML(fs) {
    return fs.map(function (f) {
      return '<span class="flag" title="value ' + esc(num(f.value, 3)) + ", baseline " + esc(num(f.baseline, 3)) +
        '">' + esc(f.signal) + "</span>";
    }).join("");
  }
  function usageHTML(t) {
    if (!t.usage) { return '<span class="muted">–</span>'; }
    var s = esc(t.usage.records) + " rec · " + esc(bytes(t.usage.bytes));
    if (t.quota && t.quota.max_bytes > 0) {
      s += ' <meter min="0" max="' + esc(t.quota.max_bytes) + '" value="' + esc(t.usage.bytes) + '" high="' +
        esc(t.quota.max_bytes * 0.8) + '"></meter> / ' + esc(bytes(t.quota.max_bytes));
    }
    return s;
  }

  var keys = {
    id: function (t) { return t.id; }, name: function (t) { return t.name.toLowerCase(); },
    tier: function (t) { return t.tier; }, state: function (t) { return t.state; },
    placement: function (t) { return t.shard + "/" + t.mode; },
    rpm: function (t) { return t.health ? t.health.requests_per_min : -1; },
    err: function (t) { return t.health ? t.health.error_rate : -1; },
    p99: function (t) { return t.health ? t.health.p99_ms : -1; },
    flags: function (t) { return t.flags.length; },
    usage: function (t) { return t.usage ? t.usage.bytes : -1; }
  };

  function visible() {
    var rows = fleet;
    if (filterText) {
      var q = filterText.toLowerCase();
      rows = rows.filter(function (t) {
        return t.id.indexOf(q) >= 0 || t.name.toLowerCase().indexOf(q) >= 0 ||
          t.flags.some(function (f) { return f.signal.indexOf(q) >= 0; }) || (q === "flagged" && t.flags.length > 0);
      });
    }
    if (sortKey) {
      var k = keys[sortKey];
      rows = rows.slice().sort(function (a, b) {
        var x = k(a), y = k(b);
        return (x < y ? -1 : x > y ? 1 : 0) * sortDir || (a.id < b.id ? -1 : 1);
      });
    }
    return rows;
  }

  function renderFleet() {
    var rows = visible(), html = new Array(rows.length);
    for (var i = 0; i < rows.length; i++) {
      var t = rows[i], h = t.health;
      html[i] = "<tr" + (t.flags.length ? ' class="flagged"' : "") + ' data-id="' + esc(t.id) + '"><td>' + esc(t.id) +
        "</td><td>" + esc(t.name) + "</td><td>" + esc(t.tier) + "</td><td>" + esc(t.state) + "</td><td>" +
        esc(t.shard) + " · " + esc(t.mode) + '</td><td class="num">' + (h ? num(h.requests_per_min, 1) : "") +
        '</td><td class="num">' + (h ? esc(h.errors) + " (" + num(h.error_rate * 100, 1) + "%)" : "") +
        '</td><td class="num">' + (h ? num(h.p99_ms, 1) : "") + "</td><td>" + flagsHTML(t.flags) + "</td><td>" +
        usageHTML(t) + "</td></tr>";
    }
    document.querySelector("#fleet tbody").innerHTML = html.join("");
    $("fleet-count").textContent = rows.length === fleet.length ? fleet.length + " tenants" : rows.length + " of " + fleet.length + " tenants";
    if (firstRender) {
      firstRender = false;
      performance.mark("fleet-rendered");
      document.body.setAttribute("data-rendered", "fleet");
    }
  }

  function loadFleet() {
    return get("fleet").then(function (f) {
      fleet = f.tenants;
      $("summary").textContent = f.tenants.length + " tenants · " + f.flagged + " flagged" + (f.truncated ? " (list truncated)" : "");
      renderFleet();
    });
  }

  function topHTML(list, fig) {
    if (!list.length) { return '<li class="muted">no traffic in the last minute</li>'; }
    return list.map(function (t) {
      return '<li data-id="' + esc(t.id) + '">' + esc(t.id) + (t.name ? ' <span class="muted">' + esc(t.name) + "</span> " : " ") +
        flagsHTML(t.flags) + '<span class="fig">' + fig(t.health) + "</span></li>";
    }).join("");
  }
  function loadTop() {
    return get("top").then(function (t) {
      $("top-requests").innerHTML = topHTML(t.by_requests, function (h) { return num(h.requests_per_min, 1) + "/min"; });
      $("top-errors").innerHTML = topHTML(t.by_errors, function (h) { return esc(h.errors) + " · " + num(h.error_rate * 100, 1) + "%"; });
    });
  }

  function loadAudit() {
    return get("audit?limit=20").then(function (a) {
      document.querySelector("#audit tbody").innerHTML = a.items.length ? a.items.map(function (e) {
        return "<tr><td>" + esc(new Date(e.time).toLocaleString()) + "</td><td>" + esc(e.principal) + "</td><td>" +
          esc(e.action) + "</td><td>" + esc(e.resource) + "</td><td>" + esc(e.decision) + '</td><td class="muted">' +
          esc(e.request_id) + "</td></tr>";
      }).join("") : '<tr><td colspan="6" class="muted">none yet</td></tr>';
    });
  }

  // chart draws one series as an SVG line over an area, numbers only.
  function chart(el, pts, field, bad) {
    var W = 300, H = 100, L = 34, B = 14, max = 0, i;
    for (i = 0; i < pts.length; i++) { max = Math.max(max, pts[i][field]); }
    el.className = "chart" + (bad ? " bad" : "");
    if (!pts.length) { el.innerHTML = '<p class="muted">no history yet</p>'; return; }
    var top = max > 0 ? max : 1, n = Math.max(pts.length - 1, 1), d = "";
    for (i = 0; i < pts.length; i++) {
      var x = L + (W - L) * i / n, y = (H - B) - (H - B - 4) * pts[i][field] / top;
      d += (i ? "L" : "M") + x.toFixed(1) + "," + y.toFixed(1);
    }
    var last = L + (W - L) * (pts.length - 1) / n;
    el.innerHTML = '<svg viewBox="0 0 ' + W + " " + H + '" role="img"><line x1="' + L + '" y1="' + (H - B) + '" x2="' + W + '" y2="' + (H - B) +
      '"/><text x="0" y="10">' + esc(num(max, max < 10 ? 1 : 0)) + '</text><text x="0" y="' + (H - B) + '">0</text>' +
      '<text x="' + L + '" y="' + H + '">' + esc(new Date(pts[0].at).toLocaleTimeString()) + '</text>' +
      '<path class="area" d="' + d + "L" + last.toFixed(1) + "," + (H - B) + "L" + L + "," + (H - B) + 'Z"/>' +
      '<path class="line" d="' + d + '"/></svg>';
  }

  function rowsHTML(pairs) {
    return pairs.map(function (p) { return "<tr><th>" + esc(p[0]) + "</th><td>" + p[1] + "</td></tr>"; }).join("");
  }

  function openDetail(id) {
    openId = id;
    return get("tenants/" + encodeURIComponent(id)).then(function (t) {
      $("detail").hidden = false;
      $("detail-title").textContent = t.id + (t.name ? " — " + t.name : "");
      $("detail-flags").innerHTML = t.flags.length ? t.flags.map(function (f) {
        return '<p><span class="flag">' + esc(f.signal) + "</span> since " + esc(new Date(f.since).toLocaleTimeString()) +
          ": " + esc(num(f.value, 3)) + " against its baseline " + esc(num(f.baseline, 3)) + " (± " + esc(num(f.spread, 3)) + ")</p>";
      }).join("") : '<p class="muted">no anomaly flags</p>';
      var bad = {};
      t.flags.forEach(function (f) { bad[f.signal] = true; });
      chart($("chart-requests"), t.series, "requests", bad.request_rate);
      chart($("chart-errors"), t.series, "errors", bad.error_rate);
      chart($("chart-p99"), t.series, "p99_ms", bad.latency_p99);
      $("detail-windows").innerHTML = "<tr><th>Window</th><th class=\"num\">Requests</th><th class=\"num\">Errors</th>" +
        "<th class=\"num\">Throttled</th><th class=\"num\">Queued</th><th class=\"num\">p50 ms</th><th class=\"num\">p99 ms</th></tr>" +
        t.windows.map(function (w) {
          return "<tr><td>" + esc(Math.ceil(w.seconds / 60)) + ' min</td><td class="num">' + esc(w.requests) + '</td><td class="num">' +
            esc(w.errors) + '</td><td class="num">' + esc(w.throttled) + '</td><td class="num">' + esc(w.queued) +
            '</td><td class="num">' + num(w.p50_ms, 1) + '</td><td class="num">' + num(w.p99_ms, 1) + "</td></tr>";
        }).join("");
      var l = t.limits || {};
      $("detail-info").innerHTML = rowsHTML([
        ["Tier / state", esc(t.tier) + " · " + esc(t.state)], ["Placement", esc(t.shard) + " · " + esc(t.mode)],
        ["Created", esc(new Date(t.created_at).toLocaleString())], ["Usage", usageHTML(t)],
        ["Rate limit", l.requests_per_second != null ? esc(l.requests_per_second) + "/s, burst " + esc(l.burst) : "–"],
        ["Concurrency", l.max_concurrent != null ? esc(l.max_concurrent) + " (weight " + esc(l.weight) + ")" : "–"],
        ["Quota", l.max_records != null ? esc(l.max_records || "∞") + " records · " + (l.max_bytes ? esc(bytes(l.max_bytes)) : "∞") : "–"]
      ]);
      document.body.setAttribute("data-detail", t.id);
    });
  }

  function report(err) {
    if (err && err.message !== "signed out") { $("summary").textContent = "could not load: " + err.message; }
  }

  function refresh() {
    return Promise.all([loadFleet(), loadTop(), loadAudit()]).then(function () {
      if (openId) { return openDetail(openId); }
    }).catch(report);
  }

  function clickTenant(e) {
    var el = e.target.closest("[data-id]");
    if (el) { openDetail(el.getAttribute("data-id")).catch(report); }
  }

  document.querySelector("#fleet tbody").addEventListener("click", clickTenant);
  $("top-requests").addEventListener("click", clickTenant);
  $("top-errors").addEventListener("click", clickTenant);
  $("detail-close").addEventListener("click", function () { openId = ""; $("detail").hidden = true; });
  document.querySelector("#fleet thead").addEventListener("click", function (e) {
    var th = e.target.closest("th");
    if (!th) { return; }
    var k = th.getAttribute("data-key");
    sortDir = sortKey === k ? -sortDir : (k === "id" || k === "name" ? 1 : -1);
    sortKey = k;
    Array.prototype.forEach.call(this.querySelectorAll("th"), function (h) { h.className = ""; });
    th.className = sortDir > 0 ? "asc" : "desc";
    renderFleet();
  });
  $("filter").addEventListener("input", function () { filterText = this.value.trim(); renderFleet(); });
  $("signout").addEventListener("click", function () {
    fetch(prefix + "/signout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } })
      .then(function () { location.assign(prefix + "/"); });
  });

  loadFleet().catch(report);
  loadTop().catch(report);
  loadAudit().catch(report);
  setInterval(refresh, 15000);
})();
