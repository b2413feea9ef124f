#!/usr/bin/env node
// Parse Adaptive Cards with Microsoft's renderer (npm "adaptivecards") and report what it flags.
//
//   node tests/cardcheck/check_cards.js card1.json envelope2.json ...
//   node tests/cardcheck/check_cards.js < cards.json        (one JSON value on stdin)
//
// Each input is a card, a Teams message envelope ({"type":"message","attachments":[...]}), or a
// JSON array of those.
// Items may also be {"name": "...", "payload": <card or envelope>} so results can be matched up.
// Prints a JSON array, one result per card: {name, errors: [...], hints: [...]}; each event is
// {phase, event, message}. Exit code: 0 when no card has an error, 1 when any has, 2 on bad input.
//
// The renderer is lenient (it accepts Action.Submit, a missing version, ...): our own Teams rules
// live in triage/render/teams.py (lint) and run next to this check in the tests.
"use strict";

const fs = require("fs");
const path = require("path");

function loadRenderer() {
  // The package's "main" is an ES-module build with extensionless imports that plain Node cannot
  // load; the UMD bundle in dist/ works without a DOM for parsing and validation.
  const bundle = path.join("adaptivecards", "dist", "adaptivecards.js");
  const roots = [process.cwd(), path.resolve(__dirname, "..", "..")];
  for (const root of roots) {
    const candidate = path.join(root, "node_modules", bundle);
    if (fs.existsSync(candidate)) return require(candidate);
  }
  throw new Error("node_modules/adaptivecards not found: run `npm install` at the repo root");
}

function cardsOf(value, name) {
  if (Array.isArray(value)) return value.flatMap((item, i) => cardsOf(item, `${name}[${i}]`));
  if (value && typeof value === "object" && "payload" in value && "name" in value) {
    return cardsOf(value.payload, String(value.name));
  }
  if (value && value.type === "message" && Array.isArray(value.attachments)) {
    return value.attachments.map((a, i) => ({
      name: value.attachments.length > 1 ? `${name}#${i}` : name,
      card: a && a.content,
    }));
  }
  return [{ name, card: value }];
}

function check(AC, name, card) {
  const result = { name, errors: [], hints: [] };
  const describe = (e) => ({
    phase: AC.ValidationPhase[e.phase],
    event: AC.ValidationEvent[e.event],
    message: e.message,
  });
  const record = (e) => {
    // Hints are advice, not faults; everything else the renderer reports counts as an error.
    (e.event === AC.ValidationEvent.Hint ? result.hints : result.errors).push(describe(e));
  };
  if (!card || typeof card !== "object") {
    result.errors.push({ phase: "Input", event: "NotACard", message: "not a JSON object" });
    return result;
  }
  const adaptive = new AC.AdaptiveCard();
  const context = new AC.SerializationContext(AC.Versions.v1_4);
  try {
    adaptive.parse(card, context);
  } catch (err) {
    result.errors.push({ phase: "Parse", event: "Exception", message: String(err && err.message) });
    return result;
  }
  for (let i = 0; i < context.eventCount; i++) record(context.getEventAt(i));
  for (const e of adaptive.validateProperties().validationEvents) record(e);
  return result;
}

function main(argv) {
  let inputs;
  try {
    inputs = argv.length
      ? argv.map((file) => ({ name: file, value: JSON.parse(fs.readFileSync(file, "utf8")) }))
      : [{ name: "stdin", value: JSON.parse(fs.readFileSync(0, "utf8")) }];
  } catch (err) {
    process.stderr.write(`check_cards: cannot read input: ${err.message}\n`);
    return 2;
  }
  const AC = loadRenderer();
  const results = inputs.flatMap(({ name, value }) =>
    cardsOf(value, name).map(({ name: cardName, card }) => check(AC, cardName, card)));
  process.stdout.write(JSON.stringify(results, null, 2) + "\n");
  return results.some((r) => r.errors.length) ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
