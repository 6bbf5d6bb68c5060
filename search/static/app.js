// The ytnotes search page. It asks the JSON API (/api/ask, /api/locate, /api/info) and builds the results with
// createElement and text nodes only: note text is never parsed as HTML, so a note that contains `<script>` or
// `onerror=` shows those characters and runs nothing. The query lives in the URL (?q=…&mode=locate), so a result
// can be shared, bookmarked, and reached with Back and Forward.
"use strict";

(() => {
  const EMBED = "https://www.youtube-nocookie.com/embed/";
  const EMBED_ORIGIN = new URL(EMBED).origin;
  const WATCH = "https://www.youtube.com/watch?";
  const PLACEHOLDER = {
    ask: "Ask your notes a question",
    locate: "Paste a claim or a quote: where was this said?",
  };
  // The same, short enough for a phone's search box.
  const SHORT_PLACEHOLDER = { ask: "Ask a question", locate: "Where was this said?" };
  const narrow = window.matchMedia("(max-width: 30rem)");
  const touch = window.matchMedia("(hover: none)");
  // URL parameters passed through to /api/ask as they are; the filters among them show as chips with a clear button.
  const FILTERS = ["k", "channel", "video"];
  const CHIPS = { channel: "Channel", video: "Video" };
  // The embed says it has loaded by answering the widget handshake YouTube's iframe API uses (enablejsapi=1).
  // Without an answer in this long, the player says the video cannot be played here, and offers the plain link.
  const EMBED_TIMEOUT_MS = 8000;
  const EMBED_READY = new Set(["onReady", "initialDelivery", "infoDelivery"]);

  const $ = (id) => document.getElementById(id);
  const form = $("search");
  const box = $("q");
  const statusLine = $("status");
  const answerBox = $("answer");
  const resultsBox = $("results");
  const intro = $("intro");
  const layout = document.querySelector(".layout");
  const player = $("player");
  const playerFrame = $("player-frame");
  const playerCaption = $("player-caption");
  const playerLink = $("player-link");
  const footer = $("info");
  const filtersBox = $("filters");
  const playerOffline = $("player-offline");

  let inFlight = null; // the AbortController of the search being answered
  let embed = null; // the playing embed being watched: { frame, url, stamp, ping, timer, ready }

  /** An element with attributes (set as attributes, never as HTML) and children (strings become text nodes). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  /** A YouTube link from the API, or null: only https://www.youtube.com/watch links become an href. */
  function watchUrl(url) {
    return typeof url === "string" && url.startsWith(WATCH) ? url : null;
  }

  function mode() {
    return form.elements.mode.value === "locate" ? "locate" : "ask";
  }

  function setPlaceholder() {
    box.placeholder = (narrow.matches ? SHORT_PLACEHOLDER : PLACEHOLDER)[mode()];
  }

  function setMode(value) {
    form.elements.mode.value = value === "locate" ? "locate" : "ask";
    setPlaceholder();
    box.setAttribute("aria-label", mode() === "locate" ? "Claim or quote" : "Question");
  }

  function setStatus(text, isError) {
    statusLine.textContent = text || "";
    statusLine.classList.toggle("error", Boolean(isError));
    statusLine.setAttribute("role", isError ? "alert" : "status");
  }

  // ---- the URL ---------------------------------------------------------------------------------------------

  function stateFromUrl() {
    const params = new URLSearchParams(location.search);
    const state = { q: params.get("q") || "", mode: params.get("mode") === "locate" ? "locate" : "ask" };
    for (const name of FILTERS) {
      if (params.get(name)) state[name] = params.get(name);
    }
    return state;
  }

  function urlFor(state) {
    const params = new URLSearchParams();
    params.set("q", state.q);
    if (state.mode === "locate") params.set("mode", "locate");
    for (const name of FILTERS) {
      if (state[name]) params.set(name, state[name]);
    }
    return "/?" + params.toString();
  }

  /** The active channel and video filters (ask only) as chips, each with a button that clears it. */
  function showFilters(state) {
    const active = state.mode === "ask" ? Object.keys(CHIPS).filter((name) => state[name]) : [];
    filtersBox.replaceChildren();
    for (const name of active) {
      const clear = el(
        "button",
        { type: "button", class: "chip-clear", title: "Clear this filter", "aria-label": `Clear the ${name} filter` },
        "×",
      );
      clear.addEventListener("click", () => {
        const next = { ...state };
        delete next[name];
        search(next, "push");
        if (!touch.matches) box.focus();
      });
      filtersBox.append(
        el(
          "span",
          { class: "chip", "data-filter": name },
          el("span", { class: "chip-label" }, `${CHIPS[name]}:`),
          el("span", { class: "chip-value", title: state[name] }, state[name]),
          clear,
        ),
      );
    }
    filtersBox.hidden = active.length === 0;
  }

  // ---- searching -------------------------------------------------------------------------------------------

  function clearResults() {
    answerBox.replaceChildren();
    answerBox.hidden = true;
    resultsBox.replaceChildren();
  }

  async function search(state, history) {
    const q = state.q.trim();
    if (inFlight) inFlight.abort();
    showFilters(!q && history === "push" ? { mode: state.mode } : state);
    if (!q) {
      clearResults();
      setStatus("");
      intro.hidden = false;
      document.title = "ytnotes";
      if (history === "push") window.history.pushState(null, "", "/");
      return;
    }
    if (history === "push") window.history.pushState(null, "", urlFor(state));
    if (history === "replace") window.history.replaceState(null, "", urlFor(state));
    document.title = `${q} · ytnotes`;

    const controller = new AbortController();
    inFlight = controller;
    const params = new URLSearchParams({ q });
    if (state.mode === "ask") {
      for (const name of FILTERS) {
        if (state[name]) params.set(name, state[name]);
      }
    }
    setStatus(state.mode === "locate" ? "Looking for the source…" : "Searching…");
    resultsBox.setAttribute("aria-busy", "true");
    let response;
    let body;
    try {
      response = await fetch(`/api/${state.mode}?${params}`, {
        signal: controller.signal,
        headers: { accept: "application/json" },
      });
      body = await response.json().catch(() => null); // a body that is not JSON is reported by its status
    } catch (err) {
      if (err.name === "AbortError" || inFlight !== controller) return;
      inFlight = null;
      resultsBox.removeAttribute("aria-busy");
      setStatus("The ytnotes server is not answering: is `ytnotes serve` still running?", true);
      return;
    }
    if (inFlight !== controller) return; // a newer search has started
    inFlight = null;
    resultsBox.removeAttribute("aria-busy");
    intro.hidden = true;
    clearResults();
    if (!response.ok || !body) {
      const detail = body && typeof body.detail === "string" ? body.detail : `The server answered ${response.status}.`;
      setStatus(detail, true);
      return;
    }
    if (state.mode === "locate") showLocate(body);
    else showAsk(body);
    showInfo();
  }

  // ---- results ---------------------------------------------------------------------------------------------

  /** [HH:MM:SS] that plays the moment here, and ↗ that opens it on YouTube. */
  function momentControls(moment, hit) {
    const wrap = el("span", { class: "moment" });
    const stamp = moment.timestamp ? `[${moment.timestamp}]` : "[start]";
    const url = watchUrl(moment.url);
    if (hit.video_id && url) {
      const nearest = moment.timed === false && moment.seconds !== null;
      const play = el(
        "button",
        {
          type: "button",
          class: "play",
          "data-video": hit.video_id,
          "data-seconds": moment.seconds ?? 0,
          title: moment.timestamp
            ? `Play from ${moment.timestamp} here${nearest ? " (the nearest timestamp)" : ""}`
            : "No timestamp in this part of the note: play from the start",
        },
        stamp,
      );
      play.addEventListener("click", () => playMoment(play, hit, moment, url));
      const open = el(
        "a",
        {
          class: "open",
          href: url,
          target: "_blank",
          rel: "noopener noreferrer",
          title: "Open on YouTube",
          "aria-label": `Open ${stamp} on YouTube`,
        },
        "↗",
      );
      wrap.append(play, open);
      if (nearest) wrap.append(el("span", { class: "nearest", title: "This sentence has no timestamp of its own" }, "nearest"));
    } else {
      wrap.append(el("span", { class: "no-link", title: "The note has no valid videoId, so no link" }, stamp));
    }
    return wrap;
  }

  /** The snippet with its best-matching sentence marked. */
  function snippet(hit) {
    const p = el("p", { class: "snippet" });
    const text = hit.snippet || "";
    const at = hit.sentence ? text.indexOf(hit.sentence) : -1;
    if (at < 0) {
      p.textContent = text;
    } else {
      p.append(text.slice(0, at), el("mark", null, hit.sentence), text.slice(at + hit.sentence.length));
    }
    return p;
  }

  function source(hit) {
    const parts = [hit.channel || "unknown channel"];
    if (hit.heading && hit.heading.length) parts.push(hit.heading.join(" › "));
    return el("p", { class: "source" }, parts.join(" · "));
  }

  function resultCard(hit, options) {
    const { label, weak, score } = options || {};
    const card = el("article", { class: weak ? "result weak" : "result" });
    if (label) card.append(el("p", { class: "answer-label" }, label));
    card.append(el("h2", { class: "title" }, hit.title), source(hit), snippet(hit));
    const moments = el("ul", { class: "moments", "aria-label": "Moments" });
    moments.append(el("li", null, momentControls(hit, hit)));
    for (const other of hit.moments || []) {
      const text = el("span", { class: "also-text" }, el("span", { class: "also" }, other.sentence));
      // A moment from another note about the same video says which note it is in.
      if (other.note && other.note !== hit.note) text.append(el("span", { class: "also-note" }, `${other.note}:${other.line}`));
      moments.append(el("li", null, momentControls(other, hit), text));
    }
    const scoreText = score || `score ${hit.score.toFixed(2)}`;
    card.append(moments, el("p", { class: "where" }, `${hit.note}:${hit.line}`, el("span", { class: "score" }, scoreText)));
    return card;
  }

  function answerLine(hit, text) {
    answerBox.append(
      el("p", { class: "answer-label" }, "Answer"),
      el("blockquote", { class: "answer-text" }, text || hit.sentence),
      el(
        "p",
        { class: "answer-meta" },
        momentControls(hit, hit),
        el("span", { class: "answer-source" }, `${hit.title} · ${hit.channel || "unknown channel"}`),
      ),
    );
    answerBox.hidden = false;
  }

  function showAsk(data) {
    if (!data.results.length) {
      setStatus("No passages found.");
      return;
    }
    const count = `${data.results.length} ${data.results.length === 1 ? "video" : "videos"}`;
    const hint = data.hint ? ` Note: ${data.hint}.` : "";
    if (data.found && data.answer) {
      setStatus(count + hint);
      answerLine(data.answer, data.answer_text);
    } else {
      setStatus(
        `No good answer: nothing in the notes answers this closely (best score ` +
          `${data.results[0].score.toFixed(2)}, below ${data.threshold.toFixed(2)}). The closest passages:${hint}`,
      );
    }
    const list = el("ol", { class: "result-list" });
    for (const result of data.results) list.append(el("li", null, resultCard(result)));
    resultsBox.append(list);
  }

  function showLocate(data) {
    const hit = data.result;
    const confidence = `confidence ${data.confidence.toFixed(2)}`;
    if (data.found && hit) {
      setStatus("Found the source sentence.");
      resultsBox.append(resultCard(hit, { label: "Said here", score: confidence }));
      return;
    }
    setStatus(
      `Not found: no sentence in the notes says this closely enough` +
        (hit ? ` (best match ${data.confidence.toFixed(2)}, below ${data.threshold.toFixed(2)}).` : "."),
    );
    if (hit) {
      resultsBox.append(resultCard(hit, { label: "The closest sentence", weak: true, score: confidence }));
    }
  }

  // ---- the player ------------------------------------------------------------------------------------------

  function playMoment(button, hit, moment, url) {
    const seconds = Math.max(0, Math.floor(Number(moment.seconds) || 0));
    const origin = encodeURIComponent(location.origin);
    const src = `${EMBED}${encodeURIComponent(hit.video_id)}?start=${seconds}&autoplay=1&rel=0&enablejsapi=1&origin=${origin}`;
    // A new iframe each time: changing an iframe's src would add entries to the page's Back history.
    const frame = el("iframe", {
      src,
      title: `YouTube video: ${hit.title}`,
      allow: "autoplay; encrypted-media; picture-in-picture; fullscreen",
      referrerpolicy: "strict-origin-when-cross-origin",
    });
    playerFrame.replaceChildren(frame);
    watchEmbed(frame, url, moment.timestamp ? `[${moment.timestamp}]` : "the video");
    playerCaption.textContent = `${moment.timestamp ? `[${moment.timestamp}] ` : ""}${hit.title}`;
    playerLink.setAttribute("href", url);
    player.hidden = false;
    layout.classList.add("with-player");
    for (const other of document.querySelectorAll(".play[aria-current]")) other.removeAttribute("aria-current");
    button.setAttribute("aria-current", "true");
    if (window.matchMedia("(max-width: 61.99rem)").matches) player.scrollIntoView({ block: "nearest" });
  }

  // ---- is the embed playing? -------------------------------------------------------------------------------

  /** Watch a new embed: greet it as YouTube's iframe API does until it answers, or say it cannot be played. */
  function watchEmbed(frame, url, stamp) {
    stopWatching();
    playerOffline.hidden = true;
    player.dataset.embed = "loading";
    embed = { frame, url, stamp, ready: false };
    if (navigator.onLine === false) {
      embedFailed();
      return;
    }
    const hello = () => {
      // Dropped by the browser unless the frame holds YouTube's page (not an error page).
      if (frame.contentWindow) {
        frame.contentWindow.postMessage(JSON.stringify({ event: "listening", id: 1, channel: "widget" }), EMBED_ORIGIN);
      }
    };
    frame.addEventListener("load", hello);
    embed.ping = setInterval(hello, 500);
    embed.timer = setTimeout(embedFailed, EMBED_TIMEOUT_MS);
  }

  function stopWatching() {
    if (!embed) return;
    clearInterval(embed.ping);
    clearTimeout(embed.timer);
  }

  function embedFailed() {
    if (!embed || embed.ready) return;
    clearTimeout(embed.timer); // still greeted: a player that loads late takes the note away
    player.dataset.embed = "unavailable";
    playerOffline.replaceChildren(
      "The video cannot be played here: YouTube's player did not load (offline, or blocked?). ",
      el("a", { href: embed.url, target: "_blank", rel: "noopener noreferrer" }, `Open ${embed.stamp} on YouTube ↗`),
    );
    playerOffline.hidden = false;
  }

  window.addEventListener("message", (event) => {
    if (!embed || event.origin !== EMBED_ORIGIN || event.source !== embed.frame.contentWindow) return;
    let data = event.data;
    try {
      if (typeof data === "string") data = JSON.parse(data);
    } catch {
      return;
    }
    if (!data || !EMBED_READY.has(data.event)) return;
    stopWatching();
    embed.ready = true;
    player.dataset.embed = "ready";
    playerOffline.hidden = true; // it did load after all
  });

  function closePlayer() {
    stopWatching();
    embed = null;
    playerOffline.hidden = true;
    playerFrame.replaceChildren();
    player.hidden = true;
    layout.classList.remove("with-player");
    const playing = document.querySelector(".play[aria-current]");
    if (playing) {
      playing.removeAttribute("aria-current");
      playing.focus();
    }
  }

  // ---- what is indexed -------------------------------------------------------------------------------------

  async function showInfo() {
    try {
      const response = await fetch("/api/info", { headers: { accept: "application/json" } });
      if (!response.ok) return;
      const info = await response.json();
      const built = String(info.built_at || "").replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC");
      footer.textContent = `${info.notes} notes · ${info.chunks} passages · ${info.model} · built ${built}`;
      footer.title = `${info.index} (${info.generation})`;
    } catch {
      // The footer is a courtesy; a failed search already says when the server is gone.
    }
  }

  // ---- wiring ----------------------------------------------------------------------------------------------

  function fromUrl() {
    const state = stateFromUrl();
    box.value = state.q;
    setMode(state.mode);
    search(state, "none");
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const state = { ...stateFromUrl(), q: box.value.trim(), mode: mode() };
    const same = urlFor(state) === location.pathname + location.search;
    search(state, same ? "replace" : "push");
  });

  for (const radio of form.elements.mode) {
    radio.addEventListener("change", () => {
      setMode(radio.value);
      if (box.value.trim()) form.requestSubmit();
      else box.focus();
    });
  }

  $("player-close").addEventListener("click", closePlayer);

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing =
      (target instanceof HTMLInputElement && target.type !== "radio") ||
      target instanceof HTMLTextAreaElement ||
      target instanceof HTMLSelectElement ||
      (target instanceof HTMLElement && target.isContentEditable);
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      box.focus();
      box.select();
    } else if (event.key === "Escape" && !player.hidden && target !== box) {
      closePlayer();
    }
  });

  window.addEventListener("popstate", fromUrl);
  narrow.addEventListener("change", setPlaceholder);

  showInfo();
  fromUrl();
})();
