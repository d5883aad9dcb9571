// paperbot local web adapter: plain fetch, no framework. Every POST carries the
// CSRF token from the page (the server compares it with its cookie and checks Origin).
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;

// The channel this page shows: commands and reactions happen there, as in a chat
// app. Pages without a composer (the profile) leave it to the server: #papers.
const currentChannel = () => document.getElementById("composer")?.dataset.channel;

async function post(url, data) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify(data),
  });
  // 400 and 503 carry a message for the user; anything else is a bug.
  if (!response.ok && response.status !== 400 && response.status !== 503) {
    throw new Error(`${url}: HTTP ${response.status}`);
  }
  return response;
}

function showFragment(html) {
  // The fragment is rendered and escaped by the server's templates.
  const messages = document.getElementById("messages");
  messages.insertAdjacentHTML("beforeend", html);
  messages.scrollTop = messages.scrollHeight;
}

function reactionButtons(paperId) {
  // A paper can be on the page more than once: in a daily post and in a reply.
  return [...document.querySelectorAll("button.react")].filter(
    (button) => button.dataset.paper === paperId,
  );
}

function setReactionState(paperId, state) {
  // The server's answer says what counts: at most one of 👍 and 👎.
  for (const button of reactionButtons(paperId)) {
    const on = Boolean(state[button.dataset.kind]);
    button.classList.toggle("active", on);
    button.setAttribute("aria-pressed", on ? "true" : "false");
  }
}

// While the first start's banner shows, poll its status rather than reload the
// page: a reload would wipe what the user typed and any reply they are reading.
const STARTUP_POLL_MS = 2000;

function userWouldLoseSomething() {
  const input = document.getElementById("composer-text");
  return Boolean(input && input.value) || document.querySelector(".ephemeral") !== null;
}

async function watchStartup(banner) {
  let status;
  try {
    const response = await fetch("/api/status", { credentials: "same-origin" });
    status = await response.json();
  } catch {
    status = null; // the server is restarting, or going away: ask again later
  }
  if (!status || !status.ready) {
    if (status) banner.textContent = status.message;
    setTimeout(() => watchStartup(banner), STARTUP_POLL_MS);
  } else if (userWouldLoseSomething()) {
    // Ready, but reloading now would lose input or a reply: let the user choose when.
    const reload = document.createElement("a");
    reload.href = window.location.pathname;
    reload.textContent = "Reload the page";
    banner.textContent = `${status.problems.join(" ") || "#papers is set up."} `;
    banner.append(reload, " to see it.");
  } else {
    window.location.reload();
  }
}

document.addEventListener("click", async (event) => {
  const target = event.target.closest("button");
  if (!target) return;
  if (target.classList.contains("react")) {
    // One click per paper at a time: answers to quick 👍 then 👎 clicks could
    // arrive out of order and leave the page showing a thumb that no longer counts.
    const buttons = reactionButtons(target.dataset.paper);
    for (const button of buttons) button.disabled = true;
    try {
      const response = await post("/api/feedback", {
        paper_id: target.dataset.paper,
        kind: target.dataset.kind,
        // Clicking an active reaction takes it back, as in a chat app.
        active: target.getAttribute("aria-pressed") !== "true",
        channel: currentChannel(),
      });
      const body = await response.json();
      if (body.error) alert(body.error);
      else setReactionState(target.dataset.paper, body);
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  } else if (target.hasAttribute("data-forget-confirm")) {
    const response = await post("/api/forget", {});
    target.closest(".ephemeral").remove();
    showFragment(await response.text());
  } else if (target.hasAttribute("data-dismiss")) {
    target.closest(".ephemeral").remove();
  }
});

document.addEventListener("DOMContentLoaded", () => {
  const messages = document.getElementById("messages");
  if (messages) messages.scrollTop = messages.scrollHeight;

  const banner = document.getElementById("startup");
  if (banner) setTimeout(() => watchStartup(banner), STARTUP_POLL_MS);

  const composer = document.getElementById("composer");
  if (composer) {
    composer.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = composer.elements.text;
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      const response = await post("/api/command", { text, channel: currentChannel() });
      showFragment(await response.text());
    });
  }

  const picker = document.getElementById("user-picker");
  picker.addEventListener("change", async () => {
    await post("/api/user", { user: picker.value });
    window.location.reload();
  });
});
