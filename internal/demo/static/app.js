// The mini-program, played in a browser. Plain JavaScript, no dependencies:
// the API is on this origin, the simulator's control API under /demo/sim/.
"use strict";

const TOKEN_KEY = "ordersaga-demo-session";
const PAYABLE = "PENDING";

const state = {
  cfg: { ui_url: "", namespace: "default", sim_path: "/demo/sim", admin_token: "" },
  session: null, // {token, expires_at, code}
  products: [],
  cart: new Map(), // product id -> quantity
  order: null, // the order shown in "The order"
  payParams: new Map(), // order_no -> the five wx.requestPayment fields
  orders: [],
  nextCursor: "",
  watch: 0, // bumped to stop the running status poll
  wechat: new Map(), // order_no -> the simulator's shipping view
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- helpers

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// Money is integer fen everywhere; never divide into a float.
function yuan(fen) {
  const n = Number(fen) || 0;
  const sign = n < 0 ? "-" : "";
  const a = Math.abs(n);
  return sign + "¥" + Math.floor(a / 100) + "." + String(a % 100).padStart(2, "0");
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

function short(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

function clock(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleTimeString();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function log(text, kind) {
  const li = el("li", { class: kind || "" }, el("span", { class: "t" }, new Date().toLocaleTimeString()), text);
  const list = $("log");
  list.prepend(li);
  while (list.children.length > 80) list.lastElementChild.remove();
}

class APIError extends Error {
  constructor(status, code, message, requestID) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestID = requestID || "";
  }
}

function showError(err) {
  if (!(err instanceof APIError)) err = new APIError(0, "ERROR", String((err && err.message) || err));
  $("error-code").textContent = err.code;
  $("error-message").textContent = err.message;
  $("error-request").textContent = err.requestID ? `(request ${err.requestID})` : "";
  $("error").hidden = false;
  log(`${err.code}: ${err.message}`, "err");
}

function clearError() {
  $("error").hidden = true;
}

// call sends one request and returns {status, data}; an answer that is not
// 2xx becomes an APIError from the API's {"error":{"code","message"}}.
async function call(method, path, body, opts = {}) {
  const headers = { Accept: "application/json", ...(opts.headers || {}) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.auth !== false && state.session) headers.Authorization = "Bearer " + state.session.token;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new APIError(0, "NETWORK", `could not reach ${path}: ${e.message}`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (!opts.quiet) log(`${method} ${path} → ${res.status}`, res.ok ? "" : "err");
  if (!res.ok) {
    const e = (data && data.error) || {};
    const err = new APIError(res.status, e.code || "HTTP_" + res.status,
      e.message || text.trim() || res.statusText, res.headers.get("X-Request-Id"));
    if (res.status === 401 && opts.auth !== false && state.session) {
      setSession(null);
      err.message += " (log in again)";
    }
    throw err;
  }
  return { status: res.status, data };
}

// busy disables a button while its action runs and shows any error.
async function busy(button, fn) {
  if (button) {
    button.disabled = true;
    button.classList.add("busy");
  }
  clearError();
  try {
    return await fn();
  } catch (err) {
    showError(err);
    return undefined;
  } finally {
    if (button) {
      button.classList.remove("busy");
      button.disabled = false; // render() disables it again if it does not apply
    }
    render();
  }
}

// ---------------------------------------------------------------- Web UI links

function uiBase() {
  return state.cfg.ui_url ? `${state.cfg.ui_url}/namespaces/${encodeURIComponent(state.cfg.namespace)}` : "";
}

function workflowURL(no) {
  const b = uiBase();
  return b ? `${b}/workflows/${encodeURIComponent("order-" + no)}` : "";
}

// ---------------------------------------------------------------- session

function setSession(s) {
  state.session = s;
  if (s) localStorage.setItem(TOKEN_KEY, JSON.stringify(s));
  else localStorage.removeItem(TOKEN_KEY);
  if (!s) {
    state.orders = [];
    state.nextCursor = "";
    state.order = null;
    state.watch++;
  }
  render();
}

function loadSession() {
  try {
    const s = JSON.parse(localStorage.getItem(TOKEN_KEY) || "null");
    if (s && s.token && (!s.expires_at || new Date(s.expires_at) > new Date())) return s;
  } catch (_) {
    /* ignore a spoiled entry */
  }
  localStorage.removeItem(TOKEN_KEY);
  return null;
}

function userOf(token) {
  try {
    const p = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return p.sub ? "user " + p.sub : "";
  } catch (_) {
    return "";
  }
}

async function login(ev) {
  ev.preventDefault();
  const code = $("login-code").value.trim();
  await busy($("login-btn"), async () => {
    const { data } = await call("POST", "/v1/auth/login", { code }, { auth: false });
    setSession({ token: data.token, expires_at: data.expires_at, code });
    log(`logged in with code “${code}”`, "ok");
    await loadOrders();
  });
}

// ---------------------------------------------------------------- products

async function loadProducts() {
  try {
    const { data } = await call("GET", "/v1/products", undefined, { auth: false, quiet: true });
    state.products = data.products || [];
  } catch (err) {
    showError(err);
  }
  renderProducts();
  render();
}

function setQty(id, q) {
  q = Math.max(0, Math.min(999, Math.floor(Number(q) || 0)));
  if (q === 0) state.cart.delete(id);
  else state.cart.set(id, q);
  renderProducts();
  render();
}

function cartTotal() {
  let fen = 0;
  for (const p of state.products) fen += (state.cart.get(p.id) || 0) * p.price_fen;
  return fen;
}

function renderProducts() {
  const body = $("products").tBodies[0];
  body.replaceChildren();
  if (!state.products.length) {
    body.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No products.")));
    return;
  }
  for (const p of state.products) {
    const q = state.cart.get(p.id) || 0;
    const input = el("input", {
      type: "number", min: 0, max: 999, value: q, inputmode: "numeric",
      "aria-label": `quantity of ${p.name}`, dataset: { productId: p.id },
      onchange: (e) => setQty(p.id, e.target.value),
    });
    body.append(el("tr", { dataset: { productId: p.id } },
      el("td", {}, p.name),
      el("td", { class: "num" }, yuan(p.price_fen)),
      el("td", { class: "num" + (p.stock === 0 ? " muted" : "") }, p.stock === 0 ? "sold out" : p.stock),
      el("td", { class: "num" }, el("span", { class: "stepper" },
        el("button", { type: "button", class: "qty-minus", "aria-label": `one ${p.name} less`, disabled: q === 0,
          dataset: { productId: p.id }, onclick: () => setQty(p.id, q - 1) }, "−"),
        input,
        el("button", { type: "button", class: "qty-plus", "aria-label": `one ${p.name} more`,
          dataset: { productId: p.id }, onclick: () => setQty(p.id, q + 1) }, "+"))),
    ));
  }
}

// newIdempotencyKey names one attempt at placing an order (128 random bits;
// crypto.getRandomValues works on plain http too, unlike randomUUID).
function newIdempotencyKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return "demo-" + [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

// placeOrder sends the order under an Idempotency-Key, new for each click:
// when the answer is lost (the network, a timeout), the same request under
// the same key gets the order the first one made, never a second order.
async function placeOrder() {
  const items = [...state.cart].map(([product_id, quantity]) => ({ product_id, quantity }));
  const address = $("address").value.trim();
  const body = { items };
  const receiver = $("ship-name").value.trim();
  if (receiver) {
    // The fields of wx.chooseAddress, as the API names them.
    body.shipping_address = {
      receiver_name: receiver, phone: $("ship-phone").value.trim(), province: $("ship-province").value.trim(),
      city: $("ship-city").value.trim(), district: $("ship-district").value.trim(), detail: $("ship-detail").value.trim(),
    };
  } else if (address) {
    body.address = address;
  }
  const headers = { "Idempotency-Key": newIdempotencyKey() };
  await busy($("order-btn"), async () => {
    let res;
    try {
      res = await call("POST", "/v1/orders", body, { headers });
    } catch (e) {
      if (e.code !== "NETWORK") throw e;
      log(`${e.message}: sending the order again under the same Idempotency-Key`, "err");
      res = await call("POST", "/v1/orders", body, { headers });
    }
    const { data } = res;
    state.cart.clear();
    renderProducts();
    log(`order ${data.order_no} created: ${data.status}, ${yuan(data.total_fen)}`, "ok");
    showOrder(data);
    await loadOrders();
  });
}

// ---------------------------------------------------------------- the order

function showOrder(o) {
  const prev = state.order && state.order.order_no === o.order_no ? state.order.status : null;
  state.order = o;
  if (prev && prev !== o.status) {
    log(`order ${o.order_no}: ${prev} → ${o.status}`, "ok");
    // Paying deducts stock and a refund restores it, each a step of the
    // workflow just after the status change: read the stock now and again soon.
    loadProducts();
    setTimeout(loadProducts, 2000);
    loadOrders();
  }
  const i = state.orders.findIndex((x) => x.order_no === o.order_no);
  if (i >= 0) state.orders[i] = o;
  render();
}

async function openOrder(no) {
  state.watch++;
  await busy(null, async () => {
    const { data } = await call("GET", `/v1/orders/${encodeURIComponent(no)}`);
    showOrder(data);
    if (["SHIPPED", "COMPLETED"].includes(data.status)) loadWechat(no);
    if (data.status === "REFUNDING") watchOrder(no, { until: (x) => x.status !== "REFUNDING" });
  });
}

// watchOrder polls the order (bounded) until `until` says it has settled.
// With sync it asks WeChat through the workflow, as the mini-program does
// after wx.requestPayment returns.
async function watchOrder(no, { sync = false, until, tries = 30, every = 1000, waiting = "" } = {}) {
  const me = ++state.watch;
  state.waiting = waiting;
  render();
  try {
    for (let i = 0; i < tries; i++) {
      if (me !== state.watch || !state.order || state.order.order_no !== no) return null;
      const { data } = await call("GET", `/v1/orders/${encodeURIComponent(no)}${sync ? "?sync=1" : ""}`, undefined, { quiet: true });
      if (me !== state.watch) return null;
      showOrder(data);
      if (until(data)) return data;
      await sleep(every);
    }
    if (me === state.watch) log(`order ${no} is still ${state.order.status}; press Refresh or Check payment later`);
    return null;
  } catch (err) {
    if (me === state.watch) showError(err);
    return null;
  } finally {
    if (me === state.watch) {
      state.waiting = "";
      render();
    }
  }
}

async function pay() {
  const o = state.order;
  await busy($("pay-btn"), async () => {
    const { data } = await call("POST", `/v1/orders/${encodeURIComponent(o.order_no)}/pay`);
    if (data && data.order_no) {
      // Paying an order that is already paid answers the order itself.
      showOrder(data);
      return;
    }
    state.payParams.set(o.order_no, data);
    log(`prepay ready for ${o.order_no}: ${data.package}`, "ok");
  });
}

async function payAsPayer() {
  const o = state.order;
  const ok = await busy($("payer-btn"), async () => {
    const { data } = await call("POST", `${state.cfg.sim_path}/transactions/${encodeURIComponent(o.order_no)}/pay`);
    log(`the payer paid at the simulator: trade_state ${data.trade_state || "?"}${data.transaction_id ? ", " + data.transaction_id : ""}`, "ok");
    return true;
  });
  if (ok) {
    await watchOrder(o.order_no, {
      sync: true, until: (x) => x.status !== PAYABLE,
      waiting: "Asking how the payment went (GET ?sync=1)…",
    });
  }
}

async function syncNow() {
  const o = state.order;
  await busy($("sync-btn"), async () => {
    const { data } = await call("GET", `/v1/orders/${encodeURIComponent(o.order_no)}?sync=1`);
    showOrder(data);
    log(`WeChat ${data.wechat_synced ? "confirmed the payment" : "has no payment for it yet"}`, data.wechat_synced ? "ok" : "");
  });
}

async function cancelOrder() {
  const o = state.order;
  const res = await busy($("cancel-btn"), async () => {
    const r = await call("POST", `/v1/orders/${encodeURIComponent(o.order_no)}/cancel`);
    showOrder(r.data);
    return r;
  });
  if (res && res.status === 202) {
    await watchOrder(o.order_no, { until: (x) => x.status !== PAYABLE, waiting: "Closing at WeChat Pay…" });
  }
}

async function refund() {
  const o = state.order;
  const reason = $("refund-reason").value.trim();
  const ok = await busy($("refund-btn"), async () => {
    const { data } = await call("POST", `/v1/orders/${encodeURIComponent(o.order_no)}/refund`, reason ? { reason } : {});
    showOrder(data);
    return true;
  });
  if (ok && state.order.status === "REFUNDING") {
    await watchOrder(o.order_no, { until: (x) => x.status !== "REFUNDING", tries: 60, waiting: "Waiting for WeChat Pay's refund result…" });
  }
}

// refundedQty is how many of each product the order's refunds hold
// (queued, at WeChat or returned; a failed one keeps its goods too, as the
// workflow does): what is left can still be refunded.
function refundedQty(o) {
  const out = new Map();
  for (const r of o.refunds || []) {
    for (const it of r.items || []) out.set(it.product_id, (out.get(it.product_id) || 0) + it.quantity);
  }
  return out;
}

// refundOne asks for a refund of one unit of a product of the order: a
// refund of its own (<order_no>-R<n>), queued by the order's workflow and
// asked of WeChat Pay with that item's goods_detail and amount. The order
// stays PAID with refunded_fen, until every item is refunded (REFUNDED).
async function refundOne(productId, button) {
  const o = state.order;
  const reason = $("refund-reason").value.trim();
  const body = { items: [{ product_id: productId, quantity: 1 }] };
  if (reason) body.reason = reason;
  const data = await busy(button, async () => {
    const r = await call("POST", `/v1/orders/${encodeURIComponent(o.order_no)}/refund`, body);
    showOrder(r.data);
    return r.data;
  });
  if (!data) return;
  const mine = (data.refunds || []).at(-1);
  if (mine) log(`refund ${mine.out_refund_no} of ${yuan(mine.refund_fen)} asked: ${mine.status}`, "ok");
  const open = (x) => (x.refunds || []).some((r) => r.status === "QUEUED" || r.status === "PROCESSING");
  const before = data.refunded_fen;
  const done = await watchOrder(o.order_no, { until: (x) => !open(x), tries: 180, waiting: "Waiting for WeChat Pay to return the item's money…" });
  if (done && done.refunded_fen !== before) {
    log(`refunded ${yuan(done.refunded_fen)} of ${yuan(done.total_fen)}; the item's stock is back`, "ok");
    loadProducts();
  }
}

// loadWechat reads WeChat's shipping view of the order from the simulator.
async function loadWechat(no) {
  try {
    const { data } = await call("GET", `${state.cfg.sim_path}/shipping/${encodeURIComponent(no)}`, undefined, { auth: false, quiet: true });
    state.wechat.set(no, data);
  } catch (_) {
    state.wechat.delete(no);
  }
  render();
}

// shipAsShop plays the shop: the admin API ships the order with one
// express package; the workflow reports it to WeChat.
async function shipAsShop() {
  const o = state.order;
  const tracking = $("ship-tracking").value.trim() || "DEMO" + Date.now().toString().slice(-10);
  const body = { logistics_type: "express", packages: [{ express_company: $("ship-carrier").value, tracking_no: tracking }] };
  const ok = await busy($("ship-btn"), async () => {
    const { data } = await call("POST", `/v1/admin/orders/${encodeURIComponent(o.order_no)}/ship`, body,
      { auth: false, headers: { Authorization: "Bearer " + state.cfg.admin_token } });
    showOrder(data);
    log(`the shop shipped ${o.order_no}: ${body.packages[0].express_company} ${tracking}`, "ok");
    return true;
  });
  if (ok) {
    // The workflow reports the shipment to WeChat just after SHIPPED.
    for (let i = 0; i < 20; i++) {
      await loadWechat(o.order_no);
      const w = state.wechat.get(o.order_no);
      if (w && w.order_state >= 2) {
        log(`WeChat has the shipment: order_state ${w.order_state} (${w.order_state_desc})`, "ok");
        break;
      }
      await sleep(500);
    }
  }
}

// confirmReceiptInWechat plays the buyer confirming receipt in WeChat; the
// settlement event follows, and the workflow completes the order.
async function confirmReceiptInWechat() {
  const o = state.order;
  const ok = await busy($("receipt-btn"), async () => {
    const { data } = await call("POST", `${state.cfg.sim_path}/shipping/${encodeURIComponent(o.order_no)}/confirm-receipt`);
    state.wechat.set(o.order_no, data);
    log(`the buyer confirmed receipt in WeChat: order_state ${data.order_state} (${data.order_state_desc})`, "ok");
    return true;
  });
  if (ok) {
    await watchOrder(o.order_no, { until: (x) => x.status !== "SHIPPED", waiting: "Waiting for WeChat's settlement event…" });
    await loadWechat(o.order_no);
  }
}

async function confirmOrder() {
  const o = state.order;
  await busy($("confirm-btn"), async () => {
    const { data } = await call("POST", `/v1/orders/${encodeURIComponent(o.order_no)}/confirm`);
    showOrder(data);
  });
}

function stepText(o) {
  const pp = state.payParams.has(o.order_no);
  switch (o.status) {
    case "PENDING":
      return pp
        ? "The prepay is made. Play the payer, or cancel the order."
        : `Waiting for payment until ${clock(o.pay_deadline)}; after that the workflow closes it.`;
    case "PAID":
      return o.refunded_fen
        ? `Paid, ${yuan(o.refunded_fen)} of ${yuan(o.total_fen)} refunded: the rest is still the order's. Refund another item, or let the shop ship the rest.`
        : "Paid: WeChat Pay confirmed it, and the workflow deducts the stock. The shop ships it next (“Ship as the shop”); until then you can ask for a refund, of everything or of one item (“Refund one”).";
    case "SHIPPED":
      return `Shipped${o.tracking_no ? " (tracking " + o.tracking_no + ")" : ""} and reported to WeChat. The buyer confirms receipt in WeChat; the order completes on WeChat's word.`;
    case "COMPLETED":
      return "Completed. The order's workflow has ended.";
    case "CLOSED":
      return "Closed: cancelled, or not paid before its deadline. The order's workflow has ended.";
    case "REFUNDING":
      return "The refund is at WeChat Pay; waiting for its result.";
    case "REFUNDED":
      return "Refunded: the money is back with the payer and the stock with the shop. The order's workflow has ended.";
    case "REFUND_FAILED":
      return "WeChat Pay could not refund it; the order is flagged for a person at the shop.";
    default:
      return "";
  }
}

// ---------------------------------------------------------------- my orders

async function loadOrders(more) {
  if (!state.session) return;
  try {
    const q = more && state.nextCursor ? `&cursor=${encodeURIComponent(state.nextCursor)}` : "";
    const { data } = await call("GET", `/v1/orders?limit=10${q}`, undefined, { quiet: true });
    state.orders = more ? state.orders.concat(data.orders || []) : data.orders || [];
    state.nextCursor = data.next_cursor || "";
  } catch (err) {
    showError(err);
  }
  render();
}

function renderOrders() {
  const body = $("orders").tBodies[0];
  body.replaceChildren();
  if (!state.session) {
    body.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "Log in to see your orders.")));
  } else if (!state.orders.length) {
    body.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No orders yet.")));
  }
  for (const o of state.orders) {
    const wf = workflowURL(o.order_no);
    const selected = state.order && state.order.order_no === o.order_no;
    body.append(el("tr", { class: selected ? "selected" : "", dataset: { orderNo: o.order_no } },
      el("td", {},
        el("button", { type: "button", class: "link mono", title: "show this order", onclick: () => openOrder(o.order_no) }, o.order_no),
        el("div", { class: "muted small", title: when(o.created_at) }, short(o.created_at))),
      el("td", {}, el("span", { class: "status", dataset: { status: o.status } }, o.status)),
      el("td", { class: "num" }, yuan(o.total_fen)),
      el("td", { class: "nowrap" }, wf ? el("a", { href: wf, target: "_blank", rel: "noopener", title: `workflow order-${o.order_no}` }, "Web UI ↗") : ""),
    ));
  }
  $("orders-more").hidden = !state.nextCursor;
}

// ---------------------------------------------------------------- render

function render() {
  const s = state.session;
  $("login-state").textContent = s
    ? `Logged in with code “${s.code || "?"}”${userOf(s.token) ? " as " + userOf(s.token) : ""}; the token is valid until ${when(s.expires_at)}.`
    : "Not logged in.";
  $("logout-btn").hidden = !s;

  const total = cartTotal();
  $("cart-total").textContent = yuan(total);
  $("order-btn").disabled = !s || total === 0;
  $("order-hint").hidden = !!s && total > 0;

  const o = state.order;
  $("order-empty").hidden = !!o;
  $("order").hidden = !o;
  if (o) {
    $("order-no").textContent = o.order_no;
    const st = $("order-status");
    st.textContent = o.status;
    st.dataset.status = o.status;
    const step = $("order-step");
    step.textContent = state.waiting || stepText(o);
    step.classList.toggle("working", !!state.waiting);

    const wf = workflowURL(o.order_no);
    const link = $("workflow-link");
    link.hidden = !wf;
    link.href = wf || "#";
    link.textContent = `Workflow order-${o.order_no} in the Temporal Web UI ↗`;

    const items = $("order-items").tBodies[0];
    const refunded = refundedQty(o);
    // Before shipping the buyer can take back one item at a time.
    const partly = o.status === "PAID" && !state.waiting;
    items.replaceChildren(...(o.items || []).map((it) => {
      const back = refunded.get(it.product_id) || 0;
      const cell = el("td", {});
      if (partly && back < it.quantity) {
        const b = el("button", { type: "button", class: "link danger", "data-refund-one": String(it.product_id) }, "Refund one");
        b.addEventListener("click", () => refundOne(it.product_id, b));
        cell.append(b);
      }
      return el("tr", {},
        el("td", {}, it.name),
        el("td", { class: "num" }, yuan(it.unit_price_fen)),
        el("td", { class: "num" }, it.quantity),
        el("td", { class: "num" }, yuan(it.unit_price_fen * it.quantity)),
        el("td", { class: "num" }, back ? String(back) : ""),
        cell);
    }));
    $("order-total").textContent = yuan(o.total_fen);
    $("order-refunded").textContent = o.refunded_fen ? `−${yuan(o.refunded_fen)}` : "";
    const rs = o.refunds || [];
    $("order-refunds").hidden = rs.length === 0;
    $("refunds").tBodies[0].replaceChildren(...rs.map((r) => el("tr", {},
      el("td", {}, el("code", {}, r.out_refund_no)),
      el("td", {}, (r.items || []).length ? r.items.map((it) => `${it.name} × ${it.quantity}`).join(", ") : "the whole order"),
      el("td", { class: "num" }, yuan(r.refund_fen)),
      el("td", {}, r.status))));

    const facts = [["Created", when(o.created_at)]];
    if (o.status === "PENDING") facts.push(["Pay before", when(o.pay_deadline)]);
    if (o.address) facts.push(["Address", o.address]);
    if (o.paid_at) facts.push(["Paid", when(o.paid_at)]);
    if (o.shipping_address) {
      const a = o.shipping_address;
      facts.push(["Ship to", `${a.receiver_name} ${a.phone}, ${a.province}${a.city}${a.district || ""}${a.detail}`]);
    }
    if (o.shipped_at) facts.push(["Shipped", when(o.shipped_at)]);
    if (o.shipment) {
      const pk = (o.shipment.packages || []).map((p) => `${p.express_company} ${p.tracking_no}`).join(", ");
      facts.push(["Shipment", `${o.shipment.logistics_type}${pk ? ": " + pk : ""} · ${o.shipment.item_desc || ""}`]);
    }
    if (o.completed_at) facts.push(["Completed", when(o.completed_at)]);
    if (o.closed_at) facts.push(["Closed", when(o.closed_at)]);
    if (o.refunded_fen) facts.push(["Refunded", `${yuan(o.refunded_fen)} of ${yuan(o.total_fen)}`]);
    if (o.wechat_synced !== undefined) facts.push(["Confirmed by WeChat", o.wechat_synced ? "yes" : "not yet"]);
    $("order-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));

    const pending = o.status === PAYABLE;
    const pp = state.payParams.get(o.order_no);
    const watching = !!state.waiting;
    // Only what the order's status allows is shown; the payer can pay once
    // the prepay exists.
    for (const id of ["pay-btn", "payer-btn", "sync-btn", "cancel-btn"]) $(id).hidden = !pending;
    setEnabled("pay-btn", pending && !watching);
    setEnabled("payer-btn", pending && !!pp && !watching);
    setEnabled("sync-btn", pending && !watching);
    setEnabled("cancel-btn", pending && !watching);
    $("refund").hidden = o.status !== "PAID";
    setEnabled("refund-btn", o.status === "PAID" && !watching);
    $("confirm-btn").hidden = o.status !== "SHIPPED";
    setEnabled("confirm-btn", o.status === "SHIPPED" && !watching);
    const canShip = o.status === "PAID" && !!state.cfg.admin_token;
    $("ship").hidden = !canShip;
    setEnabled("ship-btn", canShip && !watching);
    $("receipt-btn").hidden = o.status !== "SHIPPED";
    setEnabled("receipt-btn", o.status === "SHIPPED" && !watching);
    $("no-actions").hidden = pending || ["PAID", "SHIPPED"].includes(o.status);
    const w = state.wechat.get(o.order_no);
    $("wechat-view").hidden = !w || !w.order_state;
    if (w) {
      const wf = [["order_state", `${w.order_state} (${w.order_state_desc})`]];
      for (const p of w.shipping_list || []) wf.push(["Package", `${p.express_company || ""} ${p.tracking_no || ""} · ${p.item_desc}`]);
      wf.push(["Uploads", `${(w.uploads || []).length} (WeChat takes one, and one change)`]);
      if (w.confirmed_at) wf.push(["Receipt confirmed", `${when(w.confirmed_at)} by ${w.confirm_receive_method === 2 ? "WeChat" : "the buyer"}`]);
      if (w.settled_at) wf.push(["Settled", when(w.settled_at)]);
      $("wechat-facts").replaceChildren(...wf.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    }
    $("pay-params").hidden = !pp || !pending;
    if (pp) {
      for (const k of ["timeStamp", "nonceStr", "package", "signType", "paySign"]) $("pp-" + k).textContent = pp[k] || "";
    }
  }
  renderOrders();
}

function setEnabled(id, on) {
  const b = $(id);
  if (!b.classList.contains("busy")) b.disabled = !on;
}

// ---------------------------------------------------------------- start

async function start() {
  $("login-form").addEventListener("submit", login);
  $("logout-btn").addEventListener("click", () => {
    setSession(null);
    log("logged out");
  });
  $("order-btn").addEventListener("click", placeOrder);
  $("pay-btn").addEventListener("click", pay);
  $("payer-btn").addEventListener("click", payAsPayer);
  $("sync-btn").addEventListener("click", syncNow);
  $("cancel-btn").addEventListener("click", cancelOrder);
  $("refund-btn").addEventListener("click", refund);
  $("confirm-btn").addEventListener("click", confirmOrder);
  $("ship-btn").addEventListener("click", shipAsShop);
  $("receipt-btn").addEventListener("click", confirmReceiptInWechat);
  $("refresh-btn").addEventListener("click", () => state.order && openOrder(state.order.order_no));
  $("orders-refresh").addEventListener("click", () => busy($("orders-refresh"), () => loadOrders()));
  $("orders-more").addEventListener("click", () => busy($("orders-more"), () => loadOrders(true)));
  $("error-close").addEventListener("click", clearError);

  try {
    const { data } = await call("GET", "/demo/config.json", undefined, { auth: false, quiet: true });
    Object.assign(state.cfg, data || {});
  } catch (err) {
    showError(err);
  }
  const ui = uiBase();
  if (ui) {
    $("ui-link").href = `${ui}/workflows`;
    $("ui-link").hidden = false;
  }
  state.session = loadSession();
  if (state.session && state.session.code) $("login-code").value = state.session.code;
  render();
  await loadProducts();
  await loadOrders();
  document.body.dataset.ready = "true";
}

start();
