#!/usr/bin/env node
// SpeakerService.Embed from Node.js: the project's .proto files loaded at run time (no codegen),
// a bearer token in metadata, TLS verified against a CA file. Prints one JSON line on stdout:
//   {"ok": true, "dim": 192, "model": {...}}   or   {"ok": false, "code": "UNAUTHENTICATED", ...}
// Usage: node embed.js --target HOST:PORT --ca CA.pem --token TOKEN --wav FILE [--plaintext]
"use strict";
const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

function parseArgs(argv) {
  const args = { plaintext: false };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, "");
    if (name === "plaintext") args.plaintext = true;
    else args[name] = argv[++i];
  }
  for (const need of ["target", "wav"]) {
    if (!args[need]) throw new Error(`--${need} is required`);
  }
  return args;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  // The repository root is the include path: the protos import "protos/v1/common.proto".
  const root = path.resolve(__dirname, "..", "..");
  const definition = protoLoader.loadSync("protos/v1/speaker.proto", {
    includeDirs: [root],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  const toitsu = grpc.loadPackageDefinition(definition).toitsu.v1;
  const credentials = args.plaintext
    ? grpc.credentials.createInsecure()
    : grpc.credentials.createSsl(fs.readFileSync(args.ca));
  const client = new toitsu.SpeakerService(args.target, credentials);
  const metadata = new grpc.Metadata();
  if (args.token !== undefined) metadata.set("authorization", `Bearer ${args.token}`);
  const request = { audio: { encoded: fs.readFileSync(args.wav) } };
  const deadline = new Date(Date.now() + 30000);
  client.Embed(request, metadata, { deadline }, (err, reply) => {
    const out = err
      ? { ok: false, code: grpc.status[err.code], details: err.details }
      : { ok: true, dim: reply.embedding.values.length, model: reply.embedding.model };
    process.stdout.write(JSON.stringify(out) + "\n");
    client.close();
  });
}

main();
