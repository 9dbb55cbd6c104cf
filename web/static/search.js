// The search page's script: answers as you type, "More results", and the keyboard.
// Without it the page is a plain form (GET /?q=...), answered by the server the same way.
// The results come from /results as HTML the server renders with the page's own template,
// so there is one way to draw a result, with or without this script.
"use strict";

(function () {
  const form = document.querySelector("form.search");
  const box = document.getElementById("q");
  const status = document.getElementById("status");
  const searching = document.getElementById("searching");
  if (!form || !box || !status || !searching) return;

  const DEBOUNCE_MS = 120; // a pause in typing this long asks the question
  const QUIET_MS = 150; // an answer faster than this never shows "Searching…"
  const RETRY_MS = 1000; // while kb is starting, ask again this often
  const initial = new URLSearchParams(location.search);
  const touched = { mode: initial.has("mode"), k: initial.has("k") };

  let typingTimer = 0;
  let retryTimer = 0;
  let quietTimer = 0;
  let controller = null;
  let latest = 0; // the number of the newest search; any older answer is dropped

  const area = () => document.getElementById("answer");

  function question(offset) {
    const data = new URLSearchParams({ q: box.value.trim() });
    if (touched.mode) data.set("mode", form.elements.mode.value);
    if (touched.k) data.set("k", form.elements.k.value);
    if (offset) data.set("offset", String(offset));
    return data;
  }

  function busy(on) {
    searching.hidden = !on;
    const current = area();
    if (current) current.setAttribute("aria-busy", on ? "true" : "false");
  }

  function settle() {
    clearTimeout(quietTimer);
    busy(false);
  }

  function showAnswer(fresh) {
    area().replaceWith(fresh);
    status.textContent = fresh.dataset.announce || "";
  }

  // A failed first page replaces the results; a failed "More results" keeps the results shown
  // and puts the sentence above the link, so it can be tried again.
  function showError(message, offset) {
    const line = document.createElement("p");
    line.className = "error";
    line.id = "error";
    line.textContent = message;
    const more = offset ? area().querySelector(".more-row") : null;
    if (more) {
      const old = document.getElementById("error");
      if (old) old.remove();
      more.before(line);
      status.textContent = "Error: " + message;
      return;
    }
    const fresh = document.createElement("div");
    fresh.id = "answer";
    fresh.className = "answer";
    fresh.append(line);
    fresh.dataset.announce = "Error: " + message;
    showAnswer(fresh);
  }

  function friendly(code) {
    if (code === 429) return "Too many searches from this address just now. Wait a moment and try again.";
    return "The search failed on the server (HTTP " + code + "). Try again in a moment.";
  }

  function appendPage(fresh) {
    const failed = document.getElementById("error");
    if (failed) failed.remove();
    const list = document.getElementById("results");
    const items = Array.from(fresh.querySelectorAll("#results > li"));
    items.forEach((item) => list.append(item));
    const oldMore = area().querySelector(".more-row");
    const newMore = fresh.querySelector(".more-row");
    if (oldMore && newMore) oldMore.replaceWith(newMore);
    else if (oldMore) oldMore.remove();
    status.textContent = fresh.dataset.announce || "";
    const first = items.length ? items[0].querySelector(".title") : null;
    if (first) first.focus();
  }

  function clearAnswer() {
    latest += 1;
    if (controller) controller.abort();
    settle();
    // The empty and starting states do not depend on the question: they stay.
    if (!area().querySelector("#empty, #not-ready")) {
      const blank = document.createElement("div");
      blank.id = "answer";
      blank.className = "answer";
      showAnswer(blank);
    }
    status.textContent = "";
    const data = question(0);
    data.delete("q");
    history.replaceState(null, "", data.toString() ? "/?" + data : "/");
  }

  // Insights (KB_QUERY_LOG, docs/operations.md): a question counts once it settles, so "Has", "Has an", ... typed
  // on the way are not each one. It settles when its answer stays SETTLE_MS without more typing, on Enter, when a
  // result is opened, or when the page is left; the server holds as-you-type answers until the page says so.
  // navigator.sendBeacon carries it (it outlives a page being left), under the page's CSP (connect-src 'self').
  const SETTLE_MS = 1500;
  let settleTimer = 0;
  let submitted = false;
  const settled = new Set();

  function shownQuestion() {
    const id = area().dataset.queryId;
    return id ? Number(id) : 0;
  }

  function beacon(body) {
    if (navigator.sendBeacon) {
      navigator.sendBeacon("/api/events", new Blob([JSON.stringify(body)], { type: "application/json" }));
    }
  }

  function settleNow() {
    clearTimeout(settleTimer);
    const id = shownQuestion();
    if (id && !settled.has(id)) {
      settled.add(id);
      beacon({ event: "search", query_id: id });
    }
  }

  function settleSoon() {
    clearTimeout(settleTimer);
    settleTimer = setTimeout(settleNow, SETTLE_MS);
  }

  async function search(offset) {
    clearTimeout(typingTimer);
    clearTimeout(retryTimer);
    if (!box.value.trim()) {
      clearAnswer();
      return;
    }
    if (controller) controller.abort();
    if (!offset) clearTimeout(settleTimer); // another question is on its way: the one shown did not settle
    const id = ++latest;
    controller = new AbortController();
    const data = question(offset);
    clearTimeout(quietTimer);
    quietTimer = setTimeout(() => { if (id === latest) busy(true); }, QUIET_MS);
    let response;
    let html;
    try {
      response = await fetch("/results?" + data, { signal: controller.signal, headers: { Accept: "text/html" } });
      html = await response.text();
    } catch (error) {
      if (id !== latest) return; // a newer search took over (this one was aborted)
      settle();
      showError("kb could not be reached. Check the connection and try again.", offset);
      return;
    }
    if (id !== latest) return;
    settle();
    const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("answer");
    if (!fresh) {
      showError(friendly(response.status), offset);
      return;
    }
    if (offset && !response.ok) {
      showError(fresh.textContent.trim() || friendly(response.status), offset);
      return;
    }
    if (offset && document.getElementById("results")) appendPage(fresh);
    else showAnswer(fresh);
    if (!offset) {
      history.replaceState(null, "", "/?" + data);
      if (submitted) settleNow(); else settleSoon();
    }
    if (response.status === 503 && fresh.querySelector("#not-ready[data-code=loading]")) {
      retryTimer = setTimeout(() => search(offset), RETRY_MS);
    }
  }

  box.addEventListener("input", () => {
    clearTimeout(typingTimer);
    clearTimeout(settleTimer); // still typing: the question shown has not settled
    submitted = false;
    if (!box.value.trim()) clearAnswer();
    else typingTimer = setTimeout(() => search(0), DEBOUNCE_MS);
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitted = true;
    search(0);
  });

  // A result opened: which one, at which rank (this also settles its question).
  document.addEventListener("click", (event) => {
    const link = event.target.closest("#results .result .title");
    const id = shownQuestion();
    if (!link || !id) return;
    const item = link.closest(".result");
    settled.add(id);
    beacon({ event: "click", query_id: id, rank: Number(item.dataset.rank), doc_id: item.dataset.docId });
  });

  addEventListener("pagehide", settleNow);

  for (const name of ["mode", "k"]) {
    form.elements[name].addEventListener("change", () => {
      touched[name] = true;
      if (box.value.trim() && form.elements[name].checkValidity()) search(0);
    });
  }

  document.addEventListener("click", (event) => {
    const more = event.target.closest("#more");
    if (!more) return;
    event.preventDefault();
    search(Number(more.dataset.offset));
  });

  function stops() {
    return Array.from(document.querySelectorAll("#results .result .title, #more"));
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const inField = target instanceof Element && target.matches("input, select, textarea");
    if (event.key === "/" && !inField) {
      event.preventDefault();
      box.focus();
      box.select();
    } else if (event.key === "Escape" && (target === box || stops().includes(target))) {
      event.preventDefault();
      box.value = "";
      clearAnswer();
      box.focus();
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const list = stops();
      const at = list.indexOf(target);
      if (target !== box && at < 0) return; // arrows keep scrolling the page elsewhere
      if (!list.length) return;
      event.preventDefault();
      const next = event.key === "ArrowDown" ? Math.min(at + 1, list.length - 1) : at - 1;
      if (next < 0) box.focus();
      else {
        list[next].focus();
        list[next].scrollIntoView({ block: "nearest" });
      }
    }
  });

  // While the folder watch has changes to bring in, say so: results may not hold them yet (/api/health's sync).
  const updating = document.getElementById("updating");
  const UPDATE_MS = 2000;
  async function freshness() {
    if (!document.hidden) {
      try {
        const response = await fetch("/api/health", { headers: { Accept: "application/json" } });
        const sync = response.ok ? (await response.json()).sync : null;
        const waiting = sync ? Math.max(sync.pending || 0, sync.syncing ? 1 : 0) : 0;
        updating.hidden = waiting === 0;
        updating.textContent = waiting === 1 ? "Updating 1 document…" : `Updating ${waiting} documents…`;
      } catch (error) {
        updating.hidden = true; // the search itself says when the server is unreachable
      }
    }
    setTimeout(freshness, UPDATE_MS);
  }
  if (updating) freshness();

  if (box.value.trim() && area().querySelector("#not-ready[data-code=loading]")) {
    retryTimer = setTimeout(() => search(0), RETRY_MS);
  }
})();
