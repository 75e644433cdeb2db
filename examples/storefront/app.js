// Niaga example storefront: plain ES module, no build, no dependencies. It talks to the
// Niaga API on the same origin (API.md, "Storefront"). The cart id is the capability: the
// API needs no other cart token, so the ids (one cart per market) live in localStorage and a
// reload finds the same cart.

const CHANNEL = "web";
const STORE_KEY = "niaga.storefront";
const SUPPORTED_METHODS = new Set(["testpay", "bank-transfer", "cod"]);

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};

// -- state ----------------------------------------------------------------------------------

const saved = (() => {
  try { return JSON.parse(localStorage.getItem(STORE_KEY)) || {}; } catch { return {}; }
})();
const state = {
  markets: [],
  market: null,           // the Market object chosen
  locale: saved.locale || null,
  products: new Map(),    // sku -> Product in the chosen market and locale
  cart: null,
  carts: saved.carts || {},  // market code -> cart id
  deliveryKind: null,     // "ship" | "pickup"
  options: [],
  checkoutKey: null,      // Idempotency-Key of a checkout whose answer never arrived
};

function persist() {
  localStorage.setItem(STORE_KEY, JSON.stringify({
    market: state.market?.code, locale: state.locale, carts: state.carts,
  }));
}

// -- the API --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let pending = 0;
function setPending(delta) {
  pending += delta;
  document.body.dataset.pending = String(pending);
  $("#main").setAttribute("aria-busy", pending > 0 ? "true" : "false");
}

