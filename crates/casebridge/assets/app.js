// casebridge console: the behaviour pages need beyond plain forms and htmx. Loaded first on
// every page (before htmx), so it also records any error the page raises: tests read
// window.cbErrors() and fail on any.
(function () {
  "use strict";

  // --- Errors: kept for the page's lifetime and across navigations of the tab.
  var KEY = "cb-errors";
  function stored() {
    try { return JSON.parse(sessionStorage.getItem(KEY) || "[]"); } catch (e) { return []; }
  }
  function record(kind, text) {
    var list = stored();
    list.push(kind + ": " + text + " (" + location.pathname + ")");
    try { sessionStorage.setItem(KEY, JSON.stringify(list.slice(-50))); } catch (e) { /* storage full or off */ }
  }
  window.cbErrors = stored;
  window.addEventListener("error", function (e) {
    if (e.target && e.target !== window && (e.target.src || e.target.href)) {
      record("resource", "could not load " + (e.target.src || e.target.href));
    } else {
      record("error", e.message || String(e.error));
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) { record("rejection", String(e.reason)); });
  document.addEventListener("securitypolicyviolation", function (e) {
    record("csp", e.violatedDirective + " blocked " + e.blockedURI);
  });
  var consoleError = console.error;
  console.error = function () {
    record("console", Array.prototype.map.call(arguments, String).join(" "));
    return consoleError.apply(console, arguments);
  };

  // --- Settings that appear, disappear and warn as others change.
  // data-show-if="name" (checkbox on) or "name=value" (radio or select value);
  // data-hide-if="name" (hidden while that checkbox is on). Hidden inputs are disabled, so
  // the form does not send them: a hidden option is off.
  function holds(form, cond) {
    var parts = cond.split("=");
    var els = form.querySelectorAll('[name="' + parts[0] + '"]');
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      if (el.disabled) continue;
      if (parts.length === 2) {
        if ((el.type === "radio" ? el.checked : true) && el.value === parts[1]) return true;
      } else if (el.checked) {
        return true;
      }
    }
    return false;
  }
  function applyVisibility(form) {
    // Several passes: hiding one box can hide those that depend on it.
    for (var pass = 0; pass < 4; pass++) {
      form.querySelectorAll("[data-show-if], [data-hide-if]").forEach(function (el) {
        var show = true;
        if (el.dataset.showIf) show = show && holds(form, el.dataset.showIf);
        if (el.dataset.hideIf) show = show && !holds(form, el.dataset.hideIf);
        if (el.tagName === "OPTION") {
          el.hidden = !show;
          el.disabled = !show;
          var sel = el.parentElement;
          if (!show && sel.value === el.value) {
            var first = Array.prototype.find.call(sel.options, function (o) { return !o.disabled; });
            if (first) sel.value = first.value;
          }
          return;
        }
        el.hidden = !show;
        el.querySelectorAll("input, select, textarea").forEach(function (i) {
          // An input inside a shown box can still be hidden by its own condition.
          var own = i.closest("[data-show-if], [data-hide-if]");
          if (own === el || !own || !own.hidden) i.disabled = !show || (own !== el && own.hidden);
        });
      });
    }
  }

  function insertAt(input, text) {
    var start = input.selectionStart == null ? input.value.length : input.selectionStart;
    var end = input.selectionEnd == null ? input.value.length : input.selectionEnd;
    input.value = input.value.slice(0, start) + text + input.value.slice(end);
    input.focus();
    input.setSelectionRange(start + text.length, start + text.length);
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // --- Charts: <canvas data-chart='{"type": …, "labels": […], "datasets": […]}'>.
  function drawCharts(root) {
    if (!window.Chart) return;
    root.querySelectorAll("canvas[data-chart]").forEach(function (c) {
      if (c.dataset.drawn) return;
      var spec = JSON.parse(c.dataset.chart);
      new window.Chart(c, {
        type: spec.type || "bar",
        data: { labels: spec.labels, datasets: spec.datasets },
        options: {
          responsive: true, maintainAspectRatio: false, animation: false,
          scales: spec.stacked ? { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } : { y: { beginAtZero: true } },
          plugins: { legend: { position: "bottom" } }
        }
      });
      c.dataset.drawn = "yes";
    });
  }

  // --- The agent widget tells the API which record it shows, and that it closed.
  function widget() {
    var w = document.getElementById("agent-widget");
    if (!w || !w.dataset.agent) return;
    var csrf = w.dataset.csrf;
    function send(path, extra) {
      var body = new FormData();
      body.append("_csrf", csrf);
      body.append("agent", w.dataset.agent);
      body.append("instance_id", w.dataset.instance);
      Object.keys(extra || {}).forEach(function (k) { body.append(k, extra[k]); });
      return body;
    }
    function report() {
      var panel = document.getElementById("agent-panel");
      var rec = panel ? (panel.dataset.record || "") : "";
      if (w.dataset.reported === rec + "|") return;
      w.dataset.reported = rec + "|";
      fetch("/agent/context", {
        method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf },
        body: new URLSearchParams(send("", { viewing_record_id: rec }))
      }).then(function (r) {
        w.dataset.context = r.ok ? "reported" : "refused";
        if (!r.ok) r.text().then(function (t) { showProblem(t); });
      }).catch(function (e) { record("widget", String(e)); });
    }
    report();
    document.body.addEventListener("htmx:afterSettle", report);
    window.addEventListener("pagehide", function () {
      navigator.sendBeacon("/agent/context/close", new URLSearchParams(send("", {})));
    });
  }

  function showProblem(text) {
    var box = document.getElementById("toast");
    if (!box) return;
    var msg = text;
    try { msg = JSON.parse(text).detail || text; } catch (e) { /* HTML or text */ }
    var tmp = document.createElement("div");
    tmp.innerHTML = msg;
    var p = tmp.querySelector(".error");
    box.textContent = p ? p.textContent : tmp.textContent;
    box.hidden = false;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var forms = document.querySelectorAll("form[data-rules], #rules-form");
    forms.forEach(function (form) {
      applyVisibility(form);
      form.addEventListener("change", function () {
        applyVisibility(form);
        if (window.htmx) window.htmx.trigger(form, "cb:changed");
      });
    });
    document.body.addEventListener("click", function (e) {
      var chip = e.target.closest("[data-insert]");
      if (chip) {
        var input = document.getElementById(chip.dataset.target);
        if (input) insertAt(input, chip.dataset.insert);
      }
    });
    document.body.addEventListener("htmx:responseError", function (e) {
      showProblem(e.detail.xhr.responseText);
    });
    document.body.addEventListener("htmx:afterSwap", function (e) { drawCharts(e.target); });
    document.body.addEventListener("htmx:beforeRequest", function () {
      var box = document.getElementById("toast");
      if (box) box.hidden = true;
    });
    drawCharts(document);
    widget();
  });
})();
