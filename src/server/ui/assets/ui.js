// The web app's behaviour beyond plain HTML (DESIGN §12): sealing values before a form is sent,
// the session-expiry banner, local absolute times, copy and hide for a key shown once, a guard
// against leaving a form with unsaved changes, and no double submits. Every page works without
// it except sealing, which says so. No inline script anywhere: the CSP allows only 'self'.

import { seal } from "./seal.js";

const WARN_BEFORE_MS = 5 * 60 * 1000;

// Sessions and sealing need a secure context (HTTPS or loopback): say so instead of looping.
const insecure = document.getElementById("insecure");
if (insecure && !window.isSecureContext) {
  insecure.hidden = false;
}

/** Seals the value of a `form[data-seal]` into its hidden `sealed_value`, then sends it. */
async function sealAndSend(form) {
  const field = form.querySelector("[data-value]");
  const out = form.querySelector("input[name=sealed_value]");
  const status = form.querySelector("[data-seal-status]");
  const key = {
    key_id: form.dataset.keyId,
    public_key: form.dataset.publicKey,
    team: form.dataset.team,
    owner: form.dataset.owner || null,
  };
  const scopeInput = form.querySelector("input[name=scope]:checked, input[name=scope][type=hidden]");
  const scope = scopeInput ? scopeInput.value : form.dataset.scope;
  const nameInput = form.querySelector("input[name=name]");
  const name = nameInput ? nameInput.value.trim() : form.dataset.name;
  try {
    if (!window.isSecureContext || !crypto.subtle) {
      throw new Error("this page is not a secure context (use HTTPS or a loopback address)");
    }
    const sealed = await seal(key, scope, name, field.value);
    out.value = JSON.stringify(sealed);
    field.value = "";
    form.dataset.sealed = "yes";
    form.submit();
  } catch (e) {
    if (status) {
      status.textContent = `The value could not be encrypted in this browser: ${e.message}. Nothing was sent.`;
      status.hidden = false;
    }
    form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = false; });
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) {
    return;
  }
  form.dataset.dirty = "";
  if (form.matches("form[data-seal]") && form.dataset.sealed !== "yes") {
    const field = form.querySelector("[data-value]");
    if (field && field.value !== "") {
      event.preventDefault();
      form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = true; });
      sealAndSend(form);
      return;
    }
  }
  // One submit per click: a second would create a second key, say.
  if (form.dataset.submitting === "yes") {
    event.preventDefault();
    return;
  }
  if (form.method.toLowerCase() === "post") {
    form.dataset.submitting = "yes";
  }
});

// Unsaved changes: leaving a form that was edited asks first.
document.addEventListener("input", (event) => {
  const form = event.target.closest && event.target.closest("form[data-guard]");
  if (form) {
    form.dataset.dirty = "yes";
  }
});
window.addEventListener("beforeunload", (event) => {
  if (document.querySelector("form[data-guard][data-dirty=yes]")) {
    event.preventDefault();
    event.returnValue = "";
  }
});

// Pasting `NAME=value` into a name field splits it into name and value.
document.addEventListener("paste", (event) => {
  const input = event.target;
  if (!(input instanceof HTMLInputElement) || !input.matches("[data-split-paste]")) {
    return;
  }
  const text = event.clipboardData ? event.clipboardData.getData("text") : "";
  const found = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=([\s\S]*)$/.exec(text);
  const value = input.form && input.form.querySelector("[data-value]");
  if (found && value) {
    event.preventDefault();
    input.value = found[1];
    let rest = found[2].replace(/\r?\n$/, "");
    if (/^(['"]).*\1$/s.test(rest)) {
      rest = rest.slice(1, -1);
    }
    value.value = rest;
    input.form.dataset.dirty = "yes";
  }
});

// Copy and hide for a key shown once.
document.addEventListener("click", async (event) => {
  const button = event.target.closest && event.target.closest("button[data-copy], button[data-toggle-hidden]");
  if (!button) {
    return;
  }
  const target = document.getElementById(button.dataset.copy || button.dataset.toggleHidden);
  if (!target) {
    return;
  }
  if (button.dataset.toggleHidden) {
    const hidden = target.classList.toggle("hidden");
    button.textContent = hidden ? "Show" : "Hide";
    button.setAttribute("aria-pressed", String(hidden));
    return;
  }
  try {
    await navigator.clipboard.writeText(target.textContent.trim());
    button.textContent = "Copied";
  } catch {
    // No clipboard outside a secure context: select it for Ctrl+C instead.
    const range = document.createRange();
    range.selectNodeContents(target);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
});

// Typing the name enables a delete button (the server checks the name too).
document.addEventListener("input", (event) => {
  const input = event.target;
  if (!(input instanceof HTMLInputElement) || !input.dataset.confirmName) {
    return;
  }
  const button = input.form && input.form.querySelector("button[type=submit]");
  if (button) {
    button.disabled = input.value !== input.dataset.confirmName;
  }
});
document.querySelectorAll("input[data-confirm-name]").forEach((input) => {
  const button = input.form && input.form.querySelector("button[type=submit]");
  if (button) {
    button.disabled = input.value !== input.dataset.confirmName;
  }
});

/** Absolute times in the reader's own time zone, on hover. */
function localTimes(root) {
  root.querySelectorAll("time[datetime]").forEach((t) => {
    const when = new Date(t.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) {
      t.title = when.toLocaleString();
    }
  });
}
localTimes(document);
document.body.addEventListener("htmx:afterSettle", (event) => localTimes(event.target));

// The session: a banner a few minutes before it ends, with a way to stay signed in.
const session = document.getElementById("session");
const banner = document.getElementById("session-banner");
if (session && banner) {
  const text = banner.querySelector("[data-text]");
  const renew = banner.querySelector("button[data-renew]");
  const signIn = banner.querySelector("a[data-sign-in]");
  const tick = () => {
    const idleEnds = Number(session.dataset.idleEnds);
    const absoluteEnds = Number(session.dataset.absoluteEnds);
    const ends = Math.min(idleEnds, absoluteEnds);
    const left = ends - Date.now();
    if (left <= 0) {
      banner.hidden = false;
      text.textContent = "Your session has ended. Sign in again to go on; anything not saved is lost.";
      renew.hidden = true;
      signIn.hidden = false;
    } else if (left <= WARN_BEFORE_MS) {
      const minutes = Math.max(1, Math.round(left / 60000));
      banner.hidden = false;
      text.textContent = `Your session ends in ${minutes} minute${minutes === 1 ? "" : "s"}.`;
      renew.hidden = idleEnds >= absoluteEnds;
      signIn.hidden = true;
    } else {
      banner.hidden = true;
    }
  };
  renew.addEventListener("click", async () => {
    const answer = await fetch("/ui/session/renew", { method: "POST", credentials: "same-origin" });
    session.dataset.idleEnds = answer.ok ? String((await answer.json()).idle_ends) : "0";
    tick();
  });
  tick();
  setInterval(tick, 15000);
  // Coming back to the tab says at once where the session stands.
  window.addEventListener("focus", tick);
  document.addEventListener("visibilitychange", tick);
}