async function api(method, path, body, headers = {}) {
  setPending(1);
  try {
    const init = { method, headers: { Accept: "application/json", "Niaga-Channel": CHANNEL, ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
    if (!response.ok) throw new ApiError(response.status, data || {});
    return data;
  } finally {
    setPending(-1);
  }
}

// Changes to the cart go one after another, in the order the shopper made them. While any
// is queued or running, <body data-pending> is above 0 and <main> is aria-busy.
let queue = Promise.resolve();
function serial(task) {
  setPending(1);
  const run = queue.then(() => task()).finally(() => setPending(-1));
  queue = run.catch(() => {});
  return run;
}

// The problem+json an API error carries, as one readable message.
function describe(error) {
  if (!(error instanceof ApiError)) return `The shop could not reach the API (${error.message}).`;
  const p = error.problem;
  const fields = (p.errors || []).map((e) => `${e.field}: ${e.message}`);
  const head = p.title && p.detail && p.title !== p.detail ? `${p.title}: ${p.detail}` : (p.detail || p.title);
  return [head, ...fields.filter((f) => !head.includes(f))].join(" — ");
}

function notify(message) {
  const box = $("#notice");
  box.textContent = message || "";
  box.hidden = !message;
}

// -- money ----------------------------------------------------------------------------------

// The API's display when it sends one (catalog prices, formatted for the locale); otherwise
// the decimal string formatted with Intl in the chosen locale, keeping the currency's digits.
function money(m) {
  if (!m) return "";
  if (m.display) return m.display;
  const digits = (m.amount.split(".")[1] || "").length;
  try {
    return new Intl.NumberFormat(state.locale || undefined, {
      style: "currency", currency: m.currency,
      minimumFractionDigits: digits, maximumFractionDigits: digits,
    }).format(m.amount);
  } catch {
    return `${m.amount} ${m.currency}`;
  }
}

function amountNode(m, test, tag = "span") {
  return el(tag, { "data-test": test, "data-amount": m.amount, "data-currency": m.currency, text: money(m) });
}

// -- markets and catalog --------------------------------------------------------------------

async function loadMarkets() {
  state.markets = await api("GET", "/markets");
  const select = $("#market");
  select.replaceChildren(...state.markets.map((m) => el("option", { value: m.code, text: `${m.name} (${m.currency})` })));
  const start = state.markets.find((m) => m.code === saved.market) || state.markets[0];
  select.value = start.code;
  await chooseMarket(start.code, { keepLocale: true });
}

async function chooseMarket(code, { keepLocale = false } = {}) {
  state.market = state.markets.find((m) => m.code === code);
  const locales = state.market.locales;
  if (!keepLocale || !locales.includes(state.locale)) state.locale = locales[0];
  $("#locale").replaceChildren(...locales.map((l) => el("option", { value: l, text: localeName(l) })));
  $("#locale").value = state.locale;
  document.documentElement.lang = state.locale;
  $("[name=country]").replaceChildren(...state.market.countries.map((c) => el("option", { value: c, text: c })));
  $("#market-note").textContent = state.market.prices_include_tax
    ? `Prices in ${state.market.currency}, tax included.`
    : `Prices in ${state.market.currency}, tax added at checkout.`;
  $("#address-form").reset();
  state.cart = null;
  state.deliveryKind = null;
  state.options = [];
  persist();
  await Promise.all([loadProducts(), loadCart()]);
}

function localeName(tag) {
  try {
    const language = new Intl.DisplayNames([tag], { type: "language" }).of(tag.split("-")[0]);
    return `${language} (${tag})`;
  } catch {
    return tag;
  }
}

async function loadProducts() {
  const q = new URLSearchParams({ market: state.market.code, locale: state.locale });
  const products = await api("GET", `/products?${q}`);
  state.products = new Map(products.map((p) => [p.sku, p]));
  $("#products").replaceChildren(...products.map((p) => el("li", { class: "product", "data-test": "product", "data-sku": p.sku },
    el("h2", { class: "product-name", "data-test": "product-name", text: p.name, id: `p-${p.sku}` }),
    p.description ? el("p", { class: "muted", text: p.description }) : null,
    el("p", { class: "price" }, amountNode(p.price, "price")),
    el("button", {
      type: "button", "data-test": "add", "aria-describedby": `p-${p.sku}`, text: "Add to cart",
      onclick: () => addToCart(p.sku),
    }),
  )));
  renderCart();
}

// -- the cart -------------------------------------------------------------------------------

async function loadCart() {
  const id = state.carts[state.market.code];
  if (!id) return renderCart();
  try {
    const cart = await api("GET", `/carts/${encodeURIComponent(id)}`);
    if (cart.status !== "open") throw new ApiError(410, { detail: "checked out" });
    setCart(cart);
    if (cart.delivery) {
      await chooseKind(cart.delivery.kind);
      await loadMethods(cart);
    }
  } catch (error) {
    if (!(error instanceof ApiError) || error.status >= 500) throw error;
    delete state.carts[state.market.code];  // gone, or already an order: start afresh
    persist();
    renderCart();
  }
}

function setCart(cart) {
  state.cart = cart;
  if (cart) state.carts[cart.market] = cart.id;
  persist();
  renderCart();
}

async function ensureCart() {
  if (state.cart) return state.cart;
  const cart = await api("POST", "/carts", { market: state.market.code, channel: CHANNEL });
  setCart(cart);
  return cart;
}

function cartChange(task) {
  notify("");
  return serial(async () => {
    try {
      setCart(await task());
      if (state.deliveryKind) await loadOptions();
    } catch (error) {
      notify(describe(error));
      if (state.cart) setCart(await api("GET", `/carts/${state.cart.id}`).catch(() => state.cart));
    }
  });
}

const addToCart = (sku) => cartChange(async () => {
  const cart = await ensureCart();
  return api("POST", `/carts/${cart.id}/lines`, { sku, quantity: 1 });
});
const setQuantity = (lineId, quantity) => cartChange(() =>
  api("PATCH", `/carts/${state.cart.id}/lines/${lineId}`, { quantity }));
const removeLine = (lineId) => cartChange(() =>
  api("DELETE", `/carts/${state.cart.id}/lines/${lineId}`));

function lineName(line) {
  return state.products.get(line.sku)?.name || line.name;
}

function renderCart() {
  const cart = state.cart;
  const lines = cart?.lines || [];
  $("#cart-count").textContent = String(lines.reduce((n, l) => n + l.quantity, 0));
  $("#cart-empty").hidden = lines.length > 0;
  $("#cart-table").hidden = lines.length === 0;
  $("#cart-totals").hidden = lines.length === 0;
  $("#delivery").hidden = lines.length === 0;
  $("#payment").hidden = lines.length === 0 || !cart.delivery;
  // re-rendered from every answer: keep the keyboard focus on the same control of its line
  const active = document.activeElement;
  const refocus = active?.closest?.("[data-line-id]") ? [active.closest("[data-line-id]").dataset.lineId, active.dataset.test] : null;
  $("#cart-lines").replaceChildren(...lines.map((line) => {
    const name = lineName(line);
    return el("tr", { "data-test": "cart-line", "data-sku": line.sku, "data-line-id": line.id },
      el("th", { scope: "row", "data-test": "line-name", text: name }),
      el("td", {}, amountNode(line.unit_price, "line-unit")),
      el("td", {}, el("input", {
        type: "number", min: "0", step: "1", value: String(line.quantity), inputmode: "numeric",
        "aria-label": `Quantity of ${name}`, "data-test": "qty", class: "qty",
        onchange: (event) => {
          const quantity = Number.parseInt(event.target.value, 10);
          if (Number.isInteger(quantity) && quantity >= 0) setQuantity(line.id, quantity);
          else event.target.value = String(line.quantity);
        },
      })),
      el("td", { class: "num" }, amountNode(line.total, "line-total")),
      el("td", {}, el("button", {
        type: "button", class: "link", "data-test": "remove", "aria-label": `Remove ${name}`,
        text: "Remove", onclick: () => removeLine(line.id),
      })),
    );
  }));
  if (refocus) $(`[data-line-id="${CSS.escape(refocus[0])}"] [data-test="${refocus[1]}"]`)?.focus();
  if (cart) renderTotals($("#cart-totals"), cart, "cart");
  renderDelivery();
  $("#pay-amount").textContent = cart && lines.length ? money(cart.total) : "";
}

// subtotal, discount, shipping, tax and total as the API computed them
function renderTotals(dl, doc, prefix) {
  const rows = [["Subtotal", doc.subtotal, "subtotal"]];
  if (doc.discount_total.amount !== zero(doc.discount_total)) rows.push(["Discount", doc.discount_total, "discount"]);
  rows.push(["Shipping", doc.shipping_total, "shipping"]);
  const estimated = doc.tax_estimated ? ", estimated" : "";
  rows.push([doc.prices_include_tax ? `Tax (included${estimated})` : `Tax${estimated}`, doc.tax_total, "tax"]);
  if (doc.rounding_total && doc.rounding_total.amount !== zero(doc.rounding_total)) rows.push(["Rounding", doc.rounding_total, "rounding"]);
  rows.push(["Total", doc.total, "total"]);
  dl.replaceChildren(...rows.flatMap(([label, m, key]) => [
    el("dt", { text: label, class: key === "total" ? "total" : null }),
    el("dd", { class: key === "total" ? "total" : null }, amountNode(m, `${prefix}-${key}`)),
  ]));
}

function zero(m) {
  return m.amount.replace(/[1-9]/g, "0");
}

// -- delivery -------------------------------------------------------------------------------

async function chooseKind(kind) {
  state.deliveryKind = kind;
  const address = state.cart?.address;
  const form = $("#address-form");
  if (kind === "ship" && address) {
    for (const [key, value] of Object.entries(address)) {
      if (form.elements[key] && value) form.elements[key].value = value;
    }
  }
  renderDelivery();
  await loadOptions();
}

async function loadOptions() {
  if (!state.cart || !state.deliveryKind) return;
  if (state.deliveryKind === "ship" && !hasAddress(state.cart)) {
    state.options = [];
  } else {
    try {
      state.options = await api("GET", `/carts/${state.cart.id}/delivery-options`);
    } catch (error) {
      notify(describe(error));
      state.options = [];
    }
  }
  renderDelivery();
}

function hasAddress(cart) {
  return Boolean(cart.address && cart.address.line1);
}

function renderDelivery() {
  const cart = state.cart;
  const kind = state.deliveryKind;
  for (const radio of document.querySelectorAll("input[name=delivery-kind]")) radio.checked = radio.value === kind;
  $("#address-form").hidden = kind !== "ship";
  const showOptions = Boolean(cart) && (kind === "pickup" || (kind === "ship" && hasAddress(cart)));
  $("#options").hidden = !showOptions;
  const options = state.options.filter((o) => o.kind === kind);
  $("#options-legend").textContent = kind === "pickup" ? "Choose a store" : "Choose a courier option";
  $("#options-list").replaceChildren(...options.map((o) => el("label", { class: "option", "data-test": "delivery-option", "data-option-id": o.id, "data-kind": o.kind },
    el("input", {
      type: "radio", name: "delivery-option", value: o.id, checked: cart?.delivery?.option_id === o.id,
      onchange: () => chooseOption(o.id),
    }),
    ` ${o.label} `,
    amountNode(o.price, "option-price", "span"),
  )));
  const empty = $("#options-empty");
  empty.hidden = !showOptions || options.length > 0;
  empty.textContent = kind === "pickup"
    ? "No store can fill this cart for pickup in this market."
    : "No courier ships this cart to that address.";
  const chosen = $("#delivery-chosen");
  chosen.hidden = !cart?.delivery;
  chosen.textContent = cart?.delivery ? `Chosen: ${cart.delivery.label} (${money(cart.delivery.price)})` : "";
}

const chooseOption = (optionId) => cartChange(async () => {
  const cart = await api("PUT", `/carts/${state.cart.id}/delivery`, { option_id: optionId });
  await loadMethods(cart);
  return cart;
});

async function saveAddress(event) {
  event.preventDefault();
  const form = event.target;
  if (!form.reportValidity()) return;
  const body = {};
  for (const [key, value] of new FormData(form)) if (String(value).trim()) body[key] = String(value).trim();
  await cartChange(() => api("PUT", `/carts/${state.cart.id}/address`, body));
}

// -- payment and the order ------------------------------------------------------------------

async function loadMethods(cart) {
  const methods = (await api("GET", `/carts/${cart.id}/payment-methods`))
    .filter((m) => SUPPORTED_METHODS.has(m.id));
  const current = $("input[name=method]:checked")?.value || "testpay";
  $("#methods").replaceChildren(...methods.map((m) => el("label", { class: "option", "data-test": "method" },
    el("input", {
      type: "radio", name: "method", value: m.id, "data-test": `method-${m.id}`,
      checked: m.id === current || methods.length === 1,
      onchange: () => { $("#testpay-fields").hidden = m.id !== "testpay"; },
    }),
    ` ${m.label}`,
  )));
  if (!$("input[name=method]:checked") && methods.length) $("input[name=method]").checked = true;
  $("#testpay-fields").hidden = $("input[name=method]:checked")?.value !== "testpay";
}

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "sf-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function pay(event) {
  event.preventDefault();
  const errorBox = $("#checkout-error");
  errorBox.hidden = true;
  const method = $("input[name=method]:checked")?.value;
  if (!method) return;
  const payment = { method };
  if (method === "testpay") payment.token = $("#token").value.trim();
  const button = $("#pay");
  button.disabled = true;
  await serial(async () => {
    // the same key again only when the previous attempt got no answer: a retry that is safe
    const key = state.checkoutKey || newKey();
    state.checkoutKey = key;
    try {
      const order = await api("POST", `/carts/${state.cart.id}/checkout`, { payment }, { "Idempotency-Key": key });
      state.checkoutKey = null;
      delete state.carts[state.market.code];
      state.cart = null;
      state.deliveryKind = null;
      persist();
      renderCart();
      location.hash = `#order/${encodeURIComponent(order.id)}`;
    } catch (error) {
      if (error instanceof ApiError) state.checkoutKey = null;
      errorBox.textContent = describe(error);
      errorBox.hidden = false;
      // a declined payment leaves the cart open and its stock released; show it as it is now
      setCart(await api("GET", `/carts/${state.cart.id}`).catch(() => state.cart));
    } finally {
      button.disabled = false;
    }
  });
}

async function showOrder(id) {
  $("#shop-view").hidden = true;
  $("#order-view").hidden = false;
  try {
    const order = await api("GET", `/orders/${encodeURIComponent(id)}`);
    renderOrder(order);
  } catch (error) {
    notify(describe(error));
  }
  $("#order-title").focus?.();
}

function renderOrder(order) {
  $("#order-view").dataset.orderId = order.id;
  $("#order-number").textContent = order.number;
  $("#order-status").textContent = order.status;
  $("#order-payment").textContent = `${order.payment.method}, ${order.payment.status}`;
  const d = order.delivery;
  $("#order-delivery").textContent = d ? `${d.kind === "pickup" ? "Pick up" : "Delivery"}: ${d.label}` : "";
  const instructions = Object.entries(order.payment.instructions || {});
  const box = $("#order-instructions");
  box.hidden = instructions.length === 0;
  box.replaceChildren(el("h2", { text: "How to pay" }), el("dl", {}, ...instructions.flatMap(([k, v]) => [
    el("dt", { text: k }), el("dd", { text: typeof v === "object" ? JSON.stringify(v) : String(v) }),
  ])));
  $("#order-lines").replaceChildren(...order.lines.map((line) => el("tr", { "data-test": "order-line", "data-sku": line.sku },
    el("th", { scope: "row", text: lineName(line) }),
    el("td", { "data-test": "order-qty", text: String(line.quantity) }),
    el("td", { class: "num" }, amountNode(line.total, "order-line-total")),
  )));
  renderTotals($("#order-totals"), order, "order");
}

// -- wiring ---------------------------------------------------------------------------------

async function route() {
  notify("");
  const match = location.hash.match(/^#order\/(.+)$/);
  if (match) return showOrder(decodeURIComponent(match[1]));
  const wasOrder = !$("#order-view").hidden;
  $("#order-view").hidden = true;
  $("#shop-view").hidden = false;
  if (wasOrder) await loadCart();
}

async function start() {
  $("#market").addEventListener("change", (e) => serial(() => chooseMarket(e.target.value)).catch((err) => notify(describe(err))));
  $("#locale").addEventListener("change", (e) => serial(async () => {
    state.locale = e.target.value;
    document.documentElement.lang = state.locale;
    persist();
    await loadProducts();
  }).catch((err) => notify(describe(err))));
  for (const radio of document.querySelectorAll("input[name=delivery-kind]")) {
    radio.addEventListener("change", () => serial(() => chooseKind(radio.value)).catch((err) => notify(describe(err))));
  }
  $("#address-form").addEventListener("submit", saveAddress);
  $("#pay-form").addEventListener("submit", pay);
  $("#continue").addEventListener("click", () => { location.hash = ""; });
  window.addEventListener("hashchange", () => serial(route).catch((err) => notify(describe(err))));
  try {
    await serial(async () => {
      await loadMarkets();
      await route();
    });
  } catch (error) {
    notify(describe(error));
  } finally {
    document.body.dataset.ready = "1";
  }
}

start();
