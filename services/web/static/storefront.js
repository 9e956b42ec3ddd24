// The storefront: a shopper's photo, their recommendations with try-on previews (each shown
// as soon as it is ready), and what they do with them, all through Drape's JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 8;
const FIRST_WAIT_MS = 4000; // Recommend's deadline; previews not ready by then come by TryOn
const TRYON_WAIT_MS = 60000;
const MAX_PHOTO_BYTES = 10 * 1024 * 1024;
const state = { photo: null, recommendationId: "", cart: [] };

function randomHex(bytes) {
  const values = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(values, (b) => b.toString(16).padStart(2, "0")).join("");
}

function shopperId() {
  let id = localStorage.getItem("drape-shopper");
  if (!id) {
    id = "shopper-" + randomHex(6);
    localStorage.setItem("drape-shopper", id);
  }
  return id;
}

function say(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

async function api(path, body, timeoutMs) {
  const headers = { "content-type": "application/json" };
  if (timeoutMs) headers["x-request-timeout-ms"] = String(timeoutMs);
  const reply = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  const payload = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    const message = (payload.error && payload.error.message) || reply.statusText;
    throw new Error(`${reply.status}: ${message}`);
  }
  return payload;
}

function readAsBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

async function usePhoto(blob) {
  if (blob.size > MAX_PHOTO_BYTES) {
    say(`That photo is ${(blob.size / 2 ** 20).toFixed(1)} MiB; the limit is 10 MiB.`, true);
    return;
  }
  state.photo = await readAsBase64(blob);
  $("photo-preview").src = URL.createObjectURL(blob);
  say("Photo ready.");
}

async function useSample() {
  const reply = await fetch("/samples/astronaut.jpg");
  await usePhoto(await reply.blob());
}

function track(type, garment, extra) {
  const event = {
    eventId: randomHex(16), type, userId: $("user-id").value,
    garmentId: garment ? garment.garmentId : "", recommendationId: state.recommendationId,
    ...extra,
  };
  return api("/v1/track", { events: [event] }, 10000);
}

function price(garment) {
  const minor = Number(garment.priceMinor || 0);
  return `${(minor / 100).toFixed(2)} ${garment.currency || ""}`.trim();
}

function showPreview(card, preview) {
  const frame = card.querySelector(".frame");
  const status = (preview.status || "PREVIEW_STATUS_UNSPECIFIED").replace("PREVIEW_STATUS_", "").toLowerCase();
  card.dataset.preview = status;
  card.querySelector(".preview-status").textContent =
    status === "ok" || status === "cached" ? "" : (preview.reason || status.replace("_", " "));
  if (!preview.url) {
    if (status !== "timed_out" && status !== "unavailable") {
      frame.replaceChildren(Object.assign(document.createElement("span"),
        { className: "pending", textContent: "no preview" }));
    }
    return false;
  }
  const image = document.createElement("img");
  image.alt = "you wearing " + card.querySelector(".title").textContent;
  image.src = `${preview.url}&size=512&format=webp`;
  image.onload = () => {
    card.classList.add("previewed");
    track("EVENT_TYPE_TRYON_VIEW", card.garment).catch(() => {});
  };
  frame.replaceChildren(image);
  return true;
}

async function tryOn(card) {
  if (!state.photo) return;
  card.querySelector(".preview-status").textContent = "making the preview…";
  try {
    const reply = await api("/v1/try-on", {
      userId: $("user-id").value, photo: { data: state.photo },
      garmentId: card.garment.garmentId, delivery: "PREVIEW_DELIVERY_URL",
    }, TRYON_WAIT_MS);
    showPreview(card, reply.preview || {});
  } catch (error) {
    card.querySelector(".preview-status").textContent = "try-on failed: " + error.message;
  }
}

function renderCart() {
  $("cart-count").textContent = String(state.cart.length);
  $("cart").replaceChildren(...state.cart.map((g) =>
    Object.assign(document.createElement("li"), { textContent: `${g.title} · ${price(g)}` })));
}

