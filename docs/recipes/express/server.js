// Your Call Automation callback endpoint in Express, with acs-triage watching over it.
// Each callback's raw body and Authorization header (the token ACS signed) go to acs-triage in
// the background with a short timeout; the answer to ACS never waits for it.
//   ACS_TRIAGE_FORWARD_URL=https://<app>.azurewebsites.net/api/callbacks?code=<function key> node server.js
"use strict";
const express = require("express");

const FORWARD_URL = process.env.ACS_TRIAGE_FORWARD_URL || "";
if (!/^https?:\/\//.test(FORWARD_URL)) {
  // A forward that can never work is an error at start, not a silent no-op.
  console.error("ACS_TRIAGE_FORWARD_URL must be acs-triage's callback URL, https://<app>.azurewebsites.net/api/callbacks?code=<function key>");
  process.exit(2);
}
const TIMEOUT_MS = Number(process.env.ACS_TRIAGE_FORWARD_TIMEOUT_SECONDS || "2") * 1000;
// Forwards in flight; past this many (acs-triage hanging), new ones are dropped, not queued.
const MAX_PENDING = 64;
let pending = 0;

function forwardToTriage(body, authorization) {
  if (pending >= MAX_PENDING) {
    console.warn(`acs-triage forward dropped: ${MAX_PENDING} forwards already pending`);
    return;
  }
  pending += 1;
  const headers = { "Content-Type": "application/json" };
  if (authorization) headers.Authorization = authorization;
  // Not awaited: the handler answers ACS while this runs. The URL holds a key: never log it.
  fetch(FORWARD_URL, { method: "POST", body, headers, signal: AbortSignal.timeout(TIMEOUT_MS) })
    .then((res) => {
      if (!res.ok) console.warn(`acs-triage refused a forwarded callback: HTTP ${res.status}`);
      return res.arrayBuffer();
    })
    .catch((err) => console.warn(`acs-triage forward failed: ${err.name}`))
    .finally(() => {
      pending -= 1;
    });
}

// Your call control goes here (answer, play, recognize, transfer …); this one names the event.
function handle(event) {
  return String(event.type || "");
}

const app = express();
app.post("/api/calls/events", express.raw({ type: "*/*", limit: "1mb" }), (req, res) => {
  const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  forwardToTriage(body, req.get("authorization"));
  let payload;
  try {
    payload = JSON.parse(body.toString("utf8"));
  } catch {
    return res.status(400).json({ error: "body is not JSON" });
  }
  const events = Array.isArray(payload) ? payload : [payload];
  res.json({ handled: events.filter((e) => e && typeof e === "object").map(handle) });
});

const port = Number(process.env.PORT || 8080);
const host = process.env.HOST || "0.0.0.0";
app.listen(port, host, () => console.log(`listening on http://${host}:${port}`));