function card(item, previewsShown) {
  const node = $("garment-card").content.firstElementChild.cloneNode(true);
  const garment = item.garment || {};
  node.garment = garment;
  node.dataset.garment = garment.garmentId;
  node.querySelector(".title").textContent = garment.title || garment.garmentId;
  node.querySelector(".meta").textContent = `${garment.category || ""} · ${price(garment)}`;
  const feedback = node.querySelector(".feedback");
  const act = async (what, type, extra, done) => {
    try {
      const reply = await track(type, garment, extra);
      if (reply.stored + reply.duplicates < 1) throw new Error("not stored");
      feedback.textContent = done;
      return true;
    } catch (error) {
      feedback.textContent = `${what} failed: ${error.message}`;
      return false;
    }
  };
  node.querySelector('[data-action="tryon"]').addEventListener("click", () => tryOn(node));
  node.querySelector('[data-action="cart"]').addEventListener("click", async () => {
    if (await act("adding to the cart", "EVENT_TYPE_ADD_TO_CART", {}, "In your cart ✓")) {
      state.cart.push(garment);
      renderCart();
    }
  });
  node.querySelector('[data-action="buy"]').addEventListener("click", async () => {
    const value = { valueMinor: String(garment.priceMinor || 0) };
    if (await act("buying", "EVENT_TYPE_PURCHASE", value, "Bought ✓ — how do you like it?")) {
      node.classList.add("bought");
      node.querySelector(".rating").hidden = false;
    }
  });
  for (const button of node.querySelectorAll("[data-rating]")) {
    button.addEventListener("click", async () => {
      const rating = Number(button.dataset.rating);
      if (await act("rating", "EVENT_TYPE_RATING", { rating }, `Rated ${rating}/5 ✓ Thank you!`)) {
        node.classList.add("rated");
      }
    });
  }
  if (!previewsShown) {
    // The shopper's experiment arm shows no previews: no try-on either, or the arm is spoilt.
    node.querySelector('[data-action="tryon"]').hidden = true;
    node.querySelector(".frame").replaceChildren(Object.assign(document.createElement("span"),
      { className: "pending", textContent: "previews are off for you" }));
  } else if (!showPreview(node, item.preview || {})) {
    const status = node.dataset.preview;
    if (status === "timed_out" || status === "unavailable") tryOn(node); // finish it here
  }
  return node;
}

async function recommend() {
  const userId = $("user-id").value.trim();
  if (!userId) {
    say("Enter a shopper id.", true);
    return;
  }
  localStorage.setItem("drape-shopper", userId);
  if (!state.photo) await useSample();
  say("Finding garments for you…");
  $("recommend").disabled = true;
  try {
    const reply = await api("/v1/recommend", {
      userId, k: PAGE_SIZE, photo: { data: state.photo }, previews: true,
      delivery: "PREVIEW_DELIVERY_URL",
    }, FIRST_WAIT_MS);
    state.recommendationId = reply.recommendationId || "";
    const arm = reply.assignment || {};
    $("variant").textContent = arm.experiment ? `${arm.experiment} / ${arm.variant}` : "no experiment";
    $("variant").dataset.variant = arm.variant || "";
    const items = reply.items || [];
    $("garments").replaceChildren(...items.map((item) => card(item, Boolean(arm.previewsEnabled))));
    say(items.length ? `${items.length} garments for ${userId}.` : "No garments to show yet.");
  } catch (error) {
    say("Could not get recommendations: " + error.message, true);
  } finally {
    $("recommend").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("user-id").value = shopperId();
  $("photo-input").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) usePhoto(file).catch((error) => say("Could not read the photo: " + error.message, true));
  });
  $("use-sample").addEventListener("click", () => useSample().catch((e) => say(e.message, true)));
  $("recommend").addEventListener("click", recommend);
  useSample().catch((error) => say("Could not load the sample photo: " + error.message, true));
});
